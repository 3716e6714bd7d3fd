"""The OpenID provider of the end-to-end tests (oidc-provider, through oidc_harness) against the
real notes server: users signed in with authorization code + PKCE get JWT access tokens the
server accepts, scoped to what each user holds, and headless Chromium signs an approver in
through the approval page's client."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

from http_harness import INITIALIZE, HttpNotesServer, free_port, open_session, post, rpc, serve_http
from notes_harness import Workspace, assert_negotiated, audit_events, open_client, text_of
from oidc_harness import (
    APPROVALS_CLIENT_ID,
    LoginRefused,
    OidcError,
    OidcProvider,
    oidc,  # noqa: F401 (the fixture)
    oidc_provider,
    pkce_pair,
    run_browser,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(binary: Path, workspace: Workspace, oidc: OidcProvider, errlog: Path) -> Iterator[HttpNotesServer]:  # noqa: F811
    port = free_port()
    config = workspace.write_config(extra=oidc.http_toml(port))
    with serve_http(binary, config, port, errlog) as server:
        yield server


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


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_accepts_call_with_token_from_the_provider(
    server: HttpNotesServer, oidc: OidcProvider, workspace: Workspace, connect_http  # noqa: F811
) -> None:
    token = oidc.token_for("alice@example.com", scopes=["notes:delete"], resource=server.url)
    got = claims(token)
    assert (got["iss"], got["aud"], got["sub"], got["scope"]) == (
        oidc.issuer, server.url, "alice@example.com", "notes:delete"
    )
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    async with connect_http(server.url, token) as session:
        names = sorted(tool.name for tool in (await session.list_tools()).tools)
        assert names == ["delete_note", "list_notes", "preview_note", "read_note"]
        result = await session.call_tool("delete_note", {"name": "q3-plan"})
        assert not result.is_error, text_of(result)
    assert not workspace.note("q3-plan").exists()
    events = audit_events(server.errlog)
    assert [(e["principal"], e["tool"], e["decision"]) for e in events] == [("alice@example.com", "delete_note", "allow")]


async def test_rejects_delete_by_user_without_the_scope(
    server: HttpNotesServer, oidc: OidcProvider, workspace: Workspace, connect_http  # noqa: F811
) -> None:
    # bob asks for notes:delete; he does not hold it, so the consent step leaves it out.
    token = oidc.token_for("bob@example.com", scopes=["notes:delete"], resource=server.url)
    assert "notes:delete" not in claims(token).get("scope", "").split(" ")
    async with connect_http(server.url, token) as session:
        names = sorted(tool.name for tool in (await session.list_tools()).tools)
        assert names == ["list_notes", "preview_note", "read_note"]
        with pytest.raises(MCPError) as refused:
            await session.call_tool("delete_note", {"name": "welcome"})
        assert "notes:delete" in str(refused.value), refused.value
    assert workspace.note("welcome").exists(), "a refused call must not run"
    denied = [e for e in audit_events(server.errlog) if e["decision"] == "deny"]
    assert [(e["principal"], e["tool"]) for e in denied] == [("bob@example.com", "delete_note")]


def test_rejects_delete_without_scope_with_403(server: HttpNotesServer, oidc: OidcProvider, workspace: Workspace) -> None:  # noqa: F811
    token = oidc.token_for("bob@example.com", scopes=["notes:delete"], resource=server.url)
    session = open_session(server.url, token)
    reply = post(server.url, rpc("tools/call", 7, {"name": "delete_note", "arguments": {"name": "welcome"}}), token, session)
    assert reply.status == 403
    assert 'scope="notes:delete"' in reply.headers["www-authenticate"]
    assert workspace.note("welcome").exists()


def test_rejects_wrong_password(oidc: OidcProvider, server: HttpNotesServer) -> None:  # noqa: F811
    with pytest.raises(LoginRefused) as refused:
        oidc.token_for("alice@example.com", "bob-password", ["notes:delete"], server.url)
    assert refused.value.status == 401
    assert "Wrong email or password" in str(refused.value)
    with pytest.raises(LoginRefused):
        oidc.token_for("mallory@example.com", "alice-password", ["notes:delete"], server.url)
    # The right password still works: the refusals were the password's, not the flow's.
    assert oidc.token_for("alice@example.com", "alice-password", ["notes:delete"], server.url)


def test_rejects_token_for_another_resource(oidc: OidcProvider, server: HttpNotesServer) -> None:  # noqa: F811
    other = f"http://127.0.0.1:{free_port()}/mcp"
    token = oidc.token_for("alice@example.com", scopes=["notes:delete"], resource=other)
    assert claims(token)["aud"] == other
    reply = post(server.url, INITIALIZE, token)
    assert reply.status == 401, reply.status


def test_refuses_resource_off_loopback(oidc: OidcProvider) -> None:  # noqa: F811
    with pytest.raises(OidcError, match="invalid_target"):
        oidc.token_for("alice@example.com", scopes=["notes:delete"], resource="https://mcp.example.com/mcp")


def test_accepts_keys_discovered_from_the_provider(
    binary: Path, workspace: Workspace, oidc: OidcProvider, tmp_path: Path  # noqa: F811
) -> None:
    port = free_port()
    config = workspace.write_config(extra=oidc.http_toml(port, discover=True), name="discover.toml")
    assert "jwks_uri" not in config.read_text(encoding="utf-8")
    with serve_http(binary, config, port, tmp_path / "discover.jsonl") as server:
        token = oidc.token_for("carol@example.com", scopes=["notes:delete"], resource=server.url)
        assert post(server.url, INITIALIZE, token).status == 200


def test_accepts_service_principal_token(oidc: OidcProvider, server: HttpNotesServer) -> None:  # noqa: F811
    token = oidc.service_token(["notes:delete", "docs:approve"], server.url)
    got = claims(token)
    assert (got["sub"], got["aud"], got["scope"]) == ("mcp-service", server.url, "notes:delete")
    session = open_session(server.url, token)
    reply = post(server.url, rpc("tools/list", 2), token, session)
    assert "delete_note" in [tool["name"] for tool in reply.message["result"]["tools"]]


def test_accepts_es256_access_tokens(binary: Path, workspace: Workspace, tmp_path: Path) -> None:
    with oidc_provider(access_token_alg="ES256") as provider:
        port = free_port()
        config = workspace.write_config(extra=provider.http_toml(port, algorithms='["ES256"]'), name="es256.toml")
        with serve_http(binary, config, port, tmp_path / "es256.jsonl") as server:
            token = provider.token_for("alice@example.com", scopes=["notes:delete"], resource=server.url)
            assert jwt.get_unverified_header(token)["alg"] == "ES256"
            assert post(server.url, INITIALIZE, token).status == 200


@contextmanager
def callback_listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on a free loopback port standing in for the approval page's callback:
    the redirect URI, and the request paths it received."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"signed in")

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    listener = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/approvals/callback", seen
    finally:
        listener.shutdown()
        listener.server_close()


# Installing chromium on first use (scripts/oidc.sh chromium) can take minutes.
@pytest.mark.timeout(600)
def test_serves_login_page_to_headless_chromium() -> None:
    with callback_listener() as (redirect_uri, _), oidc_provider(approval_redirect_uris=[redirect_uri]) as provider:
        _, challenge = pkce_pair()
        url = provider.authorization_url(APPROVALS_CLIENT_ID, redirect_uri, ["openid", "email"], challenge, "s1")
        page = run_browser(provider.node, "check-login", url)
        assert page["title"] == "Sign in"
        assert page["url"].startswith(f"{provider.issuer}/interaction/")
        assert page["login_form"] is True
        assert page["client"] == APPROVALS_CLIENT_ID
        assert "HeadlessChrome" in page["user_agent"]


# Installing chromium on first use (scripts/oidc.sh chromium) can take minutes.
@pytest.mark.timeout(600)
def test_accepts_approver_signed_in_with_chromium() -> None:
    """The approval page's flow: the browser signs bob in (login form, consent), the provider
    sends it back to the registered callback with a code, and the confidential client exchanges
    the code with its secret and the PKCE verifier for bob's ID token and access token."""
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    with callback_listener() as (redirect_uri, seen), oidc_provider(approval_redirect_uris=[redirect_uri]) as provider:
        verifier, challenge = pkce_pair()
        url = provider.authorization_url(
            APPROVALS_CLIENT_ID, redirect_uri, ["openid", "email", "notes:approve"], challenge, "state-1", resource
        )
        refused = run_browser(provider.node, "sign-in", url, "bob@example.com", "alice-password", redirect_uri)
        assert refused == {"error": "Wrong email or password."}
        assert [path for path in seen if path.startswith("/approvals/")] == []

        done = run_browser(provider.node, "sign-in", url, "bob@example.com", "bob-password", redirect_uri)
        query = parse_qs(urlsplit(done["redirect"]).query)
        assert query["state"] == ["state-1"] and query["iss"] == [provider.issuer]
        # Only the callback counts: the browser may also ask the listener for /favicon.ico.
        callbacks = [path for path in seen if path.startswith("/approvals/")]
        assert len(callbacks) == 1 and callbacks[0].startswith("/approvals/callback?code="), callbacks
        token_endpoint = provider.metadata()["token_endpoint"]
        form = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        # Without the client's secret the code is not exchanged.
        wrong = httpx2.post(token_endpoint, data=form, auth=(APPROVALS_CLIENT_ID, "not-the-secret"), timeout=10)
        assert wrong.status_code == 401, wrong.text
        answer = httpx2.post(token_endpoint, data=form, auth=(APPROVALS_CLIENT_ID, provider.approvals_client_secret), timeout=10)
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        keys = jwt.PyJWKClient(provider.jwks_uri)
        id_token = jwt.decode(
            tokens["id_token"],
            keys.get_signing_key_from_jwt(tokens["id_token"]).key,
            algorithms=["RS256"],
            audience=APPROVALS_CLIENT_ID,
            issuer=provider.issuer,
        )
        assert (id_token["sub"], id_token["email"], id_token["email_verified"]) == ("bob@example.com", "bob@example.com", True)
        access = jwt.decode(
            tokens["access_token"],
            keys.get_signing_key_from_jwt(tokens["access_token"]).key,
            algorithms=["RS256"],
            audience=resource,
            issuer=provider.issuer,
        )
        assert (access["sub"], access["scope"]) == ("bob@example.com", "notes:approve")


