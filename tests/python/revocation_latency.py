"""How long `revoke --all` takes to be enforced by every replica: three records-server replicas
behind nginx share the `[state]` PostgreSQL store; each trial runs `revoke --all` once (the CLI
with replica 0's configuration) while every replica is called on its own port, and records per
replica the time from starting the command to the first refused call; then `unrevoke --all`,
and the next trial starts once every replica serves again. Prints the distribution as a
markdown table. Run by scripts/revocation-latency.sh, on loopback only.

    .venv/bin/python tests/python/revocation_latency.py --trials 20
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from http_harness import KeyServer, Minter
from lb_harness import ToolCaller, balanced_records, refusal, timed_verb
from notes_harness import trail_events
from records_harness import records_binary, unique_principal

TOOL, ARGUMENTS = "queryRecords", {"limit": 1}
BY = "latency-drill@example.com"
# A call every POLL seconds per replica while waiting.
POLL = 0.005


def accepted(answer: dict) -> bool:
    return "result" in answer and not answer["result"].get("isError")


def p90(values: list[float]) -> float:
    """The 90th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def row(name: str, values: list[float], missing: int) -> str:
    within = sum(1 for v in values if v <= 1.0)
    total = len(values) + missing
    if not values:
        return f"| {name} | {total} | - | - | - | - | 0 of {total} |"
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    return (
        f"| {name} | {total} | {ms(min(values))} | {ms(statistics.median(values))} | {ms(p90(values))} "
        f"| {ms(max(values))} | {within} of {total} |"
    )


def applied_at(errlog: Path, since: float) -> float | None:
    """The wall-clock time of the replica's first `revocations_applied` event adding everything
    after `since`, from its audit trail."""
    for event in trail_events(errlog, "revocations_applied"):
        if event.get("added") != "everything":
            continue
        at = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        if at >= since:
            return at
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="revoke/unrevoke cycles (default 20)")
    parser.add_argument("--replicas", type=int, default=3, help="replicas behind nginx (default 3)")
    args = parser.parse_args()
    if args.trials < 1 or args.replicas < 1:
        parser.error("--trials and --replicas must be at least 1")

    binary = records_binary()
    if not binary.is_file():
        sys.exit(f"error: {binary} does not exist: build it with `cargo build -p records-server`")

    per_replica: list[list[float]] = [[] for _ in range(args.replicas)]
    missing = [0] * args.replicas
    # Per replica, seconds from the spawn to its audit event saying it applied the change.
    applied: list[list[float]] = [[] for _ in range(args.replicas)]
    cli: list[float] = []
    with tempfile.TemporaryDirectory(prefix="revocation-latency-") as tmp, KeyServer().serving() as keys:
        directory = Path(tmp)
        with balanced_records(binary, directory, keys, directory / "logs", args.replicas) as balanced:
            minter = Minter(keys, audience=balanced.url)
            token = minter.token(sub=unique_principal("latency"), scope="records:write", exp=int(time.time()) + 3600)
            callers = [ToolCaller(r.url, token) for r in balanced.replicas]
            config = directory / "replica-0.toml"
            revoked = False
            try:
                for i, caller in enumerate(callers):
                    if not accepted(answer := caller.call(TOOL, ARGUMENTS)):
                        sys.exit(f"error: replica {i} does not serve before the first trial: {answer}")
                for trial in range(args.trials):
                    reason = f"latency trial {trial + 1} {uuid.uuid4().hex[:6]}"
                    revoked = True
                    spawned = time.time()
                    timed = timed_verb(
                        binary, config, ["revoke", "--all", "--reason", reason, "--by", BY],
                        callers, TOOL, ARGUMENTS, done=lambda a: refusal(a) is not None, pause=POLL,
                    )
                    cli.append(timed.cli_seconds)
                    cells = []
                    for i, (seconds, answer) in enumerate(zip(timed.seconds, timed.answers)):
                        message = refusal(answer) if answer else None
                        if seconds is None or not message or "everything is revoked" not in message:
                            missing[i] += 1
                            cells.append("not refused")
                        else:
                            per_replica[i].append(seconds)
                            cells.append(f"{seconds * 1000:.0f} ms")
                        at = applied_at(balanced.replicas[i].errlog, spawned)
                        if at is not None:
                            applied[i].append(at - spawned)
                    print(f"trial {trial + 1:2}: cli {timed.cli_seconds * 1000:.0f} ms; " + ", ".join(
                        f"replica {i} {c}" for i, c in enumerate(cells)), flush=True)
                    lifted = timed_verb(
                        binary, config, ["unrevoke", "--all"], callers, TOOL, ARGUMENTS, done=accepted, pause=0.02
                    )
                    revoked = False
                    if any(s is None for s in lifted.seconds):
                        sys.exit(f"error: a replica still refuses after `unrevoke --all`: {lifted.answers}")
                    time.sleep(0.2)
            finally:
                if revoked:
                    unrevoke = [str(binary), "--config", str(config), "unrevoke", "--all"]
                    subprocess.run(unrevoke, capture_output=True, timeout=60)
                for caller in callers:
                    caller.close()

    everything = [v for values in per_replica for v in values]
    print()
    print(f"`revoke --all` enforced by {args.replicas} records-server replicas sharing PostgreSQL "
          f"(`[state]`, LISTEN/NOTIFY), {args.trials} trials, {len(everything) + sum(missing)} measurements; "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, debug build, loopback.")
    print()
    print("| replica | measurements | min (ms) | median (ms) | p90 (ms) | max (ms) | within 1 s |")
    print("|---|---|---|---|---|---|---|")
    for i, values in enumerate(per_replica):
        print(row(str(i), values, missing[i]))
    print(row("all", everything, sum(missing)))
    print(row("the CLI process alone (start to exit)", cli, 0))
    every_applied = [v for values in applied for v in values]
    unapplied = len(everything) + sum(missing) - len(every_applied)
    print(row("all, to the replica's `revocations_applied` audit event", every_applied, unapplied))
    print()
    print("Measured per replica: from just before the `revoke --all` CLI process is spawned to the "
          "reply of the first tools/call that replica refuses. Included: the CLI process start, its "
          "configuration load, its connection to PostgreSQL and the INSERT; the NOTIFY to each "
          "replica, the replica re-reading the list; and the polling (each replica is called on its "
          f"own port, a call every {POLL * 1000:.0f} ms plus the call's own time). p90 is the "
          "nearest-rank 90th percentile. A replica can refuse before the CLI process has exited. "
          "The last row reads each replica's own audit event (its wall clock, same host) instead "
          "of a refused call, so it leaves the polling out.")
    return 0 if not any(missing) else 1


if __name__ == "__main__":
    sys.exit(main())
