"""The chained audit trail end to end: the notes server writes it to stderr and to a file, with
anchors and receipts, for calls made by the official client; `<server> audit verify` passes on
the untouched trail and names the first bad seq once a line is edited or the tail is cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notes_harness import audit_events, grants_toml, run_cli, trail_events, trail_lines

pytestmark = pytest.mark.anyio

# 40 bytes: the chain key must be at least 32.
KEY = "audit-key-for-tests-0123456789abcdef0123"


def audit_config(workspace, receipts: bool = True) -> Path:
    key = workspace.root / "audit.key"
    key.write_text(KEY + "\n", encoding="utf-8")
    (workspace.root / "trail").mkdir(exist_ok=True)
    (workspace.root / "anchors").mkdir(exist_ok=True)
    return workspace.write_config(
        principal="auditor@example.com",
        grants=grants_toml("notes:delete"),
        extra=f"""
[audit]
keys = [{{ id = "k2026", secret = {{ file = "audit.key" }} }}]
file = {{ path = "trail/trail.jsonl", fsync = "every_event" }}
anchors = {{ path = "anchors/anchors.jsonl", every = "1s" }}
receipts = {str(receipts).lower()}
""",
    )


async def run_calls(binary, config, errlog, connect) -> list:
    async with connect(binary, config, errlog) as session:
        results = [
            await session.call_tool("list_notes", {}),
            await session.call_tool("read_note", {"name": "welcome"}),
            await session.call_tool("read_note", {"name": "no-such-note"}),
        ]
    return results


def verify(binary: Path, config: Path, *files: Path):
    return run_cli(binary, "--config", str(config), "audit", "verify", *map(str, files))


async def test_accepts_verify_of_the_untouched_trail(binary, workspace, errlog, connect):
    config = audit_config(workspace)
    await run_calls(binary, config, errlog, connect)
    trail = workspace.root / "trail" / "trail.jsonl"

    lines = trail.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["start", "config_loaded", "secret_resolved"], kinds
    assert kinds.count("tools/call") == 3, kinds
    assert kinds[-1] == "shutdown", kinds
    assert {e["key_id"] for e in events} == {"k2026"}
    # The secret is named by its reference, never its value.
    resolved = events[2]
    assert resolved["secret"] == "audit.keys[0].secret"
    assert "audit.key" in resolved["reference"]
    assert KEY not in trail.read_text(encoding="utf-8")
    assert KEY not in errlog.read_text(encoding="utf-8")
    # stderr carries the same sealed lines as the file.
    assert trail_lines(errlog) == lines

    result = verify(binary, config, trail)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok: {len(events)} events in 1 chains verified, 1 anchors checked"), result.stdout
    assert "principals: auditor@example.com 3" in result.stdout, result.stdout
    assert "ends with shutdown" in result.stdout, result.stdout


async def test_rejects_edited_trail_with_the_first_bad_seq(binary, workspace, errlog, connect):
    config = audit_config(workspace)
    await run_calls(binary, config, errlog, connect)
    trail = workspace.root / "trail" / "trail.jsonl"
    lines = trail.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if '"outcome":"tool_error"' in line)
    seq = json.loads(lines[index])["seq"]
    lines[index] = lines[index].replace('"outcome":"tool_error"', '"outcome":"ok"')
    trail.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = verify(binary, config, trail)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"FAILED: modified at seq {seq} of instance "), result.stdout
    assert f"trail.jsonl:{index + 1}" in result.stdout, result.stdout


async def test_rejects_trail_cut_before_its_anchor(binary, workspace, errlog, connect):
    config = audit_config(workspace)
    await run_calls(binary, config, errlog, connect)
    trail = workspace.root / "trail" / "trail.jsonl"
    lines = trail.read_text(encoding="utf-8").splitlines()
    trail.write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")

    # The anchors file is found through [audit] anchors.
    result = verify(binary, config, trail)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"FAILED: truncated tail at seq {len(lines) - 2} of instance "), result.stdout


async def test_accepts_receipt_matching_the_recorded_event(binary, workspace, errlog, connect):
    config = audit_config(workspace)
    results = await run_calls(binary, config, errlog, connect)
    calls = audit_events(errlog)
    for result, event in zip(results, calls):
        receipt = (result.meta or {}).get("io.mcp-lp/audit")
        assert receipt == {"instance": event["instance"], "seq": event["seq"], "hash": event["hash"]}, (
            result.meta,
            event,
        )


async def test_refuses_start_with_a_short_audit_key(binary, workspace):
    (workspace.root / "short.key").write_text("too-short", encoding="utf-8")
    config = workspace.write_config(
        extra='[audit]\nkeys = [{ id = "k1", secret = { file = "short.key" } }]\n'
    )
    result = run_cli(binary, "--config", str(config), "check")
    assert result.returncode == 1
    assert "audit.keys[0]" in result.stderr, result.stderr
    assert "at least 32" in result.stderr, result.stderr
    assert "too-short" not in result.stderr


async def test_refuses_start_when_the_trail_file_cannot_be_opened(binary, workspace):
    config = workspace.write_config(extra='[audit]\nfile = { path = "missing-dir/trail.jsonl" }\n')
    result = run_cli(binary, "--config", str(config))
    assert result.returncode == 1
    assert "audit file" in result.stderr and "missing-dir/trail.jsonl" in result.stderr, result.stderr


async def test_records_an_unkeyed_chain_without_audit_configuration(binary, workspace, errlog, connect):
    config = workspace.write_config(principal="plain@example.com")
    async with connect(binary, config, errlog) as session:
        await session.call_tool("list_notes", {})
    events = trail_events(errlog)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert {e["key_id"] for e in events} == {"unkeyed"}
    assert events[0]["event"] == "start" and events[-1]["event"] == "shutdown"
