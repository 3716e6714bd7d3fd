"""Three replicas behind nginx (round robin, loopback): a 2026-07-28 client holds no session,
so whichever replica a request lands on must answer it, authorizing it on its own, and must
accept the sealed state another replica handed out. Each replica's audit events tell which one
answered which call."""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ElicitResult, InputRequiredResult

from http_harness import KeyServer, Minter
from lb_harness import Balanced, balanced_notes, conformance_binary, replicas_behind_nginx
from notes_harness import Workspace, assert_negotiated, open_client, text_of, toml_str

pytestmark = pytest.mark.anyio

REPLICAS = 3
CALLS = 6
FORBIDDEN = -32003
INVALID_PARAMS = -32602


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    with KeyServer().serving() as keys:
        yield keys


@pytest.fixture
def balanced(binary: Path, workspace: Workspace, keys: KeyServer, tmp_path: Path) -> Iterator[Balanced]:
    with balanced_notes(binary, workspace, keys, tmp_path / "replicas", REPLICAS) as replicas:
        yield replicas


@pytest.fixture
def minter(balanced: Balanced, keys: KeyServer) -> Minter:
    return Minter(keys, audience=balanced.url)


@asynccontextmanager
async def stateless_client(url: str, token: str | None = None, **options: Any) -> AsyncIterator[Client]:
    """The official client in mode="auto", which must be on 2026-07-28 (no session); `options`
    go to mcp.Client."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    async with create_mcp_http_client(headers=headers) as http:
        async with open_client(streamable_http_client(url, http_client=http), "auto", **options) as client:
            assert_negotiated(client, "auto")
            yield client


def assert_spread_over_every_replica(calls: list[tuple[int, dict]]) -> None:
    replicas = [replica for replica, _ in calls]
    assert set(replicas) == set(range(REPLICAS)), f"calls landed on replicas {replicas}"
    for (first, a), (second, b) in zip(calls, calls[1:]):
        assert first != second, (
            f"consecutive calls {a['request_id']} and {b['request_id']} both landed on replica {first}: {replicas}"
        )


async def test_accepts_consecutive_stateless_calls_on_different_replicas(
    balanced: Balanced, minter: Minter, workspace: Workspace
) -> None:
    welcome = workspace.note("welcome").read_text(encoding="utf-8")
    async with stateless_client(balanced.url, minter.token(sub="alice@example.com")) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        assert tools == ["list_notes", "preview_note", "read_note"]
        for i in range(CALLS):
            result = await client.call_tool("read_note", {"name": "welcome"})
            assert not result.is_error, f"call {i}: {text_of(result)}"
            assert text_of(result) == welcome, f"call {i}"

    calls = balanced.audited_calls()
    assert [(e["principal"], e["tool"], e["decision"], e["outcome"]) for _, e in calls] == [
        ("alice@example.com", "read_note", "allow", "ok")
    ] * CALLS
    assert_spread_over_every_replica(calls)


async def test_rejects_delete_without_scope_on_every_replica(
    balanced: Balanced, minter: Minter, workspace: Workspace
) -> None:
    async with stateless_client(balanced.url, minter.token(sub="bob@example.com", scope="notes:read")) as client:
        for i in range(REPLICAS):
            with pytest.raises(MCPError) as refused:
                await client.call_tool("delete_note", {"name": "welcome"})
            assert refused.value.error.code == FORBIDDEN, f"attempt {i}: {refused.value.error}"
            assert "`notes:delete`" in refused.value.error.message, f"attempt {i}: {refused.value.error}"

    assert workspace.note("welcome").exists(), "a refused delete ran"
    calls = balanced.audited_calls()
    assert [(e["principal"], e["tool"], e["decision"], e["outcome"]) for _, e in calls] == [
        ("bob@example.com", "delete_note", "deny", "denied")
    ] * REPLICAS
    assert_spread_over_every_replica(calls)


async def test_accepts_delete_with_scope_whichever_replica_answers(
    balanced: Balanced, minter: Minter, workspace: Workspace
) -> None:
    async with stateless_client(balanced.url, minter.token(sub="carol@example.com", scope="notes:delete")) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        assert tools == ["delete_note", "list_notes", "preview_note", "read_note"]
        deleted = await client.call_tool("delete_note", {"name": "q3-plan"})
        assert not deleted.is_error, text_of(deleted)
        listed = await client.call_tool("list_notes", {})
        assert listed.structured_content == {"names": ["welcome"]}
        read = await client.call_tool("read_note", {"name": "welcome"})
        assert not read.is_error, text_of(read)

    assert not workspace.note("q3-plan").exists()
    calls = balanced.audited_calls()
    assert [(e["tool"], e["outcome"]) for _, e in calls] == [
        ("delete_note", "ok"), ("list_notes", "ok"), ("read_note", "ok")
    ]
    assert_spread_over_every_replica(calls)


@pytest.fixture
def conformance_replicas(tmp_path: Path) -> Iterator[Balanced]:
    """conformance-server replicas (unauthenticated, on loopback) sealing requestState with one
    shared key and naming the balancer's URL as their resource (a state is bound to the server
    that issued it), as a deployment of several replicas configures them."""
    binary = conformance_binary()
    if not binary.is_file():
        pytest.fail(
            f"{binary} does not exist: build it with `cargo build -p conformance-server` "
            "(or set CONFORMANCE_SERVER_BIN)"
        )
    key = tmp_path / "state-key"
    key.write_text(secrets.token_hex(32), encoding="utf-8")

    def write_config(i: int, port: int, url: str) -> Path:
        config = tmp_path / f"replica-{i}.toml"
        config.write_text(
            f'[http]\nlisten = "127.0.0.1:{port}"\npath = "/mcp"\nresource = {toml_str(url)}\n\n'
            "[dev]\nallow_unauthenticated_http = true\n\n"
            f'[request_state]\nkeys = [{{ id = "shared", secret = {{ file = {toml_str(str(key))} }} }}]\n',
            encoding="utf-8",
        )
        return config

    with replicas_behind_nginx(binary, write_config, tmp_path / "replicas", REPLICAS) as replicas:
        yield replicas


async def test_accepts_sealed_state_on_another_replica_and_rejects_it_tampered(
    conformance_replicas: Balanced,
) -> None:
    tool = "test_input_required_result_request_state"
    confirm = {"confirm": ElicitResult(action="accept", content={"ok": True})}
    async with stateless_client(conformance_replicas.url) as client:
        await client.list_tools()  # the client knows the tool: the three rounds go out back to back
        first = await client.session.call_tool(tool, {}, allow_input_required=True)
        assert isinstance(first, InputRequiredResult), first
        assert first.request_state, "the fixture hands out a state to bring back"
        assert first.request_state != "confirm", "the state left the server unsealed"

        done = await client.session.call_tool(
            tool, {}, input_responses=confirm, request_state=first.request_state, allow_input_required=True
        )
        assert isinstance(done, CallToolResult), done
        assert text_of(done) == "Confirmed: state-ok"

        sealed, i = first.request_state, len(first.request_state) // 2
        tampered = sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1 :]
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool(
                tool, {}, input_responses=confirm, request_state=tampered, allow_input_required=True
            )
        assert refused.value.error.code == INVALID_PARAMS, refused.value.error
        assert f"the requestState sent to tool `{tool}` was refused" in refused.value.error.message

    calls = conformance_replicas.audited_calls()
    assert [(e["tool"], e["outcome"]) for _, e in calls] == [
        (tool, "input_required"), (tool, "ok"), (tool, "state_rejected")
    ]
    # Minted by one replica, opened by another, refused tampered by the third.
    assert_spread_over_every_replica(calls)


def shared_state_key(directory: Path) -> str:
    """`[request_state]` sealing with one key in a file of `directory`, as every replica of a
    deployment configures it."""
    key = directory / "state-key"
    key.write_text(secrets.token_hex(32), encoding="utf-8")
    return f'[request_state]\nkeys = [{{ id = "shared", secret = {{ file = {toml_str(str(key))} }} }}]\n'


@pytest.fixture
def keyed_notes(binary: Path, workspace: Workspace, keys: KeyServer, tmp_path: Path) -> Iterator[Balanced]:
    extra = shared_state_key(tmp_path)
    with balanced_notes(binary, workspace, keys, tmp_path / "replicas", REPLICAS, extra=extra) as replicas:
        yield replicas


async def test_accepts_a_preview_answered_on_another_replica(
    keyed_notes: Balanced, keys: KeyServer, workspace: Workspace
) -> None:
    async def two_lines(_context: Any, _params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"lines": 2})

    token = Minter(keys, audience=keyed_notes.url).token(sub="dave@example.com")
    async with stateless_client(keyed_notes.url, token, elicitation_callback=two_lines) as client:
        await client.list_tools()
        result = await client.call_tool("preview_note", {"name": "welcome"})
        assert not result.is_error, text_of(result)
        welcome = workspace.note("welcome").read_text(encoding="utf-8").splitlines()
        assert text_of(result) == "\n".join(welcome[:2])

    calls = keyed_notes.audited_calls()
    assert [(e["tool"], e["outcome"]) for _, e in calls] == [
        ("preview_note", "input_required"), ("preview_note", "ok")
    ]
    (asked_on, _), (answered_on, _) = calls
    assert asked_on != answered_on, "the question and its answer went to different replicas"
