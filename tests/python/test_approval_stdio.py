"""Approval of the exact call over stdio, with the official client in both of its modes: a tool
that declares `approval = "..."` does not run when called; the call is parked until an operator
approves that very call (principal, tool, arguments) from the command line as a second identity,
and the same call then runs once. Parked, denied, self-approved, replayed and expired calls do
not run: the side effect (a row in PostgreSQL, a document in the AWS emulator, an AssumeRole in
its CloudTrail) is counted, not taken on the server's word."""

from __future__ import annotations

import json
import os
import re
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
    FORBIDDEN,
    args_sha256,
    audit_events,
    call_approved,
    grants_toml,
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
APPROVER = "bob@example.com"
APPROVAL_ID = re.compile(r"[0-9a-f]{32}")


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
        assert (
            "Tool `insertRecord` needs approval of this call by a person holding `records:approve`: "
            f"an operator approves it with `approvals approve {approval}`, then call the tool again "
            "with the same arguments. It expires at "
        ) in error.error.message, error.error.message
        assert error.error.data["tool"] == "insertRecord"
        assert error.error.data["approval"]["command"] == f"approvals approve {approval}"
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
        # from the client, reads the call, then approves it as a second identity.
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
        done = await anyio.run_process([*command, "approve", approval, "--by", APPROVER], check=False, env=base)
        assert done.returncode == 0, done.stderr.decode()
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
    assert approved["args_sha256"] == args_sha256(arguments)
    ran = [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]
    assert [(e["approval"], e["approvers"], e["decision"]) for e in ran] == [(approval, APPROVER, "allow")]


async def test_rejects_approval_by_the_requester(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("selfish")
    config = write_config(tmp_path, principal, WRITE)
    arguments = {"title": "self approved", "body": "x"}
    async with connect_records(records, config, tmp_path / "server.jsonl") as session:
        approval, _ = await parked(session, "insertRecord", arguments)
        done = approvals(records, config, "approve", approval, "--by", principal)
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
        done = approvals(records, config, "deny", approval, "--by", APPROVER, "--reason", "not this record")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"denied by {APPROVER}\n"), done.stdout
        [denied] = cli_events(done.stderr, "denied")
        assert (denied["approval"], denied["by"], denied["reason"]) == (approval, APPROVER, "not this record")
        error = await refused(session, "insertRecord", arguments)
        assert error.error.message == f"tool `insertRecord` did not run: denied by {APPROVER}"
        assert error.error.data["approval"] == {"id": approval, "status": "denied", "url": None}
        assert await rows(session, "denied record") == []
    assert not [e for e in audit_events(errlog) if e["tool"] == "insertRecord" and e["outcome"] == "ok"]


async def test_rejects_replayed_approval(records: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("replay")
    config = write_config(tmp_path, principal, WRITE)
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
    # The used approval cannot be given again either.
    done = approvals(records, config, "approve", used, "--by", "carol@example.com")
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
        done = approvals(records, config, "approve", approval, "--by", APPROVER)
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
        done = run_docs_cli(docs_server, config, env, "approvals", "approve", approval, "--by", APPROVER)
        assert done.returncode == 0, done.stderr
        deleted = await session.call_tool("deleteDocument", {"key": key})
        assert not deleted.is_error, text_of(deleted)
    assert not exists(key), "the approved delete left the document"
    [call] = assume_role_calls(since, principal)
    assert call["RoleArn"] == seed["roles"]["mcp-delete"]
    assert call["RoleSessionName"] == f"deleteDocument.{principal}"
    assert call["SourceIdentity"] == principal
