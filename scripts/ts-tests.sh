#!/usr/bin/env bash
# The TypeScript client tests: the official MCP TypeScript SDK's clients, 1.x
# (@modelcontextprotocol/sdk, 2025-11-25) and 2.x (@modelcontextprotocol/client, 2026-07-28 and
# 2025-11-25), pinned in tests/typescript/package-lock.json with the Node.js 22 they run on, drive
# notes-server over stdio and over streamable HTTP with OAuth, under node's built-in test runner.
# The servers, workspaces and tokens come from the Python harness (tests/python/ts_fixture.py),
# so .venv is set up too.
#
# Uses $NOTES_SERVER_BIN, else builds notes-server. Extra arguments go to node's test runner:
# `./scripts/ts-tests.sh --test-name-pattern 403`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

TESTS_DIR="$REPO_ROOT/tests/typescript"

ensure_venv
ensure_npm_dir "$TESTS_DIR"
NODE="$(pinned_node "$TESTS_DIR")"

if [[ -z "${NOTES_SERVER_BIN:-}" ]]; then
    say "cargo build -p notes-server"
    cargo build -q -p notes-server
    NOTES_SERVER_BIN="$(target_dir)/debug/notes-server"
fi
export NOTES_SERVER_BIN

package_version() {
    "$NODE" -p "require('./tests/typescript/node_modules/$1/package.json').version"
}
say "TypeScript client tests: @modelcontextprotocol/sdk $(package_version @modelcontextprotocol/sdk)" \
    "and @modelcontextprotocol/client $(package_version @modelcontextprotocol/client)" \
    "on node $("$NODE" --version) (server: $NOTES_SERVER_BIN)"
exec "$NODE" --test --test-reporter=spec "$@" "$TESTS_DIR"/*.test.mjs
