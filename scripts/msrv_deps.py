"""The rust-version checks of scripts/msrv.sh: `cargo metadata` on stdin, the published crates
as arguments (the first one's rust-version is the one checked)."""
import json, sys

crates = sys.argv[1:]
meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

def version(v):
    return tuple(int(x) for x in v.split(".")) + (0,) * (3 - len(v.split(".")))

roots = [p for p in meta["packages"] if p["name"] in crates]
declared = {p["name"]: p["rust_version"] for p in roots}
msrv = declared[crates[0]]
problems = [f"{n} declares rust-version {v}, not {msrv}" for n, v in declared.items() if v != msrv]

# What a user builds: normal and build dependencies, not dev-dependencies.
seen, stack = set(), [p["id"] for p in roots]
while stack:
    pid = stack.pop()
    if pid in seen:
        continue
    seen.add(pid)
    for dep in nodes[pid]["deps"]:
        if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
            stack.append(dep["pkg"])
deps = [packages[i] for i in seen if packages[i]["name"] not in crates]
newer = sorted((p["name"], p["version"], p["rust_version"]) for p in deps
               if p["rust_version"] and version(p["rust_version"]) > version(msrv))
unknown = sorted(f"{p['name']} {p['version']}" for p in deps if not p["rust_version"])
highest = max((version(p["rust_version"]) for p in deps if p["rust_version"]), default=None)
problems += [f"dependency {n} {v} needs Rust {rv}, above our {msrv}" for n, v, rv in newer]
print(f"rust-version {msrv}: {len(deps)} dependencies; the highest any declares is "
      f"{'.'.join(map(str, highest[:2]))}; {len(unknown)} declare none: {', '.join(unknown)}",
      file=sys.stderr)
for p in problems:
    print(f"error: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
