#!/usr/bin/env bash
# Run the fuzz targets in fuzz/ (see docs/fuzzing.md).
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER ARGS...]   run one target for SECONDS
#   scripts/fuzz.sh --smoke [SECONDS]                    run every target for SECONDS (default 3)
#   scripts/fuzz.sh --seeds                              run every target over its seeds only
#   scripts/fuzz.sh --list                               list the targets
#
# Extra arguments go to libFuzzer, e.g. `scripts/fuzz.sh config 0 -runs=1000000` (SECONDS 0:
# no time limit). Each run starts from the committed seeds in fuzz/corpus/TARGET and keeps
# what it finds in .cache/fuzz/corpus/TARGET, so the committed corpus stays small; a crashing
# input is written to fuzz/artifacts/TARGET/ and the run fails.
#
# cargo-fuzz is installed into .cache/cargo-fuzz on first use (`cargo install cargo-fuzz`) when
# it is not on PATH. cargo-fuzz passes nightly-only flags to rustc (`-Z` options for coverage
# instrumentation); with only a stable toolchain, RUSTC_BOOTSTRAP=1 lets stable rustc accept
# them. No sanitizer is used by default (the crates forbid unsafe code; libFuzzer's own checks
# still catch panics, overflows under debug assertions, timeouts and memory blow-ups); set
# FUZZ_SANITIZER=address to build with AddressSanitizer. The build goes to fuzz/target.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

export RUSTC_BOOTSTRAP=1
SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_TOOL_DIR="$REPO_ROOT/.cache/cargo-fuzz"

ensure_cargo_fuzz() {
    if command -v cargo-fuzz >/dev/null 2>&1; then
        return
    fi
    export PATH="$FUZZ_TOOL_DIR/bin:$PATH"
    if ! command -v cargo-fuzz >/dev/null 2>&1; then
        say "installing cargo-fuzz into $FUZZ_TOOL_DIR"
        cargo install cargo-fuzz --locked --root "$FUZZ_TOOL_DIR"
    fi
}

targets() {
    (cd fuzz && cargo fuzz list)
}

# cargo fuzz's build flags: release, with debug assertions (overflow checks), no sanitizer.
build_flags=(--sanitizer "$SANITIZER" --release --debug-assertions)

run_target() {
    local target="$1" seconds="$2"
    shift 2
    local work="$REPO_ROOT/.cache/fuzz/corpus/$target"
    mkdir -p "$work" "fuzz/artifacts/$target"
    local limit=()
    if ((seconds > 0)); then
        limit=("-max_total_time=$seconds")
    fi
    say "fuzz $target${limit:+ for $seconds s}"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a memory blow-up.
    (cd fuzz && cargo fuzz run "${build_flags[@]}" "$target" "$work" "corpus/$target" -- \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${limit[@]}" "$@")
}

ensure_cargo_fuzz

case "${1:-}" in
    --list)
        targets
        ;;
    --smoke)
        seconds="${2:-3}"
        say "building the fuzz targets"
        (cd fuzz && cargo fuzz build "${build_flags[@]}")
        failed=()
        for target in $(targets); do
            run_target "$target" "$seconds" || failed+=("$target")
        done
        if ((${#failed[@]})); then
            printf 'FUZZ FAILED: %s\n' "${failed[@]}" >&2
            exit 1
        fi
        ;;
    --seeds)
        say "building the fuzz targets"
        (cd fuzz && cargo fuzz build "${build_flags[@]}")
        failed=()
        for target in $(targets); do
            say "fuzz $target: its seeds only"
            (cd fuzz && cargo fuzz run "${build_flags[@]}" "$target" "corpus/$target" -- -runs=0) ||
                failed+=("$target")
        done
        if ((${#failed[@]})); then
            printf 'FUZZ FAILED: %s\n' "${failed[@]}" >&2
            exit 1
        fi
        ;;
    "" | -*)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    *)
        if (($# < 2)); then
            echo "usage: scripts/fuzz.sh TARGET SECONDS [LIBFUZZER ARGS...]" >&2
            exit 2
        fi
        run_target "$@"
        ;;
esac
