"""Replicas of the notes server behind a real load balancer: N `serve --http` processes on
loopback sharing one notes directory and one authorization server, with Debian's nginx
(scripts/nginx.sh) in front of them, round robin. Each replica's stderr (its audit events) is
kept apart, so a test can tell which replica answered which call."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from http_harness import HttpNotesServer, KeyServer, free_port, http_config, serve_http
from notes_harness import REPO_ROOT, Workspace, audit_events

NGINX_SH = REPO_ROOT / "scripts" / "nginx.sh"


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
def balanced_replicas(
    binary: Path, workspace: Workspace, keys: KeyServer, logs: Path, count: int = 3
) -> Iterator[Balanced]:
    """`count` replicas of `binary` behind nginx; their stderr goes to logs/replica-N.jsonl."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    name = f"notes-replicas-{port}"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        replicas = []
        for i in range(count):
            replica_port = free_port()
            config = workspace.write_config(
                extra=http_config(replica_port, keys, resource=url), name=f"replica-{i}.toml"
            )
            replicas.append(
                stack.enter_context(serve_http(binary, config, replica_port, logs / f"replica-{i}.jsonl"))
            )
        nginx("start", name, str(port), *(str(r.port) for r in replicas))
        try:
            yield Balanced(url, replicas)
        finally:
            nginx("stop", name)
