"""The sample Lambda payloads in events/ and exactly which rules each one fires.

``events/eventbridge/`` holds hand-written EventBridge events; ``events/cloudwatch-logs/`` is
generated from them by ``scripts/make_events.py`` (``make events``). The table below is the
contract between those payloads and the rule ids: a new file, a renamed rule or a rule that
starts (or stops) firing on a sample must show up here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scripts.make_events import CLOUDWATCH_DIR, build_all, decode_file, same_content

from shared.envelopes import read_bytes
from shared.models import CloudTrailRecord, Enrichment, Evaluation
from shared.rules import load_rules
from shared.tamper import StackIdentity

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

NOTHING: frozenset[str] = frozenset()

# Rule ids each hand-written EventBridge event must fire, and nothing else.
EVENTBRIDGE: dict[str, frozenset[str]] = {
    "secret-deleted.json": frozenset({"secret-deleted"}),
    "secret-deleted-default-window.json": frozenset({"secret-deleted"}),
    "deletion-forced-no-recovery.json": frozenset({"deletion-forced-no-recovery"}),
    "access-while-pending-deletion.json": frozenset({"access-while-pending-deletion"}),
    "access-while-pending-deletion-2019.json": frozenset({"access-while-pending-deletion"}),
    "access-while-pending-deletion-2018.json": frozenset({"access-while-pending-deletion"}),
    "rotation-failed.json": frozenset({"rotation-failed"}),
    "test-rotation-failed.json": frozenset({"rotation-failed"}),
    "resource-policy-public.json": frozenset({"resource-policy-changed"}),
    "resource-policy-cross-account.json": frozenset({"resource-policy-changed"}),
    "resource-policy-same-account.json": frozenset({"resource-policy-changed"}),
    "resource-policy-deleted.json": frozenset({"resource-policy-changed"}),
    "rotation-disabled.json": frozenset({"rotation-disabled"}),
    "secret-restored.json": frozenset({"secret-restored"}),
    "secret-value-changed-put.json": frozenset({"secret-value-changed"}),
    "secret-value-changed-update.json": frozenset({"secret-value-changed"}),
    "replication-removed.json": frozenset({"replication-removed"}),
    "replication-stopped.json": frozenset({"replication-removed"}),
    "kms-key-changed.json": frozenset({"kms-key-changed"}),
    "root-created-secret.json": frozenset({"root-activity"}),
    "root-deleted-secret.json": frozenset({"root-activity", "secret-deleted"}),
    # Controls: ordinary or failed activity that must stay quiet.
    "control-get-secret-value.json": NOTHING,
    "control-delete-secret-denied.json": NOTHING,
    "control-rotation-put-pending.json": NOTHING,
    "control-rotation-succeeded.json": NOTHING,
    "control-create-secret.json": NOTHING,
    "control-get-secret-value-not-found.json": NOTHING,
    "control-create-secret-after-forced-delete.json": NOTHING,
    "control-update-secret-description.json": NOTHING,
    "control-tag-resource.json": NOTHING,
    "control-get-secret-value-identity-center.json": NOTHING,
    # Tampering with secretwatch itself (evaluated as the stack SAMPLE_STACK would see them).
    "tamper-rule-disabled.json": frozenset({"secretwatch-tampered"}),
    "tamper-rule-put-disabled.json": frozenset({"secretwatch-tampered"}),
    "tamper-targets-removed.json": frozenset({"secretwatch-tampered"}),
    "tamper-trail-stopped.json": frozenset({"secretwatch-tampered"}),
    "tamper-event-selectors-changed.json": frozenset({"secretwatch-tampered"}),
    "tamper-subscription-filter-deleted.json": frozenset({"secretwatch-tampered"}),
    "tamper-key-disabled.json": frozenset({"secretwatch-tampered"}),
    "tamper-key-deletion-scheduled.json": frozenset({"secretwatch-tampered"}),
    "tamper-function-deleted.json": frozenset({"secretwatch-tampered"}),
    "tamper-function-throttled.json": frozenset({"secretwatch-tampered"}),
    "tamper-topic-changed.json": frozenset({"secretwatch-tampered"}),
    "control-tamper-foreign-rule-disabled.json": NOTHING,
    "control-tamper-foreign-key-disabled.json": NOTHING,
}
# Other services' calls never pass the subscription filter: no CloudWatch Logs copy.
TAMPER_SAMPLES = frozenset(name for name in EVENTBRIDGE if "tamper-" in name)
# The deployed stack the tamper samples belong to (names as CloudFormation would give them).
SAMPLE_STACK = StackIdentity(
    "secretwatch",
    function_prefix="secretwatch-1a2b3c4d-",
    trail_name="secretwatch-trail",
    log_group="secretwatch-TrailLogGroup-k3Jd9QwX2mPz",
    alert_key_id="0f3c6d2e-4b1a-4c8e-9d7f-2a5b8c1e4f60",
    topic_arns=frozenset(
        {"arn:aws:sns:eu-west-1:111122223333:secretwatch-AlertTopic-Q1W2E3R4T5Y6"}
    ),
)

# Every file under events/ (path relative to events/) -> the exact set of rule ids it fires.
# A CloudWatch Logs copy carries the same CloudTrail record as its EventBridge original.
EXPECTED: dict[str, frozenset[str]] = {
    **{f"eventbridge/{name}": rules for name, rules in EVENTBRIDGE.items()},
    **{
        f"cloudwatch-logs/{name}": rules
        for name, rules in EVENTBRIDGE.items()
        if name not in TAMPER_SAMPLES
    },
    "cloudwatch-logs/control-message.json": NOTHING,
    # control-rotation-put-pending + control-rotation-succeeded + kms-key-changed
    # + control-get-secret-value, from one log stream.
    "cloudwatch-logs/batch-mixed.json": frozenset({"kms-key-changed"}),
}

# How many CloudTrail records each file yields (a CONTROL_MESSAGE yields none).
RECORD_COUNT: dict[str, int] = {
    **dict.fromkeys(EXPECTED, 1),
    "cloudwatch-logs/control-message.json": 0,
    "cloudwatch-logs/batch-mixed.json": 4,
}

# Where the severity is part of the contract: (sample name, rule id) -> severity.
SEVERITY: dict[tuple[str, str], str] = {
    ("resource-policy-public.json", "resource-policy-changed"): "critical",
    ("resource-policy-cross-account.json", "resource-policy-changed"): "high",
    ("resource-policy-same-account.json", "resource-policy-changed"): "medium",
    ("resource-policy-deleted.json", "resource-policy-changed"): "medium",
    ("rotation-failed.json", "rotation-failed"): "high",
    ("test-rotation-failed.json", "rotation-failed"): "medium",
    ("deletion-forced-no-recovery.json", "deletion-forced-no-recovery"): "critical",
    ("root-created-secret.json", "root-activity"): "critical",
    ("root-deleted-secret.json", "root-activity"): "critical",
    **{
        (name, "secretwatch-tampered"): "critical"
        for name in TAMPER_SAMPLES
        - {"control-tamper-foreign-rule-disabled.json", "control-tamper-foreign-key-disabled.json"}
    },
}

_ruleset = functools.cache(load_rules)


def _files_on_disk() -> set[str]:
    return {path.relative_to(EVENTS).as_posix() for path in EVENTS.rglob("*") if path.is_file()}


def _records(relative: str) -> list[CloudTrailRecord]:
    """The records in one events/ file; fails the test on any item the parser rejected."""
    items = list(read_bytes((EVENTS / relative).read_bytes()))
    errors = [(item.index, item.error) for item in items if item.error is not None]
    assert errors == [], f"{relative}: the parser rejected items: {errors}"
    return [item.record for item in items if item.record is not None]


def _evaluate(record: CloudTrailRecord) -> Evaluation:
    # A tamper record is enriched with which of SAMPLE_STACK's resources it touches, as the
    # deployed function does; every other record is evaluated as `secretwatch evaluate` does.
    enrichment = Enrichment(own_target=SAMPLE_STACK.owns(record.target)) if record.target else None
    evaluation = _ruleset().evaluate(record, enrichment)
    errors = evaluation.rule_errors
    assert errors == (), f"{record.event_id}: rules raised: {errors}"
    return evaluation


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair at any depth of a decoded JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield key, child
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def _eventbridge(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / name).read_text("utf-8"))
    return event


def test_every_file_in_events_is_catalogued_and_every_entry_exists() -> None:
    # GIVEN the files under events/ and the table
    on_disk = _files_on_disk()

    # WHEN they are compared
    uncatalogued = sorted(on_disk - EXPECTED.keys())
    missing = sorted(EXPECTED.keys() - on_disk)

    # THEN each side names exactly the other's files
    assert uncatalogued == [], "files in events/ that EXPECTED does not list"
    assert missing == [], "EXPECTED entries with no file in events/"


@pytest.mark.parametrize(("relative", "expected"), sorted(EXPECTED.items()), ids=sorted(EXPECTED))
def test_sample_fires_exactly_the_expected_rules(relative: str, expected: frozenset[str]) -> None:
    # GIVEN one sample payload, read as the Lambda handler reads it
    records = _records(relative)

    # WHEN every record in it is evaluated against the shipped rules
    # (a rule fires when its finding alerts: a threshold's match is only counted, and an
    # audit-only rule such as rotation-succeeded only records)
    fired = frozenset(
        finding.rule_id
        for record in records
        for finding in _evaluate(record).findings
        if finding.alerts
    )

    # THEN it yields the expected number of records and fires exactly the expected rules
    assert len(records) == RECORD_COUNT[relative]
    assert fired == expected


def _folders(name: str) -> tuple[str, ...]:
    if name in TAMPER_SAMPLES:
        return ("eventbridge",)
    return ("eventbridge", "cloudwatch-logs")


@pytest.mark.parametrize(
    ("relative", "rule_id", "severity"),
    [
        (f"{folder}/{name}", rule_id, severity)
        for (name, rule_id), severity in sorted(SEVERITY.items())
        for folder in _folders(name)
    ],
    ids=[
        f"{folder}/{name}:{rule_id}"
        for (name, rule_id) in sorted(SEVERITY)
        for folder in _folders(name)
    ],
)
def test_rule_fires_at_the_expected_severity(relative: str, rule_id: str, severity: str) -> None:
    # GIVEN a sample whose severity matters
    (record,) = _records(relative)

    # WHEN it is evaluated
    findings = [f for f in _evaluate(record).findings if f.rule_id == rule_id]

    # THEN the rule fires once, at that severity
    assert [f.severity for f in findings] == [severity]


def test_generated_cloudwatch_logs_payloads_are_up_to_date() -> None:
    # GIVEN the generator's output for the EventBridge samples on disk
    generated = build_all(ROOT)

    # WHEN it is compared with events/cloudwatch-logs/
    on_disk = {p for p in (ROOT / CLOUDWATCH_DIR).iterdir() if p.is_file()}
    stale = sorted(
        path.name
        for path, text in generated.items()
        if path not in on_disk or not same_content(text, path.read_text(encoding="utf-8"))
    )

    # THEN the same files exist with the same content (run `make events` if this fails)
    assert sorted(p.name for p in on_disk) == sorted(p.name for p in generated)
    assert stale == []


def test_generator_output_is_deterministic() -> None:
    # GIVEN / WHEN the generator runs twice
    first, second = build_all(ROOT), build_all(ROOT)

    # THEN the output is byte-for-byte identical and every file decodes
    assert first == second
    assert all(decode_file(text) is not None for text in first.values())


def test_eventbridge_samples_have_unique_ids_and_a_consistent_envelope() -> None:
    # GIVEN every EventBridge sample
    events = {name: _eventbridge(name) for name in EVENTBRIDGE}

    # WHEN their ids are collected
    event_ids = [e["detail"]["eventID"] for e in events.values()]
    envelope_ids = [e["id"] for e in events.values()]

    # THEN no id repeats and each envelope agrees with its CloudTrail record
    assert len(set(event_ids)) == len(event_ids)
    assert len(set(envelope_ids)) == len(envelope_ids)
    for name, event in events.items():
        detail = event["detail"]
        service = detail["eventType"] == "AwsServiceEvent"
        assert event["detail-type"] == (
            "AWS Service Event via CloudTrail" if service else "AWS API Call via CloudTrail"
        ), name
        assert event["time"] == detail["eventTime"], name
        assert event["region"] == detail["awsRegion"], name
        assert event["account"] == detail["recipientAccountId"], name
        if name in TAMPER_SAMPLES:
            # the envelope's source is the service's own (aws.kms for kms.amazonaws.com, ...)
            assert event["source"] == "aws." + detail["eventSource"].split(".")[0], name
        else:
            assert detail["eventSource"] == "secretsmanager.amazonaws.com", name


@pytest.mark.parametrize("name", sorted(EVENTBRIDGE), ids=sorted(EVENTBRIDGE))
def test_no_sample_carries_a_secret_value(name: str) -> None:
    # GIVEN a sample (CloudTrail never logs SecretString, SecretBinary or a random password)
    event = _eventbridge(name)

    # WHEN every key in it is listed
    keys = {key.lower() for key, _ in _walk(event)}

    # THEN none of the sensitive members appears
    assert keys.isdisjoint({"secretstring", "secretbinary", "randompassword", "rotationtoken"})
