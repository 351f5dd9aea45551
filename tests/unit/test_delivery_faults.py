"""The fault suite: the invocation dies, and AWS answers are lost, at every step of an alert.

Each case runs the real pipeline against in-process moto with the table and topic built from
template.yaml, injects one fault, then lets "the platform" retry: a fresh pipeline (a timeout
resets the execution environment) later than the first invocation's deadline, as Lambda's
asynchronous retry is. The counts asserted are the promise of docs/delivery.md:

- every valid record is audited exactly once;
- every alert is sent at least once, and at most twice; twice only when SNS accepted a Publish
  whose outcome the pipeline never learnt (a lost answer, or death between Publish and the
  record of it), and then both copies carry the same ``alert_id``.

A kill is a BaseException, like the end of a Lambda invocation: no ``except Exception`` in the
pipeline sees it, so no clean-up code runs after it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws
from scripts.make_events import subscription_event

from cli.local_stack import LocalStack, create_stack
from shared.audit.items import CLAIMED, RETRY, SENT
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.errors import DeliveryError
from shared.models import Route
from shared.pipeline import ROUTE_EVENTBRIDGE, ROUTE_LOGS, Pipeline
from shared.rules import load_rules
from tests.unit.moto_stack import subscribed_inbox

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
REGION = "eu-west-1"
T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
TIMEOUT_MS = 60_000  # the template's function timeout


class Killed(BaseException):
    """The invocation ends here (timeout, out of memory, kill): nothing after it runs."""


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@dataclass
class Fault:
    """What happens to the next call of one operation."""

    operation: str
    action: str  # kill-before, kill-after, lose-answer, timeout-after, error:<Code>
    times: int = 1
    after: int = 0  # calls of the operation that go through before the fault applies


@dataclass
class Faulty:
    """Wraps a boto3 client and applies faults to the named operations."""

    client: Any
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.operation == name and f.times > 0 and self.calls[name] > f.after
                ),
                None,
            )
            if fault is None:
                return attribute(**kwargs)
            fault.times -= 1
            action = fault.action
            if action == "kill-before":
                raise Killed(name)
            if action.startswith("error:"):
                code = action.partition(":")[2]
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)
            attribute(**kwargs)  # the call reaches AWS and takes effect
            if action == "kill-after":
                raise Killed(name)
            if action == "timeout-after":  # the answer is lost; no SDK retry (SNS)
                raise ReadTimeoutError(endpoint_url=f"https://{name}.example")
            if action == "lose-answer":  # the answer is lost; botocore retries the request
                return attribute(**kwargs)
            raise AssertionError(f"unknown fault {action}")

        return call


@dataclass
class World:
    stack: LocalStack
    inbox: str
    clock: Clock = field(default_factory=Clock)

    def pipeline(self, *, dynamodb: Any = None, sns: Any = None) -> Pipeline:
        """A fresh container's pipeline (nothing cached from an earlier invocation)."""
        return Pipeline(
            ruleset=load_rules(),
            enricher=Enricher(self.stack.client("secretsmanager"), self.stack.client("iam"), None),
            store=AuditStore(
                dynamodb or self.stack.client("dynamodb"), self.stack.table_name, sleep=_no_sleep
            ),
            notifier=Notifier(sns or self.stack.client("sns"), self.stack.topic_arn),
            retention_days=30,
            clock=self.clock,
        )

    def invoke(self, pipeline: Pipeline, event: dict[str, Any], route: Route) -> Any:
        """One invocation that starts now and may run for the function's timeout."""
        return pipeline.process_event(
            event, route, deadline_ms=self.clock.ms() + TIMEOUT_MS, request_id="req-1"
        )

    def retry_later(self, event: dict[str, Any], route: Route, minutes: int = 1) -> Any:
        """Lambda's asynchronous retry: a minute or more later, in a fresh environment."""
        self.clock.now += timedelta(minutes=minutes, seconds=TIMEOUT_MS // 1000)
        return self.invoke(self.pipeline(), event, route)

    def items(self) -> list[dict[str, Any]]:
        db = self.stack.client("dynamodb")
        return [
            item
            for page in db.get_paginator("scan").paginate(TableName=self.stack.table_name)
            for item in page["Items"]
        ]

    def event_items(self) -> list[dict[str, Any]]:
        return [i for i in self.items() if i["kind"]["S"] == "event"]

    def sent(self) -> list[dict[str, Any]]:
        """Every message SNS delivered to the inbox queue: the envelope, attributes included."""
        sqs = self.stack.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.inbox, ReceiptHandle=message["ReceiptHandle"])


def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = create_stack(None, region=REGION)
        url = subscribed_inbox(stack, REGION)
        yield World(stack, url)


