#!/usr/bin/env bash
# Check the declared minimum supported Rust version (`rust-version` in Cargo.toml) as far as it
# can be checked without that toolchain installed:
#
#   1. every published crate declares the workspace's rust-version;
#   2. no dependency in Cargo.lock that the published crates build with (every feature on)
#      declares a higher rust-version than ours (cargo's own MSRV-aware resolver uses the same
#      field); those that declare none are listed;
#   3. our code uses no standard-library API stabilised after it: clippy's `incompatible_msrv`
#      lint, which reads rust-version, as an error.
#
# Not checked: language features and compiler behaviour newer than the MSRV. Only building with
# that toolchain (`cargo +1.88 check --workspace`) shows those; CONTRIBUTING.md says so.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

CRATES=(mcp-lp-grammar mcp-lp-macros mcp-lp-core mcp-lp-aws mcp-lp-db mcp-lp-state)

say "rust-version of the published crates and of their dependencies (Cargo.lock, all features)"
cargo metadata --format-version 1 --all-features --locked | "$PYTHON" scripts/msrv_deps.py "${CRATES[@]}"

package_args=()
for crate in "${CRATES[@]}"; do
    package_args+=(-p "$crate")
done
say "cargo clippy ${package_args[*]} --all-features -- -D clippy::incompatible_msrv"
cargo clippy "${package_args[@]}" --all-features --lib -- -A clippy::all -D clippy::incompatible_msrv
