"""What the end-to-end tests ask of the local AWS emulator, as the NON-ROOT user
`mcp-lp-test-harness` (put and get objects, list the bucket, read CloudTrail; it can assume no
role). Runs in .venv-aws, which has botocore; prints JSON.

    harness.py put KEY          < body      put an object into the seed's bucket
    harness.py exists KEY                   true or false
    harness.py assume-roles SINCE           the AssumeRole calls recorded since SINCE (epoch
                                            seconds): their request parameters, oldest first
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

STATE = Path(__file__).resolve().parents[2] / ".aws-emulator"


def seed() -> dict:
    path = Path(os.environ.get("MCP_LP_AWS_SEED") or STATE / "seed.json")
    return json.loads(path.read_text(encoding="utf-8"))


def client(service: str, s: dict):
    keys = configparser.ConfigParser()
    keys.read(s["credentials_file"])
    harness = keys["mcp-lp-test-harness"]
    return botocore.session.get_session().create_client(
        service,
        region_name=s["region"],
        endpoint_url=s["endpoint"],
        aws_access_key_id=harness["aws_access_key_id"],
        aws_secret_access_key=harness["aws_secret_access_key"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def main(args: list[str]) -> object:
    s = seed()
    match args:
        case ["put", key]:
            client("s3", s).put_object(Bucket=s["bucket"], Key=key, Body=sys.stdin.buffer.read())
            return key
        case ["exists", key]:
            try:
                client("s3", s).head_object(Bucket=s["bucket"], Key=key)
                return True
            except ClientError as e:
                if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        case ["assume-roles", since]:
            # The emulator records STS calls by HTTP method; AssumeRole is one of them.
            events = client("cloudtrail", s).lookup_events(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "POST.sts"}],
                StartTime=float(since),
                MaxResults=50,
            )["Events"]
            calls = [json.loads(e["CloudTrailEvent"])["requestParameters"] for e in events]
            return [c for c in reversed(calls) if c.get("Action") == "AssumeRole"]
    sys.exit(__doc__)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
