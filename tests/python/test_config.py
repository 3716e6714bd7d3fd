"""`check` and `inventory`: a bad configuration is refused at startup with a message naming the
file and the key, and never echoing a secret."""

from __future__ import annotations

import json

from notes_harness import EXAMPLE_DIR, run_cli

APP = '\n[app]\nnotes_dir = "notes"\n'


def check(binary, config, env=None):
    return run_cli(binary, "--config", str(config), "check", env=env)


def test_accepts_good_config_in_check(binary, workspace):
    config = workspace.write_config(grants="[]")
    done = check(binary, config)
    assert done.returncode == 0, done.stderr
    assert "alice@example.com" in done.stdout
    assert "delete_note" in done.stdout and "hidden" in done.stdout


def test_accepts_shipped_example_config_in_check(binary):
    done = check(binary, EXAMPLE_DIR / "mcp-lp.toml")
    assert done.returncode == 0, done.stderr


def test_accepts_granted_config_and_reports_expired_grant_in_check(binary, workspace):
    config = workspace.write_config(grants='[{ name = "notes:delete", expires = 2020-01-01T00:00:00Z }]')
    done = check(binary, config)
    assert done.returncode == 0, done.stderr
    assert "EXPIRED" in done.stdout, done.stdout


def test_rejects_unknown_key(binary, workspace):
    config = workspace.write_raw_config("[stdio]\ngrant = []\n" + APP)
    done = check(binary, config)
    assert done.returncode == 1, done
    assert str(config) in done.stderr, done.stderr
    assert "stdio" in done.stderr and "grant" in done.stderr, done.stderr


def test_rejects_wrong_type(binary, workspace):
    config = workspace.write_raw_config('[limits]\nmax_output_bytes = "big"\n' + APP)
    done = check(binary, config)
    assert done.returncode == 1, done
    assert str(config) in done.stderr, done.stderr
    assert "limits.max_output_bytes" in done.stderr, done.stderr


def test_rejects_missing_secret_file(binary, workspace):
    config = workspace.write_raw_config('[secrets]\napi-key = { file = "/nonexistent/x" }\n' + APP)
    done = check(binary, config)
    assert done.returncode == 1, done
    assert str(config) in done.stderr, done.stderr
    assert "secrets.api-key" in done.stderr, done.stderr
    assert "/nonexistent/x" in done.stderr, done.stderr


def test_rejects_env_secret_without_dev_flag_and_hides_its_value(binary, workspace):
    canary = "canary-token-5f1e9d"
    config = workspace.write_raw_config('[secrets]\ntoken = { env = "MCP_LP_TEST_TOKEN" }\n' + APP)
    done = check(binary, config, env={"MCP_LP_TEST_TOKEN": canary})
    assert done.returncode == 1, done
    assert "allow_env_secrets" in done.stderr, done.stderr
    assert "secrets.token" in done.stderr, done.stderr
    assert canary not in done.stderr + done.stdout


def test_accepts_env_secret_with_dev_flag_without_printing_it(binary, workspace):
    canary = "canary-token-8c2a71"
    config = workspace.write_raw_config(
        '[secrets]\ntoken = { env = "MCP_LP_TEST_TOKEN" }\n[dev]\nallow_env_secrets = true\n' + APP
    )
    done = check(binary, config, env={"MCP_LP_TEST_TOKEN": canary})
    assert done.returncode == 0, done.stderr
    assert canary not in done.stderr + done.stdout


def test_rejects_inline_secret_without_echoing_it(binary, workspace):
    config = workspace.write_raw_config('[secrets]\ndb = "postgres://u:canarypw@h/d"\n' + APP)
    done = check(binary, config)
    assert done.returncode == 1, done
    assert "secrets.db" in done.stderr, done.stderr
    assert "canarypw" not in done.stderr + done.stdout


def test_rejects_missing_notes_dir(binary, workspace):
    config = workspace.write_raw_config('[app]\nnotes_dir = "nowhere"\n')
    done = check(binary, config)
    assert done.returncode == 1, done
    assert "app.notes_dir" in done.stderr, done.stderr


def test_rejects_limits_for_a_tool_the_server_lacks(binary, workspace):
    config = workspace.write_raw_config('[tools.drop_table]\ntimeout = "1s"\n' + APP)
    done = check(binary, config)
    assert done.returncode == 1, done
    assert "tools.drop_table" in done.stderr, done.stderr


def test_accepts_inventory_listing_every_tool_with_requires(binary, workspace):
    config = workspace.write_config()
    done = run_cli(binary, "--config", str(config), "inventory")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    requires = {tool["name"]: tool["requires"] for tool in document["tools"]}
    assert requires == {"list_notes": [], "preview_note": [], "read_note": [], "delete_note": ["notes:delete"]}
    assert document["server"]["name"] == "notes-server"


def test_accepts_inventory_without_config(binary):
    done = run_cli(binary, "inventory")
    assert done.returncode == 0, done.stderr
    names = sorted(tool["name"] for tool in json.loads(done.stdout)["tools"])
    assert names == ["delete_note", "list_notes", "preview_note", "read_note"]
