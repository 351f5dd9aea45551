"""No hostile record blinds a delivery: poison records in a batch of good ones.

Each poison record sits in one CloudWatch Logs delivery between good records (one of which
alerts). The delivery must end with every good record audited once, the alert sent, and the
poison record either audited within DynamoDB's limits or kept as a ``rejected#`` item that says
why — never the whole delivery failing on every retry. Secret values never reach the table.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from scripts.make_events import subscription_event

from cli.local_stack import LocalStack, create_stack
from shared import bounds
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.observability import logger
from shared.pipeline import ROUTE_LOGS, Pipeline
from shared.rules import load_rules
from tests.unit.moto_stack import subscribed_inbox

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
REGION = "eu-west-1"
SECRET_VALUE = "hunter2-the-secret-value"


def detail(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())["detail"]
    return record


def quiet(i: int) -> dict[str, Any]:
    return {**detail("control-get-secret-value"), "eventID": f"00000000-0000-4000-8000-{i:012d}"}


class World:
    def __init__(self, stack: LocalStack, inbox: str) -> None:
        self.stack = stack
        self.inbox = inbox

    def pipeline(self) -> Pipeline:
        return Pipeline(
            ruleset=load_rules(),
            enricher=Enricher(self.stack.client("secretsmanager"), self.stack.client("iam"), None),
            store=AuditStore(self.stack.client("dynamodb"), self.stack.table_name),
            notifier=Notifier(self.stack.client("sns"), self.stack.topic_arn),
            retention_days=30,
        )

    def items(self) -> list[dict[str, Any]]:
        db = self.stack.client("dynamodb")
        return [
            item
            for page in db.get_paginator("scan").paginate(TableName=self.stack.table_name)
            for item in page["Items"]
        ]

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.items() if i["kind"]["S"] == kind]

    def sent(self) -> list[dict[str, Any]]:
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


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = create_stack(None, region=REGION)
        url = subscribed_inbox(stack, REGION)
        yield World(stack, url)


def deep_policy(levels: int) -> str:
    return '{"Statement": ' + "[" * levels + "{}" + "]" * levels + "}"


def poison(name: str) -> str:
    """One hostile log message, as text (some are not even valid JSON numbers for Python)."""
    if name == "year-9999":
        return json.dumps({**quiet(900), "eventTime": "9999-12-31T23:59:59Z"})
    if name == "5000-digit-number":
        text = json.dumps({**quiet(901), "additionalEventData": {"n": 0}})
        return text.replace('"n": 0', '"n": ' + "9" * 5000)
    if name == "cjk-secret-id":
        record = detail("control-get-secret-value-not-found")
        record = {**record, "eventID": "00000000-0000-4000-8000-000000000902"}
        record["requestParameters"] = {"secretId": "鍵" * 700}  # 2,100 bytes: over a key's 2,048
        return json.dumps(record)
    if name == "140kb-arn":
        record = quiet(903)
        record["userIdentity"] = {
            **record["userIdentity"],
            "arn": "arn:aws:iam::1:user/" + "a" * 140_000,
        }
        return json.dumps(record)
    if name == "300kb-user-agent":
        return json.dumps({**quiet(904), "userAgent": "ua/" + "x" * 300_000})
    if name == "deep-policy":
        record = detail("resource-policy-public")
        record = {**record, "eventID": "00000000-0000-4000-8000-000000000905"}
        record["requestParameters"] = {"secretId": "prod/x", "resourcePolicy": deep_policy(1200)}
        return json.dumps(record)
    if name == "nan-policy":
        record = detail("resource-policy-public")
        record = {**record, "eventID": "00000000-0000-4000-8000-000000000906"}
        policy = '{"Statement": [{"Effect": "Allow", "Principal": "*", "Sid": NaN, "x": 1e999}]}'
        record["requestParameters"] = {"secretId": "prod/nan", "resourcePolicy": policy}
        return json.dumps(record)
    if name == "1mb-of-control-characters":  # escaped, the payload grows about sevenfold
        return json.dumps({**quiet(907), "userAgent": "\x01" * 1_000_000})
    if name == "deep-record":
        return '{"eventVersion": "1.11", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    raise AssertionError(name)


POISON = [
    "year-9999",
    "5000-digit-number",
    "cjk-secret-id",
    "140kb-arn",
    "300kb-user-agent",
    "deep-policy",
    "nan-policy",
    "1mb-of-control-characters",
    "deep-record",
]


@pytest.mark.parametrize("name", POISON)
def test_a_poison_record_costs_no_other_record(world: World, name: str) -> None:
    # GIVEN a delivery of 30 quiet records, one alerting record and one poison record
    alerting = detail("secret-deleted")
    messages = [json.dumps(quiet(i)) for i in range(15)]
    messages += [json.dumps(alerting), poison(name)]
    messages += [json.dumps(quiet(i)) for i in range(15, 30)]
    event = subscription_event(messages)

    # WHEN it is delivered (and delivered again, as CloudWatch Logs may)
    first = world.pipeline().process_event(event, ROUTE_LOGS)
    world.pipeline().process_event(event, ROUTE_LOGS)

    # THEN the invocation succeeded, every good record is audited once, the alert went out once
    events = {i["event_id"]["S"] for i in world.by_kind("event")}
    good = {quiet(i)["eventID"] for i in range(30)} | {alerting["eventID"]}
    assert good <= events
    assert [m["MessageAttributes"]["rule"]["Value"] for m in world.sent()].count(
        "secret-deleted"
    ) == 1
    # AND the poison record is accounted for: audited (within DynamoDB's limits) or kept
    assert first.records + first.rejected == 32
    for item in world.items():
        assert bounds.item_size(_plain(item)) < bounds.ITEM_MAX
        for key, limit in (("event_id", 2048), ("secret_name", 2048), ("principal_name", 2048)):
            if key in item:
                assert len(item[key]["S"].encode()) <= limit
        if "time_key" in item:
            assert len(item["time_key"]["S"].encode()) <= 1024


def test_long_keys_stay_queryable_and_distinct(world: World) -> None:
    # GIVEN two failed reads of different 700-character CJK secret ids with one long prefix
    records = []
    for n, tail in enumerate(("甲", "乙")):
        record = detail("control-get-secret-value-not-found")
        record["eventID"] = f"00000000-0000-4000-8000-00000000099{n}"
        record["requestParameters"] = {"secretId": "鍵" * 699 + tail}
        records.append(json.dumps(record))
    # WHEN they are delivered
    world.pipeline().process_event(subscription_event(records), ROUTE_LOGS)
    # THEN each is indexed under its own bounded key, the one a look-up computes
    keys = sorted(i["secret_name"]["S"] for i in world.by_kind("event"))
    assert keys == sorted(bounds.key("鍵" * 699 + tail) for tail in ("甲", "乙"))
    assert keys[0] != keys[1]
    assert all(len(k.encode()) <= 2048 for k in keys)


def test_an_inflation_bomb_is_refused_unread_and_kept(world: World) -> None:
    # GIVEN an awslogs payload of a few hundred kilobytes that inflates to 64 MB
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as archive:
        archive.write(b'{"messageType": "DATA_MESSAGE", "logEvents": ["')
        for _ in range(64):
            archive.write(b"A" * (1024 * 1024))
        archive.write(b'"]}')
    event = {"awslogs": {"data": base64.b64encode(buffer.getvalue()).decode()}}

    # WHEN it is delivered
    summary = world.pipeline().process_event(event, ROUTE_LOGS)

    # THEN it is refused without being inflated, and the refusal is kept
    assert summary.rejected == 1
    (item,) = world.by_kind("rejected")
    assert "inflates to more than" in item["error"]["S"]
    assert int(item["raw_bytes"]["N"]) > 0


def test_a_secret_value_in_a_rejected_record_is_never_kept(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN records that are rejected and carry secret values: unredacted in requestParameters,
    # deep in responseElements, and as a string-typed requestParameters
    bad_type = {**quiet(1), "readOnly": "true"}
    bad_type["requestParameters"] = {"secretId": "prod/db", "secretString": SECRET_VALUE}
    deep = {**quiet(2), "readOnly": "true"}
    deep["responseElements"] = {"a": {"b": [{"SecretBinary": SECRET_VALUE}]}}
    stringy = {**quiet(3), "requestParameters": f'{{"secretString": "{SECRET_VALUE}"}}'}
    unreadable = '{"eventID": "x", "requestParameters": {"secretString": "' + SECRET_VALUE + '"'
    event = subscription_event([json.dumps(r) for r in (bad_type, deep, stringy)] + [unreadable])

    # WHEN delivered
    with caplog.at_level(logging.DEBUG):
        summary = world.pipeline().process_event(event, ROUTE_LOGS)

    # THEN all four are kept, and the value appears nowhere: not in the table, not in the logs
    assert summary.rejected == 4
    stored = json.dumps(world.items())
    assert SECRET_VALUE not in stored
    assert SECRET_VALUE not in caplog.text
    # AND the string-typed requestParameters is described, never quoted
    (kept,) = [i for i in world.by_kind("rejected") if quiet(3)["eventID"] in i["event_id"]["S"]]
    assert "requestParameters must be an object or null, got a string of" in kept["error"]["S"]
    assert "REDACTED" in stored or "removed" in stored


def test_nan_and_infinity_never_reach_the_machine_document(world: World) -> None:
    # GIVEN a public resource policy holding NaN and an overflowing number
    event = subscription_event([poison("nan-policy")])
    # WHEN delivered
    world.pipeline().process_event(event, ROUTE_LOGS)
    # THEN the alert went out, and every JSON variant is strict JSON (no NaN/Infinity literals)
    (message,) = world.sent()
    document = message["Message"]
    assert "NaN" not in document.replace('"NaN"', "")
    json.loads(document, parse_constant=_refuse)
    assert document.isascii()


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} in a JSON document")


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from shared.audit.codec import from_item

    return from_item(item)


def test_log_lines_carry_no_raw_format_characters(world: World) -> None:
    # GIVEN a deletion of a secret whose name holds a bidi override and a line separator, and
    # a rejected record whose id holds an isolate
    record = detail("secret-deleted")
    record["requestParameters"] = {"secretId": "prod/\u202edb\u2028x", "recoveryWindowInDays": 7}
    record["responseElements"] = None
    bad = {**quiet(5), "eventID": "evil\u202e\u2066id", "readOnly": "true"}
    buffer = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream, previous_level = handler.setStream(buffer), logger.log_level
    logger.setLevel("INFO")
    try:
        # WHEN delivered
        events = [json.dumps(record), json.dumps(bad)]
        world.pipeline().process_event(subscription_event(events), ROUTE_LOGS)
    finally:
        handler.setStream(previous_stream)
        logger.setLevel(previous_level)
    # THEN the functions' log lines are ASCII JSON: the characters arrive escaped
    out = buffer.getvalue()
    assert "rule matched" in out
    assert "record rejected and kept" in out
    assert out.isascii()
    assert "\\u202e" in out
