#!/usr/bin/env bash
# Audit trail durability: 16 concurrent MCP 2026-07-28 clients with JWTs call the records server
# over streamable HTTP for 30 s while it is killed with SIGKILL at a random moment and
# restarted on the same trail; then every call a client saw answered must have its tools/call
# event in the trail, and `audit verify` must pass with the killed instance's chain intact up to
# its last event. Runs with the file sink (fsync on every event), then with the PostgreSQL sink
# (mcp-lp-state's audit table), and prints the counts. Loopback only; it stops by itself.
# See tests/python/audit_durability.py.
#
#   scripts/audit-durability.sh                    both sinks, 30 s, 16 clients
#   scripts/audit-durability.sh --sink file        one sink
#   scripts/audit-durability.sh --smoke            both sinks, 5 s, 4 clients (the test command's run)
#   scripts/audit-durability.sh --bench --seconds 20   calls/s with and without the PostgreSQL
#                                                  sink, and the events/s it records
#
# Starts PostgreSQL when it is not running, and builds the records server unless
# RECORDS_SERVER_BIN names a built binary.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_venv
"$REPO_ROOT/scripts/postgres.sh" start
eval "$("$REPO_ROOT/scripts/postgres.sh" env)"

if [[ -z "${RECORDS_SERVER_BIN:-}" ]]; then
    say "cargo build -p records-server"
    cargo build -p records-server
    export RECORDS_SERVER_BIN="$(target_dir)/debug/records-server"
fi

cd "$REPO_ROOT/tests/python"
exec "$VENV/bin/python" audit_durability.py "$@"
