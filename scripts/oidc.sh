#!/usr/bin/env bash
# A real OpenID provider on loopback for the end-to-end tests: oidc-provider from npm, pinned in
# tests/oidc/package-lock.json with the Node.js 22 it runs on, configured by tests/oidc/provider.mjs
# with test users and clients (see tests/oidc/README.md); and Debian's chromium for the tests
# that drive a browser through playwright-core.
#
#   scripts/oidc.sh install          install tests/oidc/node_modules (npm ci) and chromium if missing
#   scripts/oidc.sh node             install tests/oidc if needed and print the node to run it with
#   scripts/oidc.sh chromium         install chromium if missing and print its path
#   scripts/oidc.sh start [PORT]     start the provider, issuer http://127.0.0.1:PORT (no-op if running)
#   scripts/oidc.sh stop [PORT]      stop the provider this script started on PORT
#   scripts/oidc.sh status [PORT]    exit 0 if it is running
#   scripts/oidc.sh env [PORT]       print the exports that point a shell at it
#
# PORT defaults to $MCP_LP_OIDC_PORT, else 9400. The provider reads the rest of its settings from
# the environment (MCP_LP_OIDC_APPROVALS_REDIRECT_URIS, MCP_LP_OIDC_USERS, ...: see provider.mjs).
# Its PID, log and issuer live in .cache/oidc/PORT. tests/python/oidc_harness.py runs provider.mjs
# itself, on a free port per test module.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OIDC_DIR="$REPO_ROOT/tests/oidc"
CACHE="$REPO_ROOT/.cache/oidc"

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

find_chromium() {
    command -v chromium 2>/dev/null || { [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium; }
}

install_chromium() {
    if find_chromium >/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "error: chromium is not installed and there is no apt-get to install it with" >&2
        return 1
    }
    say "installing chromium (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || {
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    }
    find_chromium >/dev/null || {
        echo "error: installing chromium did not provide a chromium binary" >&2
        return 1
    }
}

port_arg() {
    local port="${1:-${MCP_LP_OIDC_PORT:-9400}}"
    [[ "$port" =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || {
        echo "error: \`$port\` is not a TCP port" >&2
        exit 2
    }
    printf '%s\n' "$port"
}

running_pid() {
    local pid_file="$CACHE/$1/provider.pid" pid
    [[ -f "$pid_file" ]] && pid="$(cat "$pid_file")" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

start() {
    local port="$1" dir="$CACHE/$1" node i
    if running_pid "$port" >/dev/null; then
        say "OpenID provider already running at http://127.0.0.1:$port"
        return 0
    fi
    if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "error: something not started by this script already listens on 127.0.0.1:$port; stop it or pick another port" >&2
        return 1
    fi
    ensure_npm_dir "$OIDC_DIR"
    node="$(pinned_node "$OIDC_DIR")"
    rm -rf "$dir"
    mkdir -p "$dir"
    say "starting the OpenID provider (oidc-provider $("$node" -p "require('$OIDC_DIR/node_modules/oidc-provider/package.json').version")) at http://127.0.0.1:$port"
    # setsid: the provider outlives this script and is not killed with its process group.
    setsid "$node" "$OIDC_DIR/provider.mjs" --port "$port" >"$dir/provider.json" 2>"$dir/provider.log" </dev/null &
    echo $! >"$dir/provider.pid"
    for ((i = 0; i < 200; i++)); do
        if [[ -s "$dir/provider.json" ]]; then
            say "OpenID provider ready: $(cat "$dir/provider.json")"
            return 0
        fi
        running_pid "$port" >/dev/null || break
        sleep 0.05
    done
    echo "error: the OpenID provider did not start on 127.0.0.1:$port; its log:" >&2
    cat "$dir/provider.log" >&2 || true
    return 1
}

stop() {
    local port="$1" pid i
    if pid="$(running_pid "$port")"; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        say "stopped the OpenID provider on port $port (PID $pid)"
    else
        say "no OpenID provider started by this script runs on port $port"
    fi
    rm -rf "${CACHE:?}/$port"
}

case "${1:-}" in
install) (($# == 1)) || usage; ensure_npm_dir "$OIDC_DIR"; install_chromium ;;
node) (($# == 1)) || usage; ensure_npm_dir "$OIDC_DIR"; pinned_node "$OIDC_DIR" ;;
chromium) (($# == 1)) || usage; install_chromium; find_chromium ;;
start) (($# <= 2)) || usage; start "$(port_arg "${2:-}")" ;;
stop) (($# <= 2)) || usage; stop "$(port_arg "${2:-}")" ;;
status)
    (($# <= 2)) || usage
    port="$(port_arg "${2:-}")"
    if running_pid "$port" >/dev/null; then
        echo "running at http://127.0.0.1:$port (state in $CACHE/$port)"
    else
        echo "not running"
        exit 1
    fi
    ;;
env)
    (($# <= 2)) || usage
    port="$(port_arg "${2:-}")"
    cat <<ENV
export MCP_LP_OIDC_ISSUER="http://127.0.0.1:$port"
export MCP_LP_OIDC_JWKS_URI="http://127.0.0.1:$port/jwks"
export MCP_LP_OIDC_CHROMIUM="$(find_chromium || echo /usr/bin/chromium)"
ENV
    ;;
*) usage ;;
esac
