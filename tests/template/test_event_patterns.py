"""The EventBridge rules in template.yaml route each recorded Secrets Manager event correctly.

The patterns are taken from the template and matched by a real matcher: moto's EventBridge
(put_rule + an SQS target per rule + put_events, then see which queue got the event). moto's
TestEventPattern API is a stub, so it is not used.

Rule *state* is not a pattern condition and moto ignores it: in AWS a rule in state ENABLED never
receives read-only CloudTrail management events (GetSecretValue, DescribeSecret, ...); only
ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS does. The rules are therefore created in moto as
ENABLED and ``delivered_in_aws`` applies the state afterwards, exactly as EventBridge documents
it. The write rule does not rely on its state: its pattern says ``readOnly: [false]``, because AWS
documents that ENABLED rules may still receive read-only calls whose names do not start with Get,
Describe or List (``test_write_rule_pattern_keeps_reads_out`` pins that down).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.tamper import TAMPER_CALLS
from tests.template.cfn import REPO_ROOT, RULES, TAMPER_RULE, load_template

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

EVENTS_DIR = REPO_ROOT / "events" / "eventbridge"
WRITE, SERVICE, READS = RULES
TAMPER = TAMPER_RULE
ROUTED = (*RULES, TAMPER_RULE)  # the rules a recorded CloudTrail payload may reach
API_CALL = "AWS API Call via CloudTrail"

# Where each recorded payload must go in AWS (rule states applied).
EXPECTED: dict[str, set[str]] = {
    "secret-deleted": {WRITE},
    "secret-deleted-default-window": {WRITE},
    "deletion-forced-no-recovery": {WRITE},
    "access-while-pending-deletion": {READS},
    "access-while-pending-deletion-2019": {READS},
    "access-while-pending-deletion-2018": {READS},
    "rotation-failed": {SERVICE},
    "test-rotation-failed": {SERVICE},
    "resource-policy-public": {WRITE},
    "resource-policy-cross-account": {WRITE},
    "resource-policy-same-account": {WRITE},
    "resource-policy-deleted": {WRITE},
    "rotation-disabled": {WRITE},
    "secret-restored": {WRITE},
    "secret-value-changed-put": {WRITE},
    "secret-value-changed-update": {WRITE},
    "replication-removed": {WRITE},
    "replication-stopped": {WRITE},
    "kms-key-changed": {WRITE},
    "root-created-secret": {WRITE},
    "root-deleted-secret": {WRITE},
    "control-get-secret-value": set(),
    "control-delete-secret-denied": {WRITE},
    "control-rotation-put-pending": {WRITE},
    "control-rotation-succeeded": {SERVICE},
    "control-create-secret": {WRITE},
    "control-get-secret-value-not-found": {READS},
    "control-create-secret-after-forced-delete": {WRITE},
    "control-update-secret-description": {WRITE},
    "control-tag-resource": {WRITE},
    "control-get-secret-value-identity-center": set(),
    # Tampering: the rule delivers every such call, the function decides which are the stack's.
    **{
        name: {TAMPER}
        for name in (
            "tamper-rule-disabled",
            "tamper-rule-put-disabled",
            "tamper-targets-removed",
            "tamper-trail-stopped",
            "tamper-event-selectors-changed",
            "tamper-subscription-filter-deleted",
            "tamper-key-disabled",
            "tamper-key-deletion-scheduled",
            "tamper-function-deleted",
            "tamper-function-throttled",
            "tamper-topic-changed",
            "control-tamper-foreign-rule-disabled",
            "control-tamper-foreign-key-disabled",
        )
    },
}


def _rule_states() -> dict[str, str]:
    """Each rule's State as deployed with the default parameter values."""
    template = load_template()
    states: dict[str, str] = {}
    for rule in ROUTED:
        state = template["Resources"][rule]["Properties"]["State"]
        if isinstance(state, dict):
            state = template["Parameters"][state["Ref"]]["Default"]
        states[rule] = state
    return states


def _is_read_only_api_call(event: dict[str, Any]) -> bool:
    return bool(event["detail-type"] == API_CALL and event["detail"].get("readOnly") is True)


def _get_list_describe(event: dict[str, Any]) -> bool:
    return str(event["detail"].get("eventName", "")).startswith(("Get", "List", "Describe"))


