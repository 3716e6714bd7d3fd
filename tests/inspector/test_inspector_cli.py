"""The MCP Inspector lines the README and scripts/demo.sh print, run as printed.

scripts/inspector-check.sh installs the Inspector pinned in package.json (with the Node.js 22 it
needs) and runs these tests with INSPECTOR_NODE naming that node and NOTES_SERVER_BIN the
server. A printed `npx @modelcontextprotocol/inspector@V` is run as the pinned install of V.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "python"))

from notes_harness import grants_toml  # noqa: E402
from printed_commands import INSPECTOR, inspector_commands  # noqa: E402

README_BINARY = "target/debug/notes-server"
README_CONFIG = "examples/notes-server/mcp-lp.toml"


def launcher() -> Path:
    """The pinned Inspector's entry point, after checking it is the version the lines name."""
    package = HERE / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    meta = json.loads(package.read_text())
    assert f"{meta['name']}@{meta['version']}" == INSPECTOR, (
        f"the printed lines name {INSPECTOR}, tests/inspector installs {meta['version']}"
    )
    return package.parent / meta["bin"]["mcp-inspector"]


def server_binary() -> Path:
    binary = Path(os.environ.get("NOTES_SERVER_BIN", REPO_ROOT / README_BINARY))
    assert binary.is_file(), f"{binary} does not exist; build notes-server first"
    return binary


def run_printed(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a printed `npx <INSPECTOR> ...` line on the pinned node and Inspector."""
    assert argv[:2] == ["npx", INSPECTOR], argv
    node = os.environ["INSPECTOR_NODE"]
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    # Keep the Inspector's own state (catalog, client config) out of the home directory.
    env["HOME"] = str(cwd)
    return subprocess.run(
        [node, str(launcher()), *argv[2:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def readme_inspector_lines() -> list[list[str]]:
    text = (REPO_ROOT / "README.md").read_text()
    return [shlex.split(line) for line in re.findall(r"^npx @modelcontextprotocol/inspector\S* .*$", text, re.M)]


def tool_names(stdout: str) -> list[str]:
    return [t["name"] for t in json.loads(stdout)["tools"]]


@pytest.fixture
def notes_copy(tmp_path: Path) -> Path:
    """A copy of the example (configuration and notes), so that no call touches the real notes."""
    example = tmp_path / "notes-server"
    shutil.copytree(REPO_ROOT / "examples" / "notes-server", example)
    return example


def with_call(argv: list[str], tool: str, **arguments: str) -> list[str]:
    """A printed CLI line with its `--method tools/list` turned into a call of `tool`."""
    i = argv.index("--method")
    assert argv[i : i + 2] == ["--method", "tools/list"], argv
    call = ["--method", "tools/call", "--tool-name", tool]
    for key, value in arguments.items():
        call += ["--tool-arg", f"{key}={value}"]
    return argv[:i] + call + argv[i + 2 :]


def test_readme_prints_the_demo_inspector_lines():
    # The README shows, for its relative paths, exactly the lines demo.sh prints.
    web, cli = inspector_commands(README_BINARY, README_CONFIG)
    assert readme_inspector_lines() == [web, cli]


def test_accepts_readme_inspector_cli_line_and_lists_tools(tmp_path: Path):
    _, cli = readme_inspector_lines()
    # The README's relative paths, from a directory laid out like the repository.
    (tmp_path / "target" / "debug").mkdir(parents=True)
    (tmp_path / README_BINARY).symlink_to(server_binary())
    shutil.copytree(REPO_ROOT / "examples" / "notes-server", tmp_path / "examples" / "notes-server")
    done = run_printed(cli, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The example grants nothing, so the privileged tool is not listed.
    names = tool_names(done.stdout)
    assert "list_notes" in names and "read_note" in names and "delete_note" not in names, names


def test_refuses_delete_note_through_inspector_cli_without_grant(notes_copy: Path):
    _, cli = inspector_commands(server_binary(), notes_copy / "mcp-lp.toml")
    done = run_printed(with_call(cli, "delete_note", name="welcome"), notes_copy)
    assert done.returncode != 0, done.stdout
    # The server hides the tool from a caller without the grant, so the Inspector has no tool of
    # that name to call; the note is still there.
    assert "delete_note" in done.stdout + done.stderr
    assert "not found" in done.stdout + done.stderr
    assert (notes_copy / "notes" / "welcome.md").is_file()


def test_accepts_delete_note_through_inspector_cli_with_grant(notes_copy: Path):
    # The same line with the operator's grant deletes: the refusal above is the grant's doing.
    config = notes_copy / "mcp-lp.toml"
    config.write_text(config.read_text().replace("grants = []", f"grants = {grants_toml('notes:delete')}"))
    _, cli = inspector_commands(server_binary(), config)
    listed = run_printed(cli, notes_copy)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "delete_note" in tool_names(listed.stdout)
    done = run_printed(with_call(cli, "delete_note", name="welcome"), notes_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (notes_copy / "notes" / "welcome.md").exists()


def test_refuses_config_flag_after_server_command(notes_copy: Path):
    # The line the demo used to print: 2.x takes `--config` as its own flag and refuses it.
    # If the Inspector ever accepts it again, the printed line may go back to the usual form.
    argv = ["npx", INSPECTOR, "--cli", str(server_binary()), "--config", str(notes_copy / "mcp-lp.toml"),
            "--method", "tools/list"]
    done = run_printed(argv, notes_copy)
    assert done.returncode != 0
    assert "--config cannot be combined" in done.stdout + done.stderr
