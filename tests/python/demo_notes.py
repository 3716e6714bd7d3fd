"""A scripted demonstration of the notes server, run by scripts/demo.sh.

The official MCP Python client talks to the real notes-server binary over stdio four times:
with the shipped configuration (no grant), with the `notes:delete` grant, with an expired
grant, and once more to show a tool asking the client for input (MCP 2026-07-28). Everything
runs on a temporary copy of the example's notes.

Not a test (pytest collects only test_*.py); run it as
`python tests/python/demo_notes.py --binary target/debug/notes-server`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import textwrap
from pathlib import Path

import anyio
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import ElicitResult

from demo_output import call, heading, print_config, print_connection
from notes_harness import EXAMPLE_DIR, Workspace, audit_events, connect, grants_toml, open_client, server_binary
from printed_commands import inspector_commands, shell_line


async def scene(binary: Path, workspace: Workspace, key: str, title: str, config: Path, steps) -> None:
    heading(f"({key}) {title}")
    print_config(config)
    errlog = workspace.root / f"{config.stem}.stderr.jsonl"
    async with connect(binary, config, errlog) as session:
        print_connection(session)
        tools = await session.list_tools()
        print(f"\n> tools/list\n  {', '.join(t.name for t in tools.tools)}")
        for tool, arguments in steps:
            await call(session, tool, arguments)
    notes = sorted(p.stem for p in workspace.notes.glob("*.md"))
    print(f"\nnotes on disk afterwards: {', '.join(notes) or '(none)'}")
    print("audit events (stderr, target mcp_lp::audit; arguments only as a digest):")
    for event in audit_events(errlog):
        print(
            f"  {event['decision']:<5} {event['tool']:<12} principal={event['principal']} "
            f"outcome={event['outcome']} args_sha256={event['args_sha256'][:16]}…"
        )


async def input_scene(binary: Path, workspace: Workspace) -> None:
    heading("(d) MCP 2026-07-28: preview_note asks the client how many lines to show")
    config = workspace.write_config(name="mcp-lp-d.toml")
    errlog = workspace.root / "mcp-lp-d.stderr.jsonl"

    async def answer(_context, params) -> ElicitResult:
        print(f"  the server asks: {params.message!r}; the user answers 3")
        return ElicitResult(action="accept", content={"lines": 3})

    server = StdioServerParameters(command=str(binary), args=["--config", str(config)])
    with open(errlog, "w", encoding="utf-8") as err:
        async with open_client(stdio_client(server, errlog=err), "auto", elicitation_callback=answer) as client:
            print_connection(client)
            print('\n> tools/call preview_note {"name": "welcome"}')
            result = await client.call_tool("preview_note", {"name": "welcome"})
            print(textwrap.indent(result.content[0].text, "  "))
    print("audit events: the question and the retry are two calls of the same arguments;")
    print("the retry's answers and the sealed requestState it brought back are digested too:")
    for event in audit_events(errlog):
        extra = f" input_sha256={event['input_sha256'][:16]}…" if "input_sha256" in event else ""
        print(
            f"  {event['decision']:<5} {event['tool']:<12} outcome={event['outcome']:<14} "
            f"args_sha256={event['args_sha256'][:16]}…{extra}"
        )


async def main(binary: Path, example: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mcp-lp-demo-") as tmp:
        workspace = Workspace.create(Path(tmp), example / "notes")
        print(f"notes-server: {binary}")
        print(f"working on a temporary copy of {example / 'notes'}: {workspace.notes}")

        await scene(
            binary, workspace, "a",
            "the shipped configuration: no grant, so delete_note is hidden and refused",
            workspace.write_raw_config(
                (example / "mcp-lp.toml").read_text(encoding="utf-8"), "mcp-lp-a.toml"
            ),
            [("read_note", {"name": "welcome"}), ("delete_note", {"name": "q3-plan"})],
        )
        await scene(
            binary, workspace, "b",
            "the operator grants notes:delete: delete_note runs",
            workspace.write_config(grants=grants_toml("notes:delete"), name="mcp-lp-b.toml"),
            [("delete_note", {"name": "q3-plan"}), ("list_notes", None)],
        )
        await scene(
            binary, workspace, "c",
            "a grant that expired on 2020-01-01: refused again",
            workspace.write_config(
                grants='[{ name = "notes:delete", expires = 2020-01-01T00:00:00Z }]',
                name="mcp-lp-c.toml",
            ),
            [("delete_note", {"name": "welcome"})],
        )
        await input_scene(binary, workspace)

    config = example / "mcp-lp.toml"
    command = [str(binary), "--config", str(config)]
    heading("connect a real MCP client")
    print("The server speaks MCP over stdio. Point any MCP client at this command line:\n")
    print(f"  {shlex.join(command)}\n")
    print("for example, in a client's JSON configuration (Claude Desktop, Cursor, ...):\n")
    snippet = {"mcpServers": {"notes": {"command": command[0], "args": command[1:]}}}
    print(textwrap.indent(json.dumps(snippet, indent=2), "  "))
    web, cli = inspector_commands(binary, config)
    print("\nor with the MCP Inspector (Node.js 22.19 or newer), in the browser:")
    print(f"  {shell_line(web)}")
    print("or on the command line:")
    print(f"  {shell_line(cli)}")
    print(f"\nValidate a configuration first: {shlex.join([*command, 'check'])}")
    print(
        f'To allow deletes, add {{ name = "notes:delete", expires = <a date within 90 days> }}'
        f" to `grants` in {config.name};\nthey then act on the real notes next to it."
    )

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=None, help="the notes-server binary")
    parser.add_argument("--example", type=Path, default=EXAMPLE_DIR, help="examples/notes-server")
    args = parser.parse_args()
    binary = (args.binary or server_binary()).resolve()
    if not binary.is_file():
        sys.exit(f"error: {binary} does not exist; run `cargo build -p notes-server` first")
    anyio.run(main, binary, args.example.resolve())
