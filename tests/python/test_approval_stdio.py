"""Approval of the exact call over stdio, with the official client in both of its modes: a tool
that declares `approval = "..."` does not run when called; the call is parked until a person
approves that very call (principal, tool, arguments) from the command line as a second identity,
signing the verdict with an SSH key that the configuration's `[approvers]` lists with the
approver grant, and the same call then runs once. Parked, denied, self-approved, replayed and
expired calls, verdicts without the approver grant or from an unlisted key, and a second verdict
from the same operating-system account do not run it: the side effect (a row in PostgreSQL, a
document in the AWS emulator, an AssumeRole in its CloudTrail) is counted, not taken on the
server's word."""

from __future__ import annotations

import json
import os
import pwd
import re
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from docs_harness import (  # noqa: F401  (fixtures)
    assume_role_calls,
    connect_docs,
    docs_config,
    docs_server,
    env,
    exists,
    now,
    put_document,
    run_docs_cli,
    seed,
    unique_principal as unique_docs_principal,
)
from notes_harness import (
    APPROVER,
    FORBIDDEN,
    approve_from_cli,
    approver_key,
    approvers_toml,
    args_sha256,
    audit_events,
    call_approved,
    grants_toml,
    new_ssh_key,
    parked_approval,
    run_cli,
    text_of,
    trail_events,
)
from records_harness import (  # noqa: F401  (connect_records is a fixture)
    connect_records,
    records_binary,
    unique_principal,
    write_config,
)

pytestmark = pytest.mark.anyio

