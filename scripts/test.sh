#!/usr/bin/env bash
# The test command: build everything, run the Rust tests, then the end-to-end tests in
# tests/python, which drive the real server binaries with the official MCP Python client in
# both of its connection modes (and three notes-server replicas behind nginx), then the
# official TypeScript client's tests in tests/typescript, then the conformance suite. Each fuzz
# target (fuzz/) also runs for a few seconds.
# Needs cargo, python3 (with venv) and npm; installs the Python side into .venv, the Node side
# into tests/*/node_modules, and Debian's nginx (scripts/nginx.sh) on first use.
#
# A build failure stops here; failing Rust tests do not stop the Python tests from running, but
# either makes the exit status non-zero. Extra arguments go to pytest: `./scripts/test.sh -k audit`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_venv
# The local AWS emulator (IAM enforcement on) for mcp-lp-aws and docs-server; the environment
# then names its non-root user as the process identity.
# An emulator this run started is stopped when it ends.
if ! "$REPO_ROOT/scripts/aws-emulator.sh" status >/dev/null 2>&1; then
    trap '"$REPO_ROOT/scripts/aws-emulator.sh" stop' EXIT
fi
"$REPO_ROOT/scripts/aws-emulator.sh" start
eval "$("$REPO_ROOT/scripts/aws-emulator.sh" env)"
# The local PostgreSQL for mcp-lp-db and records-server: a throwaway cluster in .cache/pg with
# password-authenticated roles. It stays up for the next run; `scripts/postgres.sh stop` stops it.
"$REPO_ROOT/scripts/postgres.sh" start
eval "$("$REPO_ROOT/scripts/postgres.sh" env)"

say "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
say "cargo build -p mcp-lp-db --features tls --all-targets"
cargo build -p mcp-lp-db --features tls --all-targets

failed=()

say "cargo test --workspace"
cargo test --workspace --no-fail-fast || failed+=("cargo test --workspace")
say "cargo test -p mcp-lp-db --features tls --test tls (TLS to the local PostgreSQL)"
cargo test -p mcp-lp-db --features tls --test tls || failed+=("cargo test -p mcp-lp-db --features tls")
say "cargo test -p mcp-lp-aws -- --ignored (against the AWS emulator)"
cargo test -p mcp-lp-aws --no-fail-fast -- --ignored || failed+=("cargo test -p mcp-lp-aws -- --ignored")

# Every fuzz target for a few seconds from its seeds, so the targets keep building and the
# seeds keep passing (scripts/fuzz.sh; longer runs are in docs/fuzzing.md).
"$REPO_ROOT/scripts/fuzz.sh" --smoke || failed+=("scripts/fuzz.sh --smoke")

TARGET_DIR="$(target_dir)"
export NOTES_SERVER_BIN="$TARGET_DIR/debug/notes-server"
export DOCS_SERVER_BIN="$TARGET_DIR/debug/docs-server"
export RECORDS_SERVER_BIN="$TARGET_DIR/debug/records-server"
export CONFORMANCE_SERVER_BIN="$TARGET_DIR/debug/conformance-server"

# nginx for the load-balancer tests (tests/python/test_load_balancer.py); without it they fail.
"$REPO_ROOT/scripts/nginx.sh" install || say "nginx is not available: the load-balancer tests will fail"

say "pytest tests/python (server: $NOTES_SERVER_BIN)"
"$VENV/bin/python" -m pytest -q tests/python "$@" || failed+=("pytest tests/python")
"$REPO_ROOT/scripts/ts-tests.sh" || failed+=("scripts/ts-tests.sh")
CONFORMANCE_SERVER_BIN="$TARGET_DIR/debug/conformance-server" "$REPO_ROOT/scripts/conformance.sh" || failed+=("scripts/conformance.sh")

if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
