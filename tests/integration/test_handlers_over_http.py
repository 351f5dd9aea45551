"""The real handlers end to end against a moto server over HTTP, resources from template.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers import eventbridge, log_subscription
from tests.integration.conftest import Server
from tests.unit.test_event_catalogue import EVENTBRIDGE, TAMPER_SAMPLES

EVENTS = Path(__file__).resolve().parents[2] / "events"


class Context:
    function_name = "secretwatch-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:secretwatch-test"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def send_everything() -> None:
    for path in sorted((EVENTS / "eventbridge").glob("*.json")):
        eventbridge.lambda_handler(json.loads(path.read_text()), Context())
    for path in sorted((EVENTS / "cloudwatch-logs").glob("*.json")):
        log_subscription.lambda_handler(json.loads(path.read_text()), Context())


def expected_alerts() -> list[tuple[str, str]]:
    """(event id, rule) for every alert the hand-written catalogue expects, once each."""
    out = []
    for name, rules in EVENTBRIDGE.items():
        if name in TAMPER_SAMPLES:
            # They act on the resources of SAMPLE_STACK in account 111122223333, not on this
            # local stack's (tests/integration/test_tamper_over_http.py tests those): audited only.
            continue
        detail = json.loads((EVENTS / "eventbridge" / name).read_text())["detail"]
        out += [(detail["eventID"], rule) for rule in rules]
    return sorted(out)


def event_ids() -> set[str]:
    return {
        json.loads(p.read_text())["detail"]["eventID"]
        for p in (EVENTS / "eventbridge").glob("*.json")
    }


@pytest.mark.integration
def test_every_payload_by_both_routes_gives_one_item_per_event_and_one_alert_per_rule(
    server: Server,
) -> None:
    # GIVEN the stack from template.yaml on a moto server
    # WHEN every payload in events/ goes through both handlers, twice
    send_everything()
    send_everything()
    # THEN one audit item per CloudTrail event id, and each expected alert exactly once
    items = server.items()
    assert sorted(i["event_id"]["S"] for i in items) == sorted(event_ids())
    messages = [json.loads(m["Message"]) for m in server.drain()]
    alerts = [m for m in messages if m["kind"] == "alert"]
    assert sorted((m["event"]["id"], m["rule"]) for m in alerts) == expected_alerts()
    # AND the samples' RotationSucceeded closes their RotationFailed once: one resolution
    resolved = [m for m in messages if m["kind"] == "resolved"]
    assert [(m["rule"], m["resolved_by_rule"]) for m in resolved] == [
        ("rotation-failed", "rotation-succeeded")
    ]


@pytest.mark.integration
def test_message_attributes_and_the_templates_sms_filter(server: Server) -> None:
    # GIVEN a subscriber with the template's SMS filter policy (default: high and above, and
    # alerts only: never a self-test)
    from cli.demo import _sms_filter

    policy = _sms_filter(server.stack)
    assert policy == {"severity": ["high", "critical"], "kind": ["alert"]}
    sms = server.subscribe("sms", policy)
    # WHEN a medium and a critical alert are published
    for name in ("rotation-disabled", "deletion-forced-no-recovery"):
        eventbridge.lambda_handler(
            json.loads((EVENTS / "eventbridge" / f"{name}.json").read_text()), Context()
        )
    # THEN the SMS subscriber gets only the critical one; attributes allow filtering
    (only,) = server.drain(sms)
    assert only["MessageAttributes"]["severity"]["Value"] == "critical"
    assert only["MessageAttributes"]["rule"]["Value"] == "deletion-forced-no-recovery"
    assert only["MessageAttributes"]["kind"]["Value"] == "alert"
    assert {m["MessageAttributes"]["severity"]["Value"] for m in server.drain()} == {
        "medium",
        "critical",
    }


@pytest.mark.integration
def test_audit_item_is_queryable_by_secret_principal_rule_and_day(server: Server) -> None:
    # GIVEN a root deletion processed by the EventBridge handler
    event = json.loads((EVENTS / "eventbridge" / "root-deleted-secret.json").read_text())
    eventbridge.lambda_handler(event, Context())
    dynamodb = server.client("dynamodb")
    detail = event["detail"]

    def query(index: str, key: str, value: str) -> list[str]:
        response = dynamodb.query(
            TableName=server.stack.table_name,
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": value}},
        )
        return [i["event_id"]["S"] for i in response["Items"]]

    # WHEN looked up through each index
    # THEN each finds it without a scan
    me = [detail["eventID"]]
    assert query("by-secret", "secret_name", "old/marketing/mailchimp-key") == me
    assert query("by-principal", "principal_name", "root") == me
    assert query("by-day", "day", detail["eventTime"][:10]) == me
    assert query("by-rule-0", "rule_0", "root-activity") == me
    assert query("by-rule-1", "rule_1", "secret-deleted") == me


@pytest.mark.integration
def test_enrichment_from_describe_secret_reaches_the_alert(server: Server) -> None:
    # GIVEN the secret exists with an owner tag
    secrets = server.client("secretsmanager")
    secrets.create_secret(
        Name="prod/rds/orders-primary", Tags=[{"Key": "owner", "Value": "team-orders"}]
    )
    event: dict[str, Any] = json.loads(
        (EVENTS / "eventbridge" / "rotation-disabled.json").read_text()
    )
    detail = event["detail"]
    for key in (
        "responseElements",
        "requestParameters",
    ):  # refer to it by name: moto's ARN suffix differs
        if isinstance(detail.get(key), dict):
            detail[key].pop("arn", None)
            if "secretId" in detail[key]:
                detail[key]["secretId"] = "prod/rds/orders-primary"
    # WHEN processed
    eventbridge.lambda_handler(event, Context())
    # THEN the e-mail and the JSON carry the owner from the tag
    (envelope,) = server.drain()
    message = json.loads(envelope["Message"])
    assert message["enrichment"]["secret"]["owner"] == "team-orders"
