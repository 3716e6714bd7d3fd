#!/usr/bin/env bash
# The local AWS emulator for development and tests: ministack (from PyPI, pinned in
# scripts/aws-emulator/requirements.txt) in its own virtualenv .venv-aws, started with IAM
# enforcement on (AUTH=true: role, trust and session policies, session tags, credential expiry)
# and CloudTrail recording on, listening on 127.0.0.1 only, then seeded by
# scripts/aws-emulator/seed.py.
#
#   scripts/aws-emulator.sh start    install if needed, start and seed (no-op when running)
#   scripts/aws-emulator.sh stop     stop the emulator this script started
#   scripts/aws-emulator.sh status   say whether it is running
#   scripts/aws-emulator.sh env      print the exports that point a shell at it
#
# State lives in .aws-emulator/ (gitignored): the PID, the log, seed.json (endpoint, bucket,
# role ARNs) and `credentials`, an AWS shared-credentials file with the keys of the two
# non-root IAM users the seed creates. The emulator's root keys are used only to seed.
# MCP_LP_AWS_PORT chooses the port (default 4566).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AWS_VENV="$REPO_ROOT/.venv-aws"
AWS_REQUIREMENTS="$REPO_ROOT/scripts/aws-emulator/requirements.txt"
STATE="$REPO_ROOT/.aws-emulator"
PORT="${MCP_LP_AWS_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"

ensure_aws_venv() {
    local want have=""
    want="$(sha256sum "$AWS_REQUIREMENTS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
    if [[ -f "$AWS_VENV/.requirements.stamp" ]] && "$AWS_VENV/bin/python" -c '' >/dev/null 2>&1; then
        have="$(cat "$AWS_VENV/.requirements.stamp")"
    fi
    [[ "$want" == "$have" ]] && return 0
    say "creating $AWS_VENV from scripts/aws-emulator/requirements.txt"
    rm -rf "$AWS_VENV"
    "$PYTHON" -m venv "$AWS_VENV" || {
        echo "error: cannot create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        return 1
    }
    "$AWS_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$AWS_REQUIREMENTS"
    printf '%s\n' "$want" >"$AWS_VENV/.requirements.stamp"
}

healthy() {
    "$PYTHON" - "$ENDPOINT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/_ministack/health", timeout=2).read()
PY
}

running_pid() {
    local pid
    [[ -f "$STATE/ministack.pid" ]] || return 1
    pid="$(cat "$STATE/ministack.pid")"
    kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

start() {
    if running_pid >/dev/null && healthy && [[ -f "$STATE/seed.json" ]]; then
        say "AWS emulator already running at $ENDPOINT"
        return 0
    fi
    if healthy; then
        echo "error: something not started by this script already answers at $ENDPOINT; stop it or set MCP_LP_AWS_PORT" >&2
        return 1
    fi
    ensure_aws_venv
    rm -rf "$STATE"
    mkdir -p "$STATE"
    say "starting ministack at $ENDPOINT (AUTH=true, CloudTrail recording on)"
    # setsid: the emulator outlives this script and is not killed with its process group.
    AUTH=true CLOUDTRAIL_RECORDING=1 GATEWAY_PORT="$PORT" BIND_HOST=127.0.0.1 \
        MINISTACK_REGION=us-east-1 LOG_LEVEL=WARNING TMPDIR="$STATE" \
        setsid "$AWS_VENV/bin/python" -m ministack >"$STATE/ministack.log" 2>&1 </dev/null &
    echo $! >"$STATE/ministack.pid"
    local i
    for ((i = 0; i < 150; i++)); do
        healthy && break
        if ! running_pid >/dev/null; then
            echo "error: ministack exited; see $STATE/ministack.log:" >&2
            tail -20 "$STATE/ministack.log" >&2
            return 1
        fi
        sleep 0.2
    done
    healthy || {
        echo "error: ministack did not answer at $ENDPOINT within 30 s; see $STATE/ministack.log" >&2
        return 1
    }
    say "seeding: bucket mcp-lp-docs, roles mcp-read-only / mcp-delete / mcp-secrets-reader, non-root user mcp-lp-server"
    "$AWS_VENV/bin/python" "$REPO_ROOT/scripts/aws-emulator/seed.py" "$ENDPOINT" "$STATE"
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid"
        say "stopped the AWS emulator (PID $pid)"
    else
        say "the AWS emulator is not running"
    fi
    rm -rf "$STATE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if running_pid >/dev/null && healthy; then
        echo "running at $ENDPOINT (state in $STATE)"
    else
        echo "not running"
        exit 1
    fi
    ;;
env)
    cat <<ENV
export MCP_LP_AWS_SEED="$STATE/seed.json"
export AWS_SHARED_CREDENTIALS_FILE="$STATE/credentials"
export AWS_PROFILE=mcp-lp-server
export AWS_REGION=us-east-1
ENV
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
