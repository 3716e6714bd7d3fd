"""Streamable HTTP as an OAuth 2.1 resource server, driven by the official MCP Python client and
by raw HTTP where the status line and headers are what is under test."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.caching import CacheConfig, CacheEntry, CacheKey, InMemoryResponseCacheStore
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from http_harness import (
    FIRST_REQUEST,
    INITIALIZE,
    REVISIONS,
    HttpNotesServer,
    KeyServer,
    Minter,
    b64url,
    free_port,
    http_config,
    open_session,
    post,
    rpc,
    serve_http,
)
from notes_harness import (
    Workspace,
    assert_negotiated,
    audit_events,
    log_lines,
    open_client,
    text_of,
    trail_events,
    trail_lines,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    with KeyServer().serving() as keys:
        yield keys


@pytest.fixture
def server(binary: Path, workspace: Workspace, keys: KeyServer, errlog: Path) -> Iterator[HttpNotesServer]:
    port = free_port()
    config = workspace.write_config(extra=http_config(port, keys))
    with serve_http(binary, config, port, errlog) as server:
        yield server


@pytest.fixture
def minter(server: HttpNotesServer, keys: KeyServer) -> Minter:
    return Minter(keys, audience=server.url)


@pytest.fixture
def connect_http(mode: str) -> Callable[[str, str], object]:
    """The official client over streamable HTTP in this test's mode, presenting a token."""

    @asynccontextmanager
    async def connect(url: str, token: str) -> AsyncIterator[Client]:
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with open_client(streamable_http_client(url, http_client=http), mode) as client:
                assert_negotiated(client, mode)
                yield client

    return connect


async def tool_names(connect_http, url: str, token: str) -> list[str]:
    async with connect_http(url, token) as session:
        return sorted(tool.name for tool in (await session.list_tools()).tools)


async def test_accepts_call_with_valid_token(
    server: HttpNotesServer, minter: Minter, workspace: Workspace, connect_http
) -> None:
    token = minter.token(sub="alice@example.com")
    async with connect_http(server.url, token) as session:
        result = await session.call_tool("read_note", {"name": "welcome"})
        assert not result.is_error, text_of(result)
        assert text_of(result) == workspace.note("welcome").read_text(encoding="utf-8")


async def test_lists_tools_by_token_scopes(server: HttpNotesServer, minter: Minter, connect_http) -> None:
    without = await tool_names(connect_http, server.url, minter.token(scope="profile"))
    with_grant = await tool_names(connect_http, server.url, minter.token(scope="profile notes:delete"))
    assert without == ["list_notes", "preview_note", "read_note"]
    assert with_grant == ["delete_note", "list_notes", "preview_note", "read_note"]


async def test_accepts_delete_with_scope(
    server: HttpNotesServer, minter: Minter, workspace: Workspace, connect_http
) -> None:
    token = minter.token(scope="notes:delete")
    async with connect_http(server.url, token) as session:
        result = await session.call_tool("delete_note", {"name": "q3-plan"})
        assert not result.is_error, text_of(result)
    assert not workspace.note("q3-plan").exists()


