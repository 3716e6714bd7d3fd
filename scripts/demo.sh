#!/usr/bin/env bash
# The demonstration: build the notes server, then let the official MCP Python client talk to it
# over stdio with three configurations (no grant, the `notes:delete` grant, an expired grant)
# and print what happens. Works on a temporary copy of the notes; the repository is not touched.
# Then the same for docs-server against the local AWS emulator (scripts/aws-emulator.sh), where
# each tool runs with its own IAM role.
# And records-server against a local PostgreSQL (scripts/postgres.sh), where each tool connects
# as its own database role.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

say "cargo build -p notes-server"
cargo build -q -p notes-server

ensure_venv

TARGET_DIR="$(target_dir)"
"$VENV/bin/python" -u tests/python/demo_notes.py \
    --binary "$TARGET_DIR/debug/notes-server" \
    --example "$REPO_ROOT/examples/notes-server"

# The records server on the local PostgreSQL: a read role that cannot write, a write role
# behind a grant, row-level security per principal.
say "cargo build -p records-server"
cargo build -q -p records-server
"$REPO_ROOT/scripts/postgres.sh" start
"$VENV/bin/python" -u tests/python/demo_records.py --binary "$TARGET_DIR/debug/records-server"

# The document server on S3, against the local AWS emulator with IAM enforcement on.
say "cargo build -p docs-server"
cargo build -q -p docs-server
"$REPO_ROOT/scripts/aws-emulator.sh" start
exec "$VENV/bin/python" -u tests/python/demo_docs.py --binary "$TARGET_DIR/debug/docs-server"
