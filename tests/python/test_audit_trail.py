"""The chained audit trail end to end: the notes server writes it to stderr and to a file, with
anchors and receipts, for calls made by the official client; `<server> audit verify` passes on
the untouched trail and names the first bad seq once a line is edited or the tail is cut. A
server stopped by a signal ends its chain with `shutdown` and a final anchor; a command-line
verdict is written, sealed, to a trail file of the command's own; one process writes a trail
file; and a chain sealed without a key is accepted only when the verifier is told so."""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from notes_harness import (
    APPROVER,
    FORBIDDEN,
    RawServer,
    approve_from_cli,
    approver_key,
    approvers_toml,
    audit_events,
    grants_toml,
    parked_approval,
    run_cli,
    text_of,
    trail_events,
    trail_lines,
)

pytestmark = pytest.mark.anyio

# 40 bytes: the chain key must be at least 32.
KEY = "audit-key-for-tests-0123456789abcdef0123"


def audit_config(workspace, receipts: bool = True, extra: str = "") -> Path:
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
{extra}""",
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

    # An unkeyed chain shows the trail undamaged, not unforged: the verifier refuses it unless
    # told to accept it, and then says what it did not prove.
    refused = run_cli(binary, "--config", str(config), "audit", "verify", "--mixed", str(errlog))
    assert refused.returncode != 0, refused.stdout
    assert not refused.stdout.startswith("ok: "), refused.stdout
    assert "unkeyed" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    allowed = run_cli(binary, "--config", str(config), "audit", "verify", "--mixed", "--allow-unkeyed", str(errlog))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert allowed.stdout.startswith(f"ok: {len(events)} events in 1 chains verified"), allowed.stdout
    assert "WARNING" in allowed.stdout + allowed.stderr, allowed.stdout + allowed.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_records_shutdown_on_sigterm_over_stdio(binary, workspace, errlog, stop):
    """A stdio server stopped by a signal (as a supervisor stops it, SIGTERM; or ^C, SIGINT)
    ends its chain with `shutdown` naming the signal, anchors that event, and exits, its client
    (which keeps stdin open) notwithstanding."""
    config = audit_config(workspace)
    trail = workspace.root / "trail" / "trail.jsonl"
    server = RawServer(binary, config, errlog)
    try:
        server.handshake()
        reply = server.request(2, "tools/call", {"name": "read_note", "arguments": {"name": "welcome"}})
        assert not reply["result"].get("isError"), reply
        server.proc.send_signal(stop)
        deadline = time.monotonic() + 10
        while not (events := [json.loads(line) for line in trail.read_text(encoding="utf-8").splitlines()]) or (
            events[-1]["event"] != "shutdown"
        ):
            assert time.monotonic() < deadline, f"no shutdown event within 10s of {stop.name}: {events[-1]}"
            time.sleep(0.05)
        last = events[-1]
        assert last["reason"] == stop.name, last
        assert [e["event"] for e in events].count("shutdown") == 1
        assert [e["event"] for e in events].count("tools/call") == 1
        anchors = (workspace.root / "anchors" / "anchors.jsonl").read_text(encoding="utf-8").splitlines()
        final = json.loads(anchors[-1])
        assert (final["instance"], final["seq"], final["hash"]) == (last["instance"], last["seq"], last["hash"]), (
            final,
            last,
        )
        verified = verify(binary, config, trail)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith(f"ok: {len(events)} events in 1 chains verified"), verified.stdout
        assert (
            f"instance {last['instance']}: server notes-server, keys k2026, {len(events)} events, "
            f"last seq {last['seq']}, ends with shutdown"
        ) in verified.stdout, verified.stdout
        # Stopped, it exits; its stdin is still open, as a client that did not go away keeps it.
        try:
            code = server.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server recorded its shutdown on {stop.name} but was still running 10s later "
                "(stdin still open)"
            ) from None
        assert code >= 0, f"the server died of signal {-code} instead of shutting down"
    finally:
        server.close()


async def test_records_cli_verdict_in_the_trail(binary, workspace, errlog, connect):
    """A verdict given on the command line is an event of the command's own chain, in a trail
    file of its own next to the server's (`<trail>.<instance>`), sealed with the configured key;
    `audit verify` checks both chains."""
    approval_rule = '\n[tools.delete_note]\napproval = { grant = "notes:approve" }\n'
    config = audit_config(workspace, extra=approval_rule + approvers_toml(workspace.root, "notes:approve"))
    trail = workspace.root / "trail" / "trail.jsonl"
    async with connect(binary, config, errlog) as session:
        with pytest.raises(MCPError) as parked:
            await session.call_tool("delete_note", {"name": "q3-plan"})
        assert parked.value.error.code == FORBIDDEN, parked.value.error
        approval = parked_approval(parked.value)
        assert approval, parked.value.error
        done = approve_from_cli(binary, config, approval, approver_key())
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"approved by {APPROVER}\napproval {approval}\n"), done.stdout
        deleted = await session.call_tool("delete_note", {"name": "q3-plan"})
        assert not deleted.is_error, text_of(deleted)
    assert not workspace.note("q3-plan").exists()

    [server_instance] = {e["instance"] for e in trail_events(errlog)}
    # The command's own file: one, next to the server's.
    [cli_trail] = [path for path in trail.parent.iterdir() if path.name.startswith("trail.jsonl.")]
    cli_instance = cli_trail.name.removeprefix("trail.jsonl.")
    assert re.fullmatch(r"i-[0-9a-f]+", cli_instance) and cli_instance != server_instance, cli_instance
    events = [json.loads(line) for line in cli_trail.read_text(encoding="utf-8").splitlines()]
    assert {e["instance"] for e in events} == {cli_instance}
    assert {e["key_id"] for e in events} == {"k2026"}
    assert (events[0]["event"], events[0]["command"]) == ("start", "approvals approve"), events[0]
    assert events[-1]["event"] == "shutdown", events[-1]
    [approved] = [e for e in events if e["event"] == "approved"]
    assert (approved["approval"], approved["by"], approved["door"]) == (approval, APPROVER, "cli"), approved
    assert approved["os_user"] == pwd.getpwuid(os.geteuid()).pw_name, approved
    assert (approved["tool"], approved["principal"]) == ("delete_note", "auditor@example.com"), approved
    # The server's chain holds no event of the command's; its run names the approver.
    served = [json.loads(line) for line in trail.read_text(encoding="utf-8").splitlines()]
    assert {e["instance"] for e in served} == {server_instance}
    assert not [e for e in served if e["event"] == "approved"]
    [ran] = [e for e in served if e["event"] == "tools/call" and e["outcome"] == "ok"]
    assert (ran["approval"], ran["approvers"]) == (approval, [APPROVER]), ran

    verified = verify(binary, config, cli_trail, trail)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"ok: {len(events) + len(served)} events in 2 chains verified"), verified.stdout
    for instance, count in ((server_instance, len(served)), (cli_instance, len(events))):
        assert f"instance {instance}: server notes-server, keys k2026, {count} events, " in verified.stdout, verified.stdout


def test_refuses_second_process_on_the_same_trail_file(binary, workspace, errlog, tmp_path):
    config = audit_config(workspace)
    trail = workspace.root / "trail" / "trail.jsonl"
    first = RawServer(binary, config, errlog)
    try:
        first.handshake()
        second = run_cli(binary, "--config", str(config), "serve")
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another process writes to" in second.stderr, second.stderr
        assert str(trail) in second.stderr, second.stderr
        # The first keeps serving, and writing its chain.
        reply = first.request(2, "tools/call", {"name": "read_note", "arguments": {"name": "welcome"}})
        assert not reply["result"].get("isError"), reply
    finally:
        assert first.close() == 0
    events = [json.loads(line) for line in trail.read_text(encoding="utf-8").splitlines()]
    assert len({e["instance"] for e in events}) == 1, "a second process wrote to the trail file"
    assert [e["seq"] for e in events] == list(range(len(events)))
    verified = verify(binary, config, trail)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "in 1 chains verified" in verified.stdout, verified.stdout
