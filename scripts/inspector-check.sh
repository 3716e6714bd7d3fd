#!/usr/bin/env bash
# Run the MCP Inspector lines the README and scripts/demo.sh print, as printed: the Inspector's
# CLI (pinned in tests/inspector/package-lock.json with the Node.js 22 it needs) against
# notes-server: tools/list, a refused delete_note, and the same call allowed with the grant.
#
# Uses $NOTES_SERVER_BIN, else builds notes-server. Extra arguments go to pytest.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

INSPECTOR_DIR="$REPO_ROOT/tests/inspector"

ensure_venv
ensure_npm_dir "$INSPECTOR_DIR"
INSPECTOR_NODE="$(pinned_node "$INSPECTOR_DIR")"
export INSPECTOR_NODE

if [[ -z "${NOTES_SERVER_BIN:-}" ]]; then
    say "cargo build -p notes-server"
    cargo build -q -p notes-server
    NOTES_SERVER_BIN="$(target_dir)/debug/notes-server"
fi
export NOTES_SERVER_BIN

say "MCP Inspector lines on node $("$INSPECTOR_NODE" --version) (server: $NOTES_SERVER_BIN)"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$INSPECTOR_DIR" "$@"