def delivered_in_aws(matched: set[str], event: dict[str, Any], states: dict[str, str]) -> set[str]:
    """The rules that receive an event in AWS, given the rules whose pattern matched it."""
    delivered = set()
    for rule in matched:
        if states[rule] == "DISABLED":
            continue
        if (
            states[rule] == "ENABLED"
            and _is_read_only_api_call(event)
            and _get_list_describe(event)
        ):
            # ENABLED excludes the read-only management events CloudTrail delivers; AWS documents
            # that some read-only calls with other names (TestEventPattern, ...) still get through,
            # so this model lets those through and the patterns must keep them out.
            continue
        delivered.add(rule)
    return delivered


@dataclass
class Bus:
    """moto's default event bus with the template's three rules, each sending to its own queue."""

    events: EventBridgeClient
    sqs: SQSClient
    queues: dict[str, str]

    def matching_rules(self, event: dict[str, Any]) -> set[str]:
        """Put one event on the bus and return the rules whose pattern matched it."""
        response = self.events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event.get("resources", []),
                }
            ]
        )
        assert response["FailedEntryCount"] == 0, response
        matched = set()
        for rule, queue_url in self.queues.items():
            received = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            messages = received.get("Messages", [])
            for message in messages:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            assert len(messages) <= 1, (rule, messages)
            if messages:
                assert json.loads(messages[0]["Body"])["detail"] == event["detail"]
                matched.add(rule)
        return matched


@pytest.fixture(scope="module")
def bus() -> Iterator[Bus]:
    template = load_template()
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        events = session.client("events")
        sqs = session.client("sqs")
        queues: dict[str, str] = {}
        for rule in ROUTED:
            pattern = template["Resources"][rule]["Properties"]["EventPattern"]
            # moto does not know the read-only state; see the module docstring.
            events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
            queue_url = sqs.create_queue(QueueName=f"{rule}-target")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
            queues[rule] = queue_url
        yield Bus(events=events, sqs=sqs, queues=queues)


@pytest.fixture(scope="module")
def states() -> dict[str, str]:
    return _rule_states()


def _load_event(name: str) -> dict[str, Any]:
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing (the recorded payloads live there)")
    event: dict[str, Any] = json.loads(path.read_text())
    return event


def _all_names() -> list[str]:
    return sorted(set(EXPECTED) | {path.stem for path in EVENTS_DIR.glob("*.json")})


def test_rule_patterns_are_as_specified() -> None:
    # GIVEN the rule patterns in the template
    template = load_template()
    patterns = {rule: template["Resources"][rule]["Properties"]["EventPattern"] for rule in RULES}
    common = {"source": ["aws.secretsmanager"]}
    source = {"eventSource": ["secretsmanager.amazonaws.com"]}

    # WHEN / THEN they are exactly the agreed patterns
    assert patterns == {
        WRITE: {**common, "detail-type": [API_CALL], "detail": {**source, "readOnly": [False]}},
        SERVICE: {**common, "detail-type": ["AWS Service Event via CloudTrail"], "detail": source},
        READS: {
            **common,
            "detail-type": [API_CALL],
            "detail": {
                **source,
                "readOnly": [True],
                "$or": [
                    {
                        "eventName": ["GetSecretValue", "BatchGetSecretValue"],
                        "errorCode": [{"exists": True}],
                    },
                    {"userIdentity": {"type": ["Root"]}},
                ],
            },
        },
    }


def test_tamper_rule_pattern_is_the_tamper_catalogue() -> None:
    # GIVEN the tamper rule's pattern and the calls the code reads as tampering
    pattern = load_template()["Resources"][TAMPER]["Properties"]["EventPattern"]
    sources = sorted({source for source, _ in TAMPER_CALLS})

    # WHEN / THEN it delivers exactly those calls (write calls: plain ENABLED sees them), from
    # exactly those services, so the function is never invoked for a call it would skip
    assert pattern == {
        "source": ["aws." + source.split(".")[0] for source in sources],
        "detail-type": [API_CALL],
        "detail": {"eventSource": sources, "eventName": [name for _, name in TAMPER_CALLS]},
    }
    assert load_template()["Resources"][TAMPER]["Properties"]["State"] == "ENABLED"


@pytest.mark.parametrize("name", _all_names())
def test_recorded_payload_reaches_the_expected_rules(
    bus: Bus, states: dict[str, str], name: str
) -> None:
    # GIVEN a recorded EventBridge payload and where it must go
    if name not in EXPECTED:
        pytest.fail(f"events/eventbridge/{name}.json has no expectation: add it to EXPECTED")
    event = _load_event(name)

    # WHEN it is put on the bus with the template's rules
    matched = bus.matching_rules(event)

    # THEN exactly the expected rules receive it in AWS
    assert delivered_in_aws(matched, event, states) == EXPECTED[name], f"pattern matches: {matched}"