WRITE = grants_toml("records:write")
APPROVAL_ID = re.compile(r"[0-9a-f]{32}")
CAROL = "carol@example.com"
# The operating-system account the command line runs as, which every CLI verdict records.
OS_USER = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture(scope="module")
def records() -> Path:
    path = records_binary()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p records-server` (or set RECORDS_SERVER_BIN)")
    return path


async def parked(session, tool: str, arguments: dict[str, Any]) -> tuple[str, MCPError]:
    """Call `tool`, which must be parked for approval; the approval id and the refusal."""
    with pytest.raises(MCPError) as refused:
        await session.call_tool(tool, arguments)
    approval = parked_approval(refused.value)
    assert approval is not None, f"{tool} was refused without being parked: {refused.value.error}"
    assert APPROVAL_ID.fullmatch(approval), approval
    return approval, refused.value


async def refused(session, tool: str, arguments: dict[str, Any]) -> MCPError:
    with pytest.raises(MCPError) as error:
        await session.call_tool(tool, arguments)
    assert error.value.error.code == FORBIDDEN, error.value.error
    return error.value


def approvals(binary: Path, config: Path, *args: str):
    """`binary --config config approvals ARGS`: the operator's command line, another process."""
    return run_cli(binary, "--config", str(config), "approvals", *args)


def decide(binary: Path, config: Path, verdict: str, approval: str, principal: str = APPROVER, *extra: str):
    """`approvals approve|deny APPROVAL --key KEY EXTRA...` signed with `principal`'s key."""
    return approve_from_cli(binary, config, approval, approver_key(principal), *extra, verdict=verdict)


def cli_events(stderr: str, event: str) -> list[dict[str, Any]]:
    """The audit events of kind `event` the command line wrote to its own stderr."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("target") == "mcp_lp::audit" and e.get("event") == event]


async def rows(session, title: str) -> list[dict[str, Any]]:
    """The caller's records whose title contains `title` (row-level security shows only theirs)."""
    result = await session.call_tool("queryRecords", {"title_contains": title, "limit": 100})
    assert not result.is_error, text_of(result)
    return result.structured_content["records"]


async def test_rejects_call_without_approval(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("parked")
    config = write_config(tmp_path, principal, WRITE)
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "parked record", "body": "waits for a person"}
    async with connect_records(records, config, errlog) as session:
        approval, error = await parked(session, "insertRecord", arguments)
        assert error.error.code == FORBIDDEN
        # The model reads the refusal: it says that a person approves, not how to.
        expires_at = error.error.data["approval"]["expires_at"]
        assert error.error.message == (
            "Tool `insertRecord` needs approval of this call by a person holding `records:approve`, "
            "given outside this conversation; then call the tool again with the same arguments. "
            f"It expires at {expires_at}."
        ), error.error.message
        assert "approvals approve" not in error.error.message
        assert approval not in error.error.message
        assert error.error.data["tool"] == "insertRecord"
        assert error.error.data["approval"] == {"id": approval, "expires_at": expires_at}
        # Asking again before anyone approved runs nothing either.
        pending = await refused(session, "insertRecord", arguments)
        assert pending.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert pending.error.data["approval"]["id"] == approval
        assert await rows(session, "parked record") == []

    # The operator sees the call as it was asked, still pending.
    shown = approvals(records, config, "show", approval)
    assert shown.returncode == 0, shown.stderr
    assert f"tool insertRecord, requested by {principal} at " in shown.stdout, shown.stdout
    assert "status pending (0 of 1)" in shown.stdout, shown.stdout
    assert '"title": "parked record"' in shown.stdout, shown.stdout

    [requested] = trail_events(errlog, "approval_requested")
    assert requested["approval"] == approval
    assert (requested["tool"], requested["principal"]) == ("insertRecord", principal)
    assert requested["args_sha256"] == args_sha256(arguments)
    assert requested["grant"] == "records:approve"
    calls = [e for e in audit_events(errlog) if e["tool"] == "insertRecord"]
    assert [(e["decision"], e["outcome"]) for e in calls] == [("deny", "approval_required"), ("deny", "approval_refused")]
    assert {e["approval"] for e in calls} == {approval}
    assert not any("approvers" in e for e in calls)


async def test_accepts_call_approved_from_the_cli_while_the_client_waits(
    records: Path, tmp_path: Path, connect_records
) -> None:
    principal = unique_principal("waits")
    config = write_config(tmp_path, principal, WRITE)
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "approved record", "body": "approved by bob"}
    decided = anyio.Event()
    operator: dict[str, Any] = {}

    async def approve_from_the_command_line() -> None:
        # Another process, as an operator would: it learns the id from `approvals list`, not
        # from the client, reads the call, then approves it as a second identity, signing the
        # verdict with that identity's SSH key.
        base = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
        command = [str(records), "--config", str(config), "approvals"]
        while True:
            listed = await anyio.run_process([*command, "list"], check=False, env=base)
            assert listed.returncode == 0, listed.stderr.decode()
            # `  ID  TOOL  PRINCIPAL  STATUS ...` under a header line.
            waiting = [f for f in map(str.split, listed.stdout.decode().splitlines()[1:]) if f[3:4] == ["pending"]]
            if waiting:
                break
            await anyio.sleep(0.1)
        [[approval, tool, requester, *_]] = waiting
        assert (tool, requester) == ("insertRecord", principal)
        shown = await anyio.run_process([*command, "show", approval], check=False, env=base)
        assert '"body": "approved by bob"' in shown.stdout.decode(), shown.stdout.decode()
        done = await anyio.run_process(
            [*command, "approve", approval, "--key", str(approver_key())], check=False, env=base
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().startswith(f"approved by {APPROVER}\napproval {approval}\n"), done.stdout
        operator.update(approval=approval, stderr=done.stderr.decode())
        decided.set()

    async with connect_records(records, config, errlog) as session:
        async with anyio.create_task_group() as operators:
            operators.start_soon(approve_from_the_command_line)
            approval, _ = await parked(session, "insertRecord", arguments)
            # The client keeps its session open and waits for the person.
            with anyio.fail_after(30):
                await decided.wait()
        assert operator["approval"] == approval
        result = await session.call_tool("insertRecord", arguments)
        assert not result.is_error, text_of(result)
        assert result.structured_content["owner"] == principal
        [row] = await rows(session, "approved record")
        assert row == result.structured_content

    [approved] = cli_events(operator["stderr"], "approved")
    assert (approved["approval"], approved["by"], approved["principal"]) == (approval, APPROVER, principal)
    assert (approved["door"], approved["os_user"]) == ("cli", OS_USER)
    assert approved["args_sha256"] == args_sha256(arguments)
    ran = [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]
    assert [(e["approval"], e["approvers"], e["decision"]) for e in ran] == [(approval, [APPROVER], "allow")]


async def test_rejects_approval_by_the_requester(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("selfish")
    # The requester is a listed approver holding records:approve too, with a key of their own.
    config = write_config(
        tmp_path, principal, WRITE, approvers=False,
        extra=approvers_toml(tmp_path, "records:approve", principals=(APPROVER, principal)),
    )
    arguments = {"title": "self approved", "body": "x"}
    async with connect_records(records, config, tmp_path / "server.jsonl") as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = decide(records, config, "approve", approval, principal)
        assert done.returncode != 0, done.stdout
        assert "the requester may not approve their own call" in done.stderr, done.stderr
        assert cli_events(done.stderr, "approved") == []
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert await rows(session, "self approved") == []


async def test_rejects_denied_call(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("denied")
    config = write_config(tmp_path, principal, WRITE)
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "denied record", "body": "x"}
    async with connect_records(records, config, errlog) as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = decide(records, config, "deny", approval, APPROVER, "--reason", "not this record")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"denied by {APPROVER}\n"), done.stdout
        [denied] = cli_events(done.stderr, "denied")
        assert (denied["approval"], denied["by"], denied["reason"]) == (approval, APPROVER, "not this record")
        assert (denied["door"], denied["os_user"]) == ("cli", OS_USER)
        error = await refused(session, "insertRecord", arguments)
        assert error.error.message == f"tool `insertRecord` did not run: denied by {APPROVER}"
        assert error.error.data["approval"] == {"id": approval, "status": "denied", "url": None}
        assert await rows(session, "denied record") == []
    assert not [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]


async def test_rejects_replayed_approval(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("replay")
    config = write_config(
        tmp_path, principal, WRITE, approvers=False,
        extra=approvers_toml(tmp_path, "records:approve", principals=(APPROVER, CAROL)),
    )
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "replayed record", "body": "x"}
    async with connect_records(records, config, errlog) as session:
        first = await call_approved(session, records, config, "insertRecord", arguments, approver=APPROVER)
        assert not first.is_error, text_of(first)
        [used] = {e["approval"] for e in audit_events(errlog) if e["outcome"] == "ok" and e["tool"] == "insertRecord"}
        # The same call again: the approval was used up, so it is parked anew and does not run.
        again, _ = await parked(session, "insertRecord", arguments)
        assert again != used
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert len(await rows(session, "replayed record")) == 1
    # The used approval cannot be given again either, by another listed approver.
    done = decide(records, config, "approve", used, CAROL)
    assert done.returncode != 0, done.stdout
    assert "error: already used" in done.stderr, done.stderr
    ran = [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]
    assert len(ran) == 1


async def test_rejects_expired_approval(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("late")
    # The configuration shortens the attribute's 10-minute window.
    config = write_config(tmp_path, principal, WRITE, extra='\n[tools.insertRecord]\napproval = { expires = "2s" }\n')
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "expired record", "body": "x"}
    async with connect_records(records, config, errlog) as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = decide(records, config, "approve", approval)
        assert done.returncode == 0, done.stderr
        # Wait until the store itself says the approval expired.
        with anyio.fail_after(20):
            while "status expired," not in approvals(records, config, "show", approval).stdout:
                await anyio.sleep(0.2)
        # The approved call, retried too late, does not run: it is parked again, as a new call.
        again, _ = await parked(session, "insertRecord", arguments)
        assert again != approval
        assert await rows(session, "expired record") == []
    listed = approvals(records, config, "list").stdout
    assert re.search(rf"{approval}\s+insertRecord\s+{re.escape(principal)}\s+expired\s", listed), listed
    assert not [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]


async def test_refuses_cli_approval_without_the_approver_grant(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("nogrant")
    config = write_config(tmp_path, principal, WRITE)
    # The same deployment (the same directory, so the same approval store and governance key)
    # as seen by a command line whose [approvers] list bob's key with another approver grant.
    lacking = write_config(
        tmp_path, principal, WRITE, approvers=False, name="lacking.toml",
        extra=approvers_toml(tmp_path, "docs:approve", name="lacking.allowed_signers"),
    )
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "approved without the grant", "body": "x"}
    async with connect_records(records, config, errlog) as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = decide(records, lacking, "approve", approval)
        assert done.returncode != 0, done.stdout
        assert "approving needs grant `records:approve`" in done.stderr, done.stderr
        assert cli_events(done.stderr, "approved") == []
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert await rows(session, "approved without the grant") == []
        assert "status pending (0 of 1)" in approvals(records, config, "show", approval).stdout

        # The same key, where the configuration grants bob records:approve: the call runs.
        done = decide(records, config, "approve", approval)
        assert done.returncode == 0, done.stderr
        ran = await session.call_tool("insertRecord", arguments)
        assert not ran.is_error, text_of(ran)
        assert len(await rows(session, "approved without the grant")) == 1
    calls = [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]
    assert [(e["approval"], e["approvers"]) for e in calls] == [(approval, [APPROVER])]


async def test_refuses_cli_approval_from_a_key_the_configuration_does_not_list(
    records: Path, tmp_path: Path, connect_records
) -> None:
    principal = unique_principal("unlisted")
    config = write_config(tmp_path, principal, WRITE)
    signers = tmp_path / "approvers.allowed_signers"
    unlisted = new_ssh_key(tmp_path / "keys", "mallory")
    # mallory's private key beside bob's public key: the command line reads the key as bob's,
    # and ssh-keygen refuses to sign with a private key its public half does not match.
    forged = new_ssh_key(tmp_path / "forged", "mallory")
    forged.with_name("mallory.pub").write_text(
        approver_key().with_name(approver_key().name + ".pub").read_text(encoding="utf-8"), encoding="utf-8"
    )
    # The same store, read through a configuration that names no command-line approvers.
    bare = write_config(tmp_path, principal, WRITE, approvers=False, name="no-approvers.toml")
    arguments = {"title": "unlisted key", "body": "x"}
    async with connect_records(records, config, tmp_path / "server.jsonl") as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        refusals = [
            (approve_from_cli(records, config, approval, unlisted), f"the key {unlisted} is not listed in {signers}"),
            (
                approve_from_cli(records, config, approval, unlisted, "--as", APPROVER),
                f"{signers} does not list this key for `{APPROVER}`",
            ),
            (
                approve_from_cli(records, config, approval, forged),
                f"ssh-keygen could not sign with {forged}",
            ),
            (approve_from_cli(records, bare, approval, approver_key()), "no command-line approvers are configured"),
        ]
        for done, why in refusals:
            assert done.returncode != 0, done.stdout
            assert why in done.stderr, done.stderr
            assert cli_events(done.stderr, "approved") == []
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert await rows(session, "unlisted key") == []


async def test_refuses_second_cli_approval_by_the_same_os_user(records: Path, tmp_path: Path, connect_records) -> None:
    """Two approvals needed, two listed approvers with keys of their own: one operating-system
    account still counts once, so the second verdict from this account is refused."""
    principal = unique_principal("twice")
    extra = (
        '\n[tools.insertRecord]\napproval = { min = 2 }\n'
        + approvers_toml(tmp_path, "records:approve", principals=(APPROVER, CAROL))
    )
    config = write_config(tmp_path, principal, WRITE, approvers=False, extra=extra)
    errlog = tmp_path / "server.jsonl"
    arguments = {"title": "two approvals", "body": "x"}
    async with connect_records(records, config, errlog) as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        first = decide(records, config, "approve", approval, APPROVER)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith(f"approved by {APPROVER}\napproval {approval}\n"), first.stdout
        [approved] = cli_events(first.stderr, "approved")
        assert (approved["by"], approved["door"], approved["os_user"]) == (APPROVER, "cli", OS_USER)

        second = decide(records, config, "approve", approval, CAROL)
        assert second.returncode != 0, second.stdout
        assert f"the account `{OS_USER}` already gave a verdict on this call" in second.stderr, second.stderr
        assert cli_events(second.stderr, "approved") == []

        assert "status pending (1 of 2)" in approvals(records, config, "show", approval).stdout
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (1 of 2 approvals)"
        assert await rows(session, "two approvals") == []
    assert not [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]


async def test_refuses_cli_approval_from_the_requesters_os_account(
    records: Path, tmp_path: Path, connect_records
) -> None:
    """The requester's own operating-system account (`root` for root@example.com) may not
    approve their call, whichever listed key it signs with."""
    principal = f"{OS_USER}@example.com"
    title = f"approved from the requester's account {uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, principal, WRITE)
    arguments = {"title": title, "body": "x"}
    async with connect_records(records, config, tmp_path / "server.jsonl") as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = decide(records, config, "approve", approval, APPROVER)
        assert done.returncode != 0, done.stdout
        assert "the requester may not approve their own call" in done.stderr, done.stderr
        assert cli_events(done.stderr, "approved") == []
        still = await refused(session, "insertRecord", arguments)
        assert still.error.message == "tool `insertRecord` did not run: approval pending (0 of 1 approvals)"
        assert await rows(session, title) == []


async def test_refuses_call_over_the_cap_of_pending_approvals(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("capped")
    config = write_config(tmp_path, principal, WRITE, extra="\n[governance]\nmax_pending_per_caller = 2\n")
    errlog = tmp_path / "server.jsonl"
    async with connect_records(records, config, errlog) as session:
        waiting = [(await parked(session, "insertRecord", {"title": f"capped {i}", "body": "x"}))[0] for i in range(2)]
        with pytest.raises(MCPError) as over:
            await session.call_tool("insertRecord", {"title": "capped 2", "body": "x"})
        assert over.value.error.code == -32029, over.value.error
        assert "already wait for approval, the most allowed (2)" in over.value.error.message, over.value.error
        assert parked_approval(over.value) is None
        # Once one of them is decided, another call may wait.
        done = decide(records, config, "deny", waiting[0])
        assert done.returncode == 0, done.stderr
        await parked(session, "insertRecord", {"title": "capped 2", "body": "x"})
        assert await rows(session, "capped") == []
    listed = approvals(records, config, "list").stdout
    assert sum(1 for line in listed.splitlines() if principal in line) == 3, listed


async def test_refuses_parked_delete_without_assuming_a_role(
    docs_server, docs_config, env, seed, tmp_path, connect_docs
) -> None:
    key = put_document("private/", "delete me only when a person says so")
    principal = unique_docs_principal("parked")
    config = docs_config.write(principal, grants=grants_toml("docs:delete"))
    since = now()
    async with connect_docs(docs_server, config, tmp_path / "server.jsonl", env) as session:
        approval, _ = await parked(session, "deleteDocument", {"key": key})
        # Parked: no role was assumed for it, and the document is still there.
        assert assume_role_calls(since, principal) == []
        assert exists(key), "a parked delete removed the document"
        done = run_docs_cli(docs_server, config, env, "approvals", "approve", approval, "--key", str(approver_key()))
        assert done.returncode == 0, done.stderr
        deleted = await session.call_tool("deleteDocument", {"key": key})
        assert not deleted.is_error, text_of(deleted)
    assert not exists(key), "the approved delete left the document"
    [call] = assume_role_calls(since, principal)
    assert call["RoleArn"] == seed["roles"]["mcp-delete"]
    assert call["RoleSessionName"] == f"deleteDocument.{principal}"
    assert call["SourceIdentity"] == principal
