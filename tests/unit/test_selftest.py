"""`secretwatch selftest`: the synthetic event's one shape, its one finding and alert (never by
SMS), and the command's report hop by hop, on an in-process moto stack built from template.yaml."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from cli import selftest as command
from cli.local_stack import LocalStack, create_stack
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.envelopes import read_eventbridge_event
from shared.pipeline import ROUTE_EVENTBRIDGE, Pipeline
from shared.rules import load_rules
from shared.selftest import SELFTEST_DETAIL_TYPE, SELFTEST_SOURCE

REGION = "eu-west-1"
ROOT = Path(__file__).resolve().parents[2]


def envelope(**detail_changes: Any) -> dict[str, Any]:
    detail = command.synthetic_event(
        "9e0b5c8a-0000-4000-8000-000000000001", REGION, datetime.now(UTC)
    )
    detail.update(detail_changes)
    return {
        "version": "0",
        "id": "eb-1",
        "source": SELFTEST_SOURCE,
        "detail-type": SELFTEST_DETAIL_TYPE,
        "account": "111122223333",
        "region": REGION,
        "detail": detail,
    }


def test_the_selftest_shape_is_read_as_a_selftest_record() -> None:
    (item,) = read_eventbridge_event(envelope())
    assert item.selftest
    assert item.record is not None
    assert item.record.event_name == "SecretwatchSelfTest"


@pytest.mark.parametrize(
    "change",
    [
        {"eventName": "DeleteSecret"},  # a real event name under the self-test source
        {"eventSource": "kms.amazonaws.com"},
    ],
)
def test_the_selftest_source_admits_no_other_shape(change: dict[str, Any]) -> None:
    # GIVEN the self-test source carrying anything but the self-test record
    (item,) = read_eventbridge_event(envelope(**change))
    # THEN it is not a self-test, and (not being aws.secretsmanager) it is skipped
    assert not item.selftest
    assert item.record is None
    assert item.skipped is not None


def test_the_selftest_record_under_the_real_source_is_no_selftest() -> None:
    event = envelope()
    event["source"] = "aws.secretsmanager"
    event["detail-type"] = "AWS API Call via CloudTrail"
    (item,) = read_eventbridge_event(event)
    assert not item.selftest


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield create_stack(None, region=REGION)


def pipeline(stack: LocalStack) -> Pipeline:
    return Pipeline(
        ruleset=load_rules(),
        enricher=Enricher(stack.client("secretsmanager"), stack.client("iam"), None),
        store=AuditStore(stack.client("dynamodb"), stack.table_name, sleep=lambda _: None),
        notifier=Notifier(stack.client("sns"), stack.topic_arn),
        retention_days=30,
    )


def subscribe(stack: LocalStack, filter_policy: dict[str, Any] | None) -> str:
    sqs = stack.client("sqs")
    url: str = sqs.create_queue(QueueName=f"q{len(json.dumps(filter_policy))}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    stack.client("sns").subscribe(
        TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes
    )
    return url


def received(stack: LocalStack, url: str) -> list[dict[str, Any]]:
    messages = stack.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_a_selftest_gets_one_info_finding_and_an_alert_sms_never_receives(
    stack: LocalStack,
) -> None:
    # GIVEN an e-mail-like subscriber (everything) and an SMS-like one that takes even info
    # severities, with the template's kind filter
    everything = subscribe(stack, None)
    sms = subscribe(
        stack, {"severity": ["info", "low", "medium", "high", "critical"], "kind": ["alert"]}
    )
    # WHEN the self-test event and a real alert pass through the pipeline
    summary = pipeline(stack).process_event(envelope(), ROUTE_EVENTBRIDGE)
    real = json.loads((ROOT / "events" / "eventbridge" / "secret-restored.json").read_text())
    pipeline(stack).process_event(real, ROUTE_EVENTBRIDGE)
    # THEN the self-test has exactly the selftest finding, at info, whatever the rule document
    assert summary.findings == 1
    assert [f["rule"] for f in summary.decisions[0].as_dict()["findings"]] == ["selftest"]
    # AND its alert is published with kind=selftest to the subscriber of everything
    kinds = sorted(m["MessageAttributes"]["kind"]["Value"] for m in received(stack, everything))
    assert kinds == ["alert", "selftest"]
    # AND the SMS subscriber gets the real alert only
    assert [m["MessageAttributes"]["kind"]["Value"] for m in received(stack, sms)] == ["alert"]


def test_the_command_reports_each_hop_when_the_pipeline_runs(stack: LocalStack) -> None:
    (rule,) = [r for r in stack.rules if r.logical_id == "SelfTestRule"]
    sqs = stack.client("sqs")
    worker = pipeline(stack)

    def deliver(_: float) -> None:  # what EventBridge and Lambda do in an account
        for message in sqs.receive_message(QueueUrl=rule.queue_url).get("Messages", []):
            worker.process_event(json.loads(message["Body"]), ROUTE_EVENTBRIDGE)

    report = command.selftest(
        events=stack.client("events"),
        dynamodb=stack.client("dynamodb"),
        table=stack.table_name,
        region=REGION,
        stack="s",
        timeout=5,
        wait=deliver,
    )
    assert report.passed
    assert [h.name for h in report.hops] == [
        "event put on the default bus",
        "audit record written",
        "alert published",
    ]


def test_the_command_names_the_hop_that_failed_and_what_to_check(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack whose function never runs
    report = command.selftest(
        events=stack.client("events"),
        dynamodb=stack.client("dynamodb"),
        table=stack.table_name,
        region=REGION,
        stack="secretwatch",
        timeout=0.2,
        wait=lambda _: None,
    )
    # THEN the record hop failed, with the rule, the function's logs and the DLQ to check
    assert not report.passed
    failed = report.hops[-1]
    assert (failed.name, failed.ok) == ("audit record written", False)
    assert "SelfTestRule" in failed.detail
    assert "/aws/lambda/<the stack output EventBridgeFunctionName>" in failed.detail
    command.print_report(report, "json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["passed"] is False
    assert printed["hops"][-1]["hop"] == "audit record written"


def test_selftest_needs_a_stack_or_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.main import main

    monkeypatch.delenv("SECRETWATCH_TABLE", raising=False)
    assert main(["selftest"]) == 2
    assert "selftest needs --stack NAME" in capsys.readouterr().err


def test_selftest_help_names_the_permissions_it_needs() -> None:
    from cli.main import build_parser

    parser = build_parser(["selftest"])
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    text = commands.choices["selftest"].format_help()
    for permission in ("cloudformation:DescribeStacks", "events:PutEvents", "dynamodb:GetItem"):
        assert permission in text
