#!/usr/bin/env bash
# Breakglass latency: three records-server replicas behind nginx share the `[state]` PostgreSQL
# store; each trial runs `revoke --all` once and measures, per replica, the time from starting
# that command to the first call the replica refuses (each replica called on its own port),
# then `unrevoke --all` and waits until every replica serves again. Prints the distribution
# (min, median, p90, max, and how many measurements were within 1 s) as a markdown table.
# Loopback only; it stops by itself. See tests/python/revocation_latency.py.
#
#   scripts/revocation-latency.sh                 20 trials
#   scripts/revocation-latency.sh --trials 50
#
# Starts PostgreSQL when it is not running, installs nginx if missing (scripts/nginx.sh), and
# builds the records server unless RECORDS_SERVER_BIN names a built binary.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_venv
"$REPO_ROOT/scripts/postgres.sh" start
eval "$("$REPO_ROOT/scripts/postgres.sh" env)"
"$REPO_ROOT/scripts/nginx.sh" install

if [[ -z "${RECORDS_SERVER_BIN:-}" ]]; then
    say "cargo build -p records-server"
    cargo build -p records-server
    export RECORDS_SERVER_BIN="$(target_dir)/debug/records-server"
fi

cd "$REPO_ROOT/tests/python"
exec "$VENV/bin/python" revocation_latency.py "$@"
