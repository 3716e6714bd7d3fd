#!/usr/bin/env bash
# Package the published crates the way `cargo publish` would, print what each package
# holds, and fail if a package holds a file over 1 MiB or one that looks like a secret (`*.pem`,
# `*.key`, `.env`, `.env.*`).
#
#   scripts/package.sh            package, list and check (no build: a few seconds)
#   scripts/package.sh --verify   also build each package from its .crate file, in dependency
#                                 order, against the packaged siblings (cargo's own verification
#                                 with a local registry of the packages it just made)
#
# The .crate files land in target/package/; scripts/starter-check.sh builds a new project on them.
# Run from a clean checkout, or the packages include uncommitted changes (`--allow-dirty`).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

# In dependency order: each depends only on crates before it.
CRATES=(mcp-lp-grammar mcp-lp-macros mcp-lp-core mcp-lp-aws mcp-lp-db mcp-lp-state)
MAX_BYTES=$((1024 * 1024))

verify=--no-verify
if [[ "${1:-}" == "--verify" ]]; then
    verify=
fi

package_args=()
for crate in "${CRATES[@]}"; do
    package_args+=(-p "$crate")
done

# One invocation for all of them: cargo resolves each crate's dependencies on its siblings against
# the packages made before it (a temporary local registry), not against crates.io.
# Cargo unpacks the crates of its temporary registry (and of the starter's) under
# $CARGO_HOME/registry/src/<hash>/, and reuses an unpacked crate of the same name and version:
# sources packaged by an earlier run would be built instead of these. Remove ours first.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for dir in "$cargo_home"/registry/src/*/; do
    [[ "$dir" == *index.crates.io* ]] && continue
    for crate in "${CRATES[@]}"; do
        rm -rf "$dir$crate-"[0-9]*
    done
done

say "cargo package ${package_args[*]} ${verify:-(verifying each in dependency order)}"
cargo package "${package_args[@]}" --allow-dirty $verify

VERSION="$(cargo metadata --no-deps --format-version 1 |
    "$PYTHON" -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "mcp-lp-core"))')"
PACKAGE_DIR="$(target_dir)/package"
crate_files=()
for crate in "${CRATES[@]}"; do
    say "cargo package --list -p $crate"
    cargo package --list -p "$crate" --allow-dirty
    crate_files+=("$PACKAGE_DIR/$crate-$VERSION.crate")
done

# The listing has no sizes, so the check reads the .crate files themselves; its self-test first
# shows that it refuses each kind of file it must.
say "checking the packages' contents (at most 1 MiB a file; no *.pem, *.key, .env)"
"$PYTHON" scripts/package_contents.py --self-test
if ! "$PYTHON" scripts/package_contents.py "$MAX_BYTES" "${crate_files[@]}"; then
    echo "error: a package holds a file it must not ship; narrow its \`include\` in Cargo.toml" >&2
    exit 1
fi
