"""Approval of the exact call over HTTP, end to end: the records server (its `insertRecord` needs
`records:approve`) serves streamable HTTP behind a real OpenID provider (oidc-provider, see
tests/oidc), keeps approvals in the `[state]` PostgreSQL store, and offers its two approval
doors: a JSON API for an approver's own bearer token, and an HTML page an approver signs in to
(authorization code with PKCE, driven in headless Chromium). The official Python client's
URL-elicitation callback drives the approver.

Both doors refuse an approver the revocation list names, or whose approver grant it revokes; a
page session ends with the access token it was opened with, and with the approver's revocation;
the page shows the arguments only to a holder of the approver grant, with characters that do not
show written out; and a page asked for an approval that does not exist answers without asking
the issuer anything."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitResult

from http_harness import free_port, post, rpc, serve_http
from lb_harness import replicas_behind_nginx
from notes_harness import (
    STATELESS_PROTOCOL_VERSION,
    approve_from_cli,
    approver_key,
    assert_negotiated,
    open_client,
    run_cli,
    text_of,
    toml_str,
    trail_events,
)
from oidc_harness import (
    DEFAULT_USERS,
    OIDC_DIR,
    OidcProvider,
    User,
    oidc_provider,
    provider_node,
    provider_requests,
    run_browser,
)
from records_harness import pg_env, records_binary, state_toml, unique_principal, write_config

pytestmark = pytest.mark.anyio

URL_ELICITATION_REQUIRED = -32042
FORBIDDEN = -32003
APPROVER, NOBODY = "bob@example.com", "dave@example.com"
BY = "oncall@example.com"
# How long a failing run waits for a revocation to reach the replicas (LISTEN/NOTIFY).
DEADLINE = 20.0


@dataclass
class Deployment:
    oidc: OidcProvider
    url: str
    """What clients and tokens name: the server, or the balancer in front of the replicas."""
    replicas: list[Any]
    configs: list[Path]
    """Each replica's configuration, which the command line (revoke, approvals) is given too."""
    requester: str
    """Holds records:write: asks for the calls (alice's grants, a name of this deployment's)."""
    both: str
    """Holds records:write and records:approve (carol's grants, a name of this deployment's)."""

    def token(self, user: str, *scopes: str) -> str:
        return self.oidc.token_for(user, scopes=scopes, resource=self.url)

    def cli(self, *args: str):
        """`records-server --config <replica 0's> ARGS`, output captured."""
        return run_cli(records_binary(), "--config", str(self.configs[0]), *args)

    def page(self, approval: str) -> str:
        return f"{self.url.rsplit('/mcp', 1)[0]}/approvals/{approval}"

    def events(self) -> list[dict[str, Any]]:
        return [e for replica in self.replicas for e in trail_events(replica.errlog)]


