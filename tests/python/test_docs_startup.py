"""docs-server refuses to start, one test per reason, with a message naming the file, the key
and what is wrong; `check` runs the same start-up as `serve`."""

from __future__ import annotations

from docs_harness import (  # noqa: F401  (fixtures)
    DOCS_EXAMPLE,
    docs_config,
    docs_server,
    env,
    run_docs_cli,
    seed,
    server_secret_key,
)


def check(binary, config, env):
    return run_docs_cli(binary, config, env, "check")


def test_accepts_shipped_example_config(docs_server, env):
    done = check(docs_server, DOCS_EXAMPLE / "mcp-lp.toml", env)
    assert done.returncode == 0, done.stderr
    [delete] = [line for line in done.stdout.splitlines() if line.strip().startswith("deleteDocument:")]
    assert "deleteDocument: capabilities [aws.role:use:docs-delete], requires [docs:delete], hidden" in delete, done.stdout
    # The shipped tool runs only on a person's approval of each call, and `check` says so.
    assert delete.endswith(", approval by 1 holder(s) of `docs:approve` within 600s"), delete
    # Long-term keys are allowed there only by the dev switch, and the start says so.
    assert "long-term access key" in done.stderr, done.stderr


def test_rejects_wildcard_arn(docs_server, docs_config, env):
    config = docs_config.write("alice", read_role="arn:aws:iam::000000000000:role/mcp-*")
    done = check(docs_server, config, env)
    assert done.returncode == 1, done
    assert f"{config}: key `aws.roles.docs-read.arn`: `arn:aws:iam::000000000000:role/mcp-*` holds a wildcard" in done.stderr, done.stderr


def test_rejects_malformed_arn(docs_server, docs_config, env):
    config = docs_config.write("alice", delete_role="arn:aws:iam::000000000000:user/mcp-lp-server")
    done = check(docs_server, config, env)
    assert done.returncode == 1, done
    assert f"{config}: key `aws.roles.docs-delete.arn`" in done.stderr, done.stderr
    assert "the resource is not `role/NAME`" in done.stderr, done.stderr


def test_rejects_static_keys_without_dev_flag(docs_server, docs_config, env, seed):
    config = docs_config.write("alice", dev="")
    done = check(docs_server, config, env)
    assert done.returncode == 1, done
    assert "long-term access key (it has no session token); refusing to start" in done.stderr, done.stderr
    assert "allow_static_aws_keys" in done.stderr, done.stderr
    assert server_secret_key(seed) not in done.stderr + done.stdout


def test_rejects_tool_role_missing_from_config(docs_server, docs_config, env):
    config = docs_config.write("alice", omit_delete_role=True)
    done = check(docs_server, config, env)
    assert done.returncode == 1, done
    assert f"{config}: key `aws.roles.docs-delete`" in done.stderr, done.stderr
    assert (
        "tool `deleteDocument` declares aws.role `docs-delete`, but the configuration has no [aws.roles.docs-delete] table"
        in done.stderr
    ), done.stderr


def test_rejects_invalid_session_policy_file(docs_server, docs_config, env, tmp_path):
    (tmp_path / "policy.json").write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}')
    config = docs_config.write("alice", read_extra='session_policy = "policy.json"')
    done = check(docs_server, config, env)
    assert done.returncode == 1, done
    assert f"{config}: key `aws.roles.docs-read.session_policy`" in done.stderr, done.stderr
    assert "policy.json: Statement[0]: needs `Action`" in done.stderr, done.stderr