def eventbridge(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def alert_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["MessageAttributes"]["alert_id"]["Value"] for m in messages]


def alert_states(item: dict[str, Any]) -> dict[str, str]:
    return {rule: entry["M"]["state"]["S"] for rule, entry in item["alerts"]["M"].items()}


ONE_ALERT = "deletion-forced-no-recovery"  # one finding: deletion-forced-no-recovery


def run_with_fault(world: World, fault: Fault, route: Route = ROUTE_EVENTBRIDGE) -> str:
    """Deliver the one-alert event with ``fault``; return how the first invocation ended."""
    fault = replace(fault)  # the parameters are shared between runs: never spend the original
    event = eventbridge(ONE_ALERT)
    if route == ROUTE_LOGS:
        event = subscription_event([json.dumps(event["detail"])])
    db = Faulty(world.stack.client("dynamodb"), [fault] if fault.operation != "publish" else [])
    sns = Faulty(world.stack.client("sns"), [fault] if fault.operation == "publish" else [])
    try:
        world.invoke(world.pipeline(dynamodb=db, sns=sns), event, route)
    except Killed:
        outcome = "killed"
    except DeliveryError:
        outcome = "failed"
    else:
        outcome = "succeeded"
    if outcome != "succeeded":
        world.retry_later(event, route)
    # and, later still, the same record by the other route (both routes on)
    other = (
        subscription_event([json.dumps(event["detail"])])
        if route == ROUTE_EVENTBRIDGE
        else eventbridge(ONE_ALERT)
    )
    world.retry_later(other, ROUTE_LOGS if route == ROUTE_EVENTBRIDGE else ROUTE_EVENTBRIDGE)
    return outcome


# (fault, how the first invocation ends, sends expected)
CASES = [
    pytest.param(Fault("put_item", "kill-before"), "killed", 1, id="killed-before-the-audit-write"),
    pytest.param(Fault("put_item", "kill-after"), "killed", 1, id="killed-after-the-audit-write"),
    pytest.param(Fault("put_item", "lose-answer"), "succeeded", 1, id="audit-write-answer-lost"),
    pytest.param(
        Fault("put_item", "error:ThrottlingException"), "failed", 1, id="audit-write-throttled"
    ),
    pytest.param(Fault("publish", "kill-before"), "killed", 1, id="killed-before-publish"),
    pytest.param(Fault("publish", "error:InternalError"), "failed", 1, id="publish-refused"),
    pytest.param(Fault("publish", "kill-after"), "killed", 2, id="killed-after-publish"),
    pytest.param(Fault("publish", "timeout-after"), "failed", 2, id="publish-answer-lost"),
    pytest.param(Fault("update_item", "kill-before"), "killed", 2, id="killed-before-sent-mark"),
    pytest.param(Fault("update_item", "lose-answer"), "succeeded", 1, id="sent-mark-answer-lost"),
    pytest.param(Fault("update_item", "kill-after"), "killed", 1, id="killed-after-sent-mark"),
]


@pytest.mark.parametrize(("fault", "outcome", "sends"), CASES)
@pytest.mark.parametrize("route", [ROUTE_EVENTBRIDGE, ROUTE_LOGS])
def test_an_alert_survives_a_fault_at_every_step(
    world: World, fault: Fault, outcome: str, sends: int, route: Route
) -> None:
    # GIVEN one alerting event and a fault at one step of its alert
    # WHEN it is delivered, retried by the platform if it did not succeed, and delivered again
    # by the other route
    assert run_with_fault(world, fault, route) == outcome

    # THEN one audit record, marked sent
    (item,) = world.items()
    assert alert_states(item) == {ONE_ALERT: SENT}
    # AND the alert went out at least once; twice only where SNS took a Publish whose outcome
    # was never recorded, and then with one alert_id
    messages = world.sent()
    assert len(messages) == sends
    assert len(set(alert_ids(messages))) == 1
    assert alert_ids(messages)[0] == item["alerts"]["M"][ONE_ALERT]["M"]["alert_id"]["S"]


def test_a_lost_put_answer_is_recognised_as_our_own_write(world: World) -> None:
    # GIVEN the audit write applied but its answer lost: botocore retried and met the item
    db = Faulty(world.stack.client("dynamodb"), [Fault("put_item", "lose-answer")])
    # WHEN the invocation goes on
    summary = world.invoke(world.pipeline(dynamodb=db), eventbridge(ONE_ALERT), ROUTE_EVENTBRIDGE)
    # THEN it knows the item is its own: it reports a write, not a duplicate, and publishes
    assert (summary.written, summary.duplicates, summary.alerts_published) == (1, 0, 1)
    assert len(world.sent()) == 1


