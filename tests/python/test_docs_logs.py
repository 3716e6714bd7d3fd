"""At TRACE level, everything docs-server logs (its own events, rmcp's, the AWS SDK's) holds no
secret access key and no session token."""

from __future__ import annotations

import re

import pytest

from docs_harness import (  # noqa: F401  (fixtures)
    SESSION_TOKEN_PREFIX,
    assume_role_calls,
    connect_docs,
    docs_config,
    docs_server,
    now,
    put_document,
    seed,
    server_env,
    server_secret_key,
    unique_principal,
)
from notes_harness import call_approved, grants_toml, text_of

pytestmark = pytest.mark.anyio


async def test_rejects_secrets_and_session_tokens_in_trace_logs(docs_server, docs_config, seed, tmp_path, connect_docs):
    key = put_document("private/", "traced")
    principal = unique_principal("traced")
    config = docs_config.write(principal, grants=grants_toml("docs:delete"))
    errlog = tmp_path / "err.jsonl"
    since = now()
    env = server_env(seed, RUST_LOG="trace")
    async with connect_docs(docs_server, config, errlog, env) as session:
        for tool, args in [("listDocuments", {}), ("readDocument", {"key": key}), ("deleteDocument", {"key": key})]:
            # deleteDocument runs once approved from the command line.
            result = await call_approved(session, docs_server, config, tool, args, env=env)
            assert not result.is_error, text_of(result)
    logs = errlog.read_text(encoding="utf-8")
    # The capture is at TRACE and covers the SDK's signing and sending.
    assert '"level":"TRACE"' in logs and "aws_smithy_runtime" in logs
    # Session tokens were issued ...
    assert len(assume_role_calls(since, principal)) == 3  # one session per tool
    # ... and none of them, nor the process's secret key, reached the log.
    assert server_secret_key(seed) not in logs
    leaked = re.findall(SESSION_TOKEN_PREFIX + r"[0-9a-f]{16,}", logs)
    assert leaked == [], f"{len(leaked)} session tokens in the TRACE log"
