"""Revocation across replicas: three records-server replicas behind nginx share the `[state]`
PostgreSQL store, whose revocation list is pushed to each by LISTEN/NOTIFY. `revoke --all` run
once reaches every replica; with PostgreSQL stopped, what was revoked stays revoked and, after
`[governance] fail_closed_after`, privileged tools are refused.

Each replica is called on its own port (not through nginx) so that each one is seen to refuse.
The polling deadlines only bound how long a failing run waits; nothing here asserts a time
(scripts/revocation-latency.sh measures the distribution)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

from http_harness import KeyServer, Minter
from lb_harness import ToolCaller, balanced_records, refusal, run_verb, timed_verb
from notes_harness import REPO_ROOT, assert_negotiated, audit_events, open_client, text_of, trail_events
from records_harness import records_binary, state_toml, unique_principal, url_file, write_config

pytestmark = pytest.mark.anyio

REPLICAS = 3
BY = "oncall@example.com"
QUERY = ("queryRecords", {"limit": 1})
POSTGRES_SH = REPO_ROOT / "scripts" / "postgres.sh"


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    with KeyServer().serving() as keys:
        yield keys


@pytest.fixture
def binary() -> Path:
    path = records_binary()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p records-server` or run ./scripts/test.sh")
    return path


@asynccontextmanager
async def stateless_client(url: str, token: str) -> AsyncIterator[Client]:
    """The official client in mode="auto" (2026-07-28, no session) through `url`."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with open_client(streamable_http_client(url, http_client=http), "auto") as client:
            assert_negotiated(client, "auto")
            yield client


def accepted(answer: dict[str, Any]) -> bool:
    return "result" in answer and not answer["result"].get("isError")


