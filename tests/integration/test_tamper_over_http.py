"""Tampering with secretwatch itself, end to end on a moto server: the template's TamperRule on
the bus, the real EventBridge handler, the audit table and the alert topic of the local stack.

What moto does not model (so these tests cannot show it): it delivers a rule's matches to its
targets but never emits CloudTrail events of its own, so the calls are put on the bus as the
recorded payloads are; it does not refuse aws.* sources in PutEvents as EventBridge does; and
its SNS does not use a topic's KMS key, so a disabled AlertKey does not make Publish fail here
(in AWS it does: the alert is handed back, AlertFailures counts it and AlertFailuresAlarm goes to
the alarm topic, which no key encrypts; the last test stands in a refused Publish for it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cli.local_stack import local_account
from handlers import eventbridge
from tests.integration.conftest import Server
from tests.integration.test_handlers_over_http import Context

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"


def _sample(name: str, request: dict[str, Any]) -> dict[str, Any]:
    """A recorded tamper payload, moved into the local stack's account, acting on ``request``."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    account = local_account()
    event["account"] = account
    detail = event["detail"]
    detail["recipientAccountId"] = account
    detail["userIdentity"]["accountId"] = account
    detail["requestParameters"] = request
    detail.pop("resources", None)
    return event


def _through_the_bus(server: Server, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Put the event on moto's bus; what the template's TamperRule delivered to its target."""
    server.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )
    sqs = server.client("sqs")
    delivered: dict[str, list[dict[str, Any]]] = {}
    for rule in server.stack.rules:
        messages = sqs.receive_message(QueueUrl=rule.queue_url, MaxNumberOfMessages=10)
        delivered[rule.logical_id] = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert {name for name, got in delivered.items() if got} == {"TamperRule"}
    return delivered["TamperRule"]


def _item(server: Server, event_id: str) -> dict[str, Any]:
    (item,) = [i for i in server.items() if i["event_id"]["S"] == event_id]
    return item


def _own_rule(server: Server, logical_id: str) -> str:
    (rule,) = [r.name for r in server.stack.rules if r.logical_id == logical_id]
    return rule


@pytest.mark.integration
def test_disabling_the_stacks_own_rule_is_audited_and_alerted_critical(server: Server) -> None:
    # GIVEN a DisableRule of the stack's own write-calls rule (named after the stack)
    rule = _own_rule(server, "WriteCallsRule")
    event = _sample("tamper-rule-disabled", {"name": rule, "eventBusName": "default"})

    # WHEN it goes through the bus and the EventBridge handler
    (routed,) = _through_the_bus(server, event)
    eventbridge.lambda_handler(routed, Context())

    # THEN it is audited with its target and the critical finding
    item = _item(server, event["detail"]["eventID"])
    assert item["target"]["M"]["name"]["S"] == rule
    assert item["target"]["M"]["kind"]["S"] == "eventbridge-rule"
    assert item["severity"]["S"] == "critical"
    assert item["rule_0"]["S"] == "secretwatch-tampered"
    assert item["enrichment"]["M"]["own_target"]["S"] == f"EventBridge rule {rule}"
    # AND one critical alert was published, naming the call
    (envelope,) = server.drain()
    message = json.loads(envelope["Message"])
    assert (message["rule"], message["severity"], message["kind"]) == (
        "secretwatch-tampered",
        "critical",
        "alert",
    )
    assert message["event"]["name"] == "DisableRule"
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"


@pytest.mark.integration
def test_disabling_someone_elses_rule_is_audited_not_alerted(server: Server) -> None:
    # GIVEN the same call on a rule that is not the stack's
    event = _sample(
        "control-tamper-foreign-rule-disabled",
        {"name": "billing-nightly-export", "eventBusName": "default"},
    )

    # WHEN it goes through the bus and the handler
    (routed,) = _through_the_bus(server, event)
    summary = eventbridge.lambda_handler(routed, Context())

    # THEN it is recorded, without a finding, and nobody is alerted
    item = _item(server, event["detail"]["eventID"])
    assert item["target"]["M"]["name"]["S"] == "billing-nightly-export"
    assert "severity" not in item
    assert "findings" not in item or item["findings"]["L"] == []
    assert summary["findings"] == 0
    assert server.drain() == []


@pytest.mark.integration
def test_disabling_the_alert_key_produces_an_alert(server: Server) -> None:
    # GIVEN the alert key of the local stack, really disabled in moto, and its DisableKey call
    key_id = server.stack.environment["ALERT_KEY_ARN"].rpartition("/")[2]
    server.client("kms").disable_key(KeyId=key_id)  # (moto's DisableKey takes no ARN)
    event = _sample("tamper-key-disabled", {"keyId": key_id})

    # WHEN the call goes through the bus and the handler
    (routed,) = _through_the_bus(server, event)
    eventbridge.lambda_handler(routed, Context())

    # THEN the alert names the key (moto's SNS ignores the disabled key: see the docstring)
    (envelope,) = server.drain()
    message = json.loads(envelope["Message"])
    assert message["rule"] == "secretwatch-tampered"
    assert message["severity"] == "critical"
    assert message["enrichment"]["own_target"] == f"alert key {key_id}"


@pytest.mark.integration
def test_a_kms_call_that_is_not_tampering_never_reaches_the_function(server: Server) -> None:
    # GIVEN a routine KMS call (Decrypt of the alert key)
    event = _sample("tamper-key-disabled", {"keyId": server.stack.environment["ALERT_KEY_ARN"]})
    event["detail"]["eventName"] = "Decrypt"

    # WHEN it is put on the bus
    server.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )

    # THEN no rule of the template delivers it
    sqs = server.client("sqs")
    for rule in server.stack.rules:
        assert "Messages" not in sqs.receive_message(QueueUrl=rule.queue_url), rule.logical_id


@pytest.mark.integration
def test_an_alert_that_cannot_be_published_is_counted_and_kept_for_the_retry(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an alert topic that refuses Publish (in AWS: its key disabled; moto's SNS ignores
    # keys, so the topic is deleted instead) and metrics on, as in Lambda
    from shared.errors import DeliveryError
    from shared.observability import metrics
    from shared.pipeline import ROUTE_EVENTBRIDGE
    from shared.runtime import get_pipeline

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    server.client("sns").delete_topic(TopicArn=server.stack.topic_arn)
    key_id = server.stack.environment["ALERT_KEY_ARN"].rpartition("/")[2]
    event = _sample("tamper-key-disabled", {"keyId": key_id})
    (routed,) = _through_the_bus(server, event)

    # WHEN the finding is processed
    with pytest.raises(DeliveryError):
        get_pipeline().process_event(routed, ROUTE_EVENTBRIDGE)

    # THEN the invocation fails for the platform's retry, the alert is handed back (retry), and
    # AlertFailures is counted: the metric of AlertFailuresAlarm, whose topic needs no key
    try:
        assert metrics.metric_set["AlertFailures"]["Value"] == [1.0]
    finally:
        metrics.clear_metrics()
    item = _item(server, event["detail"]["eventID"])
    alert = item["alerts"]["M"]["secretwatch-tampered"]["M"]
    assert alert["state"]["S"] == "retry"
