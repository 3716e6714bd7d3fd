"""The audit trail: one event per tools/call on stderr, with a digest of the arguments and never
the arguments themselves."""

from __future__ import annotations

import re

import pytest
from mcp.shared.exceptions import MCPError

from notes_harness import (
    AUDIT_TARGET,
    args_sha256,
    audit_events,
    audit_lines,
    canonical_json,
    log_lines,
)

pytestmark = pytest.mark.anyio

PRINCIPAL = "auditor-42@example.com"
CANARY = "zebra-canary-7731"
FIELDS = {
    "request_id", "principal", "tool", "requires", "decision", "args_sha256", "args_bytes",
    "duration_us", "outcome",
}

# (tool, arguments, decision, outcome) for every tools/call the test makes, in order.
CALLS = [
    ("read_note", {"name": "welcome"}, "allow", "ok"),
    ("read_note", {"name": CANARY}, "allow", "tool_error"),  # no such note
    ("delete_note", {"name": CANARY}, "deny", "denied"),  # no grant
    ("list_notes", None, "allow", "ok"),  # absent arguments hash as {}
    ("read_note", {"zz": [3, {"b": 1, "a": 2}], "name": "welcome", "aa": True}, "allow", "ok"),
    ("read_note", {"name": "caf\u00e9-\u00fc \"q\"\nx"}, "allow", "tool_error"),  # invalid name
]


async def test_accepts_one_audit_event_per_call_with_digest_not_arguments(binary, workspace, errlog, connect):
    config = workspace.write_config(principal=PRINCIPAL, grants="[]")
    async with connect(binary, config, errlog) as session:
        await session.list_tools()  # tools/list is not a call and is not audited
        for tool, arguments, decision, _ in CALLS:
            if decision == "deny":
                with pytest.raises(MCPError):
                    await session.call_tool(tool, arguments)
            else:
                await session.call_tool(tool, arguments)

    events = audit_events(errlog)
    assert len(events) == len(CALLS), "\n".join(audit_lines(errlog))
    request_ids = [event["request_id"] for event in events]
    assert len(set(request_ids)) == len(CALLS), f"request ids repeat: {request_ids}"

    for event, (tool, arguments, decision, outcome) in zip(events, CALLS):
        where = f"{tool}({arguments!r}): {event}"
        assert FIELDS <= event.keys(), where
        assert event["target"] == AUDIT_TARGET
        assert event["principal"] == PRINCIPAL, where
        assert event["tool"] == tool, where
        assert event["decision"] == decision, where
        assert event["outcome"] == outcome, where
        assert event["requires"] == ("notes:delete" if tool == "delete_note" else ""), where
        assert re.fullmatch(r"[0-9a-f]{64}", event["args_sha256"]), where
        assert event["args_sha256"] == args_sha256(arguments), where
        assert event["args_bytes"] == len(canonical_json(arguments)), where
        assert isinstance(event["duration_us"], int) and event["duration_us"] >= 0, where
        if decision == "deny":
            assert "notes:delete" in event["reason"], where
            assert "output_bytes" not in event, where
        else:
            assert event["output_bytes"] > 0, where

    # The raw argument values are nowhere in the audit trail, nor anywhere else on stderr.
    for line in audit_lines(errlog):
        assert CANARY not in line, line
        assert "caf\u00e9" not in line and "caf\\u00e9" not in line, line
    for line in log_lines(errlog):
        assert CANARY not in line, f"an argument value leaked to stderr: {line}"


async def test_accepts_same_digest_whatever_the_key_order(binary, workspace, errlog, connect):
    config = workspace.write_config(grants="[]")
    async with connect(binary, config, errlog) as session:
        await session.call_tool("read_note", {"name": "welcome", "b": 1, "a": {"y": 1, "x": 2}})
        await session.call_tool("read_note", {"a": {"x": 2, "y": 1}, "b": 1, "name": "welcome"})
    first, second = audit_events(errlog)
    assert first["args_sha256"] == second["args_sha256"]
    assert first["args_sha256"] == args_sha256({"a": {"x": 2, "y": 1}, "b": 1, "name": "welcome"})
