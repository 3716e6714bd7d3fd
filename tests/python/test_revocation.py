"""Revocation with one process: the list is the file next to the configuration, which every
server using that configuration watches. `revoke` takes a grant or a principal out of service at
the next call, without a restart: the tool is hidden from tools/list and refused with the reason,
the refusal is audited, the AWS sessions of what is revoked are dropped (CloudTrail shows no
AssumeRole after the revocation), and a revoked principal's HTTP sessions are closed.

The list file is written under a lock, so that revocations made at once all land, and is the
operator's alone (mode 0600); a list file that is a symbolic link is refused.

The polling deadlines below only bound how long a failing run waits; nothing here asserts how
fast a revocation arrives (scripts/revocation-latency.sh measures that)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
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
    unique_principal,
)
from http_harness import KeyServer, Minter, free_port, http_config, open_session, post, rpc, serve_http
from notes_harness import (
    STATELESS_PROTOCOL_VERSION,
    Workspace,
    assert_negotiated,
    audit_events,
    call_approved,
    grants_toml,
    open_client,
    run_cli,
    text_of,
    trail_events,
)

pytestmark = pytest.mark.anyio

FORBIDDEN = -32003
# How long a failing run waits for a revocation to arrive before it says so.
DEADLINE = 20.0
BY = "oncall@example.com"
READ_WELCOME = {"name": "read_note", "arguments": {"name": "welcome"}}


def cli_ok(done) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


async def until(what: str, check: Callable[[], Awaitable[Any]]) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE}s")
        await anyio.sleep(0.1)


async def tool_names(session: Client) -> list[str]:
    # Bypass the client's response cache: what is under test is what the server lists now.
    return sorted(t.name for t in (await session.list_tools(cache_mode="bypass")).tools)


async def test_rejects_revoked_grant_and_hides_its_tool_with_no_assume_role_after(
    docs_server, docs_config, env, tmp_path, seed, connect_docs
):
    first = put_document("private/", "delete me before")
    kept = put_document("private/", "keep me while revoked")
    principal = unique_principal("revoked-grant")
    config = docs_config.write(principal, grants=grants_toml("docs:delete"))
    session_name = f"deleteDocument.{principal}"
    errlog = tmp_path / "err.jsonl"
    since = now()
    async with connect_docs(docs_server, config, errlog, env) as session:
        assert await tool_names(session) == ["deleteDocument", "listDocuments", "readDocument"]
        # The delete runs once a person approves the call (another identity, from the CLI).
        deleted = await call_approved(session, docs_server, config, "deleteDocument", {"key": first}, env=env)
        assert not deleted.is_error, text_of(deleted)
        before = assume_role_calls(since, session_name)
        assert len(before) == 1, f"the granted, approved delete should have assumed the delete role once: {before}"
        assert before[0]["RoleArn"] == seed["roles"]["mcp-delete"]

        reason = "laptop of the delete-role holder lost"
        revoke = ["revoke", "--grant", "docs:delete", "--reason", reason, "--by", BY]
        out = cli_ok(run_docs_cli(docs_server, config, env, *revoke))
        assert "revoked grant docs:delete" in out, out

        async def delete_hidden() -> bool:
            return "deleteDocument" not in await tool_names(session)

        await until("deleteDocument still listed after `revoke --grant docs:delete`", delete_hidden)
        # The other tools stay: only what requires the grant is revoked.
        assert await tool_names(session) == ["listDocuments", "readDocument"]

        for _ in range(2):
            with pytest.raises(MCPError) as refused:
                await session.call_tool("deleteDocument", {"key": kept})
            error = refused.value.error
            assert error.code == FORBIDDEN, error
            assert f"tool `deleteDocument` is refused for {principal}" in error.message, error.message
            assert f"grant docs:delete is revoked: {reason} (by {BY} at " in error.message, error.message
            assert error.data["tool"] == "deleteDocument", error.data
            assert {k: error.data["revoked"][k] for k in ("kind", "name", "reason", "by")} == {
                "kind": "grant",
                "name": "docs:delete",
                "reason": reason,
                "by": BY,
            }, error.data
        read = await session.call_tool("readDocument", {"key": kept})
        assert not read.is_error, text_of(read)
        assert exists(kept), "a revoked delete removed the document"

        # CloudTrail: the one AssumeRole of the delete role is the one before the revocation.
        assert assume_role_calls(since, session_name) == before

        revoked = [e for e in audit_events(errlog) if e["tool"] == "deleteDocument" and e["outcome"] == "revoked"]
        assert len(revoked) == 2, audit_events(errlog)
        assert all(e["principal"] == principal and reason in e["reason"] for e in revoked), revoked
        assert trail_events(errlog, "revocations_applied"), "no revocations_applied audit event"

        # Lifted, the tool is back, and its first call assumes the role again: the session
        # cached before the revocation was dropped, not kept for later.
        out = cli_ok(run_docs_cli(docs_server, config, env, "unrevoke", "--grant", "docs:delete"))
        assert "lifted the revocation of grant docs:delete" in out, out

        async def delete_listed() -> bool:
            return "deleteDocument" in await tool_names(session)

        await until("deleteDocument not listed again after `unrevoke`", delete_listed)
        again = await call_approved(session, docs_server, config, "deleteDocument", {"key": kept}, env=env)
        assert not again.is_error, text_of(again)
    assert not exists(kept)
    after = assume_role_calls(since, session_name)
    assert len(after) == 2, f"expected a fresh AssumeRole after the revocation was lifted: {after}"


async def test_rejects_revoked_principal_in_both_client_modes(binary, workspace, tmp_path, connect):
    # Two servers whose configurations sit side by side follow the same revocation file.
    grants = grants_toml("notes:delete")
    alice = workspace.write_config(principal="alice@example.com", grants=grants, name="alice.toml")
    bob = workspace.write_config(principal="bob@example.com", grants=grants, name="bob.toml")
    alice_log, bob_log = tmp_path / "alice.jsonl", tmp_path / "bob.jsonl"
    welcome = workspace.note("welcome").read_text(encoding="utf-8")
    all_tools = ["delete_note", "list_notes", "preview_note", "read_note"]
    async with connect(binary, alice, alice_log) as a, connect(binary, bob, bob_log) as b:
        for session in (a, b):
            assert await tool_names(session) == all_tools
            result = await session.call_tool("read_note", {"name": "welcome"})
            assert text_of(result) == welcome

        applied_before = len(trail_events(bob_log, "revocations_applied"))
        reason = "credentials phished"
        out = cli_ok(run_cli(binary, "--config", str(alice), "revoke", "--principal", "alice@example.com",
                             "--reason", reason, "--by", BY))
        assert "revoked principal alice@example.com" in out, out

        async def nothing_listed() -> bool:
            return await tool_names(a) == []

        await until("alice's tools still listed after `revoke --principal`", nothing_listed)
        calls = [("read_note", {"name": "welcome"}), ("list_notes", None), ("delete_note", {"name": "welcome"})]
        for tool, arguments in calls:
            with pytest.raises(MCPError) as refused:
                await a.call_tool(tool, arguments)
            error = refused.value.error
            assert error.code == FORBIDDEN, error
            expected = f"tool `{tool}` is refused for alice@example.com: principal alice@example.com is revoked: {reason}"
            assert expected in error.message, error.message
            assert error.data["revoked"]["kind"] == "principal", error.data
            assert error.data["revoked"]["name"] == "alice@example.com", error.data
        assert workspace.note("welcome").is_file(), "a revoked principal deleted a note"

        # bob follows the same list, and is not revoked.
        await until("bob's server did not apply the changed list", lambda: _applied(bob_log, applied_before))
        assert await tool_names(b) == all_tools
        result = await b.call_tool("read_note", {"name": "welcome"})
        assert not result.is_error and text_of(result) == welcome

        cli_ok(run_cli(binary, "--config", str(alice), "unrevoke", "--principal", "alice@example.com"))

        async def listed_again() -> bool:
            return await tool_names(a) == all_tools

        await until("alice's tools not listed again after `unrevoke`", listed_again)
        result = await a.call_tool("read_note", {"name": "welcome"})
        assert not result.is_error and text_of(result) == welcome

    refused = [e for e in audit_events(alice_log) if e["outcome"] == "revoked"]
    assert [e["tool"] for e in refused] == ["read_note", "list_notes", "delete_note"], audit_events(alice_log)
    assert all(e["principal"] == "alice@example.com" for e in refused)
    assert not [e for e in audit_events(bob_log) if e["outcome"] == "revoked"]


async def _applied(errlog: Path, before: int) -> bool:
    """Whether the server logging to `errlog` has applied a change since it had `before`."""
    return len(trail_events(errlog, "revocations_applied")) > before


@pytest.fixture(scope="module")
def keys():
    with KeyServer().serving() as keys:
        yield keys


async def test_closes_http_session_of_revoked_principal(binary, workspace: Workspace, keys: KeyServer, tmp_path):
    port = free_port()
    config = workspace.write_config(extra=http_config(port, keys), name="http.toml")
    errlog = tmp_path / "http.jsonl"
    with serve_http(binary, config, port, errlog) as server:
        minter = Minter(keys, audience=server.url)
        mallory = minter.token(sub="mallory@example.com", scope="notes:delete")
        carol = minter.token(sub="carol@example.com", scope="notes:delete")
        # 2025-11-25 sessions, one per principal.
        mallory_session = open_session(server.url, mallory)
        carol_session = open_session(server.url, carol)
        for token, session in ((mallory, mallory_session), (carol, carol_session)):
            reply = post(server.url, rpc("tools/call", 2, READ_WELCOME), token, session)
            assert reply.status == 200 and "result" in reply.message, (reply.status, reply.message)

        reason = "token leaked in a paste"
        cli_ok(run_cli(binary, "--config", str(config), "revoke", "--principal", "mallory@example.com",
                       "--reason", reason, "--by", BY))

        async def session_closed() -> bool:
            return post(server.url, rpc("tools/list", 3), mallory, mallory_session).status == 404

        await until("mallory's session still answers after `revoke --principal`", session_closed)
        assert [e for e in trail_events(errlog, "revocations_applied")], "no revocations_applied audit event"

        # The same token, in a new 2025-11-25 session and as a 2026-07-28 request: refused.
        fresh = open_session(server.url, mallory)
        call = rpc("tools/call", 4, READ_WELCOME)
        for session, revision in ((fresh, "2025-11-25"), (None, STATELESS_PROTOCOL_VERSION)):
            reply = post(server.url, call, mallory, session, revision=revision)
            assert reply.message and "error" in reply.message, (revision, reply.status, reply.message)
            error = reply.message["error"]
            assert error["code"] == FORBIDDEN, (revision, error)
            assert f"principal mallory@example.com is revoked: {reason}" in error["message"], (revision, error)
            listed = post(server.url, rpc("tools/list", 5), mallory, session, revision=revision)
            assert listed.message["result"]["tools"] == [], (revision, listed.message)

        # The official client with the same token: connected, but shown nothing and refused.
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {mallory}"}) as http:
            async with open_client(streamable_http_client(server.url, http_client=http), "legacy") as client:
                assert_negotiated(client, "legacy")
                assert await tool_names(client) == []
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("read_note", {"name": "welcome"})
                assert refused.value.error.code == FORBIDDEN

        # carol's session is open and her calls are served.
        reply = post(server.url, rpc("tools/call", 6, READ_WELCOME), carol, carol_session)
        assert reply.status == 200 and "result" in reply.message, (reply.status, reply.message)
        assert not reply.message["result"].get("isError"), reply.message

    refused = [e for e in audit_events(errlog) if e["outcome"] == "revoked"]
    assert refused and all(e["principal"] == "mallory@example.com" for e in refused), refused


def test_keeps_both_of_two_concurrent_revocations(binary, workspace: Workspace):
    """Revocations made at the same moment by separate processes all land in the list: none is
    lost to another's write of the file."""
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    count = 8
    revokes = [
        subprocess.Popen(
            [str(binary), "--config", str(config), "revoke", "--principal", f"p{i}@example.com",
             "--reason", f"r{i}", "--by", BY],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(count)
    ]
    for i, process in enumerate(revokes):
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, f"revoke {i}: exit {process.returncode}\n{stdout}{stderr}"
        assert f"revoked principal p{i}@example.com" in stdout, stdout

    listed = cli_ok(run_cli(binary, "--config", str(config), "revocations"))
    assert listed.startswith(f"{count} revocations in file "), listed
    for i in range(count):
        assert f"p{i}@example.com" in listed and f"r{i}" in listed, listed
    path = workspace.root / "mcp-lp.revocations.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)


def test_refuses_revocation_list_that_is_a_symlink(binary, workspace: Workspace):
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    cli_ok(run_cli(binary, "--config", str(config), "revoke", "--principal", "p@example.com", "--reason", "r", "--by", BY))
    path = workspace.root / "mcp-lp.revocations.json"
    elsewhere = workspace.root / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    refusal = "it is a symbolic link"
    for args in (
        ["revoke", "--principal", "q@example.com", "--reason", "r", "--by", BY],
        ["revocations"],
        ["check"],
        ["serve"],
    ):
        done = run_cli(binary, "--config", str(config), *args)
        assert done.returncode != 0, f"{args}: {done.stdout}"
        assert refusal in done.stderr, f"{args}: {done.stderr}"
    assert "q@example.com" not in elsewhere.read_text(encoding="utf-8")
