"""How the demo scripts (demo_*.py, run by scripts/demo.sh) print what happens: headings,
configuration files, each tools/call with what the server answered, and a call that needs a
person's approval: parked, approved from the command line by a second identity who signs the
verdict with their SSH key, run."""

from __future__ import annotations

import json
import shlex
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Callable

from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from notes_harness import allowed_signer_line, approvers_toml, new_ssh_key, parked_approval, run_cli, text_of


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


def approver_keys(directory: Path, *principals: str) -> dict[str, Path]:
    """An SSH key per principal, in directory/keys, named for the principal's local part."""
    return {p: new_ssh_key(directory / "keys", p.split("@", 1)[0]) for p in principals}


def approvers_section(directory: Path, grant: str, keys: dict[str, Path]) -> str:
    """`[approvers]`: the allowed-signers file (directory/approvers.allowed_signers) listing each
    principal's key, each holding `grant`."""
    lines = [allowed_signer_line(principal, key) for principal, key in keys.items()]
    return approvers_toml(directory, grant, principals=tuple(keys), signers=lines)


def operator(
    binary: Path, config: Path, env: dict[str, str] | None, *args: str, brief: bool = False
) -> subprocess.CompletedProcess[str]:
    """Print and run `binary --config config ARGS` as the operator would, in another process;
    `brief` prints only the first line of what it says. Paths under the configuration's
    directory are printed relative to it."""

    def short(arg: str) -> str:
        path = Path(arg)
        return str(path.relative_to(config.parent)) if path.is_absolute() and path.is_relative_to(config.parent) else arg

    print(f"\n$ {shlex.join([binary.name, '--config', config.name, *map(short, args)])}")
    command = ["--config", str(config), *args]
    if env is None:
        done = run_cli(binary, *command)
    else:
        done = subprocess.run([str(binary), *command], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    said = (done.stdout + "\n".join(errors)).rstrip() or f"exit code {done.returncode}"
    print(textwrap.indent(said.splitlines()[0] if brief else said, "  "))
    return done


async def parked_call(session, tool: str, arguments: dict[str, Any]) -> str | None:
    """Call `tool`, which needs approval: print the refusal and return the approval id."""
    print(f"\n> tools/call {tool} {json.dumps(arguments)}")
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as e:
        approval = parked_approval(e)
        label = "PARKED for approval" if approval else "REFUSED by mcp-lp"
        show(f"{label} (JSON-RPC error {e.error.code}; nothing ran):", e.error.message)
        return approval
    show("RAN WITHOUT APPROVAL (unexpected):", text_of(result))
    return None


async def call_with_approval(
    session,
    binary: Path,
    config: Path,
    requester: str,
    tool: str,
    arguments: dict[str, Any],
    changed: dict[str, Any] | None = None,
    render: Callable[[CallToolResult], str] = text_of,
    keys: dict[str, Path] | None = None,
    approver: str = "bob@example.com",
    env: dict[str, str] | None = None,
    explain: bool = True,
) -> None:
    """Show the approval of one exact call: the call is parked; (with `explain`) the operator
    reads it and the requester may not approve it themselves, though their key is listed; a
    second identity approves it from the command line, signing with their key (`keys` maps
    each principal to their SSH key, which the configuration's [approvers] lists); the same
    call then runs, once; a call with `changed` arguments is not covered and is parked anew."""
    keys = keys or {}
    approval = await parked_call(session, tool, arguments)
    if approval is None:
        return
    if explain:
        operator(binary, config, env, "approvals", "show", approval)
        if requester in keys:
            print(f"\n(the requester, {requester}, tries to approve it with their own key)")
            operator(binary, config, env, "approvals", "approve", approval, "--key", str(keys[requester]))
    print(f"\n(a second identity, {approver}, approves it, signing with their SSH key)")
    operator(binary, config, env, "approvals", "approve", approval, "--key", str(keys[approver]), brief=not explain)
    print("\n(the client retries the same call: it runs, on this approval)")
    await call(session, tool, arguments, render)
    if changed is None:
        return
    print("\n(a retry with changed arguments is not the approved call: parked as a new call, not run)")
    other = await parked_call(session, tool, changed)
    if other is not None:
        print(f"  new approval {other}, not {approval}: the approval covered one call, once")