def test_a_live_claim_is_left_to_its_owner(world: World) -> None:
    # GIVEN an invocation that wrote the record (claiming the alert) and then stalled
    event = eventbridge(ONE_ALERT)
    db = Faulty(world.stack.client("dynamodb"), [Fault("put_item", "kill-after")])
    with pytest.raises(Killed):
        world.invoke(world.pipeline(dynamodb=db), event, ROUTE_EVENTBRIDGE)
    # WHEN the other route delivers the record before that invocation's deadline
    world.clock.now += timedelta(seconds=5)
    other = subscription_event([json.dumps(event["detail"])])
    early = world.invoke(world.pipeline(), other, ROUTE_LOGS)
    # THEN nothing is sent yet: a live claim belongs to its owner
    assert (early.alerts_published, early.duplicates) == (0, 1)
    assert world.sent() == []
    # AND once the owner's deadline has passed, the platform's retry sends it, once
    world.retry_later(event, ROUTE_EVENTBRIDGE)
    assert len(world.sent()) == 1


def test_the_claim_carries_the_invocation_and_its_deadline(world: World) -> None:
    # GIVEN an invocation killed just before it publishes
    sns = Faulty(world.stack.client("sns"), [Fault("publish", "kill-before")])
    deadline = world.clock.ms() + TIMEOUT_MS
    with pytest.raises(Killed):
        world.invoke(world.pipeline(sns=sns), eventbridge(ONE_ALERT), ROUTE_EVENTBRIDGE)
    # WHEN the stored claim is read
    (item,) = world.items()
    entry = item["alerts"]["M"][ONE_ALERT]["M"]
    # THEN it names the invocation and never outlives the invocation's deadline
    assert entry["state"]["S"] == CLAIMED
    assert entry["invocation"]["S"] == "req-1"
    assert int(entry["deadline"]["N"]) == deadline


def test_no_alert_is_claimed_when_the_deadline_is_near(world: World) -> None:
    # GIVEN an invocation with five seconds left
    event = eventbridge(ONE_ALERT)
    pipeline = world.pipeline()
    # WHEN it handles an alerting record
    with pytest.raises(DeliveryError, match="deadline was near"):
        pipeline.process_event(event, ROUTE_EVENTBRIDGE, deadline_ms=world.clock.ms() + 5_000)
    # THEN the record is audited with the alert handed back, nothing is sent, and the platform's
    # retry sends it
    (item,) = world.items()
    assert alert_states(item) == {ONE_ALERT: RETRY}
    assert world.sent() == []
    world.retry_later(event, ROUTE_EVENTBRIDGE)
    assert len(world.sent()) == 1


def test_a_failed_hand_back_lapses_at_the_deadline(world: World) -> None:
    # GIVEN SNS refusing the publish and DynamoDB refusing to take the alert back
    sns = Faulty(world.stack.client("sns"), [Fault("publish", "error:InternalError")])
    db = Faulty(world.stack.client("dynamodb"), [Fault("update_item", "error:InternalServerError")])
    event = eventbridge(ONE_ALERT)
    with pytest.raises(DeliveryError):
        world.invoke(world.pipeline(dynamodb=db, sns=sns), event, ROUTE_EVENTBRIDGE)
    (item,) = world.items()
    assert alert_states(item) == {ONE_ALERT: CLAIMED}
    # WHEN the platform retries after the deadline  THEN the alert is sent (the claim lapsed)
    world.retry_later(event, ROUTE_EVENTBRIDGE)
    assert len(world.sent()) == 1


def test_each_alert_of_a_batch_survives_a_kill_mid_batch(world: World) -> None:
    # GIVEN a CloudWatch Logs batch of three alerting records and twenty quiet ones, and an
    # invocation killed at its second publish
    names = ("secret-deleted", "rotation-failed", "secret-restored")
    quiet = eventbridge("control-get-secret-value")["detail"]
    records = [eventbridge(n)["detail"] for n in names]
    for i in range(20):
        records.append({**quiet, "eventID": f"00000000-0000-4000-8000-{i:012d}"})
    batch = subscription_event([json.dumps(r) for r in records])
    sns = Faulty(world.stack.client("sns"), [Fault("publish", "kill-before", after=1)])
    with pytest.raises(Killed):
        world.invoke(world.pipeline(sns=sns), batch, ROUTE_LOGS)
    assert len(world.sent()) == 1
    # WHEN the platform retries the whole batch
    world.retry_later(batch, ROUTE_LOGS)
    # THEN every record is audited once and every alert was sent once
    assert len(world.event_items()) == 23
    rules = sorted(m["MessageAttributes"]["rule"]["Value"] for m in world.sent())
    assert len(rules) == 2  # the first was sent before the kill
    assert {*rules} | {names[0]} == set(names)


