"""Bad tool calls are refused with a message saying what was wrong, and the server keeps
serving: each bad call is followed by a good one on the same connection."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from notes_harness import audit_events, call_error, grants_toml, text_of

pytestmark = pytest.mark.anyio


async def assert_still_serving(session, workspace) -> None:
    result = await session.call_tool("read_note", {"name": "welcome"})
    assert not result.is_error, text_of(result)
    assert text_of(result) == workspace.note("welcome").read_text(encoding="utf-8")


async def test_rejects_wrong_argument_type(binary, workspace, errlog, connect):
    config = workspace.write_config()
    async with connect(binary, config, errlog) as session:
        result = await session.call_tool("read_note", {"name": 5})
        assert result.is_error, f"expected an error result, got {text_of(result)!r}"
        message = text_of(result)
        assert "tool `read_note`, argument `name`: invalid type" in message, message
        assert "expected a string" in message, message
        await assert_still_serving(session, workspace)


async def test_rejects_missing_argument(binary, workspace, errlog, connect):
    config = workspace.write_config()
    async with connect(binary, config, errlog) as session:
        result = await session.call_tool("read_note", {})
        assert result.is_error, f"expected an error result, got {text_of(result)!r}"
        assert "missing field `name`" in text_of(result), text_of(result)
        await assert_still_serving(session, workspace)


async def test_rejects_oversized_argument(binary, workspace, errlog, connect):
    config = workspace.write_config()
    async with connect(binary, config, errlog) as session:
        message = await call_error(session, "read_note", {"name": "a" * 100_000})
        assert "65536" in message, message
        assert "limit" in message, message
        await assert_still_serving(session, workspace)
    oversized = audit_events(errlog)[0]
    assert (oversized["decision"], oversized["outcome"]) == ("deny", "arguments_too_large")


async def test_rejects_oversized_argument_against_configured_limit(binary, workspace, errlog, connect):
    config = workspace.write_config(extra="[limits]\nmax_argument_bytes = 100")
    async with connect(binary, config, errlog) as session:
        message = await call_error(session, "read_note", {"name": "a" * 200})
        assert "100 bytes" in message, message
        await assert_still_serving(session, workspace)


async def test_rejects_unknown_tool(binary, workspace, errlog, connect):
    config = workspace.write_config()
    async with connect(binary, config, errlog) as session:
        message = await call_error(session, "format_disk", {"device": "sda"})
        assert "format_disk" in message, message
        assert "unknown tool" in message, message
        await assert_still_serving(session, workspace)
    unknown = audit_events(errlog)[0]
    assert (unknown["tool"], unknown["decision"], unknown["outcome"]) == (
        "format_disk", "deny", "unknown_tool",
    )


async def test_rejects_path_traversal_name(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    async with connect(binary, config, errlog) as session:
        for tool in ("read_note", "delete_note"):
            message = await call_error(session, tool, {"name": "../../etc/passwd"})
            assert "argument `name`" in message, message
            assert "root:" not in message, message
            await assert_still_serving(session, workspace)
    assert sorted(p.name for p in workspace.notes.iterdir()) == ["q3-plan.md", "welcome.md"]


async def test_rejects_delete_of_missing_note_and_names_it(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    async with connect(binary, config, errlog) as session:
        message = await call_error(session, "delete_note", {"name": "no-such-note"})
        assert "no-such-note" in message and "argument `name`" in message, message
        await assert_still_serving(session, workspace)


async def test_rejects_denied_call_without_disturbing_the_connection(binary, workspace, errlog, connect):
    config = workspace.write_config()
    async with connect(binary, config, errlog) as session:
        for _ in range(3):
            with pytest.raises(MCPError):
                await session.call_tool("delete_note", {"name": "welcome"})
            await assert_still_serving(session, workspace)
