"""Rate limits per principal and tool, driven by the official MCP Python client over stdio, and by
raw HTTP where the status line and `Retry-After` are what is under test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from http_harness import KeyServer, Minter, free_port, http_config, open_session, post, rpc, serve_http
from notes_harness import Workspace, audit_events, text_of

pytestmark = pytest.mark.anyio

RATE_LIMITED = -32029


def limited_config(workspace: Workspace, rate: str, extra: str = "") -> Path:
    return workspace.write_config(extra=f'[tools.read_note]\nrate = "{rate}"\n{extra}')


async def test_rejects_call_over_rate_limit(binary: Path, workspace: Workspace, errlog: Path, connect) -> None:
    config = limited_config(workspace, "2/min")
    async with connect(binary, config, errlog) as session:
        for _ in range(2):
            result = await session.call_tool("read_note", {"name": "welcome"})
            assert not result.is_error, text_of(result)
        with pytest.raises(MCPError) as refused:
            await session.call_tool("read_note", {"name": "welcome"})
        # A tool without a rate limit is not affected.
        listed = await session.call_tool("list_notes", {})
        assert not listed.is_error, text_of(listed)
    error = refused.value.error
    assert error.code == RATE_LIMITED, error
    assert "read_note" in error.message and "2/min" in error.message, error.message
    assert "alice@example.com" in error.message, error.message
    # Two calls took the whole bucket of a 2/min limit: the next is 30 s away.
    assert 25 <= error.data["retry_after_secs"] <= 30, error.data
    assert 25_000 < error.data["retry_after_ms"] <= 30_000, error.data
    assert f"retry after {error.data['retry_after_secs']} s" in error.message, error.message

    events = [e for e in audit_events(errlog) if e["tool"] == "read_note"]
    assert [(e["decision"], e["outcome"]) for e in events] == [
        ("allow", "ok"),
        ("allow", "ok"),
        ("deny", "rate_limited"),
    ], events
    assert "retry after" in events[2]["reason"], events[2]


async def test_accepts_call_after_rate_window(binary: Path, workspace: Workspace, errlog: Path, connect) -> None:
    config = limited_config(workspace, "1/2s")
    async with connect(binary, config, errlog) as session:
        first = await session.call_tool("read_note", {"name": "welcome"})
        assert not first.is_error, text_of(first)
        with pytest.raises(MCPError) as refused:
            await session.call_tool("read_note", {"name": "welcome"})
        wait_ms = refused.value.error.data["retry_after_ms"]
        assert 0 < wait_ms <= 2_000, refused.value.error.data
        # Wait as long as the refusal said, and a little for the clocks of two processes.
        time.sleep(wait_ms / 1000 + 0.05)
        again = await session.call_tool("read_note", {"name": "welcome"})
        assert not again.is_error, text_of(again)
        assert again.content == first.content
    outcomes = [e["outcome"] for e in audit_events(errlog) if e["tool"] == "read_note"]
    assert outcomes == ["ok", "rate_limited", "ok"], outcomes


async def test_rejects_call_over_rate_limit_over_http_with_429(
    binary: Path, workspace: Workspace, errlog: Path
) -> None:
    port = free_port()
    with KeyServer().serving() as keys:
        config = limited_config(workspace, "1/min", extra="\n" + http_config(port, keys))
        with serve_http(binary, config, port, errlog) as server:
            minter = Minter(keys, audience=server.url)
            token = minter.token(sub="alice@example.com")
            session = open_session(server.url, token)
            call = rpc("tools/call", 7, {"name": "read_note", "arguments": {"name": "welcome"}})
            first = post(server.url, call, token, session)
            assert first.status == 200, (first.status, first.message)
            assert first.message is not None and "result" in first.message, first.message

            second = post(server.url, call, token, session)
            assert second.status == 429, (second.status, second.message)
            retry_after = int(second.headers["retry-after"])
            assert 1 <= retry_after <= 60, retry_after
            assert second.message is not None
            assert second.message["id"] == 7, second.message
            assert second.message["error"]["code"] == RATE_LIMITED, second.message
            assert f"retry after {retry_after} s" in second.message["error"]["message"], second.message

            # Another principal has its own budget.
            bob = minter.token(sub="bob@example.com")
            bob_session = open_session(server.url, bob)
            third = post(server.url, call, bob, bob_session)
            assert third.status == 200, (third.status, third.message)
    events = [e for e in audit_events(errlog) if e["tool"] == "read_note"]
    assert [(e["principal"], e["outcome"]) for e in events] == [
        ("alice@example.com", "ok"),
        ("alice@example.com", "rate_limited"),
        ("bob@example.com", "ok"),
    ], events
