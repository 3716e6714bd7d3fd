"""docs-server end to end against the local AWS emulator with IAM enforcement on: the emulator,
not the server's code, decides what each tool's credentials may do."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from docs_harness import (  # noqa: F401  (fixtures)
    assume_role_calls,
    connect_docs,
    docs_config,
    docs_server,
    env,
    exists,
    now,
    put_document,
    seed,
    unique_principal,
)
from notes_harness import FORBIDDEN, call_approved, call_error, grants_toml, text_of

pytestmark = pytest.mark.anyio


async def test_accepts_list_and_read_with_read_role(docs_server, docs_config, env, tmp_path, connect_docs):
    key = put_document("public/", "# Hello\n")
    config = docs_config.write(unique_principal("reader"))
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        listed = await session.call_tool("listDocuments", {"prefix": "public/"})
        assert not listed.is_error, text_of(listed)
        assert key in listed.structured_content["keys"]
        assert all(k.startswith("public/") for k in listed.structured_content["keys"])

        read = await session.call_tool("readDocument", {"key": key})
        assert not read.is_error, text_of(read)
        assert text_of(read) == "# Hello\n"

        missing = await call_error(session, "readDocument", {"key": "public/absent.md"})
        assert "no document `public/absent.md`" in missing


async def test_rejects_delete_with_read_role_credentials(docs_server, docs_config, env, tmp_path, seed, connect_docs):
    # An operator maps docs-delete to the read-only role by mistake: the emulator refuses the
    # delete, even once a person approved it, because that role's credentials cannot delete.
    key = put_document("private/", "keep me")
    config = docs_config.write(
        unique_principal("misconfigured"),
        grants=grants_toml("docs:delete"),
        delete_role=seed["roles"]["mcp-read-only"],
    )
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        result = await call_approved(session, docs_server, config, "deleteDocument", {"key": key}, env=env)
        assert result.is_error, f"the delete with read-only credentials succeeded: {text_of(result)!r}"
        message = text_of(result)
    assert "S3 DeleteObject with role `docs-delete` failed: AccessDenied" in message, message
    assert "assumed-role/mcp-read-only/" in message, message
    assert exists(key), "read-only credentials deleted the document"


async def test_rejects_delete_without_grant_and_assumes_no_role(docs_server, docs_config, env, tmp_path, connect_docs):
    key = put_document("private/", "keep me")
    principal = unique_principal("nogrant")
    config = docs_config.write(principal, grants="[]")
    since = now()
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        assert tools == ["listDocuments", "readDocument"]
        with pytest.raises(MCPError) as refused:
            await session.call_tool("deleteDocument", {"key": key})
        assert refused.value.error.code == FORBIDDEN
        assert "docs:delete" in refused.value.error.message
        # The counter counts: the read assumes its role, once.
        read = await session.call_tool("readDocument", {"key": key})
        assert not read.is_error, text_of(read)
    assert assume_role_calls(since, f"deleteDocument.{principal}") == []
    assert len(assume_role_calls(since, f"readDocument.{principal}")) == 1
    assert exists(key), "a refused delete removed the document"


async def test_accepts_delete_with_grant_attributed_to_principal(
    docs_server, docs_config, env, tmp_path, seed, connect_docs
):
    key = put_document("private/", "delete me")
    principal = unique_principal("granted")
    config = docs_config.write(principal, grants=grants_toml("docs:delete"))
    since = now()
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        result = await call_approved(session, docs_server, config, "deleteDocument", {"key": key}, env=env)
        assert not result.is_error, text_of(result)
        assert text_of(result) == f"deleted document `{key}`"
    assert not exists(key), "the granted and approved delete left the document"
    # One role assumed, for the approved call; the parked one assumed none.
    [call] = assume_role_calls(since, principal)
    # CloudTrail names the person and the tool, not only the server.
    assert call["RoleArn"] == seed["roles"]["mcp-delete"]
    assert call["RoleSessionName"] == f"deleteDocument.{principal}"
    assert call["SourceIdentity"] == principal
    assert call["DurationSeconds"] == "900"
    tags = {call[f"Tags.member.{i}.Key"]: call[f"Tags.member.{i}.Value"] for i in (1, 2)}
    assert tags == {"mcp-tool": "deleteDocument", "mcp-principal": principal}


async def test_rejects_document_outside_session_policy(docs_server, docs_config, env, tmp_path, connect_docs):
    public = put_document("public/", "public text")
    private = put_document("private/", "private text")
    policy = tmp_path / "public-only.json"
    policy.write_text(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",'
        f'"Resource":"arn:aws:s3:::{docs_config.seed["bucket"]}/public/*"}}]}}',
        encoding="utf-8",
    )
    config = docs_config.write(unique_principal("narrowed"), read_extra='session_policy = "public-only.json"')
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        allowed = await session.call_tool("readDocument", {"key": public})
        assert not allowed.is_error, text_of(allowed)
        # mcp-read-only may read private/; the session policy narrows it and the emulator denies.
        message = await call_error(session, "readDocument", {"key": private})
    assert "S3 GetObject with role `docs-read` failed: AccessDenied" in message, message


async def test_accepts_reads_across_credential_expiry(docs_server, docs_config, env, tmp_path, connect_docs):
    key = put_document("public/", "still here")
    principal = unique_principal("rollover")
    # 3-second sessions, which the emulator expires: a read signed with expired credentials
    # would fail with ExpiredToken.
    config = docs_config.write(principal, read_extra='duration = "3s"', aws_extra="allow_short_sessions = true")
    since = now()
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        for i in range(30):
            result = await session.call_tool("readDocument", {"key": key})
            assert not result.is_error, f"read {i}: {text_of(result)}"
            await anyio.sleep(0.3)
    rollovers = assume_role_calls(since, f"readDocument.{principal}")
    assert len(rollovers) >= 3, f"9 s of 3 s sessions should have rolled over at least twice: {len(rollovers)}"


async def test_rejects_unassumable_role_and_keeps_serving(docs_server, docs_config, env, tmp_path, seed, connect_docs):
    key = put_document("private/", "x")
    config = docs_config.write(
        unique_principal("untrusted"), grants=grants_toml("docs:delete"), read_role=seed["roles"]["mcp-not-trusting"]
    )
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        for _ in range(2):
            message = await call_error(session, "readDocument", {"key": key})
            assert "cannot assume IAM role `docs-read`: STS AccessDenied" in message, message
            # STS's own text names the process's identity and account: it stays in the log.
            assert "arn:aws" not in message and "000000000000" not in message, message
        # No fallback, and the server keeps serving: the other role still works.
        deleted = await call_approved(session, docs_server, config, "deleteDocument", {"key": key}, env=env)
        assert not deleted.is_error, text_of(deleted)
    assert not exists(key)


async def test_rejects_unreachable_sts_and_keeps_serving(docs_server, docs_config, env, tmp_path, connect_docs):
    # Nothing listens on port 9: STS is unreachable.
    config = docs_config.write(unique_principal("offline"), endpoint="http://127.0.0.1:9")
    async with connect_docs(docs_server, config, tmp_path / "err.jsonl", env) as session:
        for _ in range(2):
            message = await call_error(session, "readDocument", {"key": "public/welcome.md"})
            assert "cannot assume IAM role `docs-read`" in message, message
            assert "no answer from STS" in message, message
        tools = await session.list_tools()
        assert len(tools.tools) == 2
