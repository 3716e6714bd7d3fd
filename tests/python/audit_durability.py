"""Audit trail durability: concurrent MCP 2026-07-28 clients with JWTs call the records server
over streamable HTTP while it is killed with SIGKILL at a random moment, then restarted on the
same trail. Afterwards every call a client saw answered must have its `tools/call` event in the
trail, and `audit verify` must pass, with the killed instance's chain intact up to its last
event (it has no shutdown event). Run by scripts/audit-durability.sh, on loopback only.

    .venv/bin/python tests/python/audit_durability.py --sink file --seconds 30 --clients 16
    .venv/bin/python tests/python/audit_durability.py --sink postgres --smoke
    .venv/bin/python tests/python/audit_durability.py --bench --seconds 20 --clients 16

`--sink file` writes the trail to a file synced on every event; `--sink postgres` to
mcp-lp-state's audit table (`[audit] postgres = true`), read back with `audit verify --db`.
`--bench` kills nothing: it runs the same load once without a durable sink and once with the
PostgreSQL sink, and reports calls/s of each and the events/s the table recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from http_harness import ACCEPT, KeyServer, Minter, free_port, http_config, serve_http, stateless
from notes_harness import REPO_ROOT, STATELESS_PROTOCOL_VERSION, toml_str
from records_harness import pg_env, records_binary, state_toml, write_config

ANSWER_TIMEOUT = 30.0
TOOL = "queryRecords"
ARGUMENTS = {"limit": 1}


@dataclass
class Load:
    stop: bool = False
    answered: set[str] = field(default_factory=set)
    errors: int = 0
    unanswered: int = 0
    started: float = 0.0


async def call(http: httpx2.AsyncClient, url: str, token: str, request_id: int) -> str:
    """One stateless tools/call: "ok", "error" (answered with an error) or "none"."""
    message, headers = stateless(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": TOOL, "arguments": ARGUMENTS}}
    )
    headers.update({
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": STATELESS_PROTOCOL_VERSION,
        "Authorization": f"Bearer {token}",
    })
    try:
        response = await http.post(url, json=message, headers=headers, timeout=ANSWER_TIMEOUT)
    except httpx2.HTTPError:
        return "none"
    reply = None
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            reply = json.loads(line[5:])
    if reply is None and response.text.strip().startswith("{"):
        reply = json.loads(response.text)
    if reply is None:
        return "none"
    if "error" in reply or reply.get("result", {}).get("isError"):
        return "error"
    return "ok"


async def client(load: Load, i: int, http: httpx2.AsyncClient, url: str, token: str, base: int) -> None:
    n = 0
    while not load.stop:
        n += 1
        request_id = base + i * 1_000_000 + n
        outcome = await call(http, url, token, request_id)
        if outcome == "ok":
            load.answered.add(str(request_id))
        elif outcome == "error":
            load.errors += 1
        else:
            load.unanswered += 1
            await asyncio.sleep(0.02)  # the server is down: do not spin


def audit_key() -> Path:
    """The chain's key that scripts/postgres.sh keeps for the shared audit table, so that
    `audit verify --db` can check every chain the table holds."""
    value = pg_env().get("MCP_LP_PG_AUDIT_KEY_FILE")
    if not value or not Path(value).is_file():
        raise SystemExit("MCP_LP_PG_AUDIT_KEY_FILE names no file: run scripts/postgres.sh start")
    return Path(value)


def configure(work: Path, sink: str | None, port: int, keys: KeyServer) -> Path:
    audit = f"[audit]\nkeys = [{{ id = \"durability-1\", secret = {{ file = {toml_str(str(audit_key()))} }} }}]\n"
    if sink == "file":
        audit += f"file = {{ path = {toml_str(str(work / 'trail.jsonl'))}, fsync = \"every_event\" }}\n"
    elif sink == "postgres":
        audit += f"postgres = true\n{state_toml(work)}"
    config = write_config(work, "durability@example.com", name=f"records-{sink or 'stderr'}.toml")
    config.write_text(config.read_text() + "\n" + http_config(port, keys) + "\n" + audit)
    return config


def verify(config: Path, sink: str, work: Path) -> tuple[int, str]:
    args = [str(records_binary()), "--config", str(config), "audit", "verify"]
    args += ["--db"] if sink == "postgres" else [str(work / "trail.jsonl")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
    return done.returncode, done.stdout


def trail_events(sink: str, work: Path, instances: list[str]) -> list[dict[str, Any]]:
    """The events of `instances`, as the durable sink holds them."""
    if sink == "file":
        lines = (work / "trail.jsonl").read_text(encoding="utf-8").splitlines()
    else:
        wanted = ",".join("'" + i.replace("'", "") + "'" for i in instances)
        out = subprocess.run(
            [str(REPO_ROOT / "scripts" / "postgres.sh"), "psql", "-At", "-c",
             f"SELECT line FROM mcp_lp_audit.events WHERE instance IN ({wanted}) ORDER BY id"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout
        lines = out.splitlines()
    events = []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("instance") in instances:
            events.append(event)
    return events


def instance_of(errlog: Path) -> str:
    """The chain instance a server's `start` event names, from its stderr."""
    for line in errlog.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"start"' in line:
            match = re.search(r'"instance"\s*:\s*"(i-[0-9a-f]+)"', line.replace('\\"', '"'))
            if match:
                return match.group(1)
    raise AssertionError(f"no start event in {errlog}")


