"""Command lines the README and the demonstrations print for people to copy, run as printed.

The MCP Inspector lines have their own tests (tests/inspector, scripts/inspector-check.sh),
which need the pinned Inspector; these need only the servers and the local services.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from notes_harness import audit_events, open_client, run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def shell_env() -> dict[str, str]:
    """The environment of a reader's shell: the test's own (the local services' variables, and
    MCP_LP_AWS_PORT if set), not the MCP client's minimal default for servers."""
    return {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}


def readme_client_snippet() -> dict:
    """The JSON a reader gives their MCP client to run notes-server (README, Quick start)."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"^```json\n(.*?)^```\n", text, re.S | re.M)
    snippets = [json.loads(b) for b in blocks if '"command": "target/debug/notes-server"' in b]
    assert len(snippets) == 1, f"expected one client snippet for notes-server, found {len(snippets)}"
    return snippets[0]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_accepts_readme_client_snippet(binary, tmp_path: Path, mode: str):
    snippet = readme_client_snippet()
    # The snippet's paths are relative to the repository; lay out a copy so that no call can
    # touch the real notes.
    (tmp_path / "target" / "debug").mkdir(parents=True)
    (tmp_path / snippet["command"]).symlink_to(binary)
    shutil.copytree(REPO_ROOT / "examples" / "notes-server", tmp_path / "examples" / "notes-server")
    params = StdioServerParameters(command=snippet["command"], args=snippet["args"], cwd=tmp_path, env=shell_env())
    with open(tmp_path / "stderr.jsonl", "w", encoding="utf-8") as err:
        async with open_client(stdio_client(params, errlog=err), mode) as client:
            tools = await client.list_tools()
            names = [t.name for t in tools.tools]
            # Every tool but the one behind the grant the example does not give.
            assert "list_notes" in names and "read_note" in names and "delete_note" not in names, names
            notes = await client.call_tool("list_notes", {})
            assert not notes.is_error


def example_binary(name: str) -> Path:
    variable = f"{name.split('-')[0].upper()}_SERVER_BIN"
    path = Path(os.environ.get(variable, REPO_ROOT / "target" / "debug" / name))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p {name}` (or set {variable})")
    return path


# `Validate a configuration first: <binary> --config examples/<name>/mcp-lp.toml check`, as each
# demonstration prints it. records-server needs the local PostgreSQL, docs-server the AWS
# emulator's identity in the environment (scripts/test.sh provides both).
@pytest.mark.parametrize("name", ["notes-server", "records-server", "docs-server"])
def test_accepts_demo_check_line(name: str):
    done = run_cli(example_binary(name), "--config", str(REPO_ROOT / "examples" / name / "mcp-lp.toml"), "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: "), done.stdout


def readme_digest_line() -> str:
    """The README's (Audit) shell line that hashes arguments as the audit event does."""
    text = (REPO_ROOT / "README.md").read_text()
    lines = re.findall(r"^`(python3 -c 'import json,hashlib,sys;.*)`\.$", text, re.M)
    assert len(lines) == 1, f"expected one digest line in the README, found {len(lines)}"
    return lines[0]


@pytest.mark.anyio
async def test_accepts_readme_digest_line_matching_audit_event(binary, workspace, errlog, connect):
    line = readme_digest_line()
    printed = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True).stdout.strip()
    arguments = json.loads(shlex.split(line)[-1])
    async with connect(binary, workspace.write_config(grants="[]"), errlog) as session:
        await session.call_tool("read_note", arguments)
    [event] = audit_events(errlog)
    assert event["args_sha256"] == printed


def examples_readme_commands() -> dict[str, str]:
    """examples/README.md's "runs with" command per example that serves over stdio."""
    text = (REPO_ROOT / "examples" / "README.md").read_text()
    rows = re.findall(r"^\| \[`([a-z-]+)`\]\([a-z-]+\) \| .* \| `([^`]+)` \|$", text, re.M)
    assert {name for name, _ in rows} == {"notes-server", "records-server", "docs-server", "conformance-server"}
    return {name: command for name, command in rows if "cargo run" in command}


# Each line as printed, except that `cargo run -p NAME --` becomes the binary cargo would run
# (already built by the test command; `cargo run -p` alone would rebuild dependencies for one
# package's feature set). The client then lists the tools the example's configuration allows.
@pytest.mark.anyio
@pytest.mark.parametrize(
    "name, tools",
    [
        ("notes-server", ["list_notes", "read_note", "preview_note"]),
        ("records-server", ["queryRecords"]),
        ("docs-server", ["listDocuments", "readDocument"]),
    ],
)
async def test_accepts_examples_readme_command(name: str, tools: list[str], tmp_path: Path):
    command = examples_readme_commands()[name]
    cargo_run = f"cargo run -p {name} --"
    assert cargo_run in command, command
    line = command.replace(cargo_run, shlex.quote(str(example_binary(name))))
    params = StdioServerParameters(command="bash", args=["-c", line], cwd=REPO_ROOT, env=shell_env())
    with open(tmp_path / "stderr.jsonl", "w", encoding="utf-8") as err:
        async with open_client(stdio_client(params, errlog=err), "legacy") as client:
            listed = await client.list_tools()
    assert sorted(t.name for t in listed.tools) == sorted(tools)
