"""The command lines the demonstrations print for people to copy, built in one place so that
tests/inspector/test_inspector_cli.py runs exactly what scripts/demo.sh prints.
"""

from __future__ import annotations

import shlex
from pathlib import Path

# The MCP Inspector the printed lines name, pinned as tests/inspector/package.json pins it. It
# needs Node.js 22.19 or newer (on an older node, `npx` silently picks a 0.x Inspector).
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


def inspector_commands(binary: Path | str, config: Path | str) -> tuple[list[str], list[str]]:
    """The Inspector's web UI and CLI lines for a server binary and its configuration.

    The configuration goes in `MCP_LP_CONFIG` (`-e`), not `--config`: `--config` is the
    Inspector's own flag (a session file), and 2.x refuses it next to a server command.
    """
    server = ["-e", f"MCP_LP_CONFIG={config}", str(binary)]
    web = ["npx", INSPECTOR, *server]
    cli = ["npx", INSPECTOR, "--cli", *server, "--method", "tools/list"]
    return web, cli


def shell_line(argv: list[str]) -> str:
    return shlex.join(argv)
