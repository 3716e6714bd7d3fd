"""Grants decide what the stdio principal may see and call: `delete_note` needs `notes:delete`."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from notes_harness import audit_events, grants_toml, run_cli, text_of

pytestmark = pytest.mark.anyio

EXPIRED = '[{ name = "notes:delete", expires = 2020-01-01T00:00:00Z }]'
FORBIDDEN = -32003


async def tool_names(session) -> list[str]:
    return sorted(tool.name for tool in (await session.list_tools()).tools)


async def test_hides_delete_note_without_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants="[]")
    async with connect(binary, config, errlog) as session:
        assert await tool_names(session) == ["list_notes", "preview_note", "read_note"]


async def test_accepts_listing_delete_note_with_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    async with connect(binary, config, errlog) as session:
        assert await tool_names(session) == ["delete_note", "list_notes", "preview_note", "read_note"]


async def test_accepts_read_note_without_any_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants="[]")
    async with connect(binary, config, errlog) as session:
        result = await session.call_tool("read_note", {"name": "welcome"})
        assert not result.is_error
        assert text_of(result) == workspace.note("welcome").read_text(encoding="utf-8")

        listed = await session.call_tool("list_notes", {})
        assert not listed.is_error
        assert listed.structured_content == {"names": ["q3-plan", "welcome"]}


async def test_rejects_delete_without_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants="[]")
    async with connect(binary, config, errlog) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("delete_note", {"name": "q3-plan"})
    error = refused.value.error
    assert "notes:delete" in error.message, error.message
    assert "delete_note" in error.message, error.message
    assert error.code == FORBIDDEN
    assert workspace.note("q3-plan").exists(), "a refused delete removed the note"
    [event] = audit_events(errlog)
    assert (event["tool"], event["decision"], event["outcome"]) == ("delete_note", "deny", "denied")


async def test_accepts_delete_with_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=grants_toml("notes:delete"))
    assert workspace.note("q3-plan").exists()
    async with connect(binary, config, errlog) as session:
        result = await session.call_tool("delete_note", {"name": "q3-plan"})
        assert not result.is_error, text_of(result)
        assert "q3-plan" in text_of(result)
        listed = await session.call_tool("list_notes", {})
        assert listed.structured_content == {"names": ["welcome"]}
    assert not workspace.note("q3-plan").exists(), "the granted delete left the note in place"
    assert workspace.note("welcome").exists()
    [delete, _list] = audit_events(errlog)
    assert (delete["tool"], delete["decision"], delete["outcome"]) == ("delete_note", "allow", "ok")


async def test_rejects_delete_with_expired_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=EXPIRED)
    async with connect(binary, config, errlog) as session:
        assert "delete_note" not in await tool_names(session)
        with pytest.raises(MCPError) as refused:
            await session.call_tool("delete_note", {"name": "q3-plan"})
    error = refused.value.error
    assert "expired" in error.message, error.message
    assert "notes:delete" in error.message, error.message
    assert error.code == FORBIDDEN
    assert workspace.note("q3-plan").exists(), "a refused delete removed the note"


async def test_accepts_delete_with_unexpired_grant(binary, workspace, errlog, connect):
    config = workspace.write_config(grants=grants_toml("notes:delete", days=89))
    async with connect(binary, config, errlog) as session:
        assert "delete_note" in await tool_names(session)
        result = await session.call_tool("delete_note", {"name": "welcome"})
        assert not result.is_error, text_of(result)
    assert not workspace.note("welcome").exists()


async def test_rejects_grant_whose_name_only_resembles_notes_delete(binary, workspace, errlog, connect):
    """A grant that merely resembles `notes:delete` does not unlock it."""
    config = workspace.write_config(grants=grants_toml("notes:delete:all", "notes"))
    async with connect(binary, config, errlog) as session:
        assert "delete_note" not in await tool_names(session)
        with pytest.raises(MCPError):
            await session.call_tool("delete_note", {"name": "welcome"})
    assert workspace.note("welcome").exists()


def test_refuses_start_with_grant_without_expiry(binary, workspace):
    """A grant nobody set an end to is refused at startup, naming its key and the fix."""
    config = workspace.write_config(grants='["notes:delete"]')
    for command in (["check"], []):
        done = run_cli(binary, "--config", str(config), *command)
        assert done.returncode != 0, f"{command}: {done.stdout}"
        assert f"{config}:3: key `stdio.grants[0]`" in done.stderr, done.stderr
        assert "grant `notes:delete` has no expiry" in done.stderr, done.stderr
        assert "[governance] max_grant_lifetime (90d)" in done.stderr, done.stderr
        assert '{ name = "notes:delete", expires = ' in done.stderr, done.stderr


def test_refuses_start_with_grant_beyond_max_lifetime(binary, workspace):
    config = workspace.write_config(grants=grants_toml("notes:delete", days=91))
    done = run_cli(binary, "--config", str(config), "check")
    assert done.returncode != 0, done.stdout
    assert "stdio.grants[0]" in done.stderr, done.stderr
    assert "later than [governance] max_grant_lifetime (90d) allows" in done.stderr, done.stderr
    # The operator may allow longer grants, and `check` says how long.
    longer = workspace.write_config(
        grants=grants_toml("notes:delete", days=91), extra='[governance]\nmax_grant_lifetime = "120d"\n'
    )
    done = run_cli(binary, "--config", str(longer), "check")
    assert done.returncode == 0, done.stderr
    assert "grants: each expires within 120d of startup" in done.stdout, done.stdout
    assert "grant notes:delete (expires " in done.stdout and ": active" in done.stdout, done.stdout
