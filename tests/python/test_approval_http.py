"""Approval of the exact call over HTTP, end to end: the records server (its `insertRecord` needs
`records:approve`) serves streamable HTTP behind a real OpenID provider (oidc-provider, see
tests/oidc), keeps approvals in the `[state]` PostgreSQL store, and offers its two approval
doors: a JSON API for an approver's own bearer token, and an HTML page an approver signs in to
(authorization code with PKCE, driven in headless Chromium). The official Python client's
URL-elicitation callback drives the approver."""

from __future__ import annotations

import asyncio
import json
import re
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
from notes_harness import STATELESS_PROTOCOL_VERSION, assert_negotiated, open_client, text_of, toml_str, trail_events
from oidc_harness import OIDC_DIR, OidcProvider, oidc_provider, provider_node, run_browser
from records_harness import pg_env, records_binary, unique_principal, write_config

pytestmark = pytest.mark.anyio

URL_ELICITATION_REQUIRED = -32042
FORBIDDEN = -32003
REQUESTER, APPROVER, NOBODY, BOTH = (
    "alice@example.com",
    "bob@example.com",
    "dave@example.com",
    "carol@example.com",
)


@dataclass
class Deployment:
    oidc: OidcProvider
    url: str
    """What clients and tokens name: the server, or the balancer in front of the replicas."""
    replicas: list[Any]

    def token(self, user: str, *scopes: str) -> str:
        return self.oidc.token_for(user, scopes=scopes, resource=self.url)

    def page(self, approval: str) -> str:
        return f"{self.url.rsplit('/mcp', 1)[0]}/approvals/{approval}"

    def events(self) -> list[dict[str, Any]]:
        return [e for replica in self.replicas for e in trail_events(replica.errlog)]


def state_table() -> str:
    url = pg_env().get("MCP_LP_PG_STATE_URL_FILE")
    if not url or not Path(url).is_file():
        pytest.fail("MCP_LP_PG_STATE_URL_FILE names no file: start PostgreSQL with `scripts/postgres.sh start`")
    return f"\n[state]\nurl = {{ file = {toml_str(url)} }}\n"


@contextmanager
def deployment(tmp_path: Path, replicas: int = 1) -> Iterator[Deployment]:
    """Records-server replicas on HTTP (behind nginx when more than one) sharing [state] and a
    sealing key, trusting a fresh OpenID provider whose approval-page client redirects to them."""
    ports = [free_port() for _ in range(replicas)]
    front = free_port() if replicas > 1 else ports[0]
    url = f"http://127.0.0.1:{front}/mcp"
    with oidc_provider(approval_redirect_uris=[f"http://127.0.0.1:{front}/approvals/callback"]) as oidc:
        secret = tmp_path / "approvals-client.secret"
        secret.write_text(oidc.approvals_client_secret, encoding="utf-8")
        key = tmp_path / "sealing.key"
        key.write_text("a-sealing-key-shared-by-the-replicas-of-the-test", encoding="utf-8")
        extra = (
            state_table()
            + f'\n[request_state]\nkeys = [{{ id = "shared", secret = {{ file = {toml_str(str(key))} }} }}]\n\n'
        )

        def config_for(i: int, port: int, resource: str) -> Path:
            text = extra + oidc.http_toml(port, resource=resource) + (
                f'\n[http.approvals]\nclient_id = "mcp-lp-approvals"\nclient_secret = {{ file = {toml_str(str(secret))} }}\n'
            )
            return write_config(tmp_path, "stdio-unused@example.com", extra=text, name=f"replica-{i}.toml")

        binary = records_binary()
        if replicas == 1:
            with serve_http(binary, config_for(0, ports[0], url), ports[0], tmp_path / "replica-0.jsonl") as server:
                yield Deployment(oidc, url, [server])
        else:
            with replicas_behind_nginx(
                binary, lambda i, port, resource: config_for(i, port, resource), tmp_path / "replicas", replicas
            ) as balanced:
                yield Deployment(oidc, balanced.url, balanced.replicas)


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
                "insertRecord", REQUESTER, {"title": title, "body": "approved"}
            )
            assert call["why"].startswith("Insert a record owned by the caller."), call
            done = api("POST", f"{params.url}/approve", approver)
            assert done.status_code == 200 and done.json()["status"] == "approved", done.text
            return ElicitResult(action="accept")

        requester = d.token(REQUESTER, "records:write")
        async with client(d.url, requester, "auto", elicitation_callback=approve) as session:
            result = await session.call_tool("insertRecord", {"title": title, "body": "approved"})
            assert not result.is_error, text_of(result)
            assert result.structured_content["owner"] == REQUESTER
        assert len(asked) == 1 and asked[0].startswith(d.page(""))
        assert rows_titled(title) == 1
        events = d.events()
        ran = [e for e in events if e.get("tool") == "insertRecord" and e.get("outcome") == "ok"]
        assert [e["approvers"] for e in ran] == [APPROVER]
        assert any(e.get("event") == "approved" and e.get("by") == APPROVER for e in events), events


