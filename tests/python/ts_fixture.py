"""The notes-server fixtures of the TypeScript client tests (tests/typescript), served to them
by this process so that both languages' tests share one harness: workspaces and
configurations (notes_harness), the stand-in authorization server, its tokens and the HTTP
server (http_harness), and the audit events on a server's stderr.

Speaks JSON lines: one request on stdin, one answer on stdout, in order.

  {"op": "stdio", "grants": [...]}       -> {"config", "notes", "errlog"}: a workspace with a
                                            [stdio] configuration holding these grant names,
                                            each expiring in a week
  {"op": "http"}                          -> {"url", "base", "issuer", "notes", "errlog"}: a
                                            fresh workspace served by `serve --http`
  {"op": "token", "aud", "sub", "scope"}  -> {"token"}: an access token for `aud`
  {"op": "audit", "errlog"}               -> {"events"}: the audit events in that stderr log

A failed request answers {"error": "..."}. End of stdin stops every server and removes the
workspaces. Not a test (pytest collects only test_*.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from http_harness import KeyServer, Minter, free_port, http_config, serve_http
from notes_harness import Workspace, audit_events, grants_toml, server_binary


class Fixtures:
    def __init__(self, binary: Path, root: Path, keys: KeyServer, stack: ExitStack) -> None:
        self.binary, self.root, self.keys, self.stack = binary, root, keys, stack
        self.count = 0

    def workspace(self) -> Workspace:
        self.count += 1
        return Workspace.create(self.root / f"ws-{self.count}")

    def stdio(self, grants: list[str] | None = None, principal: str = "alice@example.com") -> dict[str, Any]:
        workspace = self.workspace()
        config = workspace.write_config(grants=grants_toml(*(grants or [])), principal=principal)
        return {"config": str(config), "notes": str(workspace.notes), "errlog": str(workspace.root / "stderr.jsonl")}

    def http(self) -> dict[str, Any]:
        workspace = self.workspace()
        port = free_port()
        config = workspace.write_config(extra=http_config(port, self.keys))
        errlog = workspace.root / "stderr.jsonl"
        server = self.stack.enter_context(serve_http(self.binary, config, port, errlog))
        return {
            "url": server.url,
            "base": server.base,
            "issuer": self.keys.issuer,
            "notes": str(workspace.notes),
            "errlog": str(errlog),
        }

    def token(self, aud: str, sub: str = "alice@example.com", scope: str = "") -> dict[str, Any]:
        return {"token": Minter(self.keys, audience=aud).token(sub=sub, scope=scope)}

    def audit(self, errlog: str) -> dict[str, Any]:
        return {"events": audit_events(Path(errlog))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=None, help="the notes-server binary")
    args = parser.parse_args()
    binary = (args.binary or server_binary()).resolve()
    if not binary.is_file():
        sys.exit(f"error: {binary} does not exist; run `cargo build -p notes-server` first")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mcp-lp-ts-") as tmp:
        keys = stack.enter_context(KeyServer().serving())
        fixtures = Fixtures(binary, Path(tmp), keys, stack)
        ops = {"stdio": fixtures.stdio, "http": fixtures.http, "token": fixtures.token, "audit": fixtures.audit}
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                op = ops[request.pop("op")]
                answer = op(**request)
            except Exception as e:  # the answer names the failure; the next request still works
                answer = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
