"""A scripted demonstration of the records server, run by scripts/demo.sh against the local
PostgreSQL that `scripts/postgres.sh start` provides.

The official MCP Python client talks to the real records-server binary over stdio: as alice
without a grant; as alice with `records:write`, whose insert is parked until a second person
(bob, not alice) approves that exact call from the command line, signing the verdict with his SSH
key, then runs once, while an insert with other arguments is parked anew; and as bob, who sees
only his own rows. Then `check` refuses a configuration whose read capability logs in as the
write role.

Not a test (pytest collects only test_*.py); run it as
`python tests/python/demo_records.py --binary target/debug/records-server`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import anyio

from demo_output import approver_keys, approvers_section, call, call_with_approval, heading, print_config, print_connection
from notes_harness import audit_events, grants_toml, run_cli
from records_harness import EXAMPLE_DIR, connect, records_binary, url_file, write_config


def records(result) -> str:
    content = result.structured_content or {}
    rows = content.get("records", [content] if content else [])
    return "\n".join(f"#{r['id']} {r['owner']}: {r['title']} ({r['created_at']})" for r in rows) or "(no records)"


async def scene(binary: Path, workdir: Path, key: str, title: str, config: Path, steps) -> None:
    heading(f"({key}) {title}")
    print_config(config)
    errlog = workdir / f"{config.stem}.stderr.jsonl"
    async with connect(binary, config, errlog) as session:
        print_connection(session)
        tools = await session.list_tools()
        print(f"\n> tools/list\n  {', '.join(t.name for t in tools.tools)}")
        for step in steps:
            if callable(step):
                await step(session)
            else:
                tool, arguments = step
                await call(session, tool, arguments, records)
    print("\naudit events (stderr, target mcp_lp::audit):")
    for event in audit_events(errlog):
        approval = f" approval={event['approval'][:8]}..." if "approval" in event else ""
        approvers = f" approvers={','.join(event['approvers'])}" if "approvers" in event else ""
        print(
            f"  {event['decision']:<5} {event['tool']:<13} db={event.get('db')} "
            f"principal={event['principal']} outcome={event['outcome']}{approval}{approvers}"
        )


async def main(binary: Path) -> None:
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="mcp-lp-records-demo-") as tmp:
        workdir = Path(tmp)
        print(f"records-server: {binary}")
        print("database: the local cluster of scripts/postgres.sh; schema, roles and policy in")
        print(f"  {EXAMPLE_DIR / 'schema.sql'}")

        await scene(
            binary, workdir, "a",
            "alice, no grant: queryRecords reads her rows; insertRecord is hidden and refused",
            write_config(workdir, "alice@example.com", name="alice-no-grant.toml"),
            [("queryRecords", {}), ("insertRecord", {"title": f"demo {stamp}", "body": "x"})],
        )
        # alice and bob may both approve from the command line; alice never her own calls.
        keys = approver_keys(workdir, "alice@example.com", "bob@example.com")
        granted = write_config(
            workdir, "alice@example.com", grants_toml("records:write"), name="alice-write.toml", approvers=False,
            extra=approvers_section(workdir, "records:approve", keys),
        )

        async def approved_insert(session) -> None:
            await call_with_approval(
                session, binary, granted, "alice@example.com", "insertRecord",
                {"title": f"demo {stamp}", "body": "inserted by the demo"},
                {"title": f"demo {stamp}", "body": "changed after approval"},
                records,
                keys,
            )

        await scene(
            binary, workdir, "b",
            "the operator grants alice records:write: insertRecord runs, as role records_writer, "
            "once bob approves the call",
            granted,
            [approved_insert, ("queryRecords", {"title_contains": "demo", "limit": 3})],
        )
        await scene(
            binary, workdir, "c",
            "bob calls the same tool: row-level security shows him only his own rows",
            write_config(workdir, "bob@example.com", name="bob.toml"),
            [("queryRecords", {})],
        )

        heading("(d) the read capability pointed at the write role: the server refuses to start")
        config = write_config(
            workdir, "alice@example.com", read_url=url_file("records-write"), name="misconfigured.toml"
        )
        print_config(config)
        result = run_cli(binary, "--config", str(config), "check")
        print(f"\n> records-server --config {config.name} check\n  exit code {result.returncode}")
        for line in result.stderr.splitlines():
            if line.startswith("error:"):
                print(textwrap.indent("\n".join(textwrap.wrap(line, 90)), "      "))

    config = EXAMPLE_DIR / "mcp-lp.toml"
    command = [str(binary), "--config", str(config)]
    heading("connect a real MCP client")
    print("Point any MCP client at this command line (the local PostgreSQL must be running):\n")
    print(f"  {shlex.join(command)}\n")
    print(f"Validate the configuration and the database roles first: {shlex.join([*command, 'check'])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=None, help="the records-server binary")
    args = parser.parse_args()
    binary = (args.binary or records_binary()).resolve()
    if not binary.is_file():
        sys.exit(f"error: {binary} does not exist; run `cargo build -p records-server` first")
    anyio.run(main, binary)
