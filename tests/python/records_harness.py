"""Helpers for the records-server end-to-end tests and demo: find the binary and the local
PostgreSQL that `scripts/postgres.sh start` set up, write a configuration for a principal (with
bob@example.com as the command-line approver of `insertRecord`), the `[state]` store of
replicas with its governance key, and connect the official MCP client with a chosen environment
(for RUST_LOG)."""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client

from notes_harness import REPO_ROOT, approvers_toml, assert_negotiated, governance_keys_line, open_client, toml_str

EXAMPLE_DIR = REPO_ROOT / "examples" / "records-server"
PG_ENV_FILE = REPO_ROOT / ".cache" / "pg" / "env"


def records_binary() -> Path:
    """The records-server binary: $RECORDS_SERVER_BIN, else <target>/debug/records-server."""
    explicit = os.environ.get("RECORDS_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "records-server"


def pg_env() -> dict[str, str]:
    """The MCP_LP_PG_* variables: from the environment, else from the file the script wrote."""
    values: dict[str, str] = {}
    if PG_ENV_FILE.is_file():
        for line in PG_ENV_FILE.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k.startswith("MCP_LP_PG_")})
    return values


def url_file(capability: str) -> Path:
    """The URL file of `records-read` or `records-write`."""
    key = {
        "records-read": "MCP_LP_PG_RECORDS_READ_URL_FILE",
        "records-write": "MCP_LP_PG_RECORDS_WRITE_URL_FILE",
    }[capability]
    value = pg_env().get(key)
    if not value or not Path(value).is_file():
        raise AssertionError(
            f"{key} names no file: start the local PostgreSQL with `scripts/postgres.sh start`"
        )
    return Path(value)


def pg_file(key: str) -> Path:
    """The file the MCP_LP_PG_* variable `key` names, which must exist."""
    value = pg_env().get(key)
    if not value or not Path(value).is_file():
        raise AssertionError(f"{key} names no file: start the local PostgreSQL with `scripts/postgres.sh start`")
    return Path(value)


def state_toml(directory: Path, governance: str = "", operator: bool = True) -> str:
    """`[state]` on the local PostgreSQL (the replicas' role, and with `operator` the operator
    role that alone changes revocations) and `[governance]` with the key file in `directory`
    that seals approval records and revocation entries: every replica and the command line
    given the same `directory` share it. `governance` is more of `[governance]` as TOML source."""
    state = pg_file("MCP_LP_PG_STATE_URL_FILE")
    operator_url = pg_file("MCP_LP_PG_STATE_OPERATOR_URL_FILE")
    return (
        f"\n[state]\nurl = {{ file = {toml_str(str(state))} }}\n"
        + (f"operator_url = {{ file = {toml_str(str(operator_url))} }}\n" if operator else "")
        + f"\n[governance]\n{governance_keys_line(directory)}{governance.strip()}\n"
    )


def password_in(url_path: Path) -> str:
    """The password inside a postgres://ROLE:PASSWORD@HOST:PORT/DB file."""
    url = url_path.read_text(encoding="utf-8").strip()
    credentials = url.split("://", 1)[1].split("@", 1)[0]
    return credentials.split(":", 1)[1]


def unique_principal(name: str) -> str:
    """A principal no other test uses, so each test sees only the rows it wrote."""
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


def write_config(
    directory: Path,
    principal: str,
    grants: str = "[]",
    read_url: Path | None = None,
    write_url: Path | None = None,
    extra: str = "",
    name: str = "mcp-lp.toml",
    approvers: bool = True,
) -> Path:
    """A records-server configuration for `principal` with `grants` (TOML source), `extra` TOML,
    and (with `approvers`) `[approvers]` listing APPROVER's key with `records:approve`."""
    read_url = read_url or url_file("records-read")
    write_url = write_url or url_file("records-write")
    text = (
        f"[stdio]\nprincipal = {toml_str(principal)}\ngrants = {grants}\n\n"
        f"[db.records-read]\nurl = {{ file = {toml_str(str(read_url))} }}\n"
        'checkout_timeout = "2s"\nconnect_timeout = "3s"\n\n'
        f"[db.records-write]\nurl = {{ file = {toml_str(str(write_url))} }}\n"
        'checkout_timeout = "2s"\nconnect_timeout = "3s"\n'
        f"{extra}"
    )
    if approvers:
        text += approvers_toml(directory, "records:approve")
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def connect(
    binary: Path, config: Path, errlog: Path, env: dict[str, str] | None = None, mode: str = "auto"
) -> AsyncIterator[Client]:
    """Launch `binary --config config` over stdio with the client's default environment plus
    `env`, its stderr written to `errlog`, and yield the official client connected in `mode`."""
    environment = {**get_default_environment(), **(env or {})}
    params = StdioServerParameters(command=str(binary), args=["--config", str(config)], env=environment)
    with open(errlog, "w", encoding="utf-8") as err:
        async with open_client(stdio_client(params, errlog=err), mode) as client:
            yield client


@pytest.fixture
def connect_records(mode: str) -> Callable[..., object]:
    """connect in this test's client mode (the `mode` fixture of conftest.py), checking the
    negotiated revision."""

    @asynccontextmanager
    async def connect_in_mode(
        binary: Path, config: Path, errlog: Path, env: dict[str, str] | None = None
    ) -> AsyncIterator[Client]:
        async with connect(binary, config, errlog, env, mode) as client:
            assert_negotiated(client, mode)
            yield client

    return connect_in_mode