@pytest.mark.parametrize(
    "name", [name for name in _all_names() if name in EXPECTED and EXPECTED[name] <= {READS}]
)
def test_write_rule_pattern_keeps_reads_out(bus: Bus, name: str) -> None:
    # GIVEN a read-only payload (failed or successful read)
    event = _load_event(name)
    assert _is_read_only_api_call(event)

    # WHEN it is matched against the patterns alone (no rule state applied)
    matched = bus.matching_rules(event)

    # THEN the write rule's pattern does not match it: reads stay out even if the rule's state
    # were to admit them
    assert WRITE not in matched


def _api_call(event_name: str, read_only: bool, **detail: Any) -> dict[str, Any]:
    return {
        "source": "aws.secretsmanager",
        "detail-type": API_CALL,
        "detail": {
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": event_name,
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "userIdentity": {"type": "AssumedRole"},
            **detail,
        },
    }


ROOT = {"userIdentity": {"type": "Root"}}
SYNTHETIC: list[tuple[str, dict[str, Any], set[str]]] = [
    ("write call", _api_call("DeleteSecret", False), {WRITE}),
    ("failed write call", _api_call("DeleteSecret", False, errorCode="AccessDenied"), {WRITE}),
    ("successful read", _api_call("GetSecretValue", True), set()),
    ("failed read", _api_call("GetSecretValue", True, errorCode="AccessDenied"), {READS}),
    ("failed batch read", _api_call("BatchGetSecretValue", True, errorCode="X"), {READS}),
    ("failed describe", _api_call("DescribeSecret", True, errorCode="AccessDenied"), set()),
    ("root read", _api_call("GetSecretValue", True, **ROOT), {READS}),
    ("root describe", _api_call("DescribeSecret", True, **ROOT), {READS}),
    ("root write", _api_call("CreateSecret", False, **ROOT), {WRITE}),
    # Read-only calls whose names do not start with Get/Describe/List: an ENABLED rule may be
    # given them, so only the write rule's own pattern keeps them out.
    ("successful batch read", _api_call("BatchGetSecretValue", True), set()),
    ("policy validation", _api_call("ValidateResourcePolicy", True), set()),
    (
        "service event",
        {
            "source": "aws.secretsmanager",
            "detail-type": "AWS Service Event via CloudTrail",
            "detail": {
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": "RotationFailed",
            },
        },
        {SERVICE},
    ),
    (
        "the alert key disabled",
        {
            "source": "aws.kms",
            "detail-type": API_CALL,
            "detail": {"eventSource": "kms.amazonaws.com", "eventName": "DisableKey"},
        },
        {TAMPER},
    ),
    (
        "a rule enabled (not tampering)",
        {
            "source": "aws.events",
            "detail-type": API_CALL,
            "detail": {"eventSource": "events.amazonaws.com", "eventName": "EnableRule"},
        },
        set(),
    ),
    (
        "another service's call",
        {
            "source": "aws.kms",
            "detail-type": API_CALL,
            "detail": {
                "eventSource": "kms.amazonaws.com",
                "eventName": "Decrypt",
                "readOnly": True,
            },
        },
        set(),
    ),
]


@pytest.mark.parametrize(
    ("event", "expected"),
    [pytest.param(event, expected, id=label) for label, event, expected in SYNTHETIC],
)
def test_matcher_on_minimal_events(
    bus: Bus, states: dict[str, str], event: dict[str, Any], expected: set[str]
) -> None:
    # GIVEN a minimal hand-made event (independent of the recorded payloads)
    # WHEN it is put on the bus
    matched = bus.matching_rules(event)

    # THEN the rules that would receive it in AWS are the expected ones
    assert delivered_in_aws(matched, event, states) == expected, f"pattern matches: {matched}"


def test_read_rule_can_be_switched_off(bus: Bus) -> None:
    # GIVEN a failed read and the read rule DISABLED through its parameter
    event = _load_event("access-while-pending-deletion")
    disabled = {**_rule_states(), READS: "DISABLED"}

    # WHEN / THEN no rule receives it
    assert delivered_in_aws(bus.matching_rules(event), event, disabled) == set()
