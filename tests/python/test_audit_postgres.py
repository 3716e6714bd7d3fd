"""The audit trail in mcp-lp-state's PostgreSQL table, end to end: the records server writes it
through the insert-only `[state]` role, and `audit verify --db` reads it back; a server that is
told to keep its trail in PostgreSQL but attaches no sink refuses to start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notes_harness import run_cli, server_binary, text_of, toml_str
from records_harness import (  # noqa: F401  (connect_records is a fixture)
    connect_records,
    pg_env,
    records_binary,
    state_toml,
    unique_principal,
    write_config,
)

pytestmark = pytest.mark.anyio


def pg_file(key: str) -> Path:
    value = pg_env().get(key)
    if not value or not Path(value).is_file():
        pytest.fail(f"{key} names no file: start the local PostgreSQL with `scripts/postgres.sh start`")
    return Path(value)


def audit_in_postgres(directory: Path) -> str:
    key = pg_file("MCP_LP_PG_AUDIT_KEY_FILE")
    return (
        f"\n[audit]\nkeys = [{{ id = \"durability-1\", secret = {{ file = {toml_str(str(key))} }} }}]\n"
        f"postgres = true\n{state_toml(directory)}"
    )


async def test_accepts_audit_verify_db_of_the_records_server_trail(tmp_path: Path, connect_records) -> None:
    binary = records_binary()
    config = write_config(tmp_path, unique_principal("audit"), extra=audit_in_postgres(tmp_path))
    errlog = tmp_path / "server.jsonl"
    async with connect_records(binary, config, errlog) as session:
        for _ in range(3):
            result = await session.call_tool("queryRecords", {"limit": 1})
            assert not result.is_error, text_of(result)
    match = re.search(r'"instance"\s*:\s*"(i-[0-9a-f]+)"', errlog.read_text(encoding="utf-8").replace('\\"', '"'))
    assert match, errlog.read_text(encoding="utf-8")
    instance = match.group(1)

    verified = run_cli(binary, "--config", str(config), "audit", "verify", "--db")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok: "), verified.stdout
    # This server's chain: start, config, secrets, three calls, shutdown.
    line = re.search(
        rf"instance {instance}: server records-server, keys durability-1, (\d+) events, last seq (\d+), ends with shutdown",
        verified.stdout,
    )
    assert line, verified.stdout
    assert int(line.group(1)) >= 5


def test_accepts_audit_verify_db_of_governance_commands(tmp_path: Path) -> None:
    """`revoke` and `unrevoke` write their chains, sealed with the configured key, to the
    durable sink the server uses: the PostgreSQL table."""
    binary = records_binary()
    config = write_config(tmp_path, unique_principal("audit"), extra=audit_in_postgres(tmp_path))
    target = unique_principal("revoked")
    instances = []
    for command in (
        ["revoke", "--principal", target, "--reason", "audited drill", "--by", "oncall@example.com"],
        ["unrevoke", "--principal", target],
    ):
        done = run_cli(binary, "--config", str(config), *command)
        assert done.returncode == 0, done.stdout + done.stderr
        [start] = [
            e for line in done.stderr.splitlines() if line.startswith("{")
            if (e := json.loads(line)).get("event") == "start" and e.get("target") == "mcp_lp::audit"
        ]
        assert (start["command"], start["key_id"]) == (command[0], "durability-1"), start
        instances.append(start["instance"])

    verified = run_cli(binary, "--config", str(config), "audit", "verify", "--db")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for instance in instances:
        line = re.search(
            rf"instance {instance}: server records-server, keys durability-1, (\d+) events, last seq \d+, ends with shutdown",
            verified.stdout,
        )
        assert line, (instance, verified.stdout)


def test_refuses_start_when_audit_postgres_has_no_sink(tmp_path: Path) -> None:
    # The notes server attaches no PostgreSQL sink: the trail would go to stderr alone.
    notes = tmp_path / "notes"
    notes.mkdir()
    config = tmp_path / "mcp-lp.toml"
    config.write_text(
        f"[app]\nnotes_dir = {toml_str(str(notes))}\n\n[audit]\npostgres = true\n", encoding="utf-8"
    )
    checked = run_cli(server_binary(), "--config", str(config), "check")
    assert checked.returncode != 0, checked.stdout
    assert "audit.postgres" in checked.stderr, checked.stderr
    assert "no durable audit sink" in checked.stderr, checked.stderr
