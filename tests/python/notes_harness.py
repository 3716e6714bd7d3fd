"""Helpers shared by the end-to-end tests and the demo: find the notes-server binary, lay out a
temporary workspace (a copy of the example notes plus a config file), connect the official MCP
client to the server over stdio in either client mode, read the audit events off the server's
stderr, and get a call that needs a person's approval approved from the command line, where an
approver signs the verdict with an SSH key the configuration's `[approvers]` lists."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

from mcp import Client, StdioServerParameters
from mcp.client._transport import Transport
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO_ROOT / "examples" / "notes-server"
AUDIT_TARGET = "mcp_lp::audit"
PROTOCOL_VERSION = "2025-11-25"
STATELESS_PROTOCOL_VERSION = "2026-07-28"

# The official client's two ways to connect, which every client-facing test runs in:
# "legacy" is the initialize handshake; "auto" (the SDK's default) probes `server/discover` and
# falls back to the handshake only when the server does not offer a 2026-07-28 revision.
MODES = ("legacy", "auto")
# What each mode must end up on against mcp-lp, which serves both revisions.
NEGOTIATED = {"legacy": PROTOCOL_VERSION, "auto": STATELESS_PROTOCOL_VERSION}

# Every request the client makes fails after this long (seconds) instead of hanging the run.
REQUEST_TIMEOUT = 10.0


def server_binary() -> Path:
    """The notes-server binary: $NOTES_SERVER_BIN, else <target>/debug/notes-server."""
    explicit = os.environ.get("NOTES_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "notes-server"


def toml_str(value: str) -> str:
    """A TOML basic string holding `value` (JSON string escapes are valid TOML)."""
    return json.dumps(value)


def expires_in(days: int = 7) -> str:
    """A TOML datetime `days` from now, as a configured grant's `expires`."""
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def grants_toml(*names: str, days: int = 7) -> str:
    """`[stdio] grants` as TOML source: each of `names` expiring `days` from now. A configured
    grant must expire within [governance] max_grant_lifetime (90 days by default), so a grant is
    never written as a bare name."""
    expires = expires_in(days)
    return "[" + ", ".join(f"{{ name = {toml_str(name)}, expires = {expires} }}" for name in names) + "]"


# Command-line approvers: each signs a verdict with an SSH key (`ssh-keygen -Y sign`), which the
# server checks against the allowed-signers file that `[approvers]` names.
SSH_KEYGEN = "/usr/bin/ssh-keygen"
# Who approves in call_approved: never the requester, whom the server refuses as approver.
APPROVER = "bob@example.com"
_KEY_DIR: Path | None = None
_KEYS: dict[str, Path] = {}


def new_ssh_key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair `directory/name` (private) and `directory/name.pub`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    done = subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path), "-C", name],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 0, f"ssh-keygen failed: {done.stderr}"
    return path


def approver_key(principal: str = APPROVER) -> Path:
    """The SSH private key `principal` signs verdicts with, made once per test run."""
    global _KEY_DIR
    if principal not in _KEYS:
        if _KEY_DIR is None:
            _KEY_DIR = Path(tempfile.mkdtemp(prefix="mcp-lp-approver-keys-"))
            atexit.register(shutil.rmtree, _KEY_DIR, True)
        _KEYS[principal] = new_ssh_key(_KEY_DIR, re.sub(r"[^A-Za-z0-9@._-]", "_", principal))
    return _KEYS[principal]


def allowed_signer_line(principals: str | list[str], key: Path) -> str:
    """One line of an allowed-signers file: `principal[,principal...] key-type base64 comment`."""
    names = principals if isinstance(principals, str) else ",".join(principals)
    return f"{names} {key.with_name(key.name + '.pub').read_text(encoding='utf-8').strip()}"


def approvers_toml(
    directory: Path,
    grant: str | None,
    principals: tuple[str, ...] = (APPROVER,),
    signers: list[str] | None = None,
    days: int = 7,
    name: str = "approvers.allowed_signers",
) -> str:
    """`[approvers]` as TOML source: writes `directory/name`, the allowed-signers file listing
    each of `principals` with its approver_key (or the lines `signers`, when given), and grants
    each principal `grant` (none when `grant` is None) expiring `days` from now."""
    lines = signers if signers is not None else [allowed_signer_line(p, approver_key(p)) for p in principals]
    path = directory / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    expires = expires_in(days)
    held = [] if grant is None else [f"{{ name = {toml_str(grant)}, expires = {expires} }}"]
    grants = ", ".join(f"{toml_str(p)} = [{', '.join(held)}]" for p in principals)
    return f"\n[approvers]\nallowed_signers = {toml_str(str(path))}\ngrants = {{ {grants} }}\n"