@contextmanager
def deployment(
    tmp_path: Path,
    replicas: int = 1,
    users: list[User] | None = None,
    access_token_ttl: int | None = None,
    request_log: Path | None = None,
) -> Iterator[Deployment]:
    """Records-server replicas on HTTP (behind nginx when more than one) sharing [state], its
    governance key and a sealing key, trusting a fresh OpenID provider whose approval-page client
    redirects to them. The provider has DEFAULT_USERS and `users`, and a requester and a person
    holding both grants named for this deployment alone: the [state] store outlives the test,
    and caps the calls one principal may have waiting. It issues access tokens living
    `access_token_ttl` seconds, and logs the requests it receives to `request_log`."""
    suffix = uuid.uuid4().hex[:10]
    requester = User(f"alice-{suffix}@example.com", "alice-password", DEFAULT_USERS["alice@example.com"].scopes)
    both = User(f"carol-{suffix}@example.com", "carol-password", DEFAULT_USERS["carol@example.com"].scopes)
    everyone = [*DEFAULT_USERS.values(), requester, both, *(users or [])]
    ports = [free_port() for _ in range(replicas)]
    front = free_port() if replicas > 1 else ports[0]
    url = f"http://127.0.0.1:{front}/mcp"
    with oidc_provider(
        approval_redirect_uris=[f"http://127.0.0.1:{front}/approvals/callback"],
        users=everyone,
        access_token_ttl=access_token_ttl,
        request_log=request_log,
    ) as oidc:
        secret = tmp_path / "approvals-client.secret"
        secret.write_text(oidc.approvals_client_secret, encoding="utf-8")
        key = tmp_path / "sealing.key"
        key.write_text("a-sealing-key-shared-by-the-replicas-of-the-test", encoding="utf-8")
        extra = (
            state_toml(tmp_path)
            + f'\n[request_state]\nkeys = [{{ id = "shared", secret = {{ file = {toml_str(str(key))} }} }}]\n\n'
        )
        configs: list[Path] = []

        def config_for(i: int, port: int, resource: str) -> Path:
            text = extra + oidc.http_toml(port, resource=resource) + (
                f'\n[http.approvals]\nclient_id = "mcp-lp-approvals"\nclient_secret = {{ file = {toml_str(str(secret))} }}\n'
            )
            configs.append(write_config(tmp_path, "stdio-unused@example.com", extra=text, name=f"replica-{i}.toml"))
            return configs[-1]

        binary = records_binary()
        if replicas == 1:
            with serve_http(binary, config_for(0, ports[0], url), ports[0], tmp_path / "replica-0.jsonl") as server:
                yield Deployment(oidc, url, [server], configs, requester.email, both.email)
        else:
            with replicas_behind_nginx(
                binary, lambda i, port, resource: config_for(i, port, resource), tmp_path / "replicas", replicas
            ) as balanced:
                yield Deployment(oidc, balanced.url, balanced.replicas, configs, requester.email, both.email)


@asynccontextmanager
async def client(url: str, token: str, mode: str, **options: Any) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with open_client(streamable_http_client(url, http_client=http), mode, **options) as session:
            assert_negotiated(session, mode)
            yield session


def api(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, url, headers=headers, json=body, timeout=30)


def approval_id(url: str) -> str:
    match = re.search(r"/approvals/([0-9a-f]{32})$", url)
    assert match, url
    return match.group(1)


