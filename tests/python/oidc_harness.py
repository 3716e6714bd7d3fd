"""A real OpenID provider for the end-to-end tests: oidc-provider (tests/oidc/provider.mjs) on a
free loopback port, users signed in through its login and consent pages by plain HTTP
(authorization code with PKCE), the `[http.auth]` block of a server that trusts it, and
headless Chromium through playwright-core (tests/oidc/browser.mjs).

    with oidc_provider(approval_redirect_uris=[...]) as oidc:
        token = oidc.token_for("alice@example.com", scopes=["notes:delete"], resource=server_url)

or, in a test module, `from oidc_harness import oidc` for a provider per module."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx2
import pytest

from notes_harness import REPO_ROOT, toml_str

OIDC_DIR = REPO_ROOT / "tests" / "oidc"
OIDC_SCRIPT = REPO_ROOT / "scripts" / "oidc.sh"

# The clients provider.mjs registers (see tests/oidc/README.md).
APPROVALS_CLIENT_ID = "mcp-lp-approvals"  # confidential (client_secret_basic), code + PKCE S256
TEST_CLIENT_ID = "mcp-test-client"  # public, code + PKCE S256
TEST_CLIENT_REDIRECT_URI = "http://127.0.0.1/mcp-test-client/callback"
SERVICE_CLIENT_ID = "mcp-service"  # confidential, client_credentials; its tokens' sub is its id


@dataclass(frozen=True)
class User:
    email: str
    password: str
    scopes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"email": self.email, "password": self.password, "scopes": list(self.scopes)}


# The users provider.mjs has when given none (test_oidc_harness.py signs in with these).
DEFAULT_USERS: dict[str, User] = {
    u.email: u
    for u in [
        User("alice@example.com", "alice-password", ("docs:delete", "records:write", "notes:delete")),
        User("bob@example.com", "bob-password", ("docs:approve", "records:approve", "notes:approve")),
        User(
            "carol@example.com",
            "carol-password",
            ("docs:delete", "docs:approve", "records:write", "records:approve", "notes:delete", "notes:approve"),
        ),
        User("dave@example.com", "dave-password", ()),
    ]
}


class OidcError(Exception):
    """The provider refused a step of a flow; `status` and `body` are what it answered."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class LoginRefused(OidcError):
    """The login form refused the email and password."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = b64url(secrets.token_bytes(48))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_ATTR = re.compile(r'([a-zA-Z_-]+)="([^"]*)"')
_INPUT = re.compile(r"<input\b([^>]*)>", re.I)


def html_form(page: str, form_id: str) -> tuple[str, dict[str, str]]:
    """The action and the named inputs' values of the form with id `form_id` in `page`."""
    for attrs, body in _FORM.findall(page):
        found = {k: html.unescape(v) for k, v in _ATTR.findall(attrs)}
        if found.get("id") == form_id:
            fields: dict[str, str] = {}
            for input_attrs in _INPUT.findall(body):
                a = {k: html.unescape(v) for k, v in _ATTR.findall(input_attrs)}
                if "name" in a:
                    fields[a["name"]] = a.get("value", "")
            return found.get("action", ""), fields
    raise OidcError(f"the page has no form `{form_id}`", body=page)


def page_error(page: str) -> str:
    found = re.search(r'id="error"[^>]*>(.*?)<', page, re.S)
    return html.unescape(found.group(1)) if found else ""


