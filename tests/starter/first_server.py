"""Build the README's "Your first server" in a new crate outside the workspace, on the packaged crates.

Follows the section word for word: runs its first shell block in a temporary directory, appends
its first TOML block to the new crate's Cargo.toml, writes its Rust block to src/main.rs and its
second TOML block to mcp-lp.toml, then runs every line of its last shell block (build, `check`,
`inventory`) and checks what `check` and `inventory` report. If the section changes, this test
follows it; if the crates change so that the section no longer works, this test fails.

What the test adds, none of it in the section: the crates come from the .crate files
`scripts/package.sh` made (unpacked, and put in place of crates.io with `[patch.crates-io]`, so
they are exactly what would be published); `records-read.url` is the one `scripts/postgres.sh`
wrote; the AWS identity is the emulator's (`scripts/aws-emulator.sh env`). To reuse the
workspace's compiled registry dependencies instead of rebuilding them, the build starts from a
copy of the workspace's Cargo.lock, uses the workspace's target directory and its build profiles
(.cargo/config.toml).

    scripts/package.sh && python3 tests/starter/first_server.py --packages target/package --target-dir target
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRATES = ["mcp-lp-grammar", "mcp-lp-macros", "mcp-lp-core", "mcp-lp-aws", "mcp-lp-db"]
# What the section's server declares; `inventory` must report exactly this.
EXPECTED_TOOLS = {
    "greet": {"capabilities": [], "requires": []},
    "announce": {"capabilities": [], "requires": ["starter:announce"]},
    "count_objects": {"capabilities": [("aws.role", "docs-read")], "requires": []},
    "count_records": {"capabilities": [("db", "records-read")], "requires": []},
}


def workspace_version() -> str:
    text = (REPO_ROOT / "Cargo.toml").read_text()
    match = re.search(r'^\[workspace\.package\]\n(?:.*\n)*?version = "([^"]+)"', text, re.M)
    if not match:
        fail("no version in [workspace.package] of Cargo.toml")
    return match.group(1)


def fail(message: str) -> None:
    sys.exit(f"FAIL: first server: {message}")


def section_blocks(readme: Path) -> list[tuple[str, str]]:
    """The fenced blocks of the README's "Your first server" section, as (language, text)."""
    text = readme.read_text()
    match = re.search(r"^## Your first server\n(.*?)(?=^## )", text, re.S | re.M)
    if not match:
        fail(f'{readme} has no "## Your first server" section')
    return re.findall(r"^```(\w+)\n(.*?)^```\n", match.group(1), re.S | re.M)


def shell_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print(f"$ {line}    (in {cwd})", flush=True)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, text=True, capture_output=True)
    compiled = [l.split()[1] for l in done.stderr.splitlines() if l.lstrip().startswith("Compiling ")]
    note = f", compiled {len(compiled)} crates: {' '.join(compiled)}" if compiled else ""
    print(f"  exit {done.returncode} after {time.monotonic() - started:.1f} s{note}", flush=True)
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        fail(f"`{line}` exited with {done.returncode}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=Path, required=True, help="where the .crate files are")
    parser.add_argument("--version", default=workspace_version(), help="the packaged crates' version")
    parser.add_argument("--target-dir", type=Path, required=True, help="cargo target dir to reuse")
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    args = parser.parse_args()

    blocks = section_blocks(args.readme)
    kinds = [lang for lang, _ in blocks]
    if kinds != ["sh", "toml", "rust", "toml", "sh"]:
        fail(f"expected blocks sh, toml, rust, toml, sh in the section, found {kinds}")
    (_, create), (_, dependencies), (_, main_rs), (_, config), (_, commands) = blocks
    for key in ("PG_RECORDS_READ_URL_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        if not any(k.endswith(key) for k in os.environ):
            fail(f"{key} is not set: start the local services and eval their `env` first")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcp-lp-starter-") as tmp:
        tmp = Path(tmp)
        # The packaged crates, unpacked: what crates.io would serve.
        packages = tmp / "packages"
        packages.mkdir()
        patch = ["", "# Added by the test: the packaged crates stand in for crates.io.", "[patch.crates-io]"]
        for crate in CRATES:
            crate_file = args.packages / f"{crate}-{args.version}.crate"
            if not crate_file.is_file():
                fail(f"{crate_file} does not exist; run scripts/package.sh first")
            with tarfile.open(crate_file) as tar:
                tar.extractall(packages, filter="data")
            patch.append(f'{crate} = {{ path = "{packages / f"{crate}-{args.version}"}" }}')
        # The workspace's build profiles, so that compiled dependencies are reused.
        (tmp / ".cargo").mkdir()
        shutil.copy(REPO_ROOT / ".cargo" / "config.toml", tmp / ".cargo" / "config.toml")

        env = dict(os.environ, CARGO_TARGET_DIR=str(args.target_dir.resolve()))
        env.pop("MCP_LP_CONFIG", None)
        cwd = tmp
        for line in shell_lines(create):
            if line.startswith("cd "):
                cwd = cwd / line[3:].strip()
            else:
                run(line, cwd, env)
        project = cwd
        manifest = project / "Cargo.toml"
        manifest.write_text(manifest.read_text().replace("[dependencies]\n", "") + dependencies + "\n".join(patch) + "\n")
        shutil.copy(REPO_ROOT / "Cargo.lock", project / "Cargo.lock")
        (project / "src" / "main.rs").write_text(main_rs)
        (project / "mcp-lp.toml").write_text(config)
        url_file = next(v for k, v in os.environ.items() if k.endswith("PG_RECORDS_READ_URL_FILE"))
        shutil.copy(url_file, project / "records-read.url")

        outputs = {}
        for line in shell_lines(commands):
            outputs[line.split()[-1]] = run(line, project, env)
        elapsed = time.monotonic() - started

        lock = (project / "Cargo.lock").read_text()
        for crate in CRATES:
            entry = re.search(rf'\[\[package\]\]\nname = "{crate}"\nversion = "[^"]+"\n(source = .*\n)?', lock)
            if not entry or entry.group(1):
                fail(f"{crate} in Cargo.lock is not the local package: {entry and entry.group(0)}")

    check = outputs.get("check")
    inventory = outputs.get("inventory")
    if check is None or inventory is None:
        fail("the last shell block must end with `check` and `inventory` lines")
    for tool in EXPECTED_TOOLS:
        if tool not in check.stdout:
            fail(f"`check` does not report tool `{tool}`:\n{check.stdout}")
    try:
        listed = json.loads(inventory.stdout)
    except json.JSONDecodeError as e:
        fail(f"`inventory` did not print JSON ({e}):\n{inventory.stdout}")
    tools = listed["tools"] if isinstance(listed, dict) else listed
    got = {
        t["name"]: {
            "capabilities": [(c["kind"], c["name"]) for c in t.get("capabilities") or []],
            "requires": t.get("requires") or [],
        }
        for t in tools
    }
    if got != EXPECTED_TOOLS:
        fail(f"`inventory` reports {got}, expected {EXPECTED_TOOLS}")
    print(f"ok: the README's first server builds on the packaged crates; check and inventory pass ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
