"""Multi-round-trip calls (MCP 2026-07-28) with the official client: notes-server's
`preview_note` asks the client how many lines to show through an `InputRequiredResult`, the
client answers from its elicitation callback and retries, and the checkpoint seals the state the
tool hands out. A 2025-11-25 client is not asked. A `subscriptions/listen` stream is
acknowledged."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitResult, InputRequiredResult

from notes_harness import Workspace, assert_negotiated, audit_events, open_client, text_of

pytestmark = pytest.mark.anyio

INVALID_PARAMS = -32602


@asynccontextmanager
async def notes_client(
    binary: Path, config: Path, errlog: Path, mode: str, lines: int | None = None
) -> AsyncIterator[Client]:
    """The official client over stdio in `mode`; its elicitation callback answers `lines`, and
    records what it was asked in `client.questions`."""
    questions: list[str] = []

    async def answer(_context: Any, params: Any) -> ElicitResult:
        questions.append(params.message)
        if lines is None:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"lines": lines})

    server = StdioServerParameters(command=str(binary), args=["--config", str(config)])
    with open(errlog, "w", encoding="utf-8") as err:
        async with open_client(stdio_client(server, errlog=err), mode, elicitation_callback=answer) as client:
            assert_negotiated(client, mode)
            client.questions = questions  # type: ignore[attr-defined]
            yield client


def first_lines(workspace: Workspace, name: str, n: int) -> str:
    return "\n".join(workspace.note(name).read_text(encoding="utf-8").splitlines()[:n])


async def test_accepts_preview_after_the_user_answers(
    binary: Path, workspace: Workspace, errlog: Path
) -> None:
    config = workspace.write_config()
    async with notes_client(binary, config, errlog, "auto", lines=1) as client:
        result = await client.call_tool("preview_note", {"name": "welcome"})
        assert not result.is_error, text_of(result)
        assert text_of(result) == first_lines(workspace, "welcome", 1)
        assert client.questions == ["How many lines of `welcome` should be shown?"]

    events = [e for e in audit_events(errlog) if e["tool"] == "preview_note"]
    assert [(e["decision"], e["outcome"]) for e in events] == [
        ("allow", "input_required"),
        ("allow", "ok"),
    ]
    asked, answered = events
    assert "input_sha256" not in asked, "the first round carries no answers"
    assert len(answered["input_sha256"]) == 64, "the retry's answers and state are digested"
    assert answered["args_sha256"] == asked["args_sha256"], "both rounds are the same call"


async def test_accepts_default_preview_when_the_user_declines(
    binary: Path, workspace: Workspace, errlog: Path
) -> None:
    config = workspace.write_config()
    async with notes_client(binary, config, errlog, "auto", lines=None) as client:
        result = await client.call_tool("preview_note", {"name": "welcome"})
        assert text_of(result) == first_lines(workspace, "welcome", 5)
        assert len(client.questions) == 1


async def test_accepts_preview_without_asking_a_2025_11_25_client(
    binary: Path, workspace: Workspace, errlog: Path
) -> None:
    config = workspace.write_config()
    async with notes_client(binary, config, errlog, "legacy", lines=1) as client:
        result = await client.call_tool("preview_note", {"name": "welcome"})
        assert text_of(result) == first_lines(workspace, "welcome", 5)
        assert client.questions == [], "a 2025-11-25 client gets no InputRequiredResult"


async def first_round(client: Client, name: str) -> InputRequiredResult:
    result = await client.session.call_tool("preview_note", {"name": name}, allow_input_required=True)
    assert isinstance(result, InputRequiredResult), result
    assert result.request_state and result.request_state != "asked-lines", "the state left the server sealed"
    return result


async def test_rejects_retry_with_changed_arguments(binary: Path, workspace: Workspace, errlog: Path) -> None:
    config = workspace.write_config()
    answers = {"lines": ElicitResult(action="accept", content={"lines": 1})}
    async with notes_client(binary, config, errlog, "auto") as client:
        asked = await first_round(client, "welcome")
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool(
                "preview_note",
                {"name": "q3-plan"},
                input_responses=answers,
                request_state=asked.request_state,
                allow_input_required=True,
            )
    error = refused.value.error
    assert error.code == INVALID_PARAMS, error
    assert "was refused: it was issued for other arguments" in error.message, error.message
    assert error.data == {"code": "state_rejected", "tool": "preview_note", "request_state": "other_arguments"}
    outcomes = [e["outcome"] for e in audit_events(errlog) if e["tool"] == "preview_note"]
    assert outcomes == ["input_required", "state_rejected"]


async def test_rejects_state_from_another_server_process(
    binary: Path, workspace: Workspace, tmp_path: Path
) -> None:
    # Without [request_state] each process seals with a key of its own.
    config = workspace.write_config()
    answers = {"lines": ElicitResult(action="accept", content={"lines": 1})}
    async with notes_client(binary, config, tmp_path / "first.jsonl", "auto") as first:
        asked = await first_round(first, "welcome")
    async with notes_client(binary, config, tmp_path / "second.jsonl", "auto") as second:
        with pytest.raises(MCPError) as refused:
            await second.session.call_tool(
                "preview_note",
                {"name": "welcome"},
                input_responses=answers,
                request_state=asked.request_state,
                allow_input_required=True,
            )
    assert refused.value.error.data == {"code": "state_rejected", "tool": "preview_note", "request_state": "unknown_key"}


async def test_accepts_a_subscriptions_listen_stream(binary: Path, workspace: Workspace, errlog: Path) -> None:
    config = workspace.write_config()
    async with notes_client(binary, config, errlog, "auto") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            # notes-server's tool list never changes, so it promises no list-changed events.
            assert not subscription.honored.tools_list_changed
