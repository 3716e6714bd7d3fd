"""Replicas of a server behind a real load balancer: N `serve --http` processes on loopback,
with Debian's nginx (scripts/nginx.sh) in front of them, round robin. Each replica's stderr
(its audit events) is kept apart, so a test can tell which replica answered which call."""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from http_harness import HttpNotesServer, KeyServer, free_port, http_config, serve_http
from notes_harness import REPO_ROOT, Workspace, audit_events

NGINX_SH = REPO_ROOT / "scripts" / "nginx.sh"


def conformance_binary() -> Path:
    """The conformance-server binary: $CONFORMANCE_SERVER_BIN, else <target>/debug/conformance-server."""
    explicit = os.environ.get("CONFORMANCE_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "conformance-server"


@dataclass
class Balanced:
    """The balancer's URL (what clients and tokens name) and the replicas behind it."""

    url: str
    replicas: list[HttpNotesServer]

    def audited_calls(self) -> list[tuple[int, dict[str, Any]]]:
        """Every audit event of every replica as (replica index, event), in request-id order."""
        calls = [(i, event) for i, replica in enumerate(self.replicas) for event in audit_events(replica.errlog)]
        return sorted(calls, key=lambda call: int(call[1]["request_id"]))


def nginx(*args: str) -> None:
    done = subprocess.run([str(NGINX_SH), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"scripts/nginx.sh {' '.join(args)} failed:\n{done.stderr}"


@contextmanager
def replicas_behind_nginx(
    binary: Path, write_config: Callable[[int, int, str], Path], logs: Path, count: int = 3
) -> Iterator[Balanced]:
    """`count` replicas of `binary` behind nginx. `write_config(i, port, url)` writes replica
    i's configuration: listening on 127.0.0.1:`port`, reached by clients at `url`. Their stderr
    goes to logs/replica-i.jsonl."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    name = f"replicas-{port}"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        replicas = []
        for i in range(count):
            replica_port = free_port()
            config = write_config(i, replica_port, url)
            replicas.append(
                stack.enter_context(serve_http(binary, config, replica_port, logs / f"replica-{i}.jsonl"))
            )
        nginx("start", name, str(port), *(str(r.port) for r in replicas))
        try:
            yield Balanced(url, replicas)
        finally:
            nginx("stop", name)


@contextmanager
def balanced_notes(
    binary: Path, workspace: Workspace, keys: KeyServer, logs: Path, count: int = 3, extra: str = ""
) -> Iterator[Balanced]:
    """notes-server replicas sharing one notes directory and one authorization server, the
    balancer's URL as their resource (the tokens' audience); `extra` TOML goes into every
    replica's configuration."""

    def write_config(i: int, port: int, url: str) -> Path:
        config = http_config(port, keys, resource=url) + "\n" + extra
        return workspace.write_config(extra=config, name=f"replica-{i}.toml")

    with replicas_behind_nginx(binary, write_config, logs, count) as replicas:
        yield replicas


# records-server replicas sharing the `[state]` PostgreSQL store, whose revocation list every
# replica follows (tests/python/test_revocation_replicas.py, revocation_latency.py).

import json  # noqa: E402

from notes_harness import STATELESS_PROTOCOL_VERSION  # noqa: E402


@contextmanager
def balanced_records(
    binary: Path,
    directory: Path,
    keys: KeyServer,
    logs: Path,
    count: int = 3,
    extra: str = "",
    governance: str = "",
) -> Iterator[Balanced]:
    """records-server replicas behind nginx, one authorization server, the balancer's URL as
    their resource, all on the `[state]` store with one governance key (in `directory`);
    `governance` is more of `[governance]` and `extra` more TOML, in every replica's
    configuration (directory/replica-i.toml)."""
    from records_harness import state_toml, write_config

    state = state_toml(directory, governance)

    def write(i: int, port: int, url: str) -> Path:
        text = "\n" + http_config(port, keys, resource=url) + state + extra
        return write_config(directory, "stdio-unused@example.com", extra=text, name=f"replica-{i}.toml")

    with replicas_behind_nginx(binary, write, logs, count) as replicas:
        yield replicas


class ToolCaller:
    """2026-07-28 tools/call requests (no session) to one URL with one token, on one kept-alive
    HTTP connection."""

    def __init__(self, url: str, token: str) -> None:
        import httpx2

        self.url = url
        self.token = token
        self.http = httpx2.Client(timeout=10)
        self.next_id = 0

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The JSON-RPC response to one call (`result` or `error`)."""
        from http_harness import ACCEPT, stateless

        self.next_id += 1
        message, headers = stateless(
            {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        )
        headers.update(
            {
                "Accept": ACCEPT,
                "Content-Type": "application/json",
                "MCP-Protocol-Version": STATELESS_PROTOCOL_VERSION,
                "Authorization": f"Bearer {self.token}",
            }
        )
        response = self.http.post(self.url, json=message, headers=headers)
        body = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for line in body.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    parsed = json.loads(line[5:])
                    if parsed.get("id") == self.next_id:
                        return parsed
        elif body.strip():
            parsed = json.loads(body)
            if isinstance(parsed, dict) and ("result" in parsed or "error" in parsed):
                return parsed
        raise AssertionError(f"HTTP {response.status_code} from {self.url} with no JSON-RPC answer: {body[:500]!r}")

    def close(self) -> None:
        self.http.close()


def refusal(response: dict[str, Any]) -> str | None:
    """The message of a call the revocation list refused (-32003 with `data.revoked`: revoked,
    or its store out of reach too long), else None. A call parked for approval, or refused for
    another reason, is not one."""
    error = response.get("error")
    if error and error.get("code") == -32003 and isinstance(error.get("data"), dict) and "revoked" in error["data"]:
        return str(error.get("message"))
    return None


def run_verb(binary: Path, config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`binary --config config ARGS` (such as `revoke --all --reason ...`), output captured; it
    must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    done = subprocess.run(
        [str(binary), "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done


@dataclass
class Timed:
    """A verb run while every replica was polled: how long the CLI process took, and per replica
    the seconds from starting it to the first answer `done` accepted (None: none within the
    deadline) with that answer, or the last one."""

    cli_seconds: float
    stdout: str
    seconds: list[float | None]
    answers: list[dict[str, Any] | None]


def timed_verb(
    binary: Path,
    config: Path,
    verb: list[str],
    callers: list[ToolCaller],
    tool: str,
    arguments: dict[str, Any],
    done: Callable[[dict[str, Any]], bool],
    deadline: float = 20.0,
    pause: float = 0.005,
) -> Timed:
    """Start `binary --config config VERB...` and, from that moment, call `tool` on every
    caller (one thread each, a call every `pause` seconds) until an answer satisfies `done`. The
    clock starts before the CLI process is spawned, so its start, its connection to the store
    and its write are all inside the measured time."""
    import threading
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    seconds: list[float | None] = [None] * len(callers)
    answers: list[dict[str, Any] | None] = [None] * len(callers)
    failures: list[BaseException] = []

    def poll(i: int, caller: ToolCaller, start: float) -> None:
        try:
            while True:
                answer = caller.call(tool, arguments)
                answers[i] = answer
                if done(answer):
                    seconds[i] = time.monotonic() - start
                    return
                if time.monotonic() - start > deadline:
                    return
                time.sleep(pause)
        except BaseException as e:  # reported by the caller of timed_verb
            failures.append(e)

    start = time.monotonic()
    process = subprocess.Popen(
        [str(binary), "--config", str(config), *verb],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    threads = [threading.Thread(target=poll, args=(i, c, start), daemon=True) for i, c in enumerate(callers)]
    for thread in threads:
        thread.start()
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    cli_seconds = time.monotonic() - start
    for thread in threads:
        thread.join(deadline + 15)
    if failures:
        raise failures[0]
    assert process.returncode == 0, f"{' '.join(verb)}: exit {process.returncode}\n{stdout}{stderr}"
    return Timed(cli_seconds, stdout, seconds, answers)
