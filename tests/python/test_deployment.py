"""What can be checked of the deployment guide without a cloud: the IAM policies it ships are
the ones the AWS emulator is seeded with and allow no more than they say, the Kubernetes
manifests parse and keep secrets in memory behind read-only mounts, and no image recipe takes a
secret at build time."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IAM = DEPLOY / "iam"

# Sample values for the placeholders; an unknown placeholder fails the substitution.
PLACEHOLDERS = {
    "ACCOUNT": "123456789012",
    "REGION": "eu-west-1",
    "BUCKET": "mcp-lp-docs",
    "PROCESS_PRINCIPAL_ARN": "arn:aws:iam::123456789012:role/mcp-lp-process",
    "OIDC_PROVIDER": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
}

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|_KEY$|^KEY$)", re.I)
SECRET_VALUE = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),                   # AWS access key ids
    re.compile(r"postgres(ql)?://[^:/\s]+:[^@\s]+@"),             # URLs with a password
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[A-Za-z0-9+/]{40}\b"),                          # AWS secret access keys
    re.compile(r"\b(ghp|xox[abp]|sk)[-_][A-Za-z0-9]{16,}"),       # common API token shapes
]
SECRET_FILE = re.compile(r"(\.pem|\.key|\.p12|\.pfx|credentials|\.env|id_rsa|\.url)\b", re.I)


def policy(name: str) -> dict:
    text = (IAM / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(string.Template(text).substitute(PLACEHOLDERS))


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def tool_roles() -> list[str]:
    return sorted(p.stem.removeprefix("role-") for p in IAM.glob("role-*.json"))


def test_accepts_every_policy_with_its_placeholders_filled():
    names = sorted(p.stem for p in IAM.glob("*.json"))
    assert names, "no policies under deploy/iam"
    for name in names:
        document = policy(name)
        assert document["Version"] == "2012-10-17", name
        assert statements(document), name


def test_rejects_process_identity_that_may_do_more_than_assume_the_exact_tool_roles():
    allowed = statements(policy("process-identity"))
    assert all(s["Effect"] == "Allow" for s in allowed)
    actions = {a for s in allowed for a in listed(s["Action"])}
    assert actions <= {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}, actions
    resources = sorted(r for s in allowed for r in listed(s["Resource"]))
    assert all("*" not in r for r in resources), resources
    expected = sorted(f"arn:aws:iam::{PLACEHOLDERS['ACCOUNT']}:role/{name}" for name in tool_roles())
    assert resources == expected


def test_rejects_wildcard_actions_in_tool_role_policies():
    for name in tool_roles():
        for statement in statements(policy(f"role-{name}")):
            assert statement["Effect"] == "Allow", name
            for action in listed(statement["Action"]):
                assert "*" not in action, (name, action)
            for resource in listed(statement["Resource"]):
                assert resource != "*", (name, resource)


def test_tool_roles_trust_only_the_process_identity():
    (statement,) = statements(policy("tool-role-trust"))
    assert statement["Principal"] == {"AWS": PLACEHOLDERS["PROCESS_PRINCIPAL_ARN"]}
    for name in ("trust-eks-irsa", "trust-eks-pod-identity", "trust-ecs-task", "trust-ec2"):
        for s in statements(policy(name)):
            assert "*" not in json.dumps(s["Principal"]), name


def test_emulator_is_seeded_with_the_shipped_policies():
    seed = (ROOT / "scripts" / "aws-emulator" / "seed.py").read_text(encoding="utf-8")
    assert '"deploy" / "iam"' in seed
    assert 'deployed_policy("process-identity"' in seed
    assert 'deployed_policy("tool-role-trust"' in seed
    assert 'deployed_policy(f"role-{name}"' in seed
    for name in tool_roles():
        assert f'"{name}"' in seed, f"the emulator does not seed role {name}"


def manifests() -> list[dict]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return documents


def test_accepts_kubernetes_manifests_that_parse():
    kinds = sorted(d["kind"] for d in manifests())
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "ServiceAccount"], kinds


def test_keeps_secrets_in_memory_behind_read_only_mounts():
    (deployment,) = [d for d in manifests() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    empty_dirs = [v for v in pod["volumes"] if "emptyDir" in v]
    assert empty_dirs
    for volume in empty_dirs:
        assert volume["emptyDir"].get("medium") == "Memory", volume
    (server,) = pod["containers"]
    assert server["volumeMounts"]
    for mount in server["volumeMounts"]:
        assert mount.get("readOnly") is True, mount
    assert any(m["name"] == "secrets" for m in server["volumeMounts"])
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    for env in server.get("env", []):
        assert "valueFrom" not in env, env
        assert not SECRET_NAME.search(env["name"]), env


def test_configuration_holds_references_not_values():
    (config,) = [d for d in manifests() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mcp-lp-records"]
    text = config["data"]["mcp-lp.toml"]
    for pattern in SECRET_VALUE:
        assert not pattern.search(text), pattern.pattern
    assert '{ file = "/vault/secrets/records-read.url" }' in text


def secret_findings(recipe: str) -> list[str]:
    """Lines of a Dockerfile that pass a secret into the image: an ARG or ENV named like a
    secret or holding a secret-looking value, or a COPY/ADD of a secret-looking file."""
    findings = []
    for number, line in enumerate(recipe.splitlines(), 1):
        words = line.strip().split(None, 1)
        if len(words) < 2:
            continue
        instruction, rest = words[0].upper(), words[1]
        if instruction in ("ARG", "ENV"):
            # `ARG NAME[=value]`, `ENV NAME=value ...` or the old `ENV NAME value`.
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            if any(SECRET_NAME.search(n) for n in names) or any(p.search(rest) for p in SECRET_VALUE):
                findings.append(f"{number}: {line.strip()}")
        elif instruction in ("COPY", "ADD") and SECRET_FILE.search(rest):
            findings.append(f"{number}: {line.strip()}")
        elif any(p.search(line) for p in SECRET_VALUE):
            findings.append(f"{number}: {line.strip()}")
    return findings


def recipes() -> list[Path]:
    found = sorted(ROOT.glob("**/Dockerfile*"))
    return [p for p in found if not {"target", ".venv", ".venv-aws", "node_modules"} & set(p.parts)]


def test_rejects_secrets_in_the_image_recipe():
    assert recipes(), "no Dockerfile found"
    for path in recipes():
        findings = secret_findings(path.read_text(encoding="utf-8"))
        assert findings == [], f"{path}: {findings}"


@pytest.mark.parametrize(
    "line",
    [
        "ARG DB_PASSWORD",
        "ARG GITHUB_TOKEN=ghp_abcdefghijklmnop1234",
        "ENV AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ENV DATABASE_URL=postgres://reader:hunter2@db:5432/records",
        "ENV ID AKIAIOSFODNN7EXAMPLE",
        "COPY secrets/records-read.url /vault/secrets/",
        "ADD id_rsa /root/.ssh/",
        "RUN echo -----BEGIN RSA PRIVATE KEY----- > /k",
    ],
)
def test_secret_scan_catches_what_it_is_for(line):
    assert secret_findings(f"FROM scratch\n{line}\n"), line


def test_rejects_secrets_in_the_ecs_task_definition():
    task = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text(encoding="utf-8"))
    assert task["taskRoleArn"].startswith("arn:aws:iam::")
    for container in task["containerDefinitions"]:
        assert "secrets" not in container
        assert container["readonlyRootFilesystem"] is True
        for env in container.get("environment", []):
            assert not SECRET_NAME.search(env["name"]), env
            assert not any(p.search(env["value"]) for p in SECRET_VALUE), env


def test_guide_names_every_shipped_file_and_the_readme_links_it():
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            assert str(path.relative_to(ROOT)) in guide, f"docs/deployment.md does not name {path}"
    assert "docs/deployment.md" in (ROOT / "README.md").read_text(encoding="utf-8")
