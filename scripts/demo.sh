#!/usr/bin/env bash
# The demonstration: build the notes server, then let the official MCP Python client talk to it
# over stdio with three configurations (no grant, the `notes:delete` grant, an expired grant)
# and print what happens. Works on a temporary copy of the notes; the repository is not touched.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

say "cargo build -p notes-server"
cargo build -q -p notes-server

ensure_venv

TARGET_DIR="$(target_dir)"
exec "$VENV/bin/python" -u tests/python/demo_notes.py \
    --binary "$TARGET_DIR/debug/notes-server" \
    --example "$REPO_ROOT/examples/notes-server"