def lift(binary: Path, config: Path, *target: str) -> None:
    """Lift a revocation this test made, if it is still in force (cleanup: the `[state]` list is
    shared with every other user of the local PostgreSQL)."""
    done = subprocess.run(
        [str(binary), "--config", str(config), "unrevoke", *target],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 or "is not revoked" in done.stderr, done.stdout + done.stderr


def postgres(verb: str) -> None:
    done = subprocess.run([str(POSTGRES_SH), verb], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"scripts/postgres.sh {verb} failed:\n{done.stdout}{done.stderr}"


def config_of(tmp_path: Path, i: int) -> Path:
    return tmp_path / f"replica-{i}.toml"


async def test_enforces_revoke_all_on_every_replica(binary: Path, keys: KeyServer, tmp_path: Path) -> None:
    with balanced_records(binary, tmp_path, keys, tmp_path / "logs", REPLICAS) as balanced:
        token = Minter(keys, audience=balanced.url).token(sub=unique_principal("breakglass"), scope="records:write")
        callers = [ToolCaller(replica.url, token) for replica in balanced.replicas]
        config = config_of(tmp_path, 0)
        reason = f"breakglass drill {uuid.uuid4().hex[:8]}"
        revoked = False
        try:
            for i, caller in enumerate(callers):
                answer = caller.call(*QUERY)
                assert accepted(answer), f"replica {i} before the revocation: {answer}"

            revoked = True
            revoke = ["revoke", "--all", "--reason", reason, "--by", BY]
            timed = timed_verb(binary, config, revoke, callers, *QUERY, done=lambda a: refusal(a) is not None)
            assert "revoked everything" in timed.stdout, timed.stdout
            print(f"\nrevoke --all: CLI process {timed.cli_seconds * 1000:.0f} ms")
            for i, (seconds, answer) in enumerate(zip(timed.seconds, timed.answers)):
                assert seconds is not None, f"replica {i} still served after `revoke --all`: {answer}"
                message = refusal(answer)
                assert message and f"everything is revoked: {reason} (by {BY} at " in message, (i, answer)
                print(f"replica {i}: first refused call {seconds * 1000:.0f} ms after the revoke command started")

            # Through the balancer, with the official client: refused, and nothing listed.
            async with stateless_client(balanced.url, token) as client:
                assert (await client.list_tools(cache_mode="bypass")).tools == []
                with pytest.raises(MCPError) as refused:
                    await client.call_tool(*QUERY)
                assert "everything is revoked" in refused.value.error.message

            lifted = timed_verb(binary, config, ["unrevoke", "--all"], callers, *QUERY, done=accepted)
            revoked = False
            assert "lifted the revocation of everything" in lifted.stdout, lifted.stdout
            for i, (seconds, answer) in enumerate(zip(lifted.seconds, lifted.answers)):
                assert seconds is not None, f"replica {i} still refuses after `unrevoke --all`: {answer}"
        finally:
            if revoked:
                lift(binary, config, "--all")
            for caller in callers:
                caller.close()

        # Served again through nginx, on every replica in turn.
        async with stateless_client(balanced.url, token) as client:
            for i in range(2 * REPLICAS):
                result = await client.call_tool(*QUERY)
                assert not result.is_error, f"call {i} through nginx: {text_of(result)}"

        for i, replica in enumerate(balanced.replicas):
            applied = trail_events(replica.errlog, "revocations_applied")
            assert "everything" in [e["added"] for e in applied], (i, applied)
            assert "everything" in [e["removed"] for e in applied], (i, applied)
            refused = [e for e in audit_events(replica.errlog) if e["outcome"] == "revoked"]
            assert refused, f"replica {i} audited no revoked call"


class Blackhole:
    """A TCP port that accepts connections and never answers, as a database host that hangs
    does; it counts who connected."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


def test_revokes_all_while_the_app_database_is_down(binary: Path, keys: KeyServer, tmp_path: Path) -> None:
    """`revoke --all` opens only the `[state]` store: run with a configuration whose
    application databases hang (both capability URLs point at a port that never answers), it
    succeeds without connecting to them, and every replica refuses. Before, the command built
    the whole server and waited on the application's database first."""
    with balanced_records(binary, tmp_path, keys, tmp_path / "logs", REPLICAS) as balanced:
        token = Minter(keys, audience=balanced.url).token(sub=unique_principal("app-down"), scope="records:write")
        callers = [ToolCaller(replica.url, token) for replica in balanced.replicas]
        config = config_of(tmp_path, 0)
        hung = Blackhole()
        text = config.read_text(encoding="utf-8")
        for capability in ("records-read", "records-write"):
            real = url_file(capability)
            url = real.read_text(encoding="utf-8").strip()
            dead = tmp_path / f"{capability}-down.url"
            dead.write_text(re.sub(r"@[^/]+/", f"@127.0.0.1:{hung.port}/", url, count=1) + "\n", encoding="utf-8")
            dead.chmod(0o600)
            assert str(real) in text, text
            text = text.replace(str(real), str(dead))
        app_down = tmp_path / "replica-0-app-down.toml"
        app_down.write_text(text, encoding="utf-8")
        app_down.chmod(0o600)
        reason = f"breakglass with the app database down {uuid.uuid4().hex[:8]}"
        revoked = False
        try:
            for i, caller in enumerate(callers):
                answer = caller.call(*QUERY)
                assert accepted(answer), f"replica {i} before the revocation: {answer}"

            revoked = True
            revoke = ["revoke", "--all", "--reason", reason, "--by", BY]
            timed = timed_verb(binary, app_down, revoke, callers, *QUERY, done=lambda a: refusal(a) is not None)
            assert "revoked everything" in timed.stdout, timed.stdout
            assert hung.accepted == [], "revoke --all connected to the application's database"
            print(f"\nrevoke --all with the app database down: CLI process {timed.cli_seconds * 1000:.0f} ms")
            for i, (seconds, answer) in enumerate(zip(timed.seconds, timed.answers)):
                assert seconds is not None, f"replica {i} still served after `revoke --all`: {answer}"
                message = refusal(answer)
                assert message and f"everything is revoked: {reason} (by {BY} at " in message, (i, answer)

            # The same configuration cannot serve: building the application needs its database.
            check = subprocess.run(
                [str(binary), "--config", str(app_down), "check"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert check.returncode != 0, check.stdout
            assert "records-read" in check.stderr, check.stderr
            assert hung.accepted, "check never tried the application's database"
        finally:
            if revoked:
                lift(binary, config, "--all")
            for caller in callers:
                caller.close()
            hung.close()


@pytest.mark.timeout(180)
async def test_keeps_revocations_and_fails_closed_when_postgres_is_killed(
    binary: Path, keys: KeyServer, tmp_path: Path
) -> None:
    governance = 'fail_closed_after = "2s"'
    with balanced_records(binary, tmp_path, keys, tmp_path / "logs", REPLICAS, governance=governance) as balanced:
        minter = Minter(keys, audience=balanced.url)
        revoked_principal = unique_principal("revoked")
        holder = unique_principal("holder")
        revoked_token = minter.token(sub=revoked_principal, scope="records:write")
        holder_token = minter.token(sub=holder, scope="records:write")
        revoked_callers = [ToolCaller(r.url, revoked_token) for r in balanced.replicas]
        holder_callers = [ToolCaller(r.url, holder_token) for r in balanced.replicas]
        # insertRecord requires records:write (privileged). Whether it then runs or is parked
        # for a person's approval, what is under test is whether the revocation list lets it by.
        insert = ("insertRecord", {"title": "fail closed", "body": "written while the store is up"})
        config = config_of(tmp_path, 0)
        reason = f"offboarded {uuid.uuid4().hex[:8]}"
        revoked = False
        try:
            for i in range(REPLICAS):
                assert refusal(answer := holder_callers[i].call(*insert)) is None, (i, answer)
                assert accepted(answer := revoked_callers[i].call(*QUERY)), (i, answer)

            revoked = True
            timed = timed_verb(
                binary, config, ["revoke", "--principal", revoked_principal, "--reason", reason, "--by", BY],
                revoked_callers, *QUERY, done=lambda a: refusal(a) is not None,
            )
            for i, answer in enumerate(timed.answers):
                assert timed.seconds[i] is not None, f"replica {i} still serves the revoked principal: {answer}"

            postgres("stop")
            try:
                # Known revocations stay in force without the store, at once and later.
                for i, caller in enumerate(revoked_callers):
                    message = refusal(answer := caller.call(*QUERY))
                    assert message and f"principal {revoked_principal} is revoked: {reason}" in message, (i, answer)

                # After fail_closed_after without the store, privileged tools are refused.
                for i, caller in enumerate(holder_callers):
                    deadline = time.monotonic() + 30
                    while "privileged tools are refused" not in (message := refusal(answer := caller.call(*insert)) or ""):
                        assert time.monotonic() < deadline, f"replica {i} did not fail closed: {answer}"
                        time.sleep(0.2)
                    # Refused for having gone fail_closed_after (2 s) without reading the list.
                    unread = re.search(r"has not been read for (\d+)s", message)
                    assert unread and int(unread.group(1)) >= 2, message
                    # A tool that requires no grant is not refused by the checkpoint (it fails
                    # on its own database, which is down).
                    assert refusal(answer := caller.call(*QUERY)) is None, (i, answer)
                for i, caller in enumerate(revoked_callers):
                    for tool in (QUERY, insert):
                        message = refusal(answer := caller.call(*tool))
                        assert message and f"principal {revoked_principal} is revoked: {reason}" in message, (i, answer)
            finally:
                postgres("start")

            # The store is back: the list lets privileged tools by again; the revocation holds.
            for i, caller in enumerate(holder_callers):
                deadline = time.monotonic() + 30
                while refusal(answer := caller.call(*insert)) is not None:
                    assert time.monotonic() < deadline, f"replica {i} refuses after PostgreSQL restarted: {answer}"
                    time.sleep(0.2)
            for i, caller in enumerate(revoked_callers):
                message = refusal(answer := caller.call(*QUERY))
                assert message and f"principal {revoked_principal} is revoked: {reason}" in message, (i, answer)

            run_verb(binary, config, "unrevoke", "--principal", revoked_principal)
            revoked = False
            for i, caller in enumerate(revoked_callers):
                deadline = time.monotonic() + 20
                while not accepted(answer := caller.call(*QUERY)):
                    assert time.monotonic() < deadline, f"replica {i} still refuses after `unrevoke`: {answer}"
                    time.sleep(0.1)
        finally:
            if revoked:
                lift(binary, config, "--principal", revoked_principal)
            for caller in revoked_callers + holder_callers:
                caller.close()

        for i, replica in enumerate(balanced.replicas):
            events = audit_events(replica.errlog)
            unreachable = [e for e in events if "privileged tools are refused" in e.get("reason", "")]
            assert unreachable, f"replica {i} audited no call refused for the store being unreachable"
            assert all(
                (e["outcome"], e["principal"], e["tool"]) == ("revoked", holder, "insertRecord") for e in unreachable
            ), (i, unreachable)


def test_refuses_revocation_change_without_the_operator_role(binary: Path, tmp_path: Path) -> None:
    """The replicas' [state] role reads the revocation list and cannot change it: a command
    line given only the replicas' URL names `operator_url` instead of revoking."""
    config = write_config(tmp_path, unique_principal("replica"), extra=state_toml(tmp_path, operator=False))
    target = unique_principal("not-revoked")
    for verb in (["revoke", "--principal", target, "--reason", "r", "--by", BY], ["unrevoke", "--principal", target]):
        done = subprocess.run(
            [str(binary), "--config", str(config), *verb],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode != 0, done.stdout
        assert "operator_url" in done.stderr, done.stderr
    listed = run_verb(binary, config, "revocations")
    assert target not in listed.stdout, listed.stdout
