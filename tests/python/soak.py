"""Load with faults: the docs and records servers over streamable HTTP, driven by concurrent
MCP 2026-07-28 clients holding JWTs, while PostgreSQL restarts, the AWS emulator stops and starts
again, and a database capability's pool runs dry. Run by scripts/soak.sh, on loopback only, for a
bounded time; it stops by itself.

For each phase it reports the calls answered (a result, or a clear error) and not answered, the
panics in the servers' logs, the audit events against the calls, and how long the servers took to
answer successfully again after the fault. Over the whole run it checks the emulator's CloudTrail:
every AssumeRole the docs server made named the tool's own role. It exits non-zero when a call
went unanswered, a server panicked, an audit event is missing, or a broader role was assumed.

    .venv/bin/python tests/python/soak.py --seconds 60 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx2

from docs_harness import DocsConfig, docs_binary, emulator, load_seed, server_env
from http_harness import ACCEPT, KeyServer, Minter, free_port, http_config, serve_http, stateless
from notes_harness import REPO_ROOT, STATELESS_PROTOCOL_VERSION, audit_events, log_lines
from records_harness import pg_env, records_binary, write_config

# How long a client waits for one answer. Generous: a call held up by a stopped emulator is
# answered by the server's own timeouts, and an unanswered call is a failure of the run.
ANSWER_TIMEOUT = 60.0
# The records server's read pool: small, so that reads held up by a lock exhaust it.
READ_POOL = 2


@dataclass
class Phase:
    name: str
    started: float
    ended: float = 0.0
    sent: int = 0
    ok: int = 0
    clear_errors: int = 0
    unanswered: int = 0
    # When the fault ended, and when each server first answered successfully after it.
    fault_over: float | None = None
    recovered: dict[str, float] = field(default_factory=dict)
    error_samples: dict[str, int] = field(default_factory=dict)
    per_server: dict[str, list[int]] = field(default_factory=dict)  # server -> [ok, errors]


class Run:
    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.stop = False

    @property
    def phase(self) -> Phase:
        return self.phases[-1]

    def begin(self, name: str) -> None:
        now = time.monotonic()
        if self.phases:
            self.phase.ended = now
        self.phases.append(Phase(name, now))

    def record(self, server: str, answered: bool, ok: bool, error: str | None, at: float) -> None:
        phase = self.phase
        phase.sent += 1
        counts = phase.per_server.setdefault(server, [0, 0])
        counts[0 if ok else 1] += 1
        if not answered:
            phase.unanswered += 1
        elif ok:
            phase.ok += 1
            if phase.fault_over is not None and at >= phase.fault_over:
                phase.recovered.setdefault(server, at - phase.fault_over)
        else:
            phase.clear_errors += 1
            sample = (error or "")[:90]
            phase.error_samples[f"{server}: {sample}"] = phase.error_samples.get(f"{server}: {sample}", 0) + 1


async def call(http: httpx2.AsyncClient, url: str, token: str, tool: str, arguments: dict[str, Any], id: int) -> tuple[bool, bool, str | None]:
    """One stateless tools/call: (answered, succeeded, error text)."""
    message, headers = stateless({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
    headers.update({
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": STATELESS_PROTOCOL_VERSION,
        "Authorization": f"Bearer {token}",
    })
    try:
        response = await http.post(url, json=message, headers=headers, timeout=ANSWER_TIMEOUT)
    except httpx2.HTTPError as error:
        return False, False, f"no answer: {type(error).__name__}"
    reply = None
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            reply = json.loads(line[5:])
    if reply is None and response.text.strip().startswith("{"):
        reply = json.loads(response.text)
    if reply is None:
        return False, False, f"HTTP {response.status_code} without a JSON-RPC answer"
    if "error" in reply:
        return True, False, str(reply["error"].get("message"))
    result = reply.get("result", {})
    if result.get("isError"):
        return True, False, " ".join(c.get("text", "") for c in result.get("content", []))
    return True, True, None


async def client(run: Run, i: int, http: httpx2.AsyncClient, targets: list[tuple[str, str, str, str, dict[str, Any]]]) -> None:
    n = 0
    while not run.stop:
        for server, url, token, tool, arguments in targets:
            if run.stop:
                return
            n += 1
            answered, ok, error = await call(http, url, token, tool, arguments, i * 1_000_000 + n)
            run.record(server, answered, ok, error, time.monotonic())


def hold_records_lock(seconds: float) -> None:
    """Lock the records table against readers for `seconds`, as the cluster's superuser: every
    read blocks holding its pooled connection, so the read pool runs dry."""
    admin = urlsplit(Path(pg_env()["MCP_LP_PG_ADMIN_URL_FILE"]).read_text(encoding="utf-8").strip())
    sql = f"BEGIN; LOCK TABLE public.records IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({seconds}); COMMIT;"
    # The password travels in the environment, never on a command line or in an error.
    env = {
        **os.environ,
        "PGHOST": admin.hostname or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "PGUSER": unquote(admin.username or ""),
        "PGPASSWORD": unquote(admin.password or ""),
        "PGDATABASE": "records",
    }
    done = subprocess.run(["psql", "-X", "-q", "-c", sql], env=env, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"psql could not hold the lock on public.records: {done.stderr.strip()}")


def script(name: str, *args: str) -> None:
    subprocess.run([str(REPO_ROOT / "scripts" / name), *args], check=True, capture_output=True, timeout=120)


def emulator_pid() -> int:
    pid_file = REPO_ROOT / ".aws-emulator" / "ministack.pid"
    return int(pid_file.read_text().strip())


async def faults(run: Run, slot: float) -> None:
    """The baseline, then each fault in turn, each followed by time to recover."""
    await asyncio.sleep(slot)

    run.begin("PostgreSQL restarted")
    await asyncio.to_thread(script, "postgres.sh", "restart")
    run.phase.fault_over = time.monotonic()
    await asyncio.sleep(slot)

    run.begin("AWS emulator stopped")
    pid = emulator_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(min(10.0, slot * 1.5))
    finally:
        os.kill(pid, signal.SIGCONT)
    run.phase.fault_over = time.monotonic()
    await asyncio.sleep(slot)

    run.begin(f"read pool ({READ_POOL}) exhausted by reads held on a lock")
    await asyncio.to_thread(hold_records_lock, slot)
    run.phase.fault_over = time.monotonic()
    await asyncio.sleep(slot)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run (default 60)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    options = parser.parse_args()
    # Baseline, then each fault and the time after it: PostgreSQL restart, the emulator stopped
    # (for 10 s in a full run), the read pool held empty.
    slot = options.seconds / 6

    seed = load_seed()
    started_wall = time.time() - 1
    run = Run()
    with tempfile.TemporaryDirectory(prefix="mcp-lp-soak-") as work_dir, ExitStack() as stack:
        work = Path(work_dir)
        keys = stack.enter_context(KeyServer().serving())

        docs_port, records_port = free_port(), free_port()
        docs_config = DocsConfig(work, seed).write(
            "soak@example.com", name="docs.toml"
        )
        docs_config.write_text(docs_config.read_text() + "\n" + http_config(docs_port, keys))
        records_config = write_config(work, "soak@example.com", name="records.toml")
        text = records_config.read_text().replace(
            "checkout_timeout = \"2s\"", f"checkout_timeout = \"2s\"\nmax_connections = {READ_POOL}", 1
        )
        records_config.write_text(text + "\n" + http_config(records_port, keys))

        docs_log, records_log = work / "docs.jsonl", work / "records.jsonl"
        docs = stack.enter_context(serve_http(docs_binary(), docs_config, docs_port, docs_log, server_env(seed)))
        records = stack.enter_context(serve_http(records_binary(), records_config, records_port, records_log))

        docs_token = Minter(keys, audience=docs.url).token(sub="soak-docs@example.com")
        records_token = Minter(keys, audience=records.url).token(sub="soak-records@example.com")
        targets = [
            ("docs", docs.url, docs_token, "readDocument", {"key": "public/welcome.md"}),
            ("records", records.url, records_token, "queryRecords", {"limit": 5}),
        ]
        limits = httpx2.Limits(max_connections=options.clients * 2)
        async with httpx2.AsyncClient(limits=limits) as http:
            run.begin("baseline")
            tasks = [asyncio.create_task(client(run, i, http, targets)) for i in range(options.clients)]
            try:
                await faults(run, slot)
            finally:
                run.stop = True
                await asyncio.gather(*tasks)
                run.phase.ended = time.monotonic()

        time.sleep(0.5)  # the last audit lines reach the logs
        stack.close()  # stops the servers; their logs stay until the directory goes

        # What the servers recorded.
        audited = len(audit_events(docs_log)) + len(audit_events(records_log))
        panics = sum(1 for line in log_lines(docs_log) + log_lines(records_log) if "panicked" in line)
    sent = sum(p.sent for p in run.phases)
    answered = sum(p.ok + p.clear_errors for p in run.phases)
    assumed = emulator("assume-roles", str(started_wall))
    roles = sorted({c.get("RoleArn", "") for c in assumed if "soak-docs" in c.get("RoleSessionName", "")})
    allowed = {seed["roles"]["mcp-read-only"]}

    print(f"load with faults: {options.clients} clients, {options.seconds:.0f} s, MCP 2026-07-28 over HTTP with JWTs")
    print("| phase | s | calls | ok | clear error | unanswered | ok / error by server | recovered after the fault |")
    print("|---|---|---|---|---|---|---|---|")
    for p in run.phases:
        recovered = ", ".join(f"{s} {t:.2f} s" for s, t in sorted(p.recovered.items())) or ("n/a" if p.fault_over is None else "not within the phase")
        by_server = ", ".join(f"{s} {ok}/{bad}" for s, (ok, bad) in sorted(p.per_server.items()))
        print(f"| {p.name} | {p.ended - p.started:.1f} | {p.sent} | {p.ok} | {p.clear_errors} | {p.unanswered} | {by_server} | {recovered} |")
    print(f"calls: {sent}, answered: {answered}, audit events: {audited}, panics: {panics}")
    print(f"roles assumed for the docs tools: {roles or 'none'} (allowed: {sorted(allowed)})")
    for p in run.phases:
        for sample, count in sorted(p.error_samples.items(), key=lambda kv: -kv[1])[:3]:
            print(f"  {p.name}: {count} x {sample}")

    failures = []
    if answered != sent:
        failures.append(f"{sent - answered} calls went unanswered")
    if panics:
        failures.append(f"{panics} panics in the servers' logs")
    if audited != answered:
        failures.append(f"{audited} audit events for {answered} answered calls")
    if not set(roles) <= allowed:
        failures.append(f"a broader role was assumed: {roles}")
    if not any(p.ok for p in run.phases[1:]):
        failures.append("no call succeeded after the first fault")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
