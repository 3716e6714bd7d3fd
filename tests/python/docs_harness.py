"""Helpers for the end-to-end tests and the demo of docs-server against the local AWS emulator
(scripts/aws-emulator.sh start): find the binary and the emulator's seed, write configurations,
connect the official MCP client with the server's AWS identity (the seed's non-root user
`mcp-lp-server`, never root keys), and ask the emulator, as the non-root harness user, for
fixtures and for its CloudTrail record of AssumeRole calls."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from notes_harness import REPO_ROOT, approvers_toml, assert_negotiated, open_client, toml_str

DOCS_EXAMPLE = REPO_ROOT / "examples" / "docs-server"
AWS_VENV_PYTHON = REPO_ROOT / ".venv-aws" / "bin" / "python"
EMULATOR_HARNESS = REPO_ROOT / "scripts" / "aws-emulator" / "harness.py"
# The emulator's session tokens start with this, like AWS's own.
SESSION_TOKEN_PREFIX = "FwoGZX"


def docs_binary() -> Path:
    """$DOCS_SERVER_BIN, else <target>/debug/docs-server."""
    explicit = os.environ.get("DOCS_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "docs-server"


def load_seed() -> dict[str, Any]:
    path = Path(os.environ.get("MCP_LP_AWS_SEED") or REPO_ROOT / ".aws-emulator" / "seed.json")
    if not path.is_file():
        pytest.fail(f"{path} does not exist: start the AWS emulator with scripts/aws-emulator.sh start")
    return json.loads(path.read_text(encoding="utf-8"))


def server_env(seed: dict[str, Any], **extra: str) -> dict[str, str]:
    """The server's environment: the standard AWS chain finds the seed's non-root user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MCP_LP_CONFIG", "RUST_LOG")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=seed["credentials_file"],
        AWS_PROFILE="mcp-lp-server",
        AWS_CONFIG_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def server_secret_key(seed: dict[str, Any]) -> str:
    import configparser

    keys = configparser.ConfigParser()
    keys.read(seed["credentials_file"])
    return keys["mcp-lp-server"]["aws_secret_access_key"]


def emulator(*args: str, stdin: bytes | None = None) -> Any:
    """Run scripts/aws-emulator/harness.py (in .venv-aws, as the harness user)."""
    done = subprocess.run(
        [str(AWS_VENV_PYTHON), str(EMULATOR_HARNESS), *args],
        input=stdin,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def put_document(prefix: str, body: str) -> str:
    key = f"{prefix}py-{uuid.uuid4().hex[:12]}.md"
    emulator("put", key, stdin=body.encode())
    return key


def exists(key: str) -> bool:
    return emulator("exists", key)


def assume_role_calls(since: float, session_contains: str) -> list[dict[str, Any]]:
    """The AssumeRole calls the emulator recorded since `since` whose RoleSessionName contains
    `session_contains`, with their request parameters."""
    return [c for c in emulator("assume-roles", str(since)) if session_contains in c.get("RoleSessionName", "")]


def unique_principal(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


@dataclass
class DocsConfig:
    """Writes docs-server configurations pointing at the emulator."""

    root: Path
    seed: dict[str, Any]

    def write(
        self,
        principal: str,
        grants: str = "[]",
        read_role: str | None = None,
        delete_role: str | None = None,
        read_extra: str = "",
        endpoint: str | None = None,
        dev: str = "allow_static_aws_keys = true",
        aws_extra: str = "",
        omit_delete_role: bool = False,
        name: str = "mcp-lp.toml",
        approvers: bool = True,
        extra: str = "",
    ) -> Path:
        """With `approvers`, `[approvers]` lists APPROVER's key with `docs:approve`, the
        approver grant of deleteDocument; `extra` is more TOML, at the end."""
        roles = self.seed["roles"]
        delete = "" if omit_delete_role else (
            f"[aws.roles.docs-delete]\narn = {toml_str(delete_role or roles['mcp-delete'])}\n"
            "source_identity = true\nsession_tags = true\n"
        )
        text = (
            f"[stdio]\nprincipal = {toml_str(principal)}\ngrants = {grants}\n\n"
            f"[dev]\n{dev}\n\n"
            f"[aws]\nregion = {toml_str(self.seed['region'])}\n"
            f"endpoint_url = {toml_str(endpoint or self.seed['endpoint'])}\n"
            f"s3_force_path_style = true\n{aws_extra}\n\n"
            f"[aws.roles.docs-read]\narn = {toml_str(read_role or roles['mcp-read-only'])}\n"
            f"source_identity = true\nsession_tags = true\n{read_extra}\n\n"
            f"{delete}\n"
            f"[app]\nbucket = {toml_str(self.seed['bucket'])}\n"
        )
        if approvers:
            text += approvers_toml(self.root, "docs:approve")
        text += extra
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path


@asynccontextmanager
async def open_docs(
    binary: Path, config: Path, errlog: Path, env: dict[str, str], mode: str = "auto"
) -> AsyncIterator[Client]:
    """Launch docs-server over stdio with `env`, stderr to `errlog`, and yield the official
    client connected in `mode`."""
    params = StdioServerParameters(command=str(binary), args=["--config", str(config)], env=env)
    with open(errlog, "w", encoding="utf-8") as err:
        async with open_client(stdio_client(params, errlog=err), mode) as client:
            yield client


def run_docs_cli(binary: Path, config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def now() -> float:
    """A CloudTrail lookup start, a little early so that clock rounding loses nothing."""
    return time.time() - 1


# Fixtures, imported by the test modules.


@pytest.fixture(scope="session")
def docs_server() -> Path:
    path = docs_binary()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p docs-server` or run ./scripts/test.sh")
    return path


@pytest.fixture(scope="session")
def seed() -> dict[str, Any]:
    return load_seed()


@pytest.fixture
def docs_config(tmp_path: Path, seed: dict[str, Any]) -> DocsConfig:
    return DocsConfig(tmp_path, seed)


@pytest.fixture
def env(seed: dict[str, Any]) -> dict[str, str]:
    return server_env(seed)


@pytest.fixture
def connect_docs(mode: str) -> Callable[..., object]:
    """open_docs in this test's client mode (the `mode` fixture of conftest.py), checking the
    negotiated revision."""

    @asynccontextmanager
    async def connect(binary: Path, config: Path, errlog: Path, env: dict[str, str]) -> AsyncIterator[Client]:
        async with open_docs(binary, config, errlog, env, mode) as client:
            assert_negotiated(client, mode)
            yield client

    return connect