async def run_load(load: Load, url: str, token: str, clients: int, base: int) -> tuple[httpx2.AsyncClient, list[asyncio.Task[None]]]:
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=clients * 2))
    tasks = [asyncio.create_task(client(load, i, http, url, token, base)) for i in range(clients)]
    return http, tasks


async def durability(sink: str, seconds: float, clients: int) -> int:
    load = Load()
    with tempfile.TemporaryDirectory(prefix="mcp-lp-durability-") as work_dir, ExitStack() as stack:
        work = Path(work_dir)
        keys = stack.enter_context(KeyServer().serving())
        port = free_port()
        config = configure(work, sink, port, keys)
        first_log, second_log = work / "first.jsonl", work / "second.jsonl"
        first = serve_http(records_binary(), config, port, first_log)
        server = first.__enter__()
        token = Minter(keys, audience=server.url).token(sub="durability@example.com")
        kill_at = random.uniform(0.15, 0.75) * seconds
        load.started = time.monotonic()
        http, tasks = await run_load(load, server.url, token, clients, base=random.randrange(1, 1000) * 10**9)
        try:
            await asyncio.sleep(kill_at)
            answered_before_kill = len(load.answered)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            killed = instance_of(first_log)
            try:
                first.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 (already dead: nothing to stop)
                pass
            restarted_at = time.monotonic()
            second = stack.enter_context(serve_http(records_binary(), config, port, second_log))
            down = time.monotonic() - restarted_at
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - load.started)))
        finally:
            load.stop = True
            await asyncio.gather(*tasks)
            await http.aclose()
        second.process.send_signal(signal.SIGTERM)
        second.process.wait(timeout=30)
        restarted = instance_of(second_log)

        status, report = verify(config, sink, work)
        events = trail_events(sink, work, [killed, restarted])
        calls = {str(e.get("request_id")).strip('"') for e in events if e.get("event") == "tools/call" and e.get("outcome") == "ok"}
        killed_events = [e for e in events if e.get("instance") == killed]
        killed_calls = sum(1 for e in killed_events if e.get("event") == "tools/call")
        last_seq = max((e["seq"] for e in killed_events), default=None)
        missing = load.answered - calls
        summary = re.search(rf"instance {killed}: server records-server, keys [^,]+, (\d+) events, last seq (\d+), (.*)", report)

    print(f"audit durability, {sink} sink: {clients} clients, {seconds:.0f} s, SIGKILL at {kill_at:.1f} s, restarted in {down:.2f} s")
    print(f"  calls answered: {len(load.answered)} ({answered_before_kill} before the kill), answered with an error: {load.errors}, unanswered (server down): {load.unanswered}")
    print(f"  tools/call events found for answered calls: {len(load.answered & calls)} of {len(load.answered)}")
    print(f"  killed instance {killed}: {len(killed_events)} events ({killed_calls} tools/call), last seq {last_seq}")
    lines = report.strip().splitlines()
    print(f"  audit verify: exit {status}, {lines[0] if lines else 'no report'}")
    print(f"    {summary.group(0) if summary else 'the killed instance is not in the report'}")

    failures = []
    if not load.answered:
        failures.append("no call was answered")
    if missing:
        failures.append(f"{len(missing)} answered calls have no event, e.g. {sorted(missing)[:5]}")
    if status != 0:
        failures.append("audit verify failed")
    if summary is None:
        failures.append("audit verify did not report the killed instance")
    else:
        if int(summary.group(1)) != len(killed_events) or int(summary.group(2)) != last_seq:
            failures.append(f"audit verify reports the killed instance as {summary.group(0)!r}")
        if "ends with shutdown" in summary.group(3):
            failures.append("the killed instance has a shutdown event")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