def rows_titled(title: str) -> int:
    """How many records carry `title`, whoever owns them (as the state store's superuser sees)."""
    import subprocess

    admin = Path(pg_env()["MCP_LP_PG_ADMIN_URL_FILE"]).read_text(encoding="utf-8").strip()
    admin = admin.rsplit("/", 1)[0] + "/records"
    done = subprocess.run(
        ["psql", admin, "-At", "-c", f"SELECT count(*) FROM records WHERE title = '{title}'"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


async def test_accepts_call_after_approval(tmp_path: Path) -> None:
    """2026-07-28: the call comes back as an InputRequiredResult with a URL elicitation; the
    client's callback has the approver (a second identity) approve through the JSON API; the
    client retries with the sealed state and the record is inserted once."""
    title = unique_principal("approved")
    with deployment(tmp_path) as d:
        approver = d.token(APPROVER, "records:approve")
        asked: list[str] = []

        async def approve(_context: Any, params: Any) -> ElicitResult:
            assert params.mode == "url", params
            asked.append(params.url)
            shown = api("GET", params.url, approver)
            assert shown.status_code == 200, shown.text
            call = shown.json()
            assert (call["tool"], call["requester"], call["arguments"]) == (
                "insertRecord", d.requester, {"title": title, "body": "approved"}
            )
            assert call["why"].startswith("Insert a record owned by the caller."), call
            done = api("POST", f"{params.url}/approve", approver)
            assert done.status_code == 200 and done.json()["status"] == "approved", done.text
            return ElicitResult(action="accept")

        requester = d.token(d.requester, "records:write")
        async with client(d.url, requester, "auto", elicitation_callback=approve) as session:
            result = await session.call_tool("insertRecord", {"title": title, "body": "approved"})
            assert not result.is_error, text_of(result)
            assert result.structured_content["owner"] == d.requester
        assert len(asked) == 1 and asked[0].startswith(d.page(""))
        assert rows_titled(title) == 1
        events = d.events()
        ran = [e for e in events if e.get("tool") == "insertRecord" and e.get("outcome") == "ok"]
        assert [e["approvers"] for e in ran] == [[APPROVER]]
        [approved] = [e for e in events if e.get("event") == "approved"]
        assert (approved["by"], approved["door"]) == (APPROVER, "api"), approved
        assert "os_user" not in approved, approved


async def test_accepts_legacy_client_after_approval_with_the_url_in_the_error(tmp_path: Path) -> None:
    """2025-11-25: a URLElicitationRequiredError (-32042) carries the page and the approval id;
    after the approval the same call again runs."""
    title = unique_principal("legacy")
    with deployment(tmp_path) as d:
        arguments = {"title": title, "body": "legacy"}
        async with client(d.url, d.token(d.requester, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", arguments)
            error = parked.value.error
            assert error.code == URL_ELICITATION_REQUIRED, error
            [elicitation] = error.data["elicitations"]
            assert elicitation["mode"] == "url" and elicitation["url"] == error.data["approval"]["url"]
            assert rows_titled(title) == 0
            done = api("POST", f"{elicitation['url']}/approve", d.token(APPROVER, "records:approve"))
            assert done.status_code == 200, done.text
            result = await session.call_tool("insertRecord", arguments)
            assert not result.is_error, text_of(result)
        assert rows_titled(title) == 1


async def test_rejects_call_without_approval(tmp_path: Path) -> None:
    title = unique_principal("unapproved")
    with deployment(tmp_path) as d:

        async def walk_away(_context: Any, _params: Any) -> ElicitResult:
            return ElicitResult(action="accept")

        async with client(d.url, d.token(d.requester, "records:write"), "auto", elicitation_callback=walk_away) as session:
            with pytest.raises(MCPError) as refused:
                await session.call_tool("insertRecord", {"title": title, "body": "x"})
            assert refused.value.error.code == FORBIDDEN
            assert "approval pending (0 of 1 approvals)" in refused.value.error.message
        assert rows_titled(title) == 0


async def parked_page(d: Deployment, title: str, body: str = "x") -> str:
    """Park an insert by the requester (2025-11-25) and return its approval page."""
    async with client(d.url, d.token(d.requester, "records:write"), "legacy") as session:
        with pytest.raises(MCPError) as parked:
            await session.call_tool("insertRecord", {"title": title, "body": body})
    return parked.value.error.data["approval"]["url"]


async def test_rejects_approver_without_grant(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        page = await parked_page(d, unique_principal("nogrant"))
        for verb in ("GET", "POST"):
            refused = api(verb, page if verb == "GET" else f"{page}/approve", d.token(NOBODY))
            assert refused.status_code == 403, refused.text
            assert "approving needs grant `records:approve`" in refused.json()["message"]
        assert api("GET", page, "not-a-token").status_code == 401


async def test_rejects_approval_by_the_requester(tmp_path: Path) -> None:
    """carol holds both records:write and records:approve: she still may not approve her own."""
    title = unique_principal("self")
    with deployment(tmp_path) as d:
        async with client(d.url, d.token(d.both, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", {"title": title, "body": "x"})
        page = parked.value.error.data["approval"]["url"]
        refused = api("POST", f"{page}/approve", d.token(d.both, "records:approve"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "requester"
        assert rows_titled(title) == 0


async def test_accepts_approval_through_the_page_in_chromium(tmp_path: Path) -> None:
    """The approver opens the page, is sent to the provider's login, signs in, reads the call
    and approves it; the requester's retry runs. The page checks who opened it: the requester
    (carol, who also holds the approver grant) and a person without the grant cannot decide."""
    title = unique_principal("browser")
    with deployment(tmp_path) as d:
        arguments = {"title": title, "body": "approved in a browser"}
        async with client(d.url, d.token(d.both, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", arguments)
            page = parked.value.error.data["approval"]["url"]
            assert "?" not in page, "no secret rides in the page's URL"

            own = run_browser_approve(d, page, d.both, "carol-password", "approve")
            assert own["approver"] == d.both and not own["can_decide"], own
            assert "another person approves it" in own["refusal"], own
            outsider = run_browser_approve(d, page, NOBODY, "dave-password", "approve")
            assert not outsider["can_decide"] and "does not hold `records:approve`" in outsider["refusal"], outsider

            seen = run_browser_approve(d, page, APPROVER, "bob-password", "approve")
            assert (seen["tool"], seen["requester"], seen["approver"]) == ("insertRecord", d.both, APPROVER), seen
            # The arguments read as the JSON they are: its own line breaks are not characters
            # hidden in a value, to be written out.
            assert "\\u{a}" not in seen["arguments"], f"the page escapes the JSON's line breaks: {seen['arguments']!r}"
            assert json.loads(seen["arguments"]) == arguments
            assert seen["status"].startswith("pending") and seen["after"] == "approved", json.dumps(seen)
            assert seen["notice"] == "You approved this call.", seen

            result = await session.call_tool("insertRecord", arguments)
            assert not result.is_error, text_of(result)
        assert rows_titled(title) == 1
        [approved] = [e for e in d.events() if e.get("event") == "approved"]
        assert (approved["by"], approved["door"]) == (APPROVER, "page"), approved


def run_browser_approve(d: Deployment, page: str, email: str, password: str, action: str | None = None) -> dict[str, Any]:
    """Open `page` in headless Chromium, sign in as `email`, read the page and, with `action`
    ("approve" or "deny"), press it. What the page showed, its HTML and the browser's cookies."""
    import os
    import subprocess

    from oidc_harness import chromium_path

    env = {**os.environ, "MCP_LP_OIDC_CHROMIUM": chromium_path()}
    done = subprocess.run(
        [provider_node(), str(OIDC_DIR / "approve.mjs"), page, email, password, *([action] if action else [])],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_accepts_approval_on_one_replica_and_runs_a_double_retry_once(tmp_path: Path) -> None:
    """Two replicas behind nginx share [state]: the approval is made on one replica, and two
    concurrent retries with the same sealed state, one sent to each replica, run the tool
    exactly once (one record)."""
    title = unique_principal("replicas")
    with deployment(tmp_path, replicas=2) as d:
        token = d.token(d.requester, "records:write")
        call = {"name": "insertRecord", "arguments": {"title": title, "body": "once"}}
        first = post(d.replicas[0].url, rpc("tools/call", 1, call), token, revision=STATELESS_PROTOCOL_VERSION)
        result = first.message["result"]
        assert result["resultType"] == "input_required", result
        page = result["inputRequests"]["approval"]["params"]["url"]
        state = result["requestState"]
        done = api("POST", f"{d.replicas[1].base}/approvals/{approval_id(page)}/approve", d.token(APPROVER, "records:approve"))
        assert done.status_code == 200, done.text

        retry = {**call, "requestState": state, "inputResponses": {"approval": {"action": "accept"}}}

        def send(i: int) -> Any:
            return post(d.replicas[i].url, rpc("tools/call", 2 + i, retry), token, revision=STATELESS_PROTOCOL_VERSION)

        replies = await asyncio.gather(*(asyncio.to_thread(send, i) for i in (0, 1)))
        ran = [r for r in replies if "result" in r.message and not r.message["result"].get("isError")]
        refused = [r for r in replies if "error" in r.message]
        assert len(ran) == 1 and len(refused) == 1, [r.message for r in replies]
        assert "already used" in refused[0].message["error"]["message"]
        assert rows_titled(title) == 1


async def test_rejects_approval_page_requested_for_another_host(tmp_path: Path) -> None:
    """DNS rebinding: a page reached under a name the server does not serve is refused, as the
    MCP endpoint refuses it."""
    with deployment(tmp_path) as d:
        page = await parked_page(d, unique_principal("host"))
        token = d.token(APPROVER, "records:approve")
        rebound = httpx.get(page, headers={"Host": "attacker.example", "Authorization": f"Bearer {token}"}, timeout=30)
        assert rebound.status_code == 403, rebound.text
        assert api("GET", page, token).status_code == 200


def parked_state(d: Deployment, token: str, arguments: dict[str, Any]) -> tuple[str, str]:
    """Park an insert as a raw 2026-07-28 request; its approval id and sealed requestState."""
    call = {"name": "insertRecord", "arguments": arguments}
    reply = post(d.url, rpc("tools/call", 1, call), token, revision=STATELESS_PROTOCOL_VERSION)
    result = reply.message["result"]
    assert result["resultType"] == "input_required", result
    return approval_id(result["inputRequests"]["approval"]["params"]["url"]), result["requestState"]


def retry_with(d: Deployment, token: str, arguments: dict[str, Any], state: str) -> dict[str, Any]:
    call = {
        "name": "insertRecord",
        "arguments": arguments,
        "requestState": state,
        "inputResponses": {"approval": {"action": "accept"}},
    }
    return post(d.url, rpc("tools/call", 2, call), token, revision=STATELESS_PROTOCOL_VERSION).message


async def test_rejects_retry_with_changed_arguments(tmp_path: Path) -> None:
    title = unique_principal("changed")
    with deployment(tmp_path) as d:
        token = d.token(d.requester, "records:write")
        approval, state = parked_state(d, token, {"title": title, "body": "approved"})
        done = api("POST", f"{d.page(approval)}/approve", d.token(APPROVER, "records:approve"))
        assert done.status_code == 200, done.text
        changed = retry_with(d, token, {"title": title, "body": "something else"}, state)
        assert "arguments differ from those approved" in changed["error"]["message"], changed
        assert rows_titled(title) == 0


async def test_rejects_tampered_request_state(tmp_path: Path) -> None:
    title = unique_principal("tampered")
    with deployment(tmp_path) as d:
        token = d.token(d.requester, "records:write")
        arguments = {"title": title, "body": "x"}
        approval, state = parked_state(d, token, arguments)
        assert api("POST", f"{d.page(approval)}/approve", d.token(APPROVER, "records:approve")).status_code == 200
        i = len(state) // 2
        tampered = state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1 :]
        refused = retry_with(d, token, arguments, tampered)
        assert refused["error"]["data"]["request_state"] == "tampered", refused
        assert rows_titled(title) == 0


async def test_rejects_state_of_another_principal(tmp_path: Path) -> None:
    """carol holds records:write too; alice's approved state does not run carol's call."""
    title = unique_principal("other")
    with deployment(tmp_path) as d:
        arguments = {"title": title, "body": "x"}
        approval, state = parked_state(d, d.token(d.requester, "records:write"), arguments)
        assert api("POST", f"{d.page(approval)}/approve", d.token(APPROVER, "records:approve")).status_code == 200
        refused = retry_with(d, d.token(d.both, "records:write"), arguments, state)
        assert refused["error"]["data"]["request_state"] == "other_principal", refused
        assert rows_titled(title) == 0


# The approval page's session cookie (HttpOnly, SameSite=Strict, Path=/approvals).
SESSION_COOKIE = "mcp_lp_approver"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def approver_user(name: str) -> User:
    """A person holding records:approve alone, named for one test: revoking them in the shared
    [state] list touches no other test."""
    return User(f"{name}-{uuid.uuid4().hex[:10]}@example.com", f"{name}-password", ("records:approve",))


def session_cookie(seen: dict[str, Any]) -> dict[str, Any]:
    """The session cookie the browser holds after signing in on the page."""
    [cookie] = [c for c in seen["cookies"] if c["name"] == SESSION_COOKIE and c["value"]]
    return cookie


def with_cookie(page: str, cookie: str, verdict: str | None = None, csrf: str = "") -> httpx.Response:
    """The page asked with the session `cookie` outside the browser: GET it, or POST `verdict`
    ("approve", "deny") with the form's token, from the page's own origin as its form does."""
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    if verdict is None:
        return httpx.get(page, headers=headers, follow_redirects=False, timeout=30)
    headers["Origin"] = page.split("/approvals/", 1)[0]
    return httpx.post(f"{page}/{verdict}", headers=headers, data={"csrf": csrf}, follow_redirects=False, timeout=30)


def until(what: str, check: Any, deadline: float = DEADLINE) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `deadline`."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline}s")
        time.sleep(0.1)


@contextmanager
def revocation(d: Deployment, *target: str, reason: str) -> Iterator[str]:
    """`revoke TARGET --reason REASON` on the command line, lifted when the block ends (the
    [state] list is shared with every other user of the local PostgreSQL). What it printed."""
    done = d.cli("revoke", *target, "--reason", reason, "--by", BY)
    assert done.returncode == 0, f"revoke {' '.join(target)}:\n{done.stdout}{done.stderr}"
    try:
        yield done.stdout
    finally:
        lifted = d.cli("unrevoke", *target)
        assert lifted.returncode == 0 or "is not revoked" in lifted.stderr, lifted.stdout + lifted.stderr


def applied(d: Deployment, field: str, name: str) -> bool:
    """Whether every replica applied a change of its revocation list that `field` ("added",
    "removed") names `name` in."""
    return all(
        any(name in e.get(field, "") for e in trail_events(replica.errlog, "revocations_applied"))
        for replica in d.replicas
    )


def still_pending(d: Deployment, page: str) -> None:
    """The call behind `page`, as an approver who is not revoked reads it: pending, nobody's
    verdict on it."""
    shown = api("GET", page, d.token(APPROVER, "records:approve"))
    assert shown.status_code == 200, shown.text
    call = shown.json()
    assert call["status"].startswith("pending") and call["approvals"] == [] and call["denial"] is None, call


async def test_refuses_verdict_from_revoked_approver(tmp_path: Path) -> None:
    """An approver the revocation list names: the JSON API refuses their token (403, `revoked`)
    and the page refuses their sign-in, opening no session; the call stays pending."""
    erin = approver_user("erin")
    title = unique_principal("revoked-approver")
    with deployment(tmp_path, users=[erin]) as d:
        page = await parked_page(d, title)
        token = d.token(erin.email, "records:approve")
        assert api("GET", page, token).status_code == 200, "erin may read the call before the revocation"
        reason = f"approver offboarded {uuid.uuid4().hex[:8]}"
        with revocation(d, "--principal", erin.email, reason=reason) as said:
            assert f"revoked principal {erin.email}" in said, said

            def refused() -> httpx.Response | None:
                answer = api("GET", page, token)
                return answer if answer.status_code == 403 else None

            shown = until("the API still answers the revoked approver", refused)
            assert shown.json()["error"] == "revoked", shown.text
            assert reason in shown.json()["message"], shown.text
            for verdict in ("approve", "deny"):
                answer = api("POST", f"{page}/{verdict}", token)
                assert answer.status_code == 403, answer.text
                assert answer.json()["error"] == "revoked", answer.text

            seen = run_browser_approve(d, page, erin.email, erin.password, "approve")
            assert "the approver is revoked" in (seen["page_error"] or ""), seen
            assert reason in seen["page_error"], seen
            assert not seen["can_decide"] and seen["arguments"] is None, seen
            assert not [c for c in seen["cookies"] if c["name"] == SESSION_COOKIE and c["value"]], seen["cookies"]
            still_pending(d, page)
        assert rows_titled(title) == 0
        assert not [e for e in d.events() if e.get("event") in ("approved", "denied")], d.events()


async def test_refuses_session_cookie_of_principal_revoked_after_sign_in(tmp_path: Path) -> None:
    """An approver signed in on the page, then revoked: the session cookie they hold is refused
    (403, and cleared), for reading the call and for deciding it."""
    frank = approver_user("frank")
    title = unique_principal("revoked-session")
    with deployment(tmp_path, users=[frank]) as d:
        page = await parked_page(d, title)
        seen = run_browser_approve(d, page, frank.email, frank.password)
        assert seen["approver"] == frank.email and seen["can_decide"], seen
        cookie = session_cookie(seen)["value"]
        [csrf] = CSRF.findall(seen["html"])[:1]
        # The cookie alone opens the session, outside the browser too.
        before = with_cookie(page, cookie)
        assert before.status_code == 200, before.text
        assert f'id="approver">{frank.email}<' in before.text, before.text

        reason = f"laptop of the approver stolen {uuid.uuid4().hex[:8]}"
        with revocation(d, "--principal", frank.email, reason=reason):

            def refused() -> httpx.Response | None:
                answer = with_cookie(page, cookie)
                return answer if answer.status_code == 403 else None

            answer = until("the revoked approver's session still opens the page", refused)
            assert "the approver is revoked" in answer.text and reason in answer.text, answer.text
            assert "insertRecord" not in answer.text and title not in answer.text, answer.text
            cleared = answer.headers.get_list("set-cookie")
            assert any(c.startswith(f"{SESSION_COOKIE}=;") and "Max-Age=0" in c for c in cleared), cleared
            decided = with_cookie(page, cookie, "approve", csrf)
            assert decided.status_code == 403, decided.text
            assert "the approver is revoked" in decided.text, decided.text
            still_pending(d, page)
        assert rows_titled(title) == 0
        assert not [e for e in d.events() if e.get("event") in ("approved", "denied")], d.events()


async def test_accepts_revocation_of_an_approver_grant(tmp_path: Path) -> None:
    """`revoke --grant records:approve`, a grant no tool requires but insertRecord's approvers
    hold: every approval door refuses its holders' verdicts, and an approval given under it no
    longer lets the call run; lifted, it does again."""
    title = unique_principal("approver-grant")
    with deployment(tmp_path) as d:
        arguments = {"title": title, "body": "approved before the grant was revoked"}
        async with client(d.url, d.token(d.requester, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", arguments)
            page = parked.value.error.data["approval"]["url"]
            done = api("POST", f"{page}/approve", d.token(APPROVER, "records:approve"))
            assert done.status_code == 200 and done.json()["status"] == "approved", done.text
            other = await parked_page(d, unique_principal("approver-grant-other"))

            reason = f"approver grant under review {uuid.uuid4().hex[:8]}"
            with revocation(d, "--grant", "records:approve", reason=reason) as said:
                assert "revoked grant records:approve" in said, said
                until("a replica did not apply the revocation", lambda: applied(d, "added", "records:approve"))

                with pytest.raises(MCPError) as refused:
                    await session.call_tool("insertRecord", arguments)
                assert "approval pending (0 of 1 approvals)" in refused.value.error.message, refused.value.error
                assert rows_titled(title) == 0

                # No holder of the grant gives a verdict, at any door.
                for approver in (APPROVER, d.both):
                    answer = api("POST", f"{other}/approve", d.token(approver, "records:approve"))
                    assert answer.status_code == 403, answer.text
                    assert answer.json()["error"] == "revoked", answer.text
                    assert "records:approve" in answer.json()["message"], answer.text
                on_cli = approve_from_cli(records_binary(), d.configs[0], approval_id(other), approver_key())
                assert on_cli.returncode != 0, on_cli.stdout
                assert "the approver is revoked" in on_cli.stderr and reason in on_cli.stderr, on_cli.stderr
                seen = run_browser_approve(d, other, APPROVER, "bob-password", "approve")
                assert seen["approver"] == APPROVER, seen
                assert "the approver is revoked" in (seen["notice"] or ""), seen
                still_pending(d, other)
            until("a replica did not apply the lifted revocation", lambda: applied(d, "removed", "records:approve"))

            result = await session.call_tool("insertRecord", arguments)
            assert not result.is_error, text_of(result)
        assert rows_titled(title) == 1


async def test_refuses_unknown_approval_without_contacting_the_issuer(tmp_path: Path) -> None:
    """The page of an approval that does not exist answers 404 at once: the server asks the
    issuer nothing (the provider logs every request it receives), where the page of a real
    approval sends the browser to sign in, having asked the issuer where."""
    log = tmp_path / "provider-requests.jsonl"
    with deployment(tmp_path, request_log=log) as d:
        page = await parked_page(d, unique_principal("known"))
        before = provider_requests(log)
        for unknown in (secrets.token_hex(16), approval_id(page)[::-1]):
            answer = httpx.get(d.page(unknown), follow_redirects=False, timeout=30)
            assert answer.status_code == 404, (unknown, answer.status_code, answer.text)
            assert "no approval" in answer.text, answer.text
            assert "set-cookie" not in answer.headers, answer.headers
        time.sleep(0.5)
        assert provider_requests(log) == before, provider_requests(log)[len(before):]

        # The known approval's page does send the browser to the issuer, after asking it.
        known = httpx.get(page, follow_redirects=False, timeout=30)
        assert known.status_code == 303, known.text
        assert known.headers["location"].startswith(d.oidc.metadata()["authorization_endpoint"]), known.headers
        asked = provider_requests(log)[len(before):]
        assert asked, "the server asked the issuer nothing before sending the browser there"


async def test_refuses_arguments_to_signed_in_person_without_the_grant(tmp_path: Path) -> None:
    """dave signs in on the page and holds no records:approve: the page names the tool and who
    asked, and shows neither the arguments nor a way to decide; bob, who holds it, reads them."""
    canary = f"salary-of-{uuid.uuid4().hex[:8]}"
    title = unique_principal("private-args")
    with deployment(tmp_path) as d:
        page = await parked_page(d, title, body=canary)
        outsider = run_browser_approve(d, page, NOBODY, "dave-password")
        assert outsider["approver"] == NOBODY and outsider["tool"] == "insertRecord", outsider
        assert "does not hold `records:approve`" in (outsider["refusal"] or ""), outsider
        assert outsider["arguments"] is None and not outsider["can_decide"], outsider
        assert canary not in outsider["html"] and title not in outsider["html"], outsider["html"]
        denied = api("GET", page, d.token(NOBODY))
        assert denied.status_code == 403 and canary not in denied.text, denied.text

        holder = run_browser_approve(d, page, APPROVER, "bob-password")
        assert holder["approver"] == APPROVER and holder["can_decide"], holder
        assert canary in (holder["arguments"] or "") and title in holder["arguments"], holder
        still_pending(d, page)


async def test_escapes_bidi_overrides_in_arguments_shown_to_approvers(tmp_path: Path) -> None:
    """A right-to-left override in an argument would make the page show other text than the
    call holds ("invoice\u202etxt.exe" reads "invoiceexe.txt"): the page writes it out as
    `\\u{202e}`, and the character itself is nowhere on the page."""
    title = f"{unique_principal('bidi')} invoice\u202etxt.exe"
    body = "zero\u200bwidth"
    with deployment(tmp_path) as d:
        page = await parked_page(d, title, body=body)
        call = api("GET", page, d.token(APPROVER, "records:approve"))
        # The JSON API carries the arguments as they are, for a program to compare.
        assert call.status_code == 200 and call.json()["arguments"] == {"title": title, "body": body}, call.text
        seen = run_browser_approve(d, page, APPROVER, "bob-password")
        shown = seen["arguments"] or ""
        assert "invoice\\u{202e}txt.exe" in shown, shown
        assert "zero\\u{200b}width" in shown, shown
        for hidden in ("\u202e", "\u200b"):
            assert hidden not in seen["html"], f"{hidden!r} is on the page"


@pytest.mark.timeout(120)
async def test_rejects_session_past_its_tokens_expiry(tmp_path: Path) -> None:
    """The page's session lasts as long as the access token it was opened with (here 10 s, the
    provider's access-token lifetime), not its own 10 minutes: past it, the cookie reads nothing
    and decides nothing."""
    ttl = 10
    title = unique_principal("expiring")
    with deployment(tmp_path, access_token_ttl=ttl) as d:
        page = await parked_page(d, title)
        signed_in = time.time()
        seen = run_browser_approve(d, page, APPROVER, "bob-password")
        assert seen["approver"] == APPROVER and seen["can_decide"], seen
        cookie = session_cookie(seen)
        [csrf] = CSRF.findall(seen["html"])[:1]
        # The browser was told to keep the session until the token expires, and no longer.
        assert signed_in < cookie["expires"] <= time.time() + ttl + 1, (signed_in, cookie["expires"])
        expires = cookie["expires"]
        assert with_cookie(page, cookie["value"]).status_code == 200

        time.sleep(max(0.0, expires - time.time()) + 1.5)
        # Past the token's expiry the server opens no session with the cookie: a GET is sent to
        # sign in again, and a verdict is refused.
        again = with_cookie(page, cookie["value"])
        assert again.status_code == 303, again.text
        assert again.headers["location"].startswith(d.oidc.metadata()["authorization_endpoint"]), again.headers
        decided = with_cookie(page, cookie["value"], "approve", csrf)
        assert decided.status_code == 401, decided.text
        assert "sign in first" in decided.text, decided.text
        still_pending(d, page)
    assert rows_titled(title) == 0