def governance_key_file(directory: Path, name: str = "governance.key") -> Path:
    """A `[governance] keys` secret file in `directory` (32 random bytes, hex, mode 0600), made
    once: every replica, and the command line, reads the same one."""
    path = directory / name
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path


def governance_keys_line(directory: Path) -> str:
    """The `keys = [...]` line of `[governance]` for governance_key_file(directory)."""
    key = governance_key_file(directory)
    return f"keys = [{{ id = \"g1\", secret = {{ file = {toml_str(str(key))} }} }}]\n"


@dataclass
class Workspace:
    """A temporary directory holding `notes/` (a copy of the example notes) and config files."""

    root: Path

    @classmethod
    def create(cls, root: Path, notes_src: Path = EXAMPLE_DIR / "notes") -> "Workspace":
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(notes_src, root / "notes")
        return cls(root)

    @property
    def notes(self) -> Path:
        return self.root / "notes"

    def note(self, name: str) -> Path:
        return self.notes / f"{name}.md"

    def write_config(
        self,
        grants: str = "[]",
        principal: str = "alice@example.com",
        extra: str = "",
        name: str = "mcp-lp.toml",
    ) -> Path:
        """Write a config with `[stdio] principal/grants` (grants as TOML source), `extra` TOML,
        and `[app] notes_dir = "notes"`."""
        sections = [
            f"[stdio]\nprincipal = {toml_str(principal)}\ngrants = {grants}\n",
            f"{extra.strip()}\n" if extra.strip() else "",
            '[app]\nnotes_dir = "notes"\n',
        ]
        return self.write_raw_config("\n".join(s for s in sections if s), name)

    def write_raw_config(self, text: str, name: str = "mcp-lp.toml") -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path


@asynccontextmanager
async def open_client(transport: Transport, mode: str, **options: Any) -> AsyncIterator[Client]:
    """The official client over `transport`, connected in `mode` ("legacy" or "auto");
    `options` go to mcp.Client."""
    async with Client(transport, mode=mode, read_timeout_seconds=REQUEST_TIMEOUT, **options) as client:
        yield client


def assert_negotiated(client: Client, mode: str) -> None:
    """The revision `mode` must reach against mcp-lp: legacy stays on 2025-11-25; auto must move
    to 2026-07-28, not fall back to the handshake, or the auto-mode run would prove nothing new."""
    want = NEGOTIATED[mode]
    assert client.protocol_version == want, (
        f"the client in mode={mode!r} negotiated protocol {client.protocol_version}, expected {want}"
    )


@asynccontextmanager
async def connect(binary: Path, config: Path, errlog: Path, mode: str = "auto") -> AsyncIterator[Client]:
    """Launch `binary --config config` over stdio, with its stderr written to `errlog`, and yield
    the official client connected in `mode`."""
    params = StdioServerParameters(command=str(binary), args=["--config", str(config)])
    with open(errlog, "w", encoding="utf-8") as err:
        async with open_client(stdio_client(params, errlog=err), mode) as client:
            yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def call_error(session: Client, tool: str, arguments: dict[str, Any] | None) -> str:
    """Call a tool that must fail and return the failure's message, whether it came back as a
    JSON-RPC error or as an error result (isError: true)."""
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as e:
        return e.error.message
    assert result.is_error, f"{tool}({arguments!r}) was expected to fail, got {text_of(result)!r}"
    return text_of(result)


def canonical_json(arguments: dict[str, Any] | None) -> bytes:
    """The canonical form the audit digest is taken over: compact JSON, keys sorted, UTF-8."""
    value = {} if arguments is None else arguments
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def args_sha256(arguments: dict[str, Any] | None) -> str:
    return hashlib.sha256(canonical_json(arguments)).hexdigest()