async def bench(seconds: float, clients: int) -> int:
    results: dict[str, tuple[int, float, int | None]] = {}
    for sink in (None, "postgres", None, "postgres"):
        load = Load()
        with tempfile.TemporaryDirectory(prefix="mcp-lp-audit-bench-") as work_dir, ExitStack() as stack:
            work = Path(work_dir)
            keys = stack.enter_context(KeyServer().serving())
            port = free_port()
            config = configure(work, sink, port, keys)
            log = work / "server.jsonl"
            server = stack.enter_context(serve_http(records_binary(), config, port, log))
            token = Minter(keys, audience=server.url).token(sub="bench@example.com")
            await asyncio.sleep(0.5)
            http, tasks = await run_load(load, server.url, token, clients, base=random.randrange(1, 1000) * 10**9)
            started = time.monotonic()
            await asyncio.sleep(seconds)
            load.stop = True
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
            await http.aclose()
            instance = instance_of(log)
            stack.close()
            recorded = None
            if sink == "postgres":
                recorded = sum(1 for e in trail_events("postgres", work, [instance]) if e.get("event") == "tools/call")
        name = sink or "stderr only"
        calls, total, events = results.get(name, (0, 0.0, 0))
        results[name] = (calls + len(load.answered), total + elapsed, (events or 0) + (recorded or 0))
        print(f"  {name}: {len(load.answered)} calls in {elapsed:.1f} s ({len(load.answered) / elapsed:.0f} calls/s), errors {load.errors}" + (f", tools/call events in the table {recorded}" if recorded is not None else ""))
    base_calls, base_time, _ = results["stderr only"]
    pg_calls, pg_time, pg_events = results["postgres"]
    print(f"audit sink throughput, {clients} clients, 2 x {seconds:.0f} s each, alternating:")
    print(f"  without a durable sink: {base_calls / base_time:.0f} calls/s")
    print(f"  with the PostgreSQL sink: {pg_calls / pg_time:.0f} calls/s, {pg_events / pg_time:.0f} tools/call events/s recorded ({pg_events} events for {pg_calls} answered calls)")
    print(f"  ratio: {(pg_calls / pg_time) / (base_calls / base_time):.2f}")
    return 0 if pg_events >= pg_calls else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sink", choices=["file", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="4 clients, 5 s")
    parser.add_argument("--bench", action="store_true", help="throughput with and without the PostgreSQL sink")
    options = parser.parse_args()
    if options.smoke:
        options.clients, options.seconds = 4, 5.0
    if options.bench:
        return asyncio.run(bench(options.seconds, options.clients))
    sinks = ["file", "postgres"] if options.sink == "both" else [options.sink]
    status = 0
    for sink in sinks:
        status |= asyncio.run(durability(sink, options.seconds, options.clients))
    return status


if __name__ == "__main__":
    sys.exit(main())
