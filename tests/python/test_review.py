"""`review`: per tool the owner, approval and review date from the manifest, the last use and by
whom (shared through the `[state]` store, written in batches), the configured grants
outstanding with their expiry, and revocations in force."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from notes_harness import run_cli, server_binary, text_of
from records_harness import (  # noqa: F401  (connect_records is a fixture)
    connect_records,
    records_binary,
    state_toml,
    unique_principal,
    write_config,
)

pytestmark = pytest.mark.anyio


def in_days(days: int) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).replace(microsecond=0)


def cli(binary: Path, config: Path, *args: str) -> str:
    done = run_cli(binary, "--config", str(config), *args)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def tool_section(report: str, tool: str) -> str:
    """The lines of `report` about `tool`: its `tool NAME` line and the indented ones after it."""
    lines = report.splitlines()
    start = lines.index(f"tool {tool}")
    section = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    return "\n".join(section)


async def test_accepts_review_of_last_use_grants_and_revocations_from_state(tmp_path: Path, connect_records) -> None:
    binary = records_binary()
    principal = unique_principal("review")
    expires = in_days(5)
    grants = f'[{{ name = "records:write", expires = {expires.strftime("%Y-%m-%dT%H:%M:%SZ")} }}]'
    config = write_config(tmp_path, principal, grants=grants, extra=state_toml(tmp_path))
    review_by = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    cli(binary, config, "approve", "--owner", "records-team", "--review-by", review_by, "--by", "carol")

    async with connect_records(binary, config, tmp_path / "server.jsonl") as session:
        result = await session.call_tool("queryRecords", {"limit": 1})
        assert not result.is_error, text_of(result)

    report = cli(binary, config, "review")
    assert f"owner records-team, approved by carol at " in report, report
    query = tool_section(report, "queryRecords")
    assert f"owner records-team, approved at " in query and f"review due {review_by}" in query, query
    # The server wrote its last use to [state] by the time it exited; this process read it back.
    assert f" by {principal} (" in query, report
    insert = tool_section(report, "insertRecord")
    assert f"grant records:write: {principal} (stdio) until {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}" in insert, insert

    cli(binary, config, "revoke", "--tool", "insertRecord", "--reason", "review found it unused", "--by", "carol")
    try:
        insert = tool_section(cli(binary, config, "review"), "insertRecord")
        assert "REVOKED: tool insertRecord: review found it unused (by carol at " in insert, insert
    finally:
        cli(binary, config, "unrevoke", "--tool", "insertRecord")
    assert "REVOKED" not in tool_section(cli(binary, config, "review"), "insertRecord")


def test_accepts_review_without_state_saying_where_last_uses_are(tmp_path: Path) -> None:
    config = tmp_path / "mcp-lp.toml"
    config.write_text("", encoding="utf-8")
    report = cli(server_binary(), config, "review")
    assert "manifest: none pinned at " in report, report
    assert "last used: not recorded here (without [state], last uses stay in the serving process's memory)" in report, report
