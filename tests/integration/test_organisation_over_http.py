"""Central mode over HTTP: a member's forwarded event is enriched through the member's read-only
role, audited and alerted in the centre.

The stack comes from template.yaml with DeploymentMode=central, so MEMBER_ROLE_NAME is what the
template gives the functions. moto's STS AssumeRole works over HTTP and hands out credentials
that moto maps to the member account (its secrets are that account's), but moto does not enforce
IAM: the trust and permission policies of the roles are checked in tests/template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli.local_stack import create_stack
from handlers import eventbridge
from shared.audit import query as q
from tests.integration.conftest import (
    REGION,
    Server,
    _reset_container_caches,
    reset_server,
    use_stack,
)
from tests.integration.test_handlers_over_http import Context

EVENTS = Path(__file__).resolve().parents[2] / "events"
MEMBER = "111122223333"  # the account of the sample events; moto's own is 123456789012
CENTRAL = {"DeploymentMode": "central", "OrganizationId": "o-a1b2c3d4e5"}


@pytest.fixture
def central(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    reset_server(moto_endpoint, monkeypatch)
    stack = create_stack(moto_endpoint, region=REGION, parameters=CENTRAL)
    use_stack(stack, moto_endpoint, monkeypatch)
    yield Server(stack, Server(stack, "").subscribe("inbox"))
    _reset_container_caches()


def _member_secretsmanager(server: Server) -> Any:
    """Secrets Manager in the member account, with that account's own (assumed) credentials."""
    role = f"arn:aws:iam::{MEMBER}:role/secretwatch-member-{REGION}"
    issued = server.client("sts").assume_role(RoleArn=role, RoleSessionName="setup")["Credentials"]
    return boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=server.stack.endpoint_url,
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
    )


def test_a_members_event_is_enriched_through_its_role_audited_and_alerted(
    central: Server,
) -> None:
    # GIVEN the template's central environment, and a tagged secret in the member account
    assert central.stack.environment["MEMBER_ROLE_NAME"] == "secretwatch-member"
    member_secrets = _member_secretsmanager(central)
    arn = member_secrets.create_secret(
        Name="prod/rds/orders-primary", Tags=[{"Key": "owner", "Value": "team-orders"}]
    )["ARN"]
    # AND the central account has no such secret (a look-up there would find nothing)
    assert central.client("secretsmanager").list_secrets()["SecretList"] == []
    # AND the member forwarded a write call on it to the central bus
    event: dict[str, Any] = json.loads(
        (EVENTS / "eventbridge" / "rotation-disabled.json").read_text()
    )
    assert event["account"] == MEMBER
    for key in ("requestParameters", "responseElements"):
        section = event["detail"].get(key)
        if isinstance(section, dict):
            section.pop("arn", None)
            if "secretId" in section:
                section["secretId"] = arn

    # WHEN the central EventBridge function processes it
    eventbridge.lambda_handler(event, Context())

    # THEN the alert carries the member's tag, found through the member role
    (envelope,) = central.drain()
    message = json.loads(envelope["Message"])
    assert message["enrichment"]["secret"]["owner"] == "team-orders"
    # AND the audit record is the member's, found by `audit --account`
    dynamodb = central.client("dynamodb")
    found = q.search(dynamodb, central.stack.table_name, q.Filters(account=MEMBER))
    assert [item["event_id"] for item in found.items] == [event["detail"]["eventID"]]
    assert found.items[0]["account_id"] == MEMBER
    assert (
        q.search(dynamodb, central.stack.table_name, q.Filters(account="999999999999")).items == []
    )
