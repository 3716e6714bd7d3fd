"""End-to-end tests of records-server against the local PostgreSQL, with the official MCP
client: row-level security per principal, the write grant, the startup privilege check run
by `check`, and passwords kept out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from notes_harness import (
    APPROVER,
    audit_events,
    call_approved,
    call_error,
    grants_toml,
    run_cli,
    secret_audit_events,
    text_of,
)
from records_harness import (  # noqa: F401  (connect_records is a fixture)
    EXAMPLE_DIR,
    connect_records,
    password_in,
    pg_env,
    records_binary,
    unique_principal,
    url_file,
    write_config,
)

pytestmark = pytest.mark.anyio

WRITE = grants_toml("records:write")


@pytest.fixture(scope="module")
def binary() -> Path:
    path = records_binary()
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it with `cargo build -p records-server` "
            "or run ./scripts/test.sh (or set RECORDS_SERVER_BIN)"
        )
    return path


def records_of(result) -> list[dict]:
    assert not result.is_error, text_of(result)
    return result.structured_content["records"]


async def test_query_records_returns_only_the_callers_rows(binary: Path, tmp_path: Path, connect_records) -> None:
    alice, bob = unique_principal("alice"), unique_principal("bob")
    alice_config = write_config(tmp_path, alice, WRITE, name="alice.toml")
    bob_config = write_config(tmp_path, bob, WRITE, name="bob.toml")

    async with connect_records(binary, alice_config, tmp_path / "alice.jsonl") as session:
        for title in ("plan", "notes"):
            result = await call_approved(
                session, binary, alice_config, "insertRecord", {"title": title, "body": f"alice's {title}"}
            )
            assert not result.is_error, text_of(result)
            assert result.structured_content["owner"] == alice
    async with connect_records(binary, bob_config, tmp_path / "bob.jsonl") as session:
        inserted = await call_approved(session, binary, bob_config, "insertRecord", {"title": "salary", "body": "bob's salary"})
        assert not inserted.is_error, text_of(inserted)
        bobs = records_of(await session.call_tool("queryRecords", {}))
    async with connect_records(binary, alice_config, tmp_path / "alice2.jsonl") as session:
        alices = records_of(await session.call_tool("queryRecords", {}))
        filtered = records_of(await session.call_tool("queryRecords", {"title_contains": "PLA"}))

    assert [r["title"] for r in alices] == ["notes", "plan"]
    assert {r["owner"] for r in alices} == {alice}
    assert [r["title"] for r in bobs] == ["salary"]
    assert [r["title"] for r in filtered] == ["plan"]


async def test_insert_record_hidden_and_refused_without_grant(binary: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("carol")
    errlog = tmp_path / "server.jsonl"
    async with connect_records(binary, write_config(tmp_path, principal), errlog) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert names == {"queryRecords"}
        with pytest.raises(MCPError) as refused:
            await session.call_tool("insertRecord", {"title": "sneaky", "body": "x"})
        assert refused.value.error.code == -32003
        assert "requires grant `records:write`" in refused.value.error.message
        assert records_of(await session.call_tool("queryRecords", {})) == []

    denied = [e for e in audit_events(errlog) if e["tool"] == "insertRecord"]
    assert len(denied) == 1
    assert denied[0]["decision"] == "deny"
    assert denied[0]["capabilities"] == ["db:write:records-write"]
    assert denied[0]["principal"] == principal


async def test_accepts_secret_references_audited_by_name_not_value(binary: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("erin")
    errlog = tmp_path / "server.jsonl"
    async with connect_records(binary, write_config(tmp_path, principal), errlog) as session:
        await session.call_tool("queryRecords", {})

    resolved = {e["secret"]: e for e in secret_audit_events(errlog) if e["event"] == "secret_resolved"}
    assert set(resolved) == {"db.records-read.url", "db.records-write.url"}
    assert str(url_file("records-read")) in resolved["db.records-read.url"]["reference"]
    log = errlog.read_text(encoding="utf-8")
    for name in ("records-read", "records-write"):
        assert password_in(url_file(name)) not in log


async def test_insert_record_with_grant_inserts_and_is_audited(binary: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("dave")
    errlog = tmp_path / "server.jsonl"
    config = write_config(tmp_path, principal, WRITE)
    async with connect_records(binary, config, errlog) as session:
        result = await call_approved(session, binary, config, "insertRecord", {"title": "Vendor call", "body": "renewal"})
        assert not result.is_error, text_of(result)
        inserted = result.structured_content
        assert inserted["owner"] == principal
        assert inserted["title"] == "Vendor call"
        listed = records_of(await session.call_tool("queryRecords", {"limit": 5}))
    assert listed == [inserted]

    # The insert was parked once, then ran on the approval, which its event names.
    parked, ran = [e for e in audit_events(errlog) if e["tool"] == "insertRecord"]
    assert (parked["decision"], parked["outcome"]) == ("deny", "approval_required")
    assert (ran["decision"], ran["outcome"]) == ("allow", "ok")
    assert ran["approval"] == parked["approval"]
    assert ran["approvers"] == [APPROVER]
    assert ran["capabilities"] == ["db:write:records-write"]
    [query] = [e for e in audit_events(errlog) if e["tool"] == "queryRecords"]
    assert query["capabilities"] == ["db:read:records-read"]


async def test_query_records_refuses_bad_limit_and_leaves_sql_to_parameters(
    binary: Path, tmp_path: Path, connect_records
) -> None:
    principal = unique_principal("erin")
    config = write_config(tmp_path, principal, WRITE)
    async with connect_records(binary, config, tmp_path / "e.jsonl") as session:
        message = await call_error(session, "queryRecords", {"limit": 0})
        assert "argument `limit`: must be 1 to 100" in message
        hostile = "x'); DROP TABLE records; --"
        result = await call_approved(session, binary, config, "insertRecord", {"title": hostile, "body": hostile})
        assert not result.is_error, text_of(result)
        found = records_of(await session.call_tool("queryRecords", {"title_contains": "drop table"}))
        assert [r["title"] for r in found] == [hostile]


def test_check_accepts_the_example_configuration(binary: Path) -> None:
    result = run_cli(binary, "--config", str(EXAMPLE_DIR / "mcp-lp.toml"), "check")
    assert result.returncode == 0, result.stderr
    assert "queryRecords" in result.stdout
    [insert] = [line for line in result.stdout.splitlines() if line.strip().startswith("insertRecord:")]
    assert insert.endswith(", approval by 1 holder(s) of `records:approve` within 600s"), insert


def test_check_refuses_read_capability_logging_in_as_the_writer(binary: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, unique_principal("frank"), read_url=url_file("records-write"))
    result = run_cli(binary, "--config", str(config), "check")
    assert result.returncode == 1, result.stdout
    assert (
        "db capability `records-read` (read) logs in as role `records_writer`, "
        "which holds what a read capability must not: INSERT on table public.records"
    ) in result.stderr
    assert password_in(url_file("records-write")) not in result.stderr + result.stdout


def test_check_refuses_write_capability_on_a_superuser_before_serving(binary: Path, tmp_path: Path) -> None:
    admin = Path(pg_env()["MCP_LP_PG_ADMIN_URL_FILE"])
    url = admin.read_text(encoding="utf-8").strip().rsplit("/", 1)[0] + "/records"
    superuser = tmp_path / "superuser.url"
    superuser.write_text(url, encoding="utf-8")
    config = write_config(tmp_path, unique_principal("gina"), write_url=superuser)
    result = run_cli(binary, "--config", str(config))
    assert result.returncode == 1
    assert "db capability `records-write` (write) logs in as role `mcp_lp_admin`" in result.stderr
    assert "SUPERUSER" in result.stderr
    assert password_in(superuser) not in result.stderr + result.stdout


async def test_passwords_stay_out_of_trace_logs(binary: Path, tmp_path: Path, connect_records) -> None:
    principal = unique_principal("hank")
    errlog = tmp_path / "server.jsonl"
    config = write_config(tmp_path, principal, WRITE)
    async with connect_records(binary, config, errlog, env={"RUST_LOG": "trace"}) as session:
        inserted = await call_approved(session, binary, config, "insertRecord", {"title": "t", "body": "b"})
        assert not inserted.is_error, text_of(inserted)
        await session.call_tool("queryRecords", {})
    logs = errlog.read_text(encoding="utf-8")
    assert '"level":"TRACE"' in logs, "the server did not log at TRACE"
    for capability in ("records-read", "records-write"):
        assert password_in(url_file(capability)) not in logs

    # A wrong password: refused, and neither password is echoed.
    wrong = tmp_path / "wrong.url"
    real = url_file("records-read").read_text(encoding="utf-8")
    wrong.write_text(real.replace(password_in(url_file("records-read")), "not-the-password-9d1"), encoding="utf-8")
    config = write_config(tmp_path, principal, read_url=wrong, name="wrong.toml")
    result = run_cli(binary, "--config", str(config), "check", env={"RUST_LOG": "trace"})
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert "not-the-password-9d1" not in result.stderr + result.stdout
    assert password_in(url_file("records-read")) not in result.stderr + result.stdout
