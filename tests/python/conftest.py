"""Fixtures of the end-to-end tests: the server binary, a fresh workspace per test, and the
official client's connection mode, which every client-facing test runs in both of."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
from mcp import Client

import notes_harness
from notes_harness import MODES, Workspace, assert_negotiated, server_binary


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def binary() -> Path:
    path = server_binary()
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it with `cargo build -p notes-server` "
            "or run ./scripts/test.sh (or set NOTES_SERVER_BIN)"
        )
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A temporary directory with a copy of the example's notes."""
    return Workspace.create(tmp_path / "ws")


@pytest.fixture
def errlog(tmp_path: Path) -> Path:
    """Where the server's stderr (JSON-lines logs and audit events) is captured."""
    return tmp_path / "server-stderr.jsonl"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The official client's connection mode: "legacy" (2025-11-25) or "auto" (2026-07-28)."""
    return request.param


@pytest.fixture
def connect(mode: str) -> Callable[..., object]:
    """notes_harness.connect in this test's mode; every connection checks the negotiated revision."""

    @asynccontextmanager
    async def connect_in_mode(binary: Path, config: Path, errlog: Path) -> AsyncIterator[Client]:
        async with notes_harness.connect(binary, config, errlog, mode) as client:
            assert_negotiated(client, mode)
            yield client

    return connect_in_mode
