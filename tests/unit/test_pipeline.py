"""The pipeline against in-process moto, with the table and topic built from template.yaml.

Idempotency (same event twice, and by both routes), failure injection (DynamoDB throttling, SNS
down) with retries that neither lose nor duplicate, rejected records kept, batched writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from scripts.make_events import subscription_event

from cli.local_stack import LocalStack, create_stack
from shared.audit.items import RETRY, SENT
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.errors import DeliveryError
from shared.pipeline import ROUTE_EVENTBRIDGE, ROUTE_LOGS, Pipeline
from shared.rules import load_rules
from tests.unit.moto_stack import subscribed_inbox

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION = "eu-west-1"


class Faulty:
    """Wraps a boto3 client; the named operations raise ClientError for their first N calls."""

    def __init__(self, client: Any, failures: dict[str, tuple[int, str]]) -> None:
        self._client = client
        self._failures = dict(failures)
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            remaining, code = self._failures.get(name, (0, ""))
            if remaining > 0:
                self._failures[name] = (remaining - 1, code)
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)
            return attribute(*args, **kwargs)

        return call


@dataclass
class World:
    stack: LocalStack
    inbox: str

    def pipeline(self, *, dynamodb: Any = None, sns: Any = None) -> Pipeline:
        db = dynamodb or self.stack.client("dynamodb")
        return Pipeline(
            ruleset=load_rules(),
            enricher=Enricher(self.stack.client("secretsmanager"), self.stack.client("iam"), None),
            store=AuditStore(db, self.stack.table_name, sleep=lambda _: None),
            notifier=Notifier(sns or self.stack.client("sns"), self.stack.topic_arn),
            retention_days=30,
        )

    def items(self) -> list[dict[str, Any]]:
        scan: list[dict[str, Any]] = self.stack.client("dynamodb").scan(
            TableName=self.stack.table_name
        )["Items"]
        return scan

    def messages(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self.inbox, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = create_stack(None, region=REGION)
        url = subscribed_inbox(stack, REGION)
        yield World(stack, url)


def eventbridge(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / f"{name}.json").read_text())
    return event


def logs_event(*records: dict[str, Any], extra_messages: tuple[str, ...] = ()) -> dict[str, Any]:
    return subscription_event([json.dumps(r) for r in records] + list(extra_messages))


def quiet_record(i: int) -> dict[str, Any]:
    record: dict[str, Any] = eventbridge("control-get-secret-value")["detail"]
    record["eventID"] = f"00000000-0000-0000-0000-{i:012d}"
    return record


def test_same_event_twice_gives_one_item_and_one_alert(world: World) -> None:
    # GIVEN an alerting EventBridge event
    event = eventbridge("secret-deleted")
    pipeline = world.pipeline()
    # WHEN it is delivered twice
    first = pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    second = pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    # THEN one audit item, one message; the second delivery is counted as a duplicate
    assert len(world.items()) == 1
    messages = world.messages()
    assert [m["rule"] for m in messages] == ["secret-deleted"]
    assert (first.alerts_published, second.alerts_published, second.duplicates) == (1, 0, 1)


def test_both_routes_give_one_item_and_one_alert(world: World) -> None:
    # GIVEN the same record by EventBridge and by the CloudWatch Logs subscription
    event = eventbridge("root-deleted-secret")
    pipeline = world.pipeline()
    # WHEN both routes deliver it
    pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    pipeline.process_event(logs_event(event["detail"]), ROUTE_LOGS)
    # THEN one item and one message per rule (root-activity and secret-deleted)
    assert len(world.items()) == 1
    assert sorted(m["rule"] for m in world.messages()) == ["root-activity", "secret-deleted"]


def test_sns_failure_fails_the_invocation_and_the_retry_sends_once(world: World) -> None:
    # GIVEN SNS down for the first publish
    sns = Faulty(world.stack.client("sns"), {"publish": (1, "InternalErrorException")})
    pipeline = world.pipeline(sns=sns)
    event = eventbridge("deletion-forced-no-recovery")
    # WHEN the event is processed, then retried by the platform, then delivered once more
    with pytest.raises(DeliveryError):
        pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    (item,) = world.items()
    assert item["alerts"]["M"]["deletion-forced-no-recovery"]["M"]["state"]["S"] == RETRY
    retry = pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    again = pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    # THEN the audit record was kept, and the alert went out exactly once
    assert retry.alerts_published == 1
    assert again.alerts_published == 0
    assert [m["rule"] for m in world.messages()] == ["deletion-forced-no-recovery"]
    (item,) = world.items()
    assert item["alerts"]["M"]["deletion-forced-no-recovery"]["M"]["state"]["S"] == SENT


def test_dynamodb_throttling_fails_the_invocation_and_the_retry_does_not_duplicate(
    world: World,
) -> None:
    # GIVEN DynamoDB throttling the first conditional write
    dynamodb = Faulty(world.stack.client("dynamodb"), {"put_item": (1, "ThrottlingException")})
    pipeline = world.pipeline(dynamodb=dynamodb)
    event = eventbridge("resource-policy-public")
    # WHEN processed (fails), then retried
    with pytest.raises(DeliveryError, match="ThrottlingException"):
        pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    assert world.items() == []
    assert world.messages() == []
    pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    pipeline.process_event(event, ROUTE_EVENTBRIDGE)
    # THEN one item, one critical alert
    assert len(world.items()) == 1
    messages = world.messages()
    assert [(m["rule"], m["severity"]) for m in messages] == [
        ("resource-policy-changed", "critical")
    ]


def test_a_failure_in_a_batch_does_not_stop_the_rest_and_the_retry_completes_it(
    world: World,
) -> None:
    # GIVEN a CloudWatch Logs batch with three alerting records and SNS failing once
    records = [
        eventbridge(n)["detail"] for n in ("secret-deleted", "rotation-failed", "secret-restored")
    ]
    sns = Faulty(world.stack.client("sns"), {"publish": (1, "Throttled")})
    pipeline = world.pipeline(sns=sns)
    batch = logs_event(*records)
    # WHEN the batch fails once and is retried twice
    with pytest.raises(DeliveryError):
        pipeline.process_event(batch, ROUTE_LOGS)
    assert len(world.items()) == 3  # every record was recorded despite the failed publish
    pipeline.process_event(batch, ROUTE_LOGS)
    pipeline.process_event(batch, ROUTE_LOGS)
    # THEN each alert was published exactly once
    assert sorted(m["rule"] for m in world.messages()) == [
        "rotation-failed",
        "secret-deleted",
        "secret-restored",
    ]


def test_malformed_log_event_is_kept_and_does_not_block_the_batch(world: World) -> None:
    # GIVEN a batch with a good record, a record with a wrong type and a non-JSON message
    bad = quiet_record(2)
    bad["readOnly"] = "true"
    batch = logs_event(quiet_record(1), bad, extra_messages=("{not json",))
    # WHEN processed
    summary = world.pipeline().process_event(batch, ROUTE_LOGS)
    # THEN one record written, two failure records kept with their error and raw input
    assert (summary.records, summary.rejected) == (1, 2)
    rejected = {i["event_id"]["S"]: i for i in world.items() if i["kind"]["S"] == "rejected"}
    assert set(rejected) == {f"rejected#{bad['eventID']}", f"rejected#{10**55 + 2}"}
    assert "readOnly" in rejected[f"rejected#{bad['eventID']}"]["error"]["S"]
    assert rejected[f"rejected#{10**55 + 2}"]["raw"]["S"] == "{not json"
    # AND a redelivery keeps nothing twice
    world.pipeline().process_event(batch, ROUTE_LOGS)
    assert len(world.items()) == 3


def test_unreadable_event_is_kept_not_raised(world: World) -> None:
    # GIVEN a CloudWatch Logs event whose data is not base64
    event = {"awslogs": {"data": "%%% not base64 %%%"}}
    # WHEN processed
    summary = world.pipeline().process_event(event, ROUTE_LOGS)
    # THEN a failure record holds the raw event
    (item,) = world.items()
    assert summary.rejected == 1
    assert item["kind"]["S"] == "rejected"
    assert "not valid base64" in item["error"]["S"]
    assert "not base64" in item["raw"]["S"]


def test_quiet_records_are_written_in_batches_of_25_and_skip_existing(world: World) -> None:
    # GIVEN 60 records without findings in one batch
    dynamodb = Faulty(world.stack.client("dynamodb"), {})
    pipeline = world.pipeline(dynamodb=dynamodb)
    batch = logs_event(*(quiet_record(i) for i in range(60)))
    # WHEN processed twice
    first = pipeline.process_event(batch, ROUTE_LOGS)
    second = pipeline.process_event(batch, ROUTE_LOGS)
    # THEN three BatchWriteItem calls wrote all 60; the second delivery wrote nothing
    assert dynamodb.calls.get("batch_write_item") == 3
    assert dynamodb.calls.get("put_item", 0) == 0
    assert (first.written, second.written, second.duplicates) == (60, 0, 60)
    assert len(world.items()) == 60
    assert world.messages() == []


def test_unprocessed_batch_items_are_retried(world: World) -> None:
    # GIVEN a DynamoDB that leaves one item unprocessed on the first batch write
    real = world.stack.client("dynamodb")

    class Partial:
        def __init__(self) -> None:
            self.first = True

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            ((table, requests),) = RequestItems.items()
            if self.first:
                self.first = False
                real.batch_write_item(RequestItems={table: requests[1:]})
                return {"UnprocessedItems": {table: requests[:1]}}
            response: dict[str, Any] = real.batch_write_item(RequestItems=RequestItems)
            return response

    pipeline = world.pipeline(dynamodb=Partial())
    # WHEN a batch of 5 quiet records is written
    summary = pipeline.process_event(logs_event(*(quiet_record(i) for i in range(5))), ROUTE_LOGS)
    # THEN all 5 are there
    assert summary.written == 5
    assert len(world.items()) == 5


def test_alert_and_audit_hold_no_secret_value_and_escape_the_user_agent(world: World) -> None:
    # GIVEN a deletion whose user agent tries to inject a line into the e-mail
    event = eventbridge("secret-deleted")
    event["detail"]["userAgent"] = "evil\r\nSubject: pwned\u202e"
    # WHEN processed
    world.pipeline().process_event(event, ROUTE_EVENTBRIDGE)
    # THEN the stored item and the JSON alert carry the metadata, never a value field
    (message,) = world.messages()
    text = json.dumps(world.items()) + json.dumps(message)
    for forbidden in ("SecretString", "SecretBinary", "secret_value"):
        assert forbidden not in text
    assert message["source"]["user_agent"] == "evil\r\nSubject: pwned\u202e"


def test_enrichment_failures_are_counted_and_never_lose_the_event(world: World) -> None:
    # GIVEN a deletion of a secret that does not exist in the account (DescribeSecret fails)
    event = eventbridge("secret-deleted")
    # WHEN processed
    summary = world.pipeline().process_event(event, ROUTE_EVENTBRIDGE)
    # THEN the record and the alert are there, and the degraded look-up is counted
    assert summary.enrichment_failures >= 1
    assert len(world.items()) == 1
    (message,) = world.messages()
    assert message["enrichment"]["notes"]