def test_accepts_sign_in_through_a_registered_client(oidc: OidcProvider) -> None:  # noqa: F811
    """A client registered after the provider started (RFC 7591), as an approval page on a port
    picked later would be: its own id and secret, its redirect URI and no other."""
    redirect_uri = f"http://127.0.0.1:{free_port()}/approvals/callback"
    client = oidc.register_client([redirect_uri])
    assert client.client_id not in (APPROVALS_CLIENT_ID, "mcp-test-client", "mcp-service")
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    tokens = oidc.sign_in(
        "bob@example.com",
        scopes=["notes:approve"],
        resource=resource,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        client_secret=client.client_secret,
    )
    assert claims(tokens.id_token)["aud"] == client.client_id
    assert (claims(tokens.access_token)["sub"], claims(tokens.access_token)["scope"]) == ("bob@example.com", "notes:approve")
    with pytest.raises(OidcError):
        oidc.sign_in(
            "bob@example.com",
            client_id=client.client_id,
            redirect_uri=redirect_uri.replace("/approvals/", "/other/"),
            client_secret=client.client_secret,
        )
    # Registration needs the initial access token.
    refused = httpx2.post(
        oidc.metadata()["registration_endpoint"], json={"redirect_uris": [redirect_uri]}, timeout=10
    )
    assert refused.status_code == 401, refused.text


def test_rejects_unregistered_approval_redirect_uri() -> None:
    with callback_listener() as (redirect_uri, _), oidc_provider(approval_redirect_uris=[redirect_uri]) as provider:
        other = redirect_uri.replace("/approvals/callback", "/elsewhere")
        with pytest.raises(OidcError) as refused:
            provider.sign_in(
                "bob@example.com",
                client_id=APPROVALS_CLIENT_ID,
                redirect_uri=other,
                client_secret=provider.approvals_client_secret,
            )
        assert refused.value.status == 400
        assert "redirect_uri" in refused.value.body
