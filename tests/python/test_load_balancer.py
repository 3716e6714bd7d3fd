"""Three replicas of notes-server behind nginx (round robin, loopback): a 2026-07-28 client
holds no session, so whichever replica a request lands on must answer it, authorizing it on
its own. Each replica's audit events tell which one answered which call."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

from http_harness import KeyServer, Minter
from lb_harness import Balanced, balanced_replicas
from notes_harness import Workspace, assert_negotiated, open_client, text_of

pytestmark = pytest.mark.anyio

REPLICAS = 3
CALLS = 6
FORBIDDEN = -32003


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    with KeyServer().serving() as keys:
        yield keys


@pytest.fixture
def balanced(binary: Path, workspace: Workspace, keys: KeyServer, tmp_path: Path) -> Iterator[Balanced]:
    with balanced_replicas(binary, workspace, keys, tmp_path / "replicas", REPLICAS) as balanced:
        yield balanced


@pytest.fixture
def minter(balanced: Balanced, keys: KeyServer) -> Minter:
    return Minter(keys, audience=balanced.url)


@asynccontextmanager
async def stateless_client(url: str, token: str) -> AsyncIterator[Client]:
    """The official client in mode="auto", which must be on 2026-07-28 (no session)."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with open_client(streamable_http_client(url, http_client=http), "auto") as client:
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
        assert tools == ["list_notes", "read_note"]
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
        assert tools == ["delete_note", "list_notes", "read_note"]
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
