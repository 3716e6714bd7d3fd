"""A scripted demonstration of docs-server against the local AWS emulator, run by
scripts/demo.sh after scripts/aws-emulator.sh start.

The official MCP Python client talks to the real docs-server binary over stdio. Each tool runs
with its own IAM role, assumed through STS by the emulator's non-root user `mcp-lp-server`:

  (a) the shipped configuration, no grant: list and read work; deleteDocument is hidden and
      refused before any role is assumed;
  (b) the operator grants docs:delete: deleteDocument is parked until a person other than the
      requester approves that exact call from the command line (`approvals approve --key`,
      the verdict signed with their SSH key); the same call then runs once with the delete
      role, and a call with other arguments is parked anew, not run;
  (c) a prompt-injected read cannot delete: mapping deleteDocument to the read-only role, the
      emulator itself refuses the delete, approved or not (the credential is the boundary);
  (d) a session policy narrows the read role to public/: private/ is refused by the emulator.

After each scene it prints the AssumeRole calls the emulator's CloudTrail recorded: who
(RoleSessionName, SourceIdentity) assumed which role.

Not a test (pytest collects only test_*.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import anyio

from docs_harness import (
    DOCS_EXAMPLE,
    DocsConfig,
    assume_role_calls,
    open_docs,
    docs_binary,
    load_seed,
    now,
    server_env,
)
from demo_output import approver_keys, approvers_section, call, call_with_approval, heading, print_config, print_connection
from notes_harness import grants_toml, text_of


def structured(result) -> str:
    return json.dumps(result.structured_content) if result.structured_content is not None else text_of(result)


async def scene(binary: Path, seed: dict, key: str, title: str, config: Path, steps, principal: str) -> None:
    heading(f"({key}) {title}")
    print_config(config)
    since = now()
    errlog = config.with_suffix(".stderr.jsonl")
    async with open_docs(binary, config, errlog, server_env(seed)) as session:
        print_connection(session)
        tools = await session.list_tools()
        print(f"\n> tools/list\n  {', '.join(t.name for t in tools.tools)}")
        for step in steps:
            if callable(step):
                await step(session)
            else:
                tool, arguments = step
                await call(session, tool, arguments, structured)
    print("\nAssumeRole calls recorded by the emulator's CloudTrail for this scene:")
    calls = assume_role_calls(since, principal)
    for c in calls:
        role = c["RoleArn"].rsplit("/", 1)[-1]
        print(f"  {role:<14} RoleSessionName={c['RoleSessionName']}  SourceIdentity={c.get('SourceIdentity', '-')}")
    if not calls:
        print("  (none)")


async def main(binary: Path) -> None:
    seed = load_seed()
    print(f"docs-server: {binary}")
    print(f"AWS emulator: {seed['endpoint']} (ministack, AUTH=true), bucket {seed['bucket']}")
    print(f"process identity: {seed['server_user']} (non-root; may only assume the mcp-* roles)")
    with tempfile.TemporaryDirectory(prefix="mcp-lp-docs-demo-") as tmp:
        configs = DocsConfig(Path(tmp), seed)
        shipped = Path(tmp) / "mcp-lp-a.toml"
        shipped.write_text(
            (DOCS_EXAMPLE / "mcp-lp.toml").read_text(encoding="utf-8").replace(
                'principal = "alice@example.com"', 'principal = "alice-a@example.com"'
            ),
            encoding="utf-8",
        )
        await scene(
            binary, seed, "a",
            "the shipped configuration: no grant, so deleteDocument is hidden and refused",
            shipped,
            [
                ("listDocuments", {}),
                ("readDocument", {"key": "public/welcome.md"}),
                ("deleteDocument", {"key": "private/q3-plan.md"}),
            ],
            "alice-a@example.com",
        )
        keys = approver_keys(Path(tmp), "alice-b@example.com", "bob@example.com")
        approvers = approvers_section(Path(tmp), "docs:approve", keys)
        granted = configs.write(
            "alice-b@example.com", grants=grants_toml("docs:delete"), name="mcp-lp-b.toml", approvers=False,
            extra=approvers,
        )

        async def approved_delete(session) -> None:
            await call_with_approval(
                session, binary, granted, "alice-b@example.com",
                "deleteDocument", {"key": "private/q3-plan.md"}, {"key": "private/salaries.md"},
                structured, keys, env=server_env(seed),
            )

        await scene(
            binary, seed, "b",
            "the operator grants docs:delete: deleteDocument runs once a second person approves the call",
            granted,
            [approved_delete, ("listDocuments", {"prefix": "private/"})],
            "alice-b@example.com",
        )
        misconfigured = configs.write(
            "alice-c@example.com", grants=grants_toml("docs:delete"),
            delete_role=seed["roles"]["mcp-read-only"], name="mcp-lp-c.toml", approvers=False, extra=approvers,
        )

        async def approved_but_read_only(session) -> None:
            await call_with_approval(
                session, binary, misconfigured, "alice-c@example.com",
                "deleteDocument", {"key": "private/salaries.md"},
                render=structured, keys=keys, env=server_env(seed), explain=False,
            )

        await scene(
            binary, seed, "c",
            "deleteDocument mapped to the READ-ONLY role: approved, and still the emulator refuses the delete",
            misconfigured,
            [approved_but_read_only, ("readDocument", {"key": "private/salaries.md"})],
            "alice-c@example.com",
        )
        await scene(
            binary, seed, "d",
            "a session policy narrows the read role to public/",
            configs.write(
                "alice-d@example.com",
                read_extra=f'session_policy = "{DOCS_EXAMPLE / "policies" / "docs-read-public.json"}"',
                name="mcp-lp-d.toml",
            ),
            [("readDocument", {"key": "public/guide.md"}), ("readDocument", {"key": "private/salaries.md"})],
            "alice-d@example.com",
        )

    config = DOCS_EXAMPLE / "mcp-lp.toml"
    command = [str(binary), "--config", str(config)]
    heading("connect a real MCP client")
    print("Give the server its AWS identity, then point any MCP client at it over stdio:\n")
    print('  eval "$(scripts/aws-emulator.sh env)"')
    print(f"  {shlex.join(command)}\n")
    print(f"Validate a configuration first: {shlex.join([*command, 'check'])}")
    print("Stop the emulator with scripts/aws-emulator.sh stop (its state is in memory only).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=None, help="the docs-server binary")
    args = parser.parse_args()
    binary = (args.binary or docs_binary()).resolve()
    if not binary.is_file():
        sys.exit(f"error: {binary} does not exist; run `cargo build -p docs-server` first")
    anyio.run(main, binary)