@dataclass
class Tokens:
    """A token endpoint's answer."""

    access_token: str
    token_type: str
    expires_in: int | None
    scope: str
    id_token: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class RegisteredClient:
    """A client registered at the provider's registration endpoint (RFC 7591)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass
class OidcProvider:
    """A running provider.mjs."""

    issuer: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    users: dict[str, User]
    approvals_client_secret: str
    service_client_secret: str
    approval_redirect_uris: tuple[str, ...] = ()
    node: str = ""
    registration_token: str = field(default="", repr=False)
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def jwks_uri(self) -> str:
        return self.metadata()["jwks_uri"]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def metadata(self) -> dict[str, Any]:
        """The OpenID Connect discovery document."""
        if self._metadata is None:
            response = httpx2.get(self.discovery_url, timeout=10)
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def authorization_url(
        self,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        code_challenge: str,
        state: str,
        resource: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """Where a client sends the user's browser: response_type=code, PKCE S256."""
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
        if resource is not None:
            params["resource"] = resource
        if nonce is not None:
            params["nonce"] = nonce
        return f"{self.metadata()['authorization_endpoint']}?{urlencode(params)}"

    def sign_in(
        self,
        user: str,
        password: str | None = None,
        scopes: Iterable[str] = (),
        resource: str | None = None,
        client_id: str = TEST_CLIENT_ID,
        redirect_uri: str = TEST_CLIENT_REDIRECT_URI,
        client_secret: str | None = None,
        openid: bool = True,
    ) -> Tokens:
        """Sign `user` in as a browser would, by plain HTTP: the authorization request, the
        login form (`password` defaults to the user's own), the consent page, then the code
        exchanged at the token endpoint with the PKCE verifier. Scopes the user does not hold
        are left out of the token by the consent step. Raises LoginRefused on a wrong password,
        OidcError on any other refusal."""
        if password is None:
            if user not in self.users:
                raise OidcError(f"{user} is not a user of this provider; pass a password")
            password = self.users[user].password
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        requested = (["openid", "email"] if openid else []) + list(scopes)
        url = self.authorization_url(client_id, redirect_uri, requested, challenge, state, resource)
        with httpx2.Client(timeout=10, follow_redirects=False) as http:
            code = self._authorize(http, url, user, password, redirect_uri, state)
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
            if resource is not None:
                form["resource"] = resource
            auth = None
            if client_secret is None:
                form["client_id"] = client_id
            else:
                auth = (client_id, client_secret)
            return self._token(http, form, auth)

    def token_for(
        self,
        user: str,
        password: str | None = None,
        scopes: Iterable[str] = (),
        resource: str | None = None,
    ) -> str:
        """A JWT access token for `user` (sub = the email) with audience `resource` (the MCP
        server's resource URL) and `scope` = the requested `scopes` the user holds, obtained
        through mcp-test-client with authorization code + PKCE."""
        if resource is None:
            raise OidcError("name the resource (the MCP server's URL): it is the token's audience")
        return self.sign_in(user, password, scopes, resource).access_token

    def service_token(self, scopes: Iterable[str], resource: str) -> str:
        """A JWT access token for the service principal (sub = "mcp-service") by client
        credentials."""
        with httpx2.Client(timeout=10) as http:
            form = {"grant_type": "client_credentials", "scope": " ".join(scopes), "resource": resource}
            return self._token(http, form, (SERVICE_CLIENT_ID, self.service_client_secret)).access_token

    def register_client(self, redirect_uris: Iterable[str]) -> RegisteredClient:
        """Register a confidential web client like mcp-lp-approvals (authorization code + PKCE,
        client_secret_basic) for `redirect_uris`: an approval page whose server port was picked
        after the provider started."""
        metadata = {
            "redirect_uris": list(redirect_uris),
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "application_type": "web",
        }
        response = httpx2.post(
            self.metadata()["registration_endpoint"],
            json=metadata,
            headers={"Authorization": f"Bearer {self.registration_token}"},
            timeout=10,
        )
        if response.status_code != 201:
            raise OidcError(f"registration answered {response.status_code}: {response.text}", response.status_code, response.text)
        registered = response.json()
        return RegisteredClient(registered["client_id"], registered["client_secret"], tuple(registered["redirect_uris"]))

    def _authorize(
        self, http: httpx2.Client, url: str, user: str, password: str, redirect_uri: str, state: str
    ) -> str:
        """Follow the authorization request through login and consent to the redirect back to
        the client; the authorization code."""
        method, body = "GET", None
        for _ in range(20):
            if url.startswith(redirect_uri + "?") or url == redirect_uri:
                query = parse_qs(urlsplit(url).query)
                if "error" in query:
                    raise OidcError(f"authorization refused: {query['error'][0]}: {query.get('error_description', [''])[0]}")
                if query.get("state") != [state]:
                    raise OidcError(f"the redirect carries state {query.get('state')}, not the one sent")
                if query.get("iss") != [self.issuer]:
                    raise OidcError(f"the redirect names issuer {query.get('iss')}, not {self.issuer}")
                return query["code"][0]
            response = http.request(method, url, data=body)
            method, body = "GET", None
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["location"])
                continue
            page = response.text
            if response.status_code == 401:
                raise LoginRefused(f"login refused for {user}: {page_error(page)}", 401, page)
            if response.status_code != 200:
                raise OidcError(f"{url} answered {response.status_code}", response.status_code, page)
            if 'id="login"' in page:
                action, _ = html_form(page, "login")
                method, body = "POST", {"login": user, "password": password}
            elif 'id="consent"' in page:
                action, fields = html_form(page, "consent")
                method, body = "POST", fields
            else:
                raise OidcError(f"{url} showed neither the login nor the consent form", 200, page)
            url = urljoin(url, action)
        raise OidcError("the authorization flow did not come back to the client after 20 steps")

    def _token(self, http: httpx2.Client, form: dict[str, str], auth: tuple[str, str] | None) -> Tokens:
        response = http.post(self.metadata()["token_endpoint"], data=form, auth=auth)
        if response.status_code != 200:
            raise OidcError(f"the token endpoint answered {response.status_code}: {response.text}", response.status_code, response.text)
        raw = response.json()
        return Tokens(
            access_token=raw["access_token"],
            token_type=raw.get("token_type", ""),
            expires_in=raw.get("expires_in"),
            scope=raw.get("scope", ""),
            id_token=raw.get("id_token"),
            raw=raw,
        )

    def auth_toml(self, discover: bool = False, **settings: str) -> str:
        """The `[http.auth]` block of an mcp-lp server trusting this provider: its issuer and
        jwks_uri (left to discovery when `discover`), and any other key of [http.auth]
        (algorithms, principal_claim, scope_claim, leeway, jwks_min_refresh, jwks_max_refresh)
        given as TOML source, e.g. leeway='"5s"'."""
        lines = ["[http.auth]", f"issuer = {toml_str(self.issuer)}"]
        if not discover:
            lines.append(f"jwks_uri = {toml_str(self.jwks_uri)}")
        lines += [f"{key} = {value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def http_toml(self, port: int, resource: str | None = None, discover: bool = False, **settings: str) -> str:
        """`[http]` on 127.0.0.1:`port` (resource defaults to http://127.0.0.1:`port`/mcp), then
        auth_toml."""
        resource = resource or f"http://127.0.0.1:{port}/mcp"
        return (
            f'[http]\nlisten = "127.0.0.1:{port}"\nresource = {toml_str(resource)}\n\n'
            + self.auth_toml(discover, **settings)
        )


def provider_node() -> str:
    """The node that runs tests/oidc, installing tests/oidc/node_modules first if needed."""
    done = subprocess.run([str(OIDC_SCRIPT), "node"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise OidcError(f"scripts/oidc.sh node failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def chromium_path() -> str:
    """Debian's chromium, installed if missing (as root, with apt-get)."""
    done = subprocess.run([str(OIDC_SCRIPT), "chromium"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise OidcError(f"scripts/oidc.sh chromium failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def oidc_provider(
    approval_redirect_uris: Iterable[str] = (),
    users: Iterable[User] | None = None,
    log: Path | None = None,
    access_token_ttl: int | None = None,
    access_token_alg: str | None = None,
    service_scopes: Iterable[str] | None = None,
    request_log: Path | None = None,
) -> Iterator[OidcProvider]:
    """Run provider.mjs on a free port of 127.0.0.1 until the block ends. `approval_redirect_uris`
    are mcp-lp-approvals' redirect URIs (matched exactly); `users` replace DEFAULT_USERS; its
    stderr goes to `log` (else a temporary file); every request it receives is appended to
    `request_log`, when given (see provider_requests)."""
    node = provider_node()
    with tempfile.TemporaryDirectory(prefix="mcp-lp-oidc-") as tmp:
        env = dict(os.environ)
        for key in [k for k in env if k.startswith("MCP_LP_OIDC_")]:
            del env[key]
        user_map = DEFAULT_USERS
        if users is not None:
            user_map = {u.email: u for u in users}
            users_file = Path(tmp) / "users.json"
            users_file.write_text(json.dumps([u.as_json() for u in user_map.values()]), encoding="utf-8")
            env["MCP_LP_OIDC_USERS"] = str(users_file)
        approvals_secret = secrets.token_urlsafe(24)
        service_secret = secrets.token_urlsafe(24)
        env["MCP_LP_OIDC_APPROVALS_SECRET"] = approvals_secret
        env["MCP_LP_OIDC_SERVICE_SECRET"] = service_secret
        env["MCP_LP_OIDC_APPROVALS_REDIRECT_URIS"] = " ".join(approval_redirect_uris)
        registration_token = secrets.token_urlsafe(24)
        env["MCP_LP_OIDC_REGISTRATION_TOKEN"] = registration_token
        if access_token_ttl is not None:
            env["MCP_LP_OIDC_ACCESS_TOKEN_TTL"] = str(access_token_ttl)
        if access_token_alg is not None:
            env["MCP_LP_OIDC_ACCESS_TOKEN_ALG"] = access_token_alg
        if service_scopes is not None:
            env["MCP_LP_OIDC_SERVICE_SCOPES"] = " ".join(service_scopes)
        if request_log is not None:
            env["MCP_LP_OIDC_REQUEST_LOG"] = str(request_log)
        log = log or Path(tmp) / "provider.log"
        with open(log, "wb") as err:
            process = subprocess.Popen(
                [node, str(OIDC_DIR / "provider.mjs"), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        try:
            ready = _read_ready_line(process, log)
            yield OidcProvider(
                issuer=ready["issuer"],
                port=ready["port"],
                process=process,
                log=log,
                users=dict(user_map),
                approvals_client_secret=approvals_secret,
                service_client_secret=service_secret,
                approval_redirect_uris=tuple(approval_redirect_uris),
                node=node,
                registration_token=registration_token,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()


def provider_requests(request_log: Path) -> list[dict[str, str]]:
    """The requests a provider started with `request_log` received so far: {"method", "path"}
    each, in the order it received them."""
    if not request_log.exists():
        return []
    return [json.loads(line) for line in request_log.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_ready_line(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> dict[str, Any]:
    """The JSON line provider.mjs prints once listening."""
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not line or not line[0].strip():
        process.kill()
        process.wait()
        raise OidcError(f"provider.mjs did not start within {timeout:.0f}s; its log: {log.read_text(errors='replace')}")
    return json.loads(line[0])


def run_browser(node: str, *args: str, chromium: str | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run tests/oidc/browser.mjs with `args` in headless `chromium` (default: chromium_path(),
    installing it if missing) and return the JSON it prints; its stderr is in the error when it
    fails."""
    env = {**os.environ, "MCP_LP_OIDC_CHROMIUM": chromium or chromium_path()}
    done = subprocess.run(
        [node, str(OIDC_DIR / "browser.mjs"), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode != 0:
        raise OidcError(f"browser.mjs {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcProvider]:
    """A provider with the default users for the whole test module, without approval redirect
    URIs (use oidc_provider() directly to register some)."""
    with oidc_provider() as provider:
        yield provider
