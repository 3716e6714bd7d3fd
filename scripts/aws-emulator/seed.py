"""Seed the local AWS emulator with what mcp-lp's AWS tests and the docs-server demo need.

Run by scripts/aws-emulator.sh with the emulator's root keys (the only time they are used):

- bucket `mcp-lp-docs` with documents under two prefixes, `public/` and `private/`;
- role `mcp-read-only` (s3:GetObject on the bucket's objects, s3:ListBucket on the bucket);
- role `mcp-delete` (s3:DeleteObject on the bucket's objects);
- role `mcp-secrets-reader` (secretsmanager:GetSecretValue on the `mcp-lp/` secrets);
- role `mcp-not-trusting`, which trusts only the user `mcp-lp-other`, for "role not assumable";
- secret `mcp-lp/demo-api-key`;
- the NON-ROOT IAM user `mcp-lp-server`, the servers' process identity, whose only rights are
  sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity on the first three roles, which
  name it exactly in their trust policies;
- the NON-ROOT IAM user `mcp-lp-test-harness`, with which tests put fixtures in the bucket,
  check what is there, read the emulator's CloudTrail, and create, rotate and delete the
  `mcp-lp/rotating-*` secrets (it can assume no role).

The first three roles' permission and trust policies and the server user's policy are the
files in deploy/iam/ that docs/deployment.md tells operators to apply, with their `${...}`
placeholders filled in: what the tests run against is what the guide ships.

Writes the users' keys as an AWS shared-credentials file and everything else as JSON into the
state directory given on the command line.
"""

from __future__ import annotations

import json
import secrets
import string
import sys
from pathlib import Path

import botocore.session
from botocore.config import Config

REGION = "us-east-1"
ACCOUNT = "000000000000"
BUCKET = "mcp-lp-docs"
SECRET_NAME = "mcp-lp/demo-api-key"
SERVER_USER = "mcp-lp-server"
HARNESS_USER = "mcp-lp-test-harness"
OTHER_USER = "mcp-lp-other"

DOCUMENTS = {
    "public/welcome.md": "# Welcome\n\nThis bucket holds the team's documents.\n",
    "public/guide.md": "# Guide\n\nRead with readDocument, list with listDocuments.\n",
    "private/q3-plan.md": "# Q3 plan\n\nShip the least-privilege document server.\n",
    "private/salaries.md": "# Salaries\n\nConfidential.\n",
}


DEPLOY_IAM = Path(__file__).resolve().parents[2] / "deploy" / "iam"


def deployed_policy(name: str, **values: str) -> str:
    """deploy/iam/NAME.json with its placeholders filled in; a placeholder left over is an error."""
    text = (DEPLOY_IAM / f"{name}.json").read_text(encoding="utf-8")
    filled = string.Template(text).substitute(values)
    return json.dumps(json.loads(filled))


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def trust(user: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": user_arn(user)},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        }],
    })


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str], resources: list[str]) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def main(endpoint: str, state_dir: Path) -> None:
    session = botocore.session.get_session()
    # The emulator's root keys: seeding only, never in a test.
    client = lambda service: session.create_client(  # noqa: E731
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    iam, s3, sm = client("iam"), client("s3"), client("secretsmanager")

    s3.create_bucket(Bucket=BUCKET)
    for key, body in DOCUMENTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode(), ContentType="text/markdown")

    secret_value = "demo-" + secrets.token_hex(16)
    secret_arn = sm.create_secret(Name=SECRET_NAME, SecretString=secret_value)["ARN"]

    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    objects_arn = f"{bucket_arn}/*"
    values = {"ACCOUNT": ACCOUNT, "REGION": REGION, "BUCKET": BUCKET,
              "PROCESS_PRINCIPAL_ARN": user_arn(SERVER_USER)}
    deployed_trust = deployed_policy("tool-role-trust", **values)
    roles = {
        name: (deployed_trust, deployed_policy(f"role-{name}", **values))
        for name in ("mcp-read-only", "mcp-delete", "mcp-secrets-reader")
    }
    roles["mcp-not-trusting"] = (trust(OTHER_USER), policy(allow(["s3:GetObject"], [objects_arn])))

    for name in (SERVER_USER, HARNESS_USER, OTHER_USER):
        iam.create_user(UserName=name)
    for name, (trust_policy, permissions) in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)
        iam.put_role_policy(RoleName=name, PolicyName="access", PolicyDocument=permissions)

    iam.put_user_policy(
        UserName=SERVER_USER,
        PolicyName="assume-mcp-roles",
        PolicyDocument=deployed_policy("process-identity", **values),
    )
    iam.put_user_policy(
        UserName=HARNESS_USER,
        PolicyName="fixtures-and-audit",
        PolicyDocument=policy(
            allow(["s3:PutObject", "s3:GetObject"], [objects_arn]),
            allow(["s3:ListBucket"], [bucket_arn]),
            allow(["cloudtrail:LookupEvents"], ["*"]),
            allow(["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                   "secretsmanager:DeleteSecret"],
                  [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mcp-lp/rotating-*"]),
        ),
    )

    keys = {name: iam.create_access_key(UserName=name)["AccessKey"] for name in (SERVER_USER, HARNESS_USER)}
    credentials = "".join(
        f"[{name}]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n\n"
        for name, key in keys.items()
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    creds_path = state_dir / "credentials"
    creds_path.write_text(credentials, encoding="utf-8")
    creds_path.chmod(0o600)
    seed = {
        "endpoint": endpoint,
        "region": REGION,
        "account": ACCOUNT,
        "bucket": BUCKET,
        "documents": DOCUMENTS,
        "roles": {name: role_arn(name) for name in roles},
        "server_user": user_arn(SERVER_USER),
        "harness_user": user_arn(HARNESS_USER),
        "credentials_file": str(creds_path),
        "secret_name": SECRET_NAME,
        "secret_arn": secret_arn,
        "secret_value": secret_value,
    }
    (state_dir / "seed.json").write_text(json.dumps(seed, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: seed.py ENDPOINT STATE_DIR")
    main(sys.argv[1], Path(sys.argv[2]))
