#!/usr/bin/env bash
# Load with faults: the docs and records servers over streamable HTTP, 16 concurrent MCP
# 2026-07-28 clients with JWTs, for 60 s (loopback only; it stops by itself), while PostgreSQL
# restarts, the AWS emulator is stopped for 10 s and started again, and a database pool is
# exhausted. Prints a table per phase; exits non-zero when a call went unanswered, a server
# panicked, an audit event is missing or a broader role was assumed. See tests/python/soak.py.
#
#   scripts/soak.sh                      60 s, 16 clients
#   scripts/soak.sh --seconds 12 --clients 4    the smoke run the test command makes
#
# Starts PostgreSQL and the emulator when they are not running, and builds the two servers
# unless DOCS_SERVER_BIN and RECORDS_SERVER_BIN name built binaries.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_venv
if ! "$REPO_ROOT/scripts/aws-emulator.sh" status >/dev/null 2>&1; then
    trap '"$REPO_ROOT/scripts/aws-emulator.sh" stop' EXIT
fi
"$REPO_ROOT/scripts/aws-emulator.sh" start
eval "$("$REPO_ROOT/scripts/aws-emulator.sh" env)"
"$REPO_ROOT/scripts/postgres.sh" start
eval "$("$REPO_ROOT/scripts/postgres.sh" env)"

if [[ -z "${DOCS_SERVER_BIN:-}" || -z "${RECORDS_SERVER_BIN:-}" ]]; then
    say "cargo build -p docs-server -p records-server"
    cargo build -p docs-server -p records-server
    export DOCS_SERVER_BIN="$(target_dir)/debug/docs-server"
    export RECORDS_SERVER_BIN="$(target_dir)/debug/records-server"
fi

cd "$REPO_ROOT/tests/python"
exec "$VENV/bin/python" soak.py "$@"