class RecordingCacheStore(InMemoryResponseCacheStore):
    """A client response cache that also records what it was asked to keep, and how shared."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, str, str]] = []

    async def set(self, key: CacheKey, entry: CacheEntry) -> None:
        self.written.append((key.method, key.partition, entry.scope))
        await super().set(key, entry)


async def test_refuses_to_share_a_tool_list_between_principals_through_a_client_cache(
    server: HttpNotesServer, minter: Minter
) -> None:
    """Two principals behind one 2026-07-28 client cache, which shares whatever the server marks
    public: each must still see only its own tools/list."""
    store = RecordingCacheStore()

    async def names(sub: str, scope: str) -> list[str]:
        cache = CacheConfig(store=store, partition=sub, target_id=server.url, share_public=True)
        token = minter.token(sub=sub, scope=scope)
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with open_client(streamable_http_client(server.url, http_client=http), "auto", cache=cache) as client:
                assert_negotiated(client, "auto")
                return sorted(tool.name for tool in (await client.list_tools()).tools)

    assert await names("alice@example.com", "") == ["list_notes", "preview_note", "read_note"]
    assert await names("bob@example.com", "notes:delete") == ["delete_note", "list_notes", "preview_note", "read_note"]
    assert await names("alice@example.com", "") == ["list_notes", "preview_note", "read_note"]
    # Not vacuous: the lists were cached (the server gave them a lifetime), each private to its caller.
    lists = [(partition, scope) for method, partition, scope in store.written if method == "tools/list"]
    assert lists, "no tools/list result was cached: the server gave it no ttlMs"
    assert all(scope == "private" for _, scope in lists), lists


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_accepts_each_allowed_algorithm(server: HttpNotesServer, minter: Minter, alg: str) -> None:
    assert post(server.url, INITIALIZE, minter.token(alg=alg)).status == 200


@pytest.mark.parametrize("revision", REVISIONS)
def test_rejects_missing_scope_with_403_step_up(
    server: HttpNotesServer, minter: Minter, workspace: Workspace, revision: str
) -> None:
    token = minter.token(sub="bob@example.com", scope="notes:read")
    # A 2025-11-25 client calls inside its session; a 2026-07-28 client has none.
    session = open_session(server.url, token) if revision == REVISIONS[0] else None
    call = rpc("tools/call", 7, {"name": "delete_note", "arguments": {"name": "welcome"}})
    reply = post(server.url, call, token, session, revision)
    assert reply.status == 403
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge, challenge
    assert 'scope="notes:delete"' in challenge, challenge
    assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in challenge, challenge
    assert reply.message is not None
    assert reply.message["id"] == 7
    assert reply.message["error"]["code"] == -32003
    assert "`notes:delete`" in reply.message["error"]["message"]
    assert workspace.note("welcome").exists(), "a refused call must not run"
    denied = [e for e in audit_events(server.errlog) if e["decision"] == "deny"]
    assert [(e["principal"], e["tool"], e["outcome"]) for e in denied] == [("bob@example.com", "delete_note", "denied")]
    # The refusal is audited like any other: the request id, and the hash of the canonical arguments.
    assert denied[0]["request_id"] == "7"
    assert denied[0]["args_sha256"] == hashlib.sha256(b'{"name":"welcome"}').hexdigest()
    # The HTTP answer is an event of its own: the step-up the client was asked for.
    step_ups = trail_events(server.errlog, "step_up_required")
    assert [(e["principal"], e["tool"], e["scope"], e["http_status"], e["request_id"]) for e in step_ups] == [
        ("bob@example.com", "delete_note", "notes:delete", 403, "7")
    ]


def test_rejects_array_shaped_call_without_a_scope_refusal(server: HttpNotesServer, minter: Minter, workspace: Workspace) -> None:
    # A JSON array is not a message: rmcp refuses it, and the scope check must not read it as one.
    token = minter.token(sub="bob@example.com", scope="notes:read")
    session = open_session(server.url, token)
    reply = post(server.url, ["tools/call", 7, {"name": "delete_note", "arguments": {"name": "welcome"}}], token, session)
    assert reply.status != 403, reply.status
    assert 400 <= reply.status < 500, reply.status
    assert workspace.note("welcome").exists()
    assert [e for e in audit_events(server.errlog) if e["decision"] == "deny"] == []


def bad_tokens(minter: Minter, keys: KeyServer) -> dict[str, str | None]:
    good = minter.token()
    head, body, signature = good.split(".")
    tampered_claims = minter.claims(scope="notes:delete")
    tampered = ".".join([head, jwt_b64(tampered_claims), signature])
    other_key = rsa.generate_private_key(65537, 2048)
    return {
        "missing": None,
        "expired": minter.token(exp=1_000_000_000, nbf=999_999_000, iat=999_999_000),
        "not_yet_valid": minter.token(nbf=4_000_000_000, exp=4_000_000_300),
        "wrong_audience": minter.token(aud="http://127.0.0.1:1/other"),
        "wrong_issuer": minter.token(iss="http://127.0.0.1:1"),
        "alg_none": minter.unsigned({"alg": "none", "typ": "JWT"}, minter.claims(scope="notes:delete")),
        "hs256_with_rsa_public_key": minter.unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, minter.claims(scope="notes:delete"), sign=keys.rsa_public_pem()
        ),
        "unknown_kid": minter.token(kid="rotated-away"),
        "tampered_payload": tampered,
        "wrong_signature": jwt.encode(minter.claims(), other_key, algorithm="RS256", headers={"kid": "rsa-1"}),
    }


def jwt_b64(claims: dict) -> str:
    return b64url(json.dumps(claims).encode())


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "alg_none",
        "hs256_with_rsa_public_key",
        "unknown_kid",
        "tampered_payload",
        "wrong_signature",
    ],
)
@pytest.mark.parametrize("revision", REVISIONS)
def test_rejects_bad_token_with_401(
    server: HttpNotesServer, minter: Minter, keys: KeyServer, case: str, revision: str
) -> None:
    token = bad_tokens(minter, keys)[case]
    reply = post(server.url, FIRST_REQUEST[revision], token, revision=revision)
    assert reply.status == 401, (case, reply.status, reply.message)
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    if token is not None:
        assert 'error="invalid_token"' in challenge, challenge
        assert token not in "\n".join(log_lines(server.errlog)), "the token must never be logged"
    refused = trail_events(server.errlog, "auth_refused")
    assert [(e["http_status"], e["check"]) for e in refused] == [
        (401, "missing_token" if token is None else "invalid_token")
    ], refused
    assert refused[0]["reason"], refused


def test_serves_protected_resource_metadata(server: HttpNotesServer, keys: KeyServer) -> None:
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]:
        metadata = httpx2.get(server.base + path, timeout=5).json()
        assert metadata["resource"] == server.url
        assert metadata["authorization_servers"] == [keys.issuer]
        assert metadata["scopes_supported"] == ["notes:delete"]
        assert metadata["bearer_methods_supported"] == ["header"]


def test_rejects_session_replayed_with_another_principals_token(server: HttpNotesServer, minter: Minter) -> None:
    alice = minter.token(sub="alice@example.com")
    mallory = minter.token(sub="mallory@example.com", scope="notes:delete")
    session = open_session(server.url, alice)
    replay = post(server.url, rpc("tools/list", 2), mallory, session)
    assert replay.status == 404, (replay.status, replay.message)
    refused = trail_events(server.errlog, "session_refused")
    assert [(e["principal"], e["http_status"]) for e in refused] == [("mallory@example.com", 404)]
    # The trail keeps a digest of the hijacked id, not the id.
    assert refused[0]["session_sha256"] == hashlib.sha256(session.encode()).hexdigest()
    assert session not in "\n".join(trail_lines(server.errlog))
    own = post(server.url, rpc("tools/list", 3), alice, session)
    assert own.status == 200, (own.status, own.message)


def test_rejects_session_id_it_never_issued(server: HttpNotesServer, minter: Minter) -> None:
    reply = post(server.url, rpc("tools/list", 2), minter.token(), "made-up-session")
    assert reply.status == 404


async def test_audits_the_tokens_principal_and_never_the_token(
    server: HttpNotesServer, minter: Minter, connect_http
) -> None:
    token = minter.token(sub="carol@example.com")
    async with connect_http(server.url, token) as session:
        await session.call_tool("read_note", {"name": "welcome"})
    events = audit_events(server.errlog)
    assert [(e["principal"], e["tool"], e["decision"]) for e in events] == [("carol@example.com", "read_note", "allow")]
    assert token not in server.errlog.read_text(encoding="utf-8")


def test_discovers_keys_from_issuer_metadata(binary: Path, workspace: Workspace, keys: KeyServer, tmp_path: Path) -> None:
    port = free_port()
    config = workspace.write_config(extra=http_config(port, keys, discover=True), name="discover.toml")
    with serve_http(binary, config, port, tmp_path / "discover.jsonl") as server:
        token = Minter(keys, audience=server.url).token()
        assert post(server.url, INITIALIZE, token).status == 200


def test_refuses_http_without_auth_configuration(binary: Path, workspace: Workspace) -> None:
    config = workspace.write_config(extra=f'[http]\nlisten = "127.0.0.1:{free_port()}"\n', name="noauth.toml")
    done = subprocess.run([str(binary), "--config", str(config), "serve", "--http"], capture_output=True, timeout=20)
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert "key `http.auth`" in stderr and "allow_unauthenticated_http" in stderr, stderr


def test_rejects_token_that_expires_after_being_accepted(
    binary: Path, workspace: Workspace, keys: KeyServer, tmp_path: Path
) -> None:
    """Remembering a validated token must not outlive the token: once past `exp` (+ leeway) the
    same token is refused."""
    port = free_port()
    config = workspace.write_config(extra=http_config(port, keys, leeway="1s"), name="short.toml")
    with serve_http(binary, config, port, tmp_path / "short.jsonl") as server:
        now = int(time.time())
        token = Minter(keys, audience=server.url).token(iat=now, nbf=now, exp=now + 2)
        assert post(server.url, INITIALIZE, token).status == 200
        time.sleep(4)
        reply = post(server.url, INITIALIZE, token)
        assert reply.status == 401, reply.status
        assert "expired" in reply.headers["www-authenticate"]
