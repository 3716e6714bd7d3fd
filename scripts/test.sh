#!/usr/bin/env bash
# The test command: build everything; check the docs (`cargo doc`, warnings as errors), the
# declared rust-version (scripts/msrv.sh) and the packages (scripts/package.sh --verify), and
# build the README's "Your first server" on those packages (tests/starter); run the Rust tests,
# then the end-to-end tests in tests/python, which drive the real server binaries with the
# official MCP Python client in both of its connection modes (and three notes-server replicas
# behind nginx), then the official TypeScript client's tests in tests/typescript, the MCP
# Inspector lines we print (scripts/inspector-check.sh), then the conformance suite.
# Each fuzz target (fuzz/) also runs for a few seconds, and a short load with faults ends the run.
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
say "cargo build -p mcp-lp-db -p mcp-lp-state --features tls --all-targets"
cargo build -p mcp-lp-db -p mcp-lp-state --features mcp-lp-db/tls,mcp-lp-state/tls --all-targets

failed=()

# The docs with every feature, warnings as errors: a broken link, or a public item without docs
# (the workspace's missing_docs lint), fails.
say "cargo doc --workspace --no-deps --all-features (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features ||
    failed+=("cargo doc with -D warnings")
# The declared rust-version against the dependency tree and the standard library's API.
"$REPO_ROOT/scripts/msrv.sh" || failed+=("scripts/msrv.sh")
# The four published crates: packaged, their contents listed and checked, each built from its
# .crate file against the packaged siblings; then the README's "Your first server" in a new
# crate outside the workspace, on those packages.
TARGET_DIR="$(target_dir)"
if "$REPO_ROOT/scripts/package.sh" --verify; then
    say "README \"Your first server\" on the packaged crates (tests/starter/first_server.py)"
    "$PYTHON" tests/starter/first_server.py --packages "$TARGET_DIR/package" --target-dir "$TARGET_DIR" ||
        failed+=("tests/starter/first_server.py")
else
    failed+=("scripts/package.sh --verify")
fi

say "cargo test --workspace"
cargo test --workspace --no-fail-fast || failed+=("cargo test --workspace")
say "cargo test -p mcp-lp-db -p mcp-lp-state --features tls --test tls (TLS to the local PostgreSQL)"
cargo test -p mcp-lp-db -p mcp-lp-state --features mcp-lp-db/tls,mcp-lp-state/tls --test tls ||
    failed+=("cargo test --features tls --test tls")
say "cargo test -p mcp-lp-aws -- --ignored (against the AWS emulator)"
cargo test -p mcp-lp-aws --no-fail-fast -- --ignored || failed+=("cargo test -p mcp-lp-aws -- --ignored")

# Every fuzz target for a few seconds from its seeds, so the targets keep building and the
# seeds keep passing (scripts/fuzz.sh; longer runs are in docs/fuzzing.md).
"$REPO_ROOT/scripts/fuzz.sh" --smoke || failed+=("scripts/fuzz.sh --smoke")

export NOTES_SERVER_BIN="$TARGET_DIR/debug/notes-server"
export DOCS_SERVER_BIN="$TARGET_DIR/debug/docs-server"
export RECORDS_SERVER_BIN="$TARGET_DIR/debug/records-server"
export CONFORMANCE_SERVER_BIN="$TARGET_DIR/debug/conformance-server"

# nginx for the load-balancer tests (tests/python/test_load_balancer.py); without it they fail.
"$REPO_ROOT/scripts/nginx.sh" install || say "nginx is not available: the load-balancer tests will fail"
# The OpenID provider (oidc-provider from npm) and Debian's Chromium for the sign-in and
# approval-page tests; without them those tests fail.
"$REPO_ROOT/scripts/oidc.sh" install || say "the OpenID provider or Chromium is not available: the approval-page tests will fail"

say "pytest tests/python (server: $NOTES_SERVER_BIN)"
"$VENV/bin/python" -m pytest -q tests/python "$@" || failed+=("pytest tests/python")
"$REPO_ROOT/scripts/ts-tests.sh" || failed+=("scripts/ts-tests.sh")
"$REPO_ROOT/scripts/inspector-check.sh" || failed+=("scripts/inspector-check.sh")
CONFORMANCE_SERVER_BIN="$TARGET_DIR/debug/conformance-server" "$REPO_ROOT/scripts/conformance.sh" || failed+=("scripts/conformance.sh")
# A short run of the audit durability script (the full one is `scripts/audit-durability.sh`,
# 30 s): the records server killed with SIGKILL under load, its trail checked after restart.
say "scripts/audit-durability.sh --smoke (4 clients, 5 s, file and PostgreSQL sinks)"
"$REPO_ROOT/scripts/audit-durability.sh" --smoke || failed+=("scripts/audit-durability.sh (smoke)")
# A short run of the load-with-faults script (the full one is `scripts/soak.sh`, 60 s): it
# restarts PostgreSQL and stops the emulator, so it comes last.
say "scripts/soak.sh --seconds 12 --clients 4 (smoke run of the load with faults)"
"$REPO_ROOT/scripts/soak.sh" --seconds 12 --clients 4 || failed+=("scripts/soak.sh (smoke)")

if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