def test_a_refused_batch_is_written_item_by_item(world: World) -> None:
    # GIVEN a delivery of 30 quiet records and DynamoDB refusing the first 25-item batch as a
    # whole (one invalid item fails all 25)
    quiet = eventbridge("control-get-secret-value")["detail"]
    records = [{**quiet, "eventID": f"00000000-0000-4000-8000-{i:012d}"} for i in range(30)]
    db = Faulty(
        world.stack.client("dynamodb"), [Fault("batch_write_item", "error:ValidationException")]
    )
    # WHEN it is delivered
    summary = world.invoke(
        world.pipeline(dynamodb=db),
        subscription_event([json.dumps(r) for r in records]),
        ROUTE_LOGS,
    )
    # THEN the refused batch was written item by item: nothing lost, the invocation succeeded
    assert summary.written == 30
    assert db.calls["put_item"] == 25
    assert len(world.event_items()) == 30


def test_an_item_dynamodb_refuses_is_kept_small_with_its_alert(world: World) -> None:
    # GIVEN DynamoDB refusing the alerting record's full item
    db = Faulty(world.stack.client("dynamodb"), [Fault("put_item", "error:ValidationException")])
    # WHEN it is delivered
    summary = world.invoke(world.pipeline(dynamodb=db), eventbridge(ONE_ALERT), ROUTE_EVENTBRIDGE)
    # THEN a small item that says why keeps the record's keys and the alert's claim, and the
    # alert is sent
    (item,) = world.items()
    assert "refused" in item["storage_error"]["S"]
    assert "caller" not in item
    assert alert_states(item) == {ONE_ALERT: SENT}
    assert summary.alerts_published == 1
    assert len(world.sent()) == 1


def test_a_finding_the_first_delivery_could_not_make_is_added_and_alerted_later(
    world: World,
) -> None:
    # GIVEN a rule on the secret's tags, and the secret tagged env=prod
    from shared.rules import compile_rules

    tagged_rule = {
        "id": "prod-secret-deleted",
        "description": "A production secret was scheduled for deletion.",
        "runbook": "Page the owner.",
        "severity": "critical",
        "events": ["DeleteSecret"],
        "when": {"key": "secret.tags.env", "op": "eq", "value": "prod"},
    }
    rules = compile_rules({"extends": "default", "rules": [tagged_rule]}, "doc")
    event = eventbridge("secret-deleted")
    name = event["detail"]["requestParameters"]["secretId"]
    sm = world.stack.client("secretsmanager")
    sm.create_secret(Name=name, SecretString="x", Tags=[{"Key": "env", "Value": "prod"}])
    event["detail"]["requestParameters"]["secretId"] = name
    event["detail"]["responseElements"] = None

    def pipeline(secretsmanager: Any) -> Pipeline:
        return Pipeline(
            ruleset=rules,
            enricher=Enricher(secretsmanager, world.stack.client("iam"), None),
            store=AuditStore(world.stack.client("dynamodb"), world.stack.table_name),
            notifier=Notifier(world.stack.client("sns"), world.stack.topic_arn),
            retention_days=30,
            clock=world.clock,
        )

    # WHEN the first delivery's DescribeSecret is throttled (the tag rule cannot fire) ...
    throttled = Faulty(sm, [Fault("describe_secret", "error:ThrottlingException")])
    world.invoke(pipeline(throttled), event, ROUTE_EVENTBRIDGE)
    assert [m["MessageAttributes"]["rule"]["Value"] for m in world.sent()] == ["secret-deleted"]
    # ... and the other route delivers the same record later, with enrichment working
    world.clock.now += timedelta(minutes=5)
    logs = subscription_event([json.dumps(event["detail"])])
    world.invoke(pipeline(sm), logs, ROUTE_LOGS)
    # THEN the missing finding is added to the record, indexed and alerted, once
    assert [m["MessageAttributes"]["rule"]["Value"] for m in world.sent()] == [
        "prod-secret-deleted"
    ]
    (item,) = world.items()
    rules_found = sorted(f["M"]["rule"]["S"] for f in item["findings"]["L"])
    assert rules_found == ["prod-secret-deleted", "secret-deleted"]
    assert item["severity"]["S"] == "critical"
    assert item["rule_1"]["S"] == "prod-secret-deleted"
    assert alert_states(item) == {"secret-deleted": SENT, "prod-secret-deleted": SENT}
    # AND a third delivery adds and sends nothing more
    world.clock.now += timedelta(minutes=5)
    world.invoke(pipeline(sm), logs, ROUTE_LOGS)
    assert world.sent() == []
