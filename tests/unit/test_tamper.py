"""Tampering with secretwatch itself: reading each call's target, and telling the stack's own
resources from everyone else's (shared.tamper, shared.normalise, the secretwatch-tampered rule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from shared.enrich import Enricher
from shared.envelopes import read_eventbridge_event
from shared.errors import RecordRejected
from shared.models import CloudTrailRecord, Enrichment, TargetRef
from shared.normalise import normalise
from shared.rules import load_rules
from shared.tamper import TAMPER_CALLS, TARGET_NAME_MAX, StackIdentity, identity_from_env
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, build_raw
from tests.unit.test_event_catalogue import SAMPLE_STACK

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
KEY_ID = "0f3c6d2e-4b1a-4c8e-9d7f-2a5b8c1e4f60"
TOPIC = "arn:aws:sns:eu-west-1:111122223333:secretwatch-AlertTopic-Q1W2E3R4T5Y6"


def _call(source: str, name: str, request: Any, response: Any = None) -> CloudTrailRecord:
    return normalise(
        build_raw(
            eventSource=source,
            eventName=name,
            requestParameters=request,
            responseElements=response,
            readOnly=False,
        )
    )


# --- each call's target --------------------------------------------------------------------------

SHAPES: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, TargetRef]] = [
    ("events", "DisableRule", {"name": "r1", "eventBusName": "default"}, None,
     TargetRef("eventbridge-rule", "r1", parent="default")),
    ("events", "DeleteRule", {"name": "arn:aws:events:eu-west-1:1:rule/bus/r2"}, None,
     TargetRef("eventbridge-rule", "r2")),
    ("events", "PutRule", {"name": "r3", "state": "DISABLED"}, None,
     TargetRef("eventbridge-rule", "r3", disables=True)),
    ("events", "PutRule", {"name": "r3", "state": "ENABLED"}, None,
     TargetRef("eventbridge-rule", "r3", disables=False)),
    ("events", "RemoveTargets", {"rule": "r4", "ids": ["x"]}, None,
     TargetRef("eventbridge-rule", "r4")),
    ("events", "PutTargets", {"rule": "r5", "targets": []}, None,
     TargetRef("eventbridge-rule", "r5")),
    ("cloudtrail", "StopLogging", {"name": "arn:aws:cloudtrail:eu-west-1:1:trail/t1"}, None,
     TargetRef("trail", "t1")),
    ("cloudtrail", "DeleteTrail", {"name": "t2"}, None, TargetRef("trail", "t2")),
    ("cloudtrail", "UpdateTrail", {"name": "t3"}, None, TargetRef("trail", "t3")),
    ("cloudtrail", "PutEventSelectors", {"trailName": "t4"}, None, TargetRef("trail", "t4")),
    ("cloudtrail", "PutAdvancedEventSelectors", {"trailName": "t5"}, None,
     TargetRef("trail", "t5")),
    ("logs", "DeleteSubscriptionFilter", {"logGroupName": "g", "filterName": "f"}, None,
     TargetRef("subscription-filter", "f", parent="g")),
    ("logs", "PutSubscriptionFilter", {"logGroupName": "g", "filterName": "f2"}, None,
     TargetRef("subscription-filter", "f2", parent="g")),
    ("logs", "DeleteLogGroup", {"logGroupName": "/aws/lambda/x"}, None,
     TargetRef("log-group", "/aws/lambda/x")),
    ("kms", "DisableKey", {"keyId": KEY_ID}, None, TargetRef("kms-key", KEY_ID)),
    ("kms", "ScheduleKeyDeletion", {"keyId": f"arn:aws:kms:eu-west-1:1:key/{KEY_ID}"}, None,
     TargetRef("kms-key", KEY_ID)),
    ("kms", "PutKeyPolicy", {"keyId": KEY_ID, "policyName": "default"}, None,
     TargetRef("kms-key", KEY_ID)),
    ("lambda", "DeleteFunction20150331", {"functionName": "fn"}, None,
     TargetRef("function", "fn")),
    ("lambda", "PutFunctionConcurrency20171031",
     {"functionName": "arn:aws:lambda:eu-west-1:1:function:fn:$LATEST"}, None,
     TargetRef("function", "fn")),
    ("lambda", "RemovePermission20150331v2", {"functionName": "1:function:fn"}, None,
     TargetRef("function", "fn")),
    ("lambda", "RemovePermission20150331", {"functionName": "fn", "statementId": "s"}, None,
     TargetRef("function", "fn")),
    ("lambda", "DeleteEventSourceMapping20150331", {"uUID": "u"},
     {"functionArn": "arn:aws:lambda:eu-west-1:1:function:fn"}, TargetRef("function", "fn")),
    ("sns", "DeleteTopic", {"topicArn": TOPIC}, None, TargetRef("sns-topic", TOPIC)),
    ("sns", "SetTopicAttributes", {"topicArn": TOPIC, "attributeName": "Policy"}, None,
     TargetRef("sns-topic", TOPIC)),
    ("sns", "Unsubscribe", {"subscriptionArn": f"{TOPIC}:5f2c"}, None,
     TargetRef("sns-subscription", f"{TOPIC}:5f2c", parent=TOPIC)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "name", "request_parameters", "response", "expected"),
    SHAPES,
    ids=[f"{s[1]}:{i}" for i, s in enumerate(SHAPES)],
)
def test_each_tamper_call_names_its_target_and_no_secret(
    service: str,
    name: str,
    request_parameters: dict[str, Any],
    response: dict[str, Any] | None,
    expected: TargetRef,
) -> None:
    # GIVEN a tamper call in its CloudTrail shape
    # WHEN it is normalised
    record = _call(f"{service}.amazonaws.com", name, request_parameters, response)

    # THEN its target is read, and nothing in it is taken for a secret or a request field
    assert record.target == expected
    assert record.secret is None
    assert record.request.kms_key_id is None


def test_every_tamper_call_has_a_shape_test() -> None:
    # GIVEN / WHEN the calls tested above / THEN they are all the catalogue's calls
    assert {(f"{s}.amazonaws.com", n) for s, n, *_ in SHAPES} == set(TAMPER_CALLS)


def test_a_call_that_is_not_tampering_stays_out_of_scope() -> None:
    # GIVEN a routine KMS call and an EnableRule (which undoes tampering)
    for source, name in (("kms.amazonaws.com", "Decrypt"), ("events.amazonaws.com", "EnableRule")):
        raw = build_raw(eventSource=source, eventName=name)

        # WHEN / THEN it is skipped, as any other service's record
        with pytest.raises(Exception, match="is not secretsmanager") as caught:
            normalise(raw)
        assert type(caught.value).__name__ == "OutOfScope"


def test_a_hostile_target_is_bounded_and_a_wrong_type_is_unknown() -> None:
    # GIVEN a DisableRule naming a 300 KB rule, and a DeleteTrail whose name is a number
    huge = _call("events.amazonaws.com", "DisableRule", {"name": "r" * 300_000})
    wrong = _call("cloudtrail.amazonaws.com", "DeleteTrail", {"name": 7})
    # AND a refused call that CloudTrail logged without requestParameters
    refused = normalise(
        build_raw(
            eventSource="kms.amazonaws.com",
            eventName="DisableKey",
            requestParameters=None,
            errorCode="AccessDeniedException",
        )
    )

    # WHEN / THEN the long name is cut to TARGET_NAME_MAX bytes, the others are kept without one
    assert huge.target is not None
    assert len(huge.target.name.encode()) <= TARGET_NAME_MAX
    assert huge.target.name.startswith("rrrr")
    assert wrong.target is None
    assert refused.target is None
    assert refused.error_code == "AccessDeniedException"


def test_envelope_source_must_be_the_records_service() -> None:
    # GIVEN an aws.kms EventBridge event carrying a Secrets Manager record
    event = json.loads((EVENTS / "tamper-key-disabled.json").read_text())
    event["detail"]["eventSource"] = "secretsmanager.amazonaws.com"

    # WHEN / THEN it is skipped (EventBridge never delivers such a thing)
    (item,) = read_eventbridge_event(event)
    assert item.record is None
    assert item.skipped is not None
    assert "kms.amazonaws.com" in item.skipped


# --- own resources or someone else's ---------------------------------------------------------------

STACK = StackIdentity(
    "secretwatch",
    function_prefix="secretwatch-1a2b3c4d-",
    trail_name="secretwatch-trail",
    log_group="secretwatch-TrailLogGroup-k3Jd9QwX2mPz",
    alert_key_id=KEY_ID,
    topic_arns=frozenset({TOPIC}),
)
OWNERSHIP: list[tuple[TargetRef, bool]] = [
    (TargetRef("eventbridge-rule", "secretwatch-WriteCallsRule-1H9XK2Q7ZP3MV"), True),
    (TargetRef("eventbridge-rule", "secretwatch2-WriteCallsRule-1H9XK2Q7ZP3MV"), False),
    (TargetRef("eventbridge-rule", "billing-secretwatch-export"), False),
    (TargetRef("trail", "secretwatch-trail"), True),
    (TargetRef("trail", "org-trail"), False),
    (TargetRef("subscription-filter", "any", parent="secretwatch-TrailLogGroup-k3Jd9QwX2mPz"), True),
    (TargetRef("subscription-filter", "any", parent="other-group"), False),
    (TargetRef("log-group", "secretwatch-TrailLogGroup-k3Jd9QwX2mPz"), True),
    (TargetRef("log-group", "/aws/lambda/secretwatch-1a2b3c4d-eventbridge"), True),
    (TargetRef("log-group", "/aws/lambda/secretwatch-99999999-eventbridge"), False),
    (TargetRef("function", "secretwatch-1a2b3c4d-digest"), True),
    (TargetRef("function", "secretwatch-99999999-digest"), False),
    (TargetRef("kms-key", KEY_ID), True),
    (TargetRef("kms-key", "7b1e9a40-2c3d-4e5f-8a9b-0c1d2e3f4a5b"), False),
    (TargetRef("sns-topic", TOPIC), True),
    (TargetRef("sns-topic", TOPIC + "-copy"), False),
    (TargetRef("sns-subscription", f"{TOPIC}:abc", parent=TOPIC), True),
    (TargetRef("sns-subscription", "arn:aws:sns:eu-west-1:1:t:abc", parent="arn:aws:sns:eu-west-1:1:t"), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "own"), OWNERSHIP, ids=[f"{t.kind}:{t.name}" for t, _ in OWNERSHIP]
)
def test_own_resources_are_told_from_foreign_ones(target: TargetRef, own: bool) -> None:  # fmt: skip
    # GIVEN the stack's identity and a target / WHEN asked / THEN only its own resources count
    assert (STACK.owns(target) is not None) is own


def test_with_an_existing_log_group_any_trail_counts() -> None:
    # GIVEN a stack that did not create its trail (CloudTrailLogGroupName): its trail is unknown
    stack = StackIdentity("secretwatch", log_group="org-trail-logs")

    # WHEN / THEN stopping any trail is tampering with its source
    assert stack.owns(TargetRef("trail", "org-trail")) == "trail org-trail"


def test_identity_comes_from_the_templates_environment() -> None:
    # GIVEN the variables template.yaml sets (TRAIL_NAME empty: an existing log group)
    env = {
        "STACK_NAME": "secretwatch",
        "FUNCTION_NAME_PREFIX": "secretwatch-1a2b3c4d-",
        "TRAIL_NAME": "",
        "TRAIL_LOG_GROUP": "org-trail-logs",
        "ALERT_KEY_ARN": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{KEY_ID}",
        "ALERT_TOPIC_ARN": TOPIC,
        "ALARM_TOPIC_ARN": TOPIC + "-alarms",
    }

    # WHEN / THEN they become the identity, the key by its id (as DisableKey names it)
    assert identity_from_env(env) == StackIdentity(
        "secretwatch",
        function_prefix="secretwatch-1a2b3c4d-",
        trail_name=None,
        log_group="org-trail-logs",
        alert_key_id=KEY_ID,
        topic_arns=frozenset({TOPIC, TOPIC + "-alarms"}),
    )
    # AND without a stack name there is no identity (the command line)
    assert identity_from_env({}) is None


# --- the rule ------------------------------------------------------------------------------------


def _sample_record(name: str, **identity: Any) -> CloudTrailRecord:
    event = json.loads((EVENTS / f"{name}.json").read_text())
    event["detail"]["userIdentity"].update(identity)
    (item,) = read_eventbridge_event(event)
    assert item.record is not None
    return item.record


def test_rule_fires_critical_on_own_target_and_high_for_cloudformation() -> None:
    # GIVEN the stack's own rule disabled by a person, and by a CloudFormation stack update
    by_person = _sample_record("tamper-rule-disabled")
    by_stack_update = _sample_record(
        "tamper-rule-disabled", invokedBy="cloudformation.amazonaws.com"
    )
    rules = load_rules()

    # WHEN they are evaluated with the enrichment the function gives them
    def severities(record: CloudTrailRecord) -> list[tuple[str, str]]:
        enrichment = Enrichment(own_target=SAMPLE_STACK.owns(record.target))
        return [(f.rule_id, f.severity) for f in rules.evaluate(record, enrichment).findings]

    # THEN the person's call is critical and the stack update's high
    assert severities(by_person) == [("secretwatch-tampered", "critical")]
    assert severities(by_stack_update) == [("secretwatch-tampered", "high")]
    # AND without enrichment (the identity unknown) it never fires
    assert rules.evaluate(by_person).findings == ()


def test_secrets_manager_rules_never_fire_on_another_services_call() -> None:
    # GIVEN the root user disabling a foreign rule (root-activity reads every event name)
    record = _sample_record(
        "control-tamper-foreign-rule-disabled",
        type="Root",
        arn=f"arn:aws:iam::{ACCOUNT}:root",
    )

    # WHEN / THEN root-activity stays quiet: it reads Secrets Manager's records only
    assert record.caller.type == "Root"
    assert load_rules().evaluate(record, Enrichment()).findings == ()


def test_enricher_knows_own_targets_of_its_own_account_only() -> None:
    # GIVEN an enricher of the stack in ACCOUNT, and the same DisableKey from two accounts
    own = _sample_record("tamper-key-disabled")
    detail = json.loads((EVENTS / "tamper-key-disabled.json").read_text())["detail"]
    elsewhere = normalise({**detail, "recipientAccountId": OTHER_ACCOUNT})
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
        )
        enricher = Enricher(
            session.client("secretsmanager"),
            session.client("iam"),
            None,
            home_account_id=ACCOUNT,
            stack=SAMPLE_STACK,
        )

        # WHEN both are enriched
        mine, theirs = enricher.enrich(own), enricher.enrich(elsewhere)

    # THEN only this account's is the stack's key (a member's key is its own stack's)
    assert mine.own_target == f"alert key {KEY_ID}"
    assert theirs.own_target is None


# --- hostile requestParameters ---------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)  # fmt: skip
_KEYS = ["name", "rule", "trailName", "logGroupName", "filterName", "keyId", "functionName",
         "topicArn", "subscriptionArn", "state", "eventBusName"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    call=st.sampled_from(sorted(TAMPER_CALLS)),
    request=st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=5) | _JSON,
    response=st.dictionaries(st.sampled_from(["keyId", "functionArn"]), _JSON, max_size=2),
)
def test_any_request_is_a_record_with_a_bounded_target_or_a_named_rejection(
    call: tuple[str, str], request: Any, response: dict[str, Any]
) -> None:
    # GIVEN a tamper call whose requestParameters and responseElements are anything at all
    source, name = call
    raw = build_raw(
        eventSource=source, eventName=name, requestParameters=request, responseElements=response
    )

    # WHEN it is normalised
    # THEN a requestParameters that is no object is refused, naming the field ...
    if request is not None and not isinstance(request, dict):
        with pytest.raises(RecordRejected, match="requestParameters"):
            normalise(raw)
        return
    record = normalise(raw)

    # ... and anything else is a record without a secret, whose target is a bounded string
    assert record.secret is None
    if record.target is not None:
        assert isinstance(record.target.name, str)
        assert len(record.target.name.encode()) <= TARGET_NAME_MAX
        assert record.target.parent is None or isinstance(record.target.parent, str)