async def test_accepts_legacy_client_after_approval_with_the_url_in_the_error(tmp_path: Path) -> None:
    """2025-11-25: a URLElicitationRequiredError (-32042) carries the page and the approval id;
    after the approval the same call again runs."""
    title = unique_principal("legacy")
    with deployment(tmp_path) as d:
        arguments = {"title": title, "body": "legacy"}
        async with client(d.url, d.token(REQUESTER, "records:write"), "legacy") as session:
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

        async with client(d.url, d.token(REQUESTER, "records:write"), "auto", elicitation_callback=walk_away) as session:
            with pytest.raises(MCPError) as refused:
                await session.call_tool("insertRecord", {"title": title, "body": "x"})
            assert refused.value.error.code == FORBIDDEN
            assert "approval pending (0 of 1 approvals)" in refused.value.error.message
        assert rows_titled(title) == 0


async def parked_page(d: Deployment, title: str) -> str:
    """Park an insert by the requester (2025-11-25) and return its approval page."""
    async with client(d.url, d.token(REQUESTER, "records:write"), "legacy") as session:
        with pytest.raises(MCPError) as parked:
            await session.call_tool("insertRecord", {"title": title, "body": "x"})
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
        async with client(d.url, d.token(BOTH, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", {"title": title, "body": "x"})
        page = parked.value.error.data["approval"]["url"]
        refused = api("POST", f"{page}/approve", d.token(BOTH, "records:approve"))
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
        async with client(d.url, d.token(BOTH, "records:write"), "legacy") as session:
            with pytest.raises(MCPError) as parked:
                await session.call_tool("insertRecord", arguments)
            page = parked.value.error.data["approval"]["url"]
            assert "?" not in page, "no secret rides in the page's URL"

            own = run_browser_approve(d, page, BOTH, "carol-password", "approve")
            assert own["approver"] == BOTH and not own["can_decide"], own
            assert "another person approves it" in own["refusal"], own
            outsider = run_browser_approve(d, page, NOBODY, "dave-password", "approve")
            assert not outsider["can_decide"] and "does not hold `records:approve`" in outsider["refusal"], outsider

            seen = run_browser_approve(d, page, APPROVER, "bob-password", "approve")
            assert (seen["tool"], seen["requester"], seen["approver"]) == ("insertRecord", BOTH, APPROVER), seen
            assert json.loads(seen["arguments"]) == arguments
            assert seen["status"].startswith("pending") and seen["after"] == "approved", json.dumps(seen)
            assert seen["notice"] == "You approved this call.", seen

            result = await session.call_tool("insertRecord", arguments)
            assert not result.is_error, text_of(result)
        assert rows_titled(title) == 1


def run_browser_approve(d: Deployment, page: str, email: str, password: str, action: str) -> dict[str, Any]:
    import os
    import subprocess

    from oidc_harness import chromium_path

    env = {**os.environ, "MCP_LP_OIDC_CHROMIUM": chromium_path()}
    done = subprocess.run(
        [provider_node(), str(OIDC_DIR / "approve.mjs"), page, email, password, action],
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
        token = d.token(REQUESTER, "records:write")
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
        token = d.token(REQUESTER, "records:write")
        approval, state = parked_state(d, token, {"title": title, "body": "approved"})
        done = api("POST", f"{d.page(approval)}/approve", d.token(APPROVER, "records:approve"))
        assert done.status_code == 200, done.text
        changed = retry_with(d, token, {"title": title, "body": "something else"}, state)
        assert "arguments differ from those approved" in changed["error"]["message"], changed
        assert rows_titled(title) == 0


async def test_rejects_tampered_request_state(tmp_path: Path) -> None:
    title = unique_principal("tampered")
    with deployment(tmp_path) as d:
        token = d.token(REQUESTER, "records:write")
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
        approval, state = parked_state(d, d.token(REQUESTER, "records:write"), arguments)
        assert api("POST", f"{d.page(approval)}/approve", d.token(APPROVER, "records:approve")).status_code == 200
        refused = retry_with(d, d.token(BOTH, "records:write"), arguments, state)
        assert refused["error"]["data"]["request_state"] == "other_principal", refused
        assert rows_titled(title) == 0