def log_lines(errlog: Path) -> list[str]:
    return [line for line in errlog.read_text(encoding="utf-8").splitlines() if line.strip()]


def trail_lines(errlog: Path) -> list[str]:
    """Every audit event on stderr: calls, and start, configuration, secrets, refusals, shutdown."""
    return [line for line in log_lines(errlog) if json.loads(line).get("target") == AUDIT_TARGET]


def secret_audit_events(errlog: Path) -> list[dict[str, Any]]:
    """The audit events of secrets: resolved at startup, rotated, failed to refresh, expired."""
    return [
        event
        for line in trail_lines(errlog)
        if str((event := json.loads(line)).get("event", "")).startswith("secret_")
    ]


def audit_lines(errlog: Path) -> list[str]:
    """The audit events of tools/call requests."""
    return [line for line in trail_lines(errlog) if json.loads(line).get("event") == "tools/call"]


def audit_events(errlog: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_lines(errlog)]


def trail_events(errlog: Path, event: str | None = None) -> list[dict[str, Any]]:
    """Every audit event on stderr, or those of kind `event`."""
    events = [json.loads(line) for line in trail_lines(errlog)]
    return [e for e in events if event is None or e["event"] == event]


class RawServer:
    """The server spawned directly, for tests that write JSON-RPC lines by hand."""

    def __init__(self, binary: Path, config: Path, errlog: Path) -> None:
        self._err = open(errlog, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(binary), "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send_line(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_line(json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next stdout line, which must be one JSON object."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from the server within {timeout}s") from None
        if line is None:
            raise AssertionError(f"the server closed stdout (exit code {self.proc.poll()})")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"the server wrote a non-JSON line to stdout: {line!r}") from None

    def request(self, id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.recv()

    def handshake(self) -> dict[str, Any]:
        response = self.request(
            1,
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-lp-raw-test", "version": "0"},
            },
        )
        assert "result" in response, response
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def close(self, timeout: float = 5.0) -> int:
        """Close stdin and wait for the server to exit; returns its exit code."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._err.close()


def run_cli(binary: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the binary with `args` (e.g. `--config F check`) and capture its output."""
    base = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    base.update(env or {})
    return subprocess.run(
        [str(binary), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=base,
        timeout=20,
    )


# The JSON-RPC error code of a refused call, and of a call parked for approval.
FORBIDDEN = -32003


def parked_approval(error: MCPError) -> str | None:
    """The approval id a refusal carries when the call was parked for a person's approval."""
    data = error.error.data
    if error.error.code != FORBIDDEN or not isinstance(data, dict) or not isinstance(data.get("approval"), dict):
        return None
    return data["approval"].get("id")


def approve_from_cli(
    binary: Path,
    config: Path,
    approval: str,
    key: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    verdict: str = "approve",
) -> subprocess.CompletedProcess[str]:
    """`binary --config config approvals approve|deny APPROVAL --key KEY EXTRA...`, another
    process, as an operator runs it. `env`, when given, is its whole environment."""
    args = ["--config", str(config), "approvals", verdict, approval, "--key", str(key), *extra]
    if env is None:
        return run_cli(binary, *args)
    return subprocess.run(
        [str(binary), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60
    )


async def call_approved(
    session: Client,
    binary: Path,
    config: Path,
    tool: str,
    arguments: dict[str, Any] | None,
    approver: str = APPROVER,
    env: dict[str, str] | None = None,
) -> CallToolResult:
    """Call `tool`; when the server parks the call for approval, approve it as `approver` with
    `binary --config config approvals approve ID --key KEY` (another process, as an operator
    would; KEY is approver_key(approver), which the configuration's `[approvers]` lists) and call
    again with the same arguments. Returns the result of the call that ran. `env`, when given,
    is the command line's whole environment (docs-server's AWS identity)."""
    try:
        return await session.call_tool(tool, arguments)
    except MCPError as e:
        approval = parked_approval(e)
        if approval is None:
            raise
    done = approve_from_cli(binary, config, approval, approver_key(approver), env=env)
    assert done.returncode == 0, f"approvals approve {approval} as {approver}:\n{done.stdout}{done.stderr}"
    assert done.stdout.startswith(f"approved by {approver}\napproval {approval}\n"), done.stdout
    return await session.call_tool(tool, arguments)
