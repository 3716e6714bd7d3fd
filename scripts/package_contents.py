"""Check the files in .crate packages: none over a size limit, none that looks like a secret.

    python3 scripts/package_contents.py LIMIT_BYTES CRATE...    check packages; exit 1 on a problem
    python3 scripts/package_contents.py --self-test             show that each rule refuses
"""

import fnmatch
import io
import sys
import tarfile
import tempfile
from pathlib import Path

SECRET_PATTERNS = ("*.pem", "*.key", ".env", ".env.*")


def problems(crate: Path, limit: int) -> list[str]:
    """Every file of `crate` that is too large or named like a secret, as a message."""
    found = []
    with tarfile.open(crate) as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            name = m.name.split("/", 1)[-1]
            base = name.rsplit("/", 1)[-1]
            if m.size > limit:
                found.append(f"{name}: {m.size} bytes, over the {limit}-byte limit")
            if any(fnmatch.fnmatch(base, p) for p in SECRET_PATTERNS):
                found.append(f"{name}: named like a secret ({', '.join(SECRET_PATTERNS)})")
    return found


def check(limit: int, crates: list[Path]) -> int:
    status = 0
    for crate in crates:
        with tarfile.open(crate) as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
        found = problems(crate, limit)
        for p in found:
            print(f"error: {crate.name}: {p}", file=sys.stderr)
        total = sum(m.size for m in files)
        verdict = "REFUSED" if found else "ok"
        print(f"{crate.name}: {len(files)} files, {total} bytes: {verdict}", file=sys.stderr)
        status |= bool(found)
    return status


def self_test() -> int:
    """A package with each forbidden kind of file must be refused, each file by name."""
    limit = 1024 * 1024
    bad = {
        "pkg-0.1.0/certs/server.pem": b"x",
        "pkg-0.1.0/tls/client.key": b"x",
        "pkg-0.1.0/.env": b"x",
        "pkg-0.1.0/.env.local": b"x",
        "pkg-0.1.0/fixtures/big.bin": b"\0" * (limit + 1),
    }
    good = {"pkg-0.1.0/src/lib.rs": b"//! ok\n", "pkg-0.1.0/fixtures/edge.bin": b"\0" * limit}
    with tempfile.TemporaryDirectory() as tmp:
        crate = Path(tmp) / "pkg-0.1.0.crate"
        with tarfile.open(crate, "w:gz") as tar:
            for name, data in {**bad, **good}.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        found = problems(crate, limit)
    missed = [n for n in bad if not any(p.startswith(n.split("/", 1)[1] + ":") for p in found)]
    wrong = [n for n in good if any(p.startswith(n.split("/", 1)[1] + ":") for p in found)]
    if missed or wrong or len(found) != len(bad):
        print(f"error: self-test: missed {missed}, wrongly refused {wrong}: {found}", file=sys.stderr)
        return 1
    print(f"self-test: each of {len(bad)} forbidden files refused, the 1 MiB file allowed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(check(int(sys.argv[1]), [Path(a) for a in sys.argv[2:]]))
