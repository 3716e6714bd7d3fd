"""Helpers for the HTTP end-to-end tests: an authorization server's published keys (a JWKS and
RFC 8414 metadata served on loopback), tokens minted with those keys, and the notes server
serving streamable HTTP behind bearer-token validation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from notes_harness import PROTOCOL_VERSION, STATELESS_PROTOCOL_VERSION, toml_str

ACCEPT = "application/json, text/event-stream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class KeyServer:
    """Signing keys of a stand-in authorization server, and the HTTP server publishing them."""

    rsa_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    ec_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ed_key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    port: int = field(default_factory=free_port)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks.json"

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, algorithm, public in [
            ("rsa-1", RSAAlgorithm, self.rsa_key.public_key()),
            ("ec-1", ECAlgorithm, self.ec_key.public_key()),
            ("ed-1", OKPAlgorithm, self.ed_key.public_key()),
        ]:
            jwk = json.loads(algorithm.to_jwk(public))
            jwk["kid"] = kid
            keys.append(jwk)
        return {"keys": keys}

    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @contextmanager
    def serving(self) -> Iterator["KeyServer"]:
        documents = {
            "/jwks.json": self.jwks(),
            # RFC 8414 metadata: the keys, and the endpoints an OAuth client (such as the
            # TypeScript SDK's) sends a user to; nothing here serves them.
            "/.well-known/oauth-authorization-server": {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            },
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()


@dataclass
class Minter:
    """Mints access tokens for one resource."""

    keys: KeyServer
    audience: str

    def claims(self, sub: str = "alice@example.com", scope: str = "", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.keys.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "scope": scope,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str = "alice@example.com", scope: str = "", alg: str = "RS256", kid: str | None = None, **claims: Any) -> str:
        key, default_kid = {
            "RS256": (self.keys.rsa_key, "rsa-1"),
            "ES256": (self.keys.ec_key, "ec-1"),
            "EdDSA": (self.keys.ed_key, "ed-1"),
        }[alg]
        return jwt.encode(self.claims(sub, scope, **claims), key, algorithm=alg, headers={"kid": kid or default_kid})

    def unsigned(self, header: dict[str, Any], claims: dict[str, Any], sign: bytes | None = None) -> str:
        """A token assembled by hand; `sign` is an HMAC-SHA256 key, or None for no signature."""
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(claims).encode())
        signing_input = f"{head}.{body}".encode()
        signature = b64url(hmac.new(sign, signing_input, hashlib.sha256).digest()) if sign else ""
        return f"{head}.{body}.{signature}"


@dataclass
class HttpNotesServer:
    """The notes server serving streamable HTTP with bearer-token validation."""

    process: subprocess.Popen[bytes]
    port: int
    errlog: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def http_config(
    port: int, keys: KeyServer, discover: bool = False, leeway: str = "30s", resource: str | None = None
) -> str:
    """`[http]` on 127.0.0.1:`port`; `resource` (the URL clients use, and the tokens' audience)
    defaults to that address's /mcp."""
    jwks = "" if discover else f"jwks_uri = {toml_str(keys.jwks_uri)}\n"
    resource = resource or f"http://127.0.0.1:{port}/mcp"
    return (
        f"[http]\nlisten = \"127.0.0.1:{port}\"\nresource = {toml_str(resource)}\n\n"
        f"[http.auth]\nissuer = {toml_str(keys.issuer)}\nleeway = {toml_str(leeway)}\n{jwks}"
    )


@contextmanager
def serve_http(
    binary: Path, config: Path, port: int, errlog: Path, env: dict[str, str] | None = None
) -> Iterator[HttpNotesServer]:
    """Serve `binary --config config serve --http` on `port` (with `env`, else this process's
    environment), its stderr written to `errlog`, until the block ends."""
    with open(errlog, "w", encoding="utf-8") as err:
        process = subprocess.Popen([str(binary), "--config", str(config), "serve", "--http"], stderr=err, env=env)
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"the server exited with {process.returncode}: {errlog.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError("the HTTP server did not start listening within 20s") from None
                    time.sleep(0.05)
            yield HttpNotesServer(process, port, errlog)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


def rpc(method: str, id: int | None = 1, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    return message


INITIALIZE = rpc(
    "initialize",
    1,
    {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "mcp-lp-http-test", "version": "0"}},
)


@dataclass
class Reply:
    status: int
    headers: httpx2.Headers
    message: dict[str, Any] | None


def stateless(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`message` as a 2026-07-28 request carries it: the revision, the client's capabilities and
    identity in `params._meta`, and the `Mcp-Method` (and for tools/call `Mcp-Name`) headers."""
    params = dict(message.get("params") or {})
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-lp-http-test", "version": "0"},
        **params.get("_meta", {}),
    }
    headers = {"Mcp-Method": message["method"]}
    if message["method"] == "tools/call":
        headers["Mcp-Name"] = params["name"]
    return {**message, "params": params}, headers


def post(
    url: str,
    message: dict[str, Any] | list[Any],
    token: str | None,
    session: str | None = None,
    revision: str = PROTOCOL_VERSION,
) -> Reply:
    """POST one JSON-RPC message and read the reply, whether JSON or a server-sent event. With
    `revision` 2026-07-28 the message goes out as a stateless request (see `stateless`)."""
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": revision}
    if revision == STATELESS_PROTOCOL_VERSION and isinstance(message, dict):
        message, extra = stateless(message)
        headers.update(extra)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if session is not None:
        headers["Mcp-Session-Id"] = session
    response = httpx2.post(url, json=message, headers=headers, timeout=10)
    body = response.text
    parsed: dict[str, Any] | None = None
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in body.splitlines():
            if line.startswith("data:") and line[5:].strip():
                parsed = json.loads(line[5:])
    elif response.headers.get("content-type", "").startswith("application/json") and body.strip():
        parsed = json.loads(body)
    return Reply(response.status_code, response.headers, parsed)


# The first request a client of each revision sends: 2025-11-25 opens a session with
# `initialize`; 2026-07-28 has no handshake and may start with any request.
FIRST_REQUEST = {
    PROTOCOL_VERSION: INITIALIZE,
    STATELESS_PROTOCOL_VERSION: rpc("tools/list", 1),
}
REVISIONS = tuple(FIRST_REQUEST)


def open_session(url: str, token: str) -> str:
    """Initialize a session as the token's principal and return its id."""
    reply = post(url, INITIALIZE, token)
    assert reply.status == 200, (reply.status, reply.message)
    session = reply.headers.get("mcp-session-id")
    assert session, "the server issued no session id"
    done = post(url, rpc("notifications/initialized", id=None), token, session)
    assert done.status in (200, 202), done.status
    return session
