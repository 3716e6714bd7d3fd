"""`[protocol] versions` picks the revisions a server speaks; the official client's two modes
meet it as a client of each revision would: auto falls back to the handshake where 2026-07-28
is not served, and a legacy client is refused, naming what is served, where only 2026-07-28 is."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

import notes_harness
from notes_harness import PROTOCOL_VERSION, STATELESS_PROTOCOL_VERSION, text_of

pytestmark = pytest.mark.anyio

UNSUPPORTED_PROTOCOL_VERSION = -32022


def served(workspace, *versions: str):
    listed = ", ".join(f'"{v}"' for v in versions)
    return workspace.write_config(extra=f"[protocol]\nversions = [{listed}]")


async def assert_serves(client, workspace) -> None:
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    assert tools == ["list_notes", "preview_note", "read_note"]
    result = await client.call_tool("read_note", {"name": "welcome"})
    assert text_of(result) == workspace.note("welcome").read_text(encoding="utf-8")


async def test_accepts_both_modes_on_2025_11_25_alone(binary, workspace, errlog, mode):
    config = served(workspace, PROTOCOL_VERSION)
    async with notes_harness.connect(binary, config, errlog, mode) as client:
        # auto's server/discover is refused, so it falls back to the handshake.
        assert client.protocol_version == PROTOCOL_VERSION, mode
        await assert_serves(client, workspace)


async def test_accepts_only_auto_mode_on_2026_07_28_alone(binary, workspace, errlog, mode):
    config = served(workspace, STATELESS_PROTOCOL_VERSION)
    if mode == "auto":
        async with notes_harness.connect(binary, config, errlog, mode) as client:
            assert client.protocol_version == STATELESS_PROTOCOL_VERSION
            await assert_serves(client, workspace)
        return
    try:
        async with notes_harness.connect(binary, config, errlog, mode):
            pass
    except Exception as e:  # the client's task group wraps what the handshake raised
        error = e
        while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
    else:
        pytest.fail("a legacy client connected to a server that serves only 2026-07-28")
    assert isinstance(error, MCPError), repr(error)
    assert error.error.code == UNSUPPORTED_PROTOCOL_VERSION, error.error
    assert error.error.data["supported"] == [STATELESS_PROTOCOL_VERSION], error.error.data
