"""How the demo scripts (demo_*.py, run by scripts/demo.sh) print what happens: headings,
configuration files, and each tools/call with what the server answered."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Callable

from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from notes_harness import text_of


def heading(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def show(label: str, text: str) -> None:
    print(f"  {label}")
    print(textwrap.indent(text.rstrip(), "      "))


def print_config(config: Path) -> None:
    print(f"config {config.name}:")
    for line in config.read_text(encoding="utf-8").strip().splitlines():
        print(f"  | {line}".rstrip())


def print_connection(client) -> None:
    """Which protocol revision the client and the server agreed on."""
    print(f"\n> connected (official MCP Python client, mode=auto): protocol {client.protocol_version}")


async def call(
    session,
    tool: str,
    arguments: dict[str, Any] | None,
    render: Callable[[CallToolResult], str] = text_of,
) -> None:
    """Call `tool` and print the refusal, the error result, or the result as `render` shows it."""
    print(f"\n> tools/call {tool} {json.dumps(arguments or {})}")
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as e:
        show(f"REFUSED by mcp-lp (JSON-RPC error {e.error.code}):", e.error.message)
        return
    if result.is_error:
        show("ERROR RESULT (isError: true):", text_of(result))
    else:
        show("OK:", render(result))
