"""Fixtures of the end-to-end tests: the server binary and a fresh workspace per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from notes_harness import Workspace, server_binary


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
