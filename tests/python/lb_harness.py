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
