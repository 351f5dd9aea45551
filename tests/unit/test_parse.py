"""Reading and normalising: every input shape, every identity type, secret extraction, bad inputs.

Each record becomes a ReadItem that is exactly one of: a normalised record, a rejection that
names the field, or a skip (another event source). Only a whole unreadable input raises.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.envelopes import ReadItem, read_any, read_bytes
from shared.errors import InputError, OutOfScope, RecordRejected
from shared.models import CloudTrailRecord, SecretRef
from shared.normalise import normalise, secret_from_id
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, SECRET_ARN, RawFactory, build_raw

EVENTS = Path(__file__).resolve().parents[2] / "events"

ASCII_PENDING = "You can't perform this operation on the secret because it was marked for deletion."
CURLY_PENDING = (
    "You can\u2019t perform this operation on the secret because it was marked for deletion."
)
LEGACY_DELETED = "You can\u2019t perform this operation on the secret because it was deleted."


# ---------------------------------------------------------------------------------------------
# Helpers


def eventbridge(
    detail: Any,
    *,
    detail_type: str = "AWS API Call via CloudTrail",
    source: str = "aws.secretsmanager",
    event_id: str = "eb-0001",
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-10-21T17:09:13Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


def logs_payload(messages: list[Any], *, message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    """A decoded CloudWatch Logs subscription payload; dict messages are JSON-encoded."""
    return {
        "owner": ACCOUNT,
        "logGroup": "aws-cloudtrail-logs",
        "logStream": f"{ACCOUNT}_CloudTrail_eu-west-1",
        "subscriptionFilters": ["secretwatch"],
        "messageType": message_type,
        "logEvents": [
            {
                "id": f"3{position:055d}",
                "timestamp": 1_792_602_553_000 + position,
                "message": json.dumps(message) if isinstance(message, dict) else message,
            }
            for position, message in enumerate(messages)
        ],
    }


def awslogs(payload: Any, *, compress: str = "gzip") -> dict[str, Any]:
    """The Lambda event CloudWatch Logs sends: base64(gzip(json)), or zlib like some fixtures."""
    raw = json.dumps(payload).encode()
    packed = gzip.compress(raw) if compress == "gzip" else zlib.compress(raw)
    return {"awslogs": {"data": base64.b64encode(packed).decode("ascii")}}


def only(items: Any) -> ReadItem:
    found = list(items)
    assert len(found) == 1, found
    item: ReadItem = found[0]
    return item


def record_of(event: Any) -> CloudTrailRecord:
    item = only(read_any(event))
    assert item.error is None, item.error
    assert item.record is not None, item.skipped
    return item.record


def error_of(event: Any) -> str:
    item = only(read_any(event))
    assert item.record is None
    assert item.error is not None, item.skipped
    return item.error


def load(relative: str) -> Any:
    return json.loads((EVENTS / relative).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Input shapes


def test_eventbridge_api_call_is_normalised() -> None:
    # GIVEN a real EventBridge "AWS API Call via CloudTrail" event for DeleteSecret
    event = load("eventbridge/secret-deleted.json")

    # WHEN it is read
    item = only(read_any(event))

    # THEN one record comes out with every field decoded, and the envelope id kept as origin
    record = item.record
    assert record is not None
    assert item.index == 0
    assert item.origin_id == event["id"]
    assert item.event_id == record.event_id == event["detail"]["eventID"]
    assert item.event_name == record.event_name == "DeleteSecret"
    assert record.event_type == "AwsApiCall"
    assert record.event_time == datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)
    assert record.event_time_iso == "2026-11-20T10:15:02Z"
    assert record.region == "eu-west-1"
    assert record.account_id == ACCOUNT
    assert record.read_only is False
    assert record.error_code is None
    assert record.failed is False
    assert record.secret == SecretRef(
        name="prod/payments/db-password",
        arn="arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/payments/db-password-a1B2c3",
        region="eu-west-1",
        account_id=ACCOUNT,
    )
    assert record.request.recovery_window_days == 7
    assert record.request.deletion_date == "Nov 27, 2026 10:15:02 AM"
    assert record.caller.console_session is True
    assert record.event_version == "1.11"
    assert record.request_id == "0b80a255-53a1-4945-a932-58ef7777682c"
    assert record.warnings == ()


def test_eventbridge_service_event_is_normalised() -> None:
    # GIVEN a real "AWS Service Event via CloudTrail" RotationFailed event (no identity type,
    # requestParameters null, secret in additionalEventData, errorMessage without errorCode)
    event = load("eventbridge/rotation-failed.json")

    # WHEN it is read
    record = record_of(event)

    # THEN it is a failed service event by secretsmanager itself, about the rotated secret
    assert record.event_type == "AwsServiceEvent"
    assert record.error_code is None
    assert record.error_message is not None
    assert record.error_message.startswith("Error when executing lambda")
    assert record.failed is True
    assert record.caller.type is None
    assert record.caller.invoked_by == "secretsmanager.amazonaws.com"
    assert record.caller.principal == "secretsmanager.amazonaws.com"
    assert record.source_ip == "secretsmanager.amazonaws.com"
    assert record.secret is not None
    assert record.secret.name == "prod/rds/orders-primary"
    assert record.request_id is not None
    assert record.request_id.startswith("Rotation-arn:aws:secretsmanager:")


@pytest.mark.parametrize("compress", ["gzip", "zlib"])
def test_cloudwatch_logs_lambda_event_yields_one_item_per_log_event(compress: str) -> None:
    # GIVEN a Lambda event from a CloudWatch Logs subscription holding two CloudTrail records
    first = build_raw(eventID="ev-1", eventName="GetSecretValue")
    second = build_raw(eventID="ev-2", eventName="DescribeSecret")
    event = awslogs(logs_payload([first, second]), compress=compress)

    # WHEN it is read
    items = list(read_any(event))

    # THEN each log event is one item, in order, with its log event id as origin
    assert [item.index for item in items] == [0, 1]
    assert [item.event_id for item in items] == ["ev-1", "ev-2"]
    assert [item.record.event_name for item in items if item.record] == [
        "GetSecretValue",
        "DescribeSecret",
    ]
    assert items[0].origin_id == f"3{0:055d}"
    assert items[1].origin_id == f"3{1:055d}"


def test_decoded_cloudwatch_logs_payload_is_read_too() -> None:
    # GIVEN the decoded DATA_MESSAGE payload (what `base64 -d | zcat` shows), with an extra
    # account-policy key that must be tolerated
    payload = logs_payload([build_raw(eventID="ev-9")])
    payload["policyLevel"] = "ACCOUNT_LEVEL_POLICY"

    # WHEN it is read
    record = record_of(payload)

    # THEN the record comes out
    assert record.event_id == "ev-9"


def test_real_cloudwatch_logs_sample_is_read() -> None:
    # GIVEN a generated CloudWatch Logs payload with several records from one log stream
    event = load("cloudwatch-logs/batch-mixed.json")

    # WHEN it is read
    items = list(read_any(event))

    # THEN all four records are normalised
    assert len(items) == 4
    assert all(item.record is not None for item in items)


@pytest.mark.parametrize("wrapped", [True, False], ids=["lambda-event", "decoded"])
def test_control_message_is_acknowledged_and_yields_nothing(wrapped: bool) -> None:
    # GIVEN a CONTROL_MESSAGE (CloudWatch Logs checking that the destination is reachable)
    payload = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {
                "id": "",
                "timestamp": 1_792_602_553_000,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
            }
        ],
    }
    event = awslogs(payload) if wrapped else payload

    # WHEN it is read
    items = list(read_any(event))

    # THEN there is nothing to evaluate and nothing failed
    assert items == []


def test_real_control_message_sample_yields_nothing() -> None:
    # GIVEN the CONTROL_MESSAGE sample under events/
    data = (EVENTS / "cloudwatch-logs/control-message.json").read_bytes()

    # WHEN / THEN it is read as no items at all
    assert list(read_bytes(data)) == []


def test_cloudtrail_log_file_plain_and_gzip(tmp_path: Path) -> None:
    # GIVEN a CloudTrail log file as delivered to S3, written plain and as .json.gz
    records = [build_raw(eventID="a"), build_raw(eventID="b"), build_raw(eventID="c")]
    text = json.dumps({"Records": records}).encode()
    plain = tmp_path / "trail.json"
    packed = tmp_path / "trail.json.gz"
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text))

    # WHEN both files are read
    from_plain = list(read_bytes(plain.read_bytes()))
    from_gzip = list(read_bytes(packed.read_bytes()))

    # THEN both yield the same three records, indexed in order
    assert [i.event_id for i in from_plain] == ["a", "b", "c"]
    assert [i.event_id for i in from_gzip] == ["a", "b", "c"]
    assert [i.index for i in from_gzip] == [0, 1, 2]
    assert all(i.record is not None for i in from_plain + from_gzip)


def test_bare_record_is_read() -> None:
    # GIVEN a single CloudTrail record, not wrapped in anything
    raw = build_raw(eventID="bare-1")

    # WHEN it is read
    item = only(read_any(raw))

    # THEN it is normalised with no origin id (there is no envelope)
    assert item.record is not None
    assert item.event_id == "bare-1"
    assert item.origin_id is None


def test_json_lines_each_line_is_its_own_input() -> None:
    # GIVEN JSON Lines: an EventBridge event, a blank line, a broken line, and a bare record
    lines = [
        json.dumps(eventbridge(build_raw(eventID="l1"))),
        "",
        '{"eventName": ',
        json.dumps(build_raw(eventID="l4")),
        "[1, 2]",
    ]
    data = "\n".join(lines).encode()

    # WHEN the bytes are read
    items = list(read_bytes(data))

    # THEN the good lines are records and the bad ones are errors naming their line
    assert [i.index for i in items] == [0, 1, 2, 3]
    assert items[0].event_id == "l1"
    assert items[0].origin_id == "eb-0001"
    assert items[1].error is not None
    assert items[1].error.startswith("line 3: not valid JSON")
    assert items[2].event_id == "l4"
    assert items[2].record is not None
    assert items[3].error is not None
    assert "line 5" in items[3].error


def test_json_lines_line_that_is_not_text_is_an_error_item() -> None:
    # GIVEN JSON Lines whose second line is bytes that decode as neither UTF-8 JSON nor UTF-16
    data = json.dumps(build_raw(eventID="ok")).encode() + b"\n\x00a\x00bc\n"

    # WHEN it is read
    items = list(read_bytes(data))

    # THEN the first line is a record and the second an error naming line 2
    assert items[0].record is not None
    assert items[1].error is not None
    assert items[1].error.startswith("line 2: not valid JSON")


def test_json_array_of_mixed_shapes_is_read_with_running_indexes() -> None:
    # GIVEN a JSON array holding an EventBridge event, a log file with two records, a bare
    # record, and an element that is not an object
    value = [
        eventbridge(build_raw(eventID="x1")),
        {"Records": [build_raw(eventID="x2"), build_raw(eventID="x3")]},
        build_raw(eventID="x4"),
        "not an object",
    ]

    # WHEN it is read
    items = list(read_any(value))

    # THEN every record is found with a running index and the stray element is an error
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert [i.event_id for i in items[:4]] == ["x1", "x2", "x3", "x4"]
    assert items[4].error == "[3]: expected a JSON object, got string"


def test_lookup_events_output_is_read() -> None:
    # GIVEN `aws cloudtrail lookup-events` output: CloudTrailEvent is a JSON *string*
    value = {
        "Events": [
            {"EventId": "a", "CloudTrailEvent": json.dumps(build_raw(eventID="lk-1"))},
            {"EventId": "b", "CloudTrailEvent": {"already": "an object"}},
            {"EventId": "c", "CloudTrailEvent": "{not json"},
        ]
    }

    # WHEN it is read
    items = list(read_any(value))

    # THEN the first is a record and the others are errors naming the element
    assert items[0].record is not None
    assert items[0].event_id == "lk-1"
    assert items[1].error == "Events[1].CloudTrailEvent must be a string of JSON"
    assert items[2].error is not None
    assert items[2].error.startswith("Events[2].CloudTrailEvent is not valid JSON")


# ---------------------------------------------------------------------------------------------
# Out of scope: skipped, not errors


def test_record_from_another_event_source_is_skipped() -> None:
    # GIVEN a CloudTrail log file with an S3 record and a Secrets Manager record
    other = build_raw(eventSource="s3.amazonaws.com", eventName="GetObject", eventID="s3-1")
    value = {"Records": [other, build_raw(eventID="sm-1")]}

    # WHEN it is read
    items = list(read_any(value))

    # THEN the S3 record is skipped (with its id and name) and the other is a record
    assert items[0].skipped is not None
    assert "s3.amazonaws.com" in items[0].skipped
    assert items[0].error is None
    assert items[0].record is None
    assert (items[0].event_id, items[0].event_name) == ("s3-1", "GetObject")
    assert items[1].record is not None


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [
        ("aws.s3", "AWS API Call via CloudTrail"),
        ("aws.secretsmanager", "AWS Console Signin via CloudTrail"),
    ],
)
def test_eventbridge_event_from_elsewhere_is_skipped(source: str, detail_type: str) -> None:
    # GIVEN an EventBridge event whose source or detail-type is not a Secrets Manager record
    event = eventbridge(build_raw(eventID="far"), source=source, detail_type=detail_type)

    # WHEN it is read
    item = only(read_any(event))

    # THEN it is skipped, not rejected
    assert item.skipped is not None
    assert source in item.skipped
    assert item.error is None
    assert item.event_id == "far"


def test_normalise_raises_out_of_scope_for_another_source() -> None:
    # GIVEN a raw record from KMS
    raw = build_raw(eventSource="kms.amazonaws.com", eventName="Decrypt", eventID="k-1")

    # WHEN / THEN normalise says it is out of scope, carrying the id and name
    with pytest.raises(OutOfScope) as caught:
        normalise(raw)
    assert caught.value.event_id == "k-1"
    assert caught.value.event_name == "Decrypt"


# ---------------------------------------------------------------------------------------------
# Identity types

IDENTITY_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "iam-user",
        {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
            "sessionContext": {"attributes": {"mfaAuthenticated": "false"}},
        },
        {
            "type": "IAMUser",
            "principal": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "identity_arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "name": "alice",
            "user_name": "alice",
            "account_id": ACCOUNT,
            "access_key_id": "AKIAEXAMPLE",
            "mfa_authenticated": False,
        },
    ),
    (
        "assumed-role",
        {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:ci-session",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy-role/ci-session",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLE",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/deploy-role",
                    "accountId": ACCOUNT,
                    "userName": "deploy-role",
                },
                "attributes": {"mfaAuthenticated": "true"},
                "sourceIdentity": "alice",
            },
        },
        {
            "type": "AssumedRole",
            "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy-role/ci-session",
            "identity_arn": f"arn:aws:iam::{ACCOUNT}:role/deploy-role",
            "name": "deploy-role",
            "role_name": "deploy-role",
            "session_name": "ci-session",
            "source_identity": "alice",
            "mfa_authenticated": True,
            "sso_user": None,
            "sso_permission_set": None,
        },
    ),
    (
        "assumed-role-sso",
        {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice@example.com",
            "arn": (
                f"arn:aws:sts::{ACCOUNT}:assumed-role/"
                "AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
            ),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": (
                        f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
                        "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
                    ),
                    "userName": "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                },
            },
        },
        {
            "sso_user": "alice@example.com",
            "sso_permission_set": "AdministratorAccess",
            "name": "alice@example.com",
            "session_name": "alice@example.com",
            "role_name": "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
        },
    ),
    (
        "assumed-role-sso-permission-set-with-underscores",
        {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Read_Only_Ops_9f8e7d6c/bob",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/"
                    "AWSReservedSSO_Read_Only_Ops_9f8e7d6c",
                    "userName": "AWSReservedSSO_Read_Only_Ops_9f8e7d6c",
                }
            },
        },
        {"sso_user": "bob", "sso_permission_set": "Read_Only_Ops", "name": "bob"},
    ),
    (
        # Anyone may name a role AWSReservedSSO_...: only IAM Identity Center's path makes it SSO.
        "role-merely-named-like-sso-is-not-sso",
        {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123abcd/mallory",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Admin_0123abcd",
                    "userName": "AWSReservedSSO_Admin_0123abcd",
                }
            },
        },
        {
            "sso_user": None,
            "sso_permission_set": None,
            "role_name": "AWSReservedSSO_Admin_0123abcd",
            "session_name": "mallory",
            "name": "AWSReservedSSO_Admin_0123abcd",
        },
    ),
    (
        "assumed-role-invoked-by-a-service",
        {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/cfn-exec/AWSCloudFormation",
            "accountId": ACCOUNT,
            "invokedBy": "cloudformation.amazonaws.com",
        },
        {
            "invoked_by": "cloudformation.amazonaws.com",
            "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/cfn-exec/AWSCloudFormation",
            "role_name": "cfn-exec",
            "session_name": "AWSCloudFormation",
        },
    ),
    (
        "assumed-role-without-arn",
        {"type": "AssumedRole", "principalId": "AROAEXAMPLE:nightly", "accountId": ACCOUNT},
        {
            "session_name": "nightly",
            "principal": f"{ACCOUNT}:AROAEXAMPLE:nightly",
            "identity_arn": None,
        },
    ),
    (
        "assumed-role-with-odd-arn-and-principal",
        {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::1:something-else",
            "principalId": "AROANOSESSION",
        },
        {"session_name": None, "role_name": None, "principal": "arn:aws:sts::1:something-else"},
    ),
    (
        "root",
        {
            "type": "Root",
            "principalId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:root",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAROOT",
            "userName": "my-account-alias",
        },
        {
            "type": "Root",
            "name": "root",
            "principal": f"arn:aws:iam::{ACCOUNT}:root",
            "identity_arn": f"arn:aws:iam::{ACCOUNT}:root",
        },
    ),
    (
        "federated-user",
        {
            "type": "FederatedUser",
            "principalId": f"{ACCOUNT}:carol",
            "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
            "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "IAMUser", "userName": "broker"}},
        },
        {
            "type": "FederatedUser",
            "user_name": "carol",
            "name": "carol",
            "identity_arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
            "role_name": None,
        },
    ),
    (
        "aws-service",
        {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
        {
            "type": "AWSService",
            "principal": "lambda.amazonaws.com",
            "name": "lambda.amazonaws.com",
            "invoked_by": "lambda.amazonaws.com",
        },
    ),
    (
        "aws-account-cross-account",
        {
            "type": "AWSAccount",
            "principalId": "AROAOTHER:their-session",
            "accountId": OTHER_ACCOUNT,
        },
        {
            "type": "AWSAccount",
            "principal": f"{OTHER_ACCOUNT}:AROAOTHER:their-session",
            "account_id": OTHER_ACCOUNT,
            "name": "AROAOTHER:their-session",
            "identity_arn": None,
        },
    ),
    (
        "identity-center-user",
        {
            "type": "IdentityCenterUser",
            "accountId": ACCOUNT,
            "onBehalfOf": {
                "userId": "a4f8e2d1-9071",
                "identityStoreArn": f"arn:aws:identitystore::{ACCOUNT}:identitystore/d-93671f2a4c",
            },
            "credentialId": "EXAMPLE",
        },
        {
            "type": "IdentityCenterUser",
            "identity_store_user_id": "a4f8e2d1-9071",
            "principal": (
                f"arn:aws:identitystore::{ACCOUNT}:identitystore/d-93671f2a4c/user/a4f8e2d1-9071"
            ),
            "name": "a4f8e2d1-9071",
        },
    ),
    (
        "identity-center-user-without-store",
        {"type": "IdentityCenterUser", "onBehalfOf": {"userId": "u-1"}},
        {"principal": "identitycenter:u-1", "name": "u-1"},
    ),
    (
        "web-identity-user",
        {
            "type": "WebIdentityUser",
            "principalId": "accounts.google.com:app-id:user-id",
            "userName": "user-id",
            "identityProvider": "accounts.google.com",
        },
        {
            "type": "WebIdentityUser",
            "principal": "accounts.google.com:app-id:user-id",
            "name": "user-id",
            "identity_arn": None,
        },
    ),
    (
        "unknown",
        {"type": "Unknown", "accountId": ACCOUNT},
        {"type": "Unknown", "principal": f"account:{ACCOUNT}", "name": None},
    ),
    (
        "service-event-without-type",
        {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
        {
            "type": None,
            "principal": "secretsmanager.amazonaws.com",
            "invoked_by": "secretsmanager.amazonaws.com",
            "account_id": ACCOUNT,
            "mfa_authenticated": None,
        },
    ),
]


@pytest.mark.parametrize(
    ("identity", "expected"),
    [(identity, expected) for _, identity, expected in IDENTITY_CASES],
    ids=[name for name, _, _ in IDENTITY_CASES],
)
def test_every_identity_type_is_read(identity: dict[str, Any], expected: dict[str, Any]) -> None:
    # GIVEN a record made by this kind of identity
    raw = build_raw(userIdentity=identity)

    # WHEN it is normalised
    caller = normalise(raw).caller

    # THEN the caller carries the expected attributes
    actual = {key: getattr(caller, key) for key in expected}
    assert actual == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("false", False),
        (True, True),
        (False, False),
        ("TRUE", None),
        ("yes", None),
        (1, None),
        (None, None),
    ],
)
def test_mfa_string_is_decided_exactly(value: Any, expected: bool | None) -> None:
    # GIVEN sessionContext.attributes.mfaAuthenticated written as CloudTrail writes it (or not)
    identity = {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "sessionContext": {"attributes": {"mfaAuthenticated": value}},
    }

    # WHEN the record is normalised
    caller = normalise(build_raw(userIdentity=identity)).caller

    # THEN only the exact strings "true"/"false" decide; anything else is unknown
    assert caller.mfa_authenticated is expected


def test_source_ip_user_agent_and_vpc_endpoint_are_kept_as_given() -> None:
    # GIVEN a call made by a service through a VPC endpoint
    raw = build_raw(
        sourceIPAddress="cloudformation.amazonaws.com",
        userAgent="cloudformation.amazonaws.com",
        vpcEndpointId="vpce-0123456789abcdef0",
        sharedEventID="shared-1",
    )

    # WHEN it is normalised
    record = normalise(raw)

    # THEN the source IP may be a service name, and the endpoint is kept
    assert record.source_ip == "cloudformation.amazonaws.com"
    assert record.user_agent == "cloudformation.amazonaws.com"
    assert record.vpc_endpoint_id == "vpce-0123456789abcdef0"
    assert record.shared_event_id == "shared-1"


def test_event_time_with_offset_is_converted_to_utc() -> None:
    # GIVEN an eventTime written with a +02:00 offset
    raw = build_raw(eventTime="2026-10-21T19:09:13+02:00")

    # WHEN it is normalised
    record = normalise(raw)

    # THEN the time is the same instant in UTC
    assert record.event_time == datetime(2026, 10, 21, 17, 9, 13, tzinfo=UTC)
    assert record.event_time.utcoffset() is not None
    assert record.event_time_iso == "2026-10-21T17:09:13Z"


# ---------------------------------------------------------------------------------------------
# The secret


def test_secret_from_full_arn_strips_the_random_suffix() -> None:
    # GIVEN a full secret ARN (name + "-" + six random characters)
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db/orders-Ab12Cd"

    # WHEN it is turned into a SecretRef
    ref = secret_from_id(arn)

    # THEN the name is canonical and the ARN, region and account are kept
    assert ref == SecretRef("prod/db/orders", arn, "eu-west-1", ACCOUNT)


def test_secret_from_partial_arn_keeps_the_name_and_no_arn() -> None:
    # GIVEN a partial ARN (no random suffix)
    partial = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db/orders"

    # WHEN it is turned into a SecretRef
    ref = secret_from_id(partial)

    # THEN the name is unchanged and no full ARN is claimed
    assert ref == SecretRef("prod/db/orders", None, "eu-west-1", ACCOUNT)


@pytest.mark.parametrize("name", ["prod/db/orders", "db-Ab12Cd", "my-secret", "x"])
def test_plain_name_is_never_stripped(name: str) -> None:
    # GIVEN a plain name, even one that looks like it ends in a random suffix
    # WHEN it is turned into a SecretRef
    ref = secret_from_id(name)

    # THEN the name is kept exactly
    assert ref == SecretRef(name)


def test_arn_of_another_service_is_kept_as_a_name() -> None:
    # GIVEN an ARN that is not a Secrets Manager secret ARN
    other = "arn:aws:ssm:eu-west-1:111122223333:parameter/prod-Ab12Cd"

    # WHEN / THEN it is not parsed as a secret ARN
    assert secret_from_id(other) == SecretRef(other)


SECRET_SOURCES: list[tuple[str, dict[str, Any], SecretRef | None]] = [
    (
        "request-secret-id-name",
        {"requestParameters": {"secretId": "prod/db/orders"}},
        SecretRef("prod/db/orders"),
    ),
    (
        "request-secret-id-arn",
        {"requestParameters": {"secretId": SECRET_ARN}},
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    (
        "response-arn",
        {
            "requestParameters": {"secretId": "prod/db/orders"},
            "responseElements": {"arn": SECRET_ARN},
        },
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    (
        "response-legacy-aRN",
        {
            "requestParameters": {"secretId": "prod/db/orders"},
            "responseElements": {"aRN": SECRET_ARN},
        },
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    (
        "additional-event-data",
        {"requestParameters": None, "additionalEventData": {"SecretId": SECRET_ARN}},
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    (
        "create-secret-name",
        {"eventName": "CreateSecret", "requestParameters": {"name": "new/one"}},
        SecretRef("new/one"),
    ),
    (
        "response-name-only",
        {"requestParameters": None, "responseElements": {"name": "from/response"}},
        SecretRef("from/response"),
    ),
    (
        "service-event-details",
        {"requestParameters": None, "serviceEventDetails": {"secretId": SECRET_ARN}},
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    (
        "resources",
        {
            "requestParameters": None,
            "resources": [
                {"ARN": "arn:aws:kms:eu-west-1:111122223333:key/1"},
                "junk",
                {"ARN": SECRET_ARN, "type": "AWS::SecretsManager::Secret"},
            ],
        },
        SecretRef("prod/db/orders", SECRET_ARN, "eu-west-1", ACCOUNT),
    ),
    ("none", {"requestParameters": None, "resources": "not-a-list"}, None),
    (
        "empty-secret-id-then-name",
        {"requestParameters": {"secretId": "", "name": "named"}},
        SecretRef("named"),
    ),
    (
        "request-id-and-response-name-without-arn",
        {"requestParameters": {"secretId": "prod/db"}, "responseElements": {"name": "prod/db"}},
        SecretRef("prod/db"),
    ),
    (
        "resources-without-a-secret",
        {"requestParameters": None, "resources": [{"ARN": "arn:aws:kms:eu-west-1:1:key/k"}]},
        None,
    ),
]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [(overrides, expected) for _, overrides, expected in SECRET_SOURCES],
    ids=[name for name, _, _ in SECRET_SOURCES],
)
def test_secret_is_found_in_each_place(
    overrides: dict[str, Any], expected: SecretRef | None
) -> None:
    # GIVEN a record naming its secret in one particular place
    raw = build_raw(**overrides)

    # WHEN it is normalised
    record = normalise(raw)

    # THEN the secret is the canonical name, with the ARN when one was given
    assert record.secret == expected


def test_request_name_is_upgraded_by_a_later_arn_for_the_same_secret() -> None:
    # GIVEN a request naming the secret by name and additionalEventData giving its ARN
    raw = build_raw(
        requestParameters={"secretId": "prod/db/orders"},
        additionalEventData={"SecretId": SECRET_ARN},
    )

    # WHEN it is normalised
    secret = normalise(raw).secret

    # THEN the ARN is known
    assert secret is not None
    assert secret.arn == SECRET_ARN


# ---------------------------------------------------------------------------------------------
# Error messages and request fields


@pytest.mark.parametrize("message", [ASCII_PENDING, CURLY_PENDING, LEGACY_DELETED])
def test_pending_deletion_wordings_are_normalised_to_ascii(message: str) -> None:
    # GIVEN a failed GetSecretValue with one of the three real wordings
    raw = build_raw(errorCode="InvalidRequestException", errorMessage=message)

    # WHEN it is normalised
    record = normalise(raw)

    # THEN the message uses the ASCII apostrophe and nothing else changes
    assert record.error_message == message.replace("\u2019", "'")
    assert record.error_message is not None
    assert "\u2019" not in record.error_message
    assert record.error_code == "InvalidRequestException"
    assert record.failed is True


def test_request_fields_are_decoded() -> None:
    # GIVEN a record carrying every request member the rules read
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*"}]}
    raw = build_raw(
        requestParameters={
            "secretId": "prod/db/orders",
            "recoveryWindowInDays": 7,
            "forceDeleteWithoutRecovery": False,
            "resourcePolicy": json.dumps(policy),
            "blockPublicPolicy": True,
            "rotationLambdaARN": "arn:aws:lambda:eu-west-1:111122223333:function:rotate",
            "rotationRules": {
                "automaticallyAfterDays": 30,
                "scheduleExpression": "rate(30 days)",
                "duration": "2h",
            },
            "rotateImmediately": False,
            "kmsKeyId": "alias/secrets",
            "versionStages": ["AWSCURRENT"],
            "addReplicaRegions": [{"region": "us-east-1", "kmsKeyId": "alias/x"}],
            "removeReplicaRegions": ["eu-central-1"],
        },
        responseElements={"arn": SECRET_ARN, "versionId": "v-2", "deletionDate": "May 3, 2018"},
    )

    # WHEN it is normalised
    request = normalise(raw).request

    # THEN each member is decoded to its type (the policy from its JSON string)
    assert request.recovery_window_days == 7
    assert request.force_delete_without_recovery is False
    assert request.resource_policy == policy
    assert request.block_public_policy is True
    assert request.rotation_lambda_arn == "arn:aws:lambda:eu-west-1:111122223333:function:rotate"
    assert request.rotation_rules is not None
    assert request.rotation_rules.automatically_after_days == 30
    assert request.rotation_rules.schedule_expression == "rate(30 days)"
    assert request.rotation_rules.duration == "2h"
    assert request.rotate_immediately is False
    assert request.kms_key_id == "alias/secrets"
    assert request.version_stages == ("AWSCURRENT",)
    assert request.new_version_id == "v-2"
    assert request.add_replica_regions == ("us-east-1",)
    assert request.remove_replica_regions == ("eu-central-1",)
    assert request.deletion_date == "May 3, 2018"


def test_resource_policy_already_an_object_is_accepted() -> None:
    # GIVEN a resource policy given as an object instead of a JSON string
    raw = build_raw(requestParameters={"secretId": "s", "resourcePolicy": {"Statement": []}})

    # WHEN / THEN it is kept as is
    assert normalise(raw).request.resource_policy == {"Statement": []}


def test_record_without_request_members_has_empty_request_fields() -> None:
    # GIVEN a GetSecretValue with only secretId
    record = normalise(build_raw())

    # WHEN / THEN every request field is unknown
    assert dataclasses.asdict(record.request) == dict.fromkeys(dataclasses.asdict(record.request))


# ---------------------------------------------------------------------------------------------
# Bad inputs: whole input unreadable → InputError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"Records": [{"eventName": ', "not valid JSON"),
        (b"", "the file is empty"),
        (b"   \n\t", "the file is empty"),
        (gzip.compress(b'{"Records": []}')[:12], "not a valid gzip file"),
        (b'{"eventName": "\xff\xfe"}', "not UTF-8 text"),
        (b'{"hello": 1}', "not a recognised shape"),
        (b'"a string"', "expected a JSON object, got string"),
        (b'{"Records": {"not": "a list"}}', "Records must be an array, got object"),
    ],
    ids=[
        "truncated-json",
        "empty",
        "blank",
        "truncated-gzip",
        "not-utf8",
        "unknown-shape",
        "not-an-object",
        "records-not-array",
    ],
)
def test_unreadable_file_raises_input_error(data: bytes, message: str) -> None:
    # GIVEN the bytes of a file that cannot be read as a whole
    # WHEN / THEN read_bytes raises InputError with a clear message
    with pytest.raises(InputError, match=message):
        list(read_bytes(data))


def test_gzip_file_holding_garbage_is_not_valid_json() -> None:
    # GIVEN a well-formed gzip file whose content is not JSON
    data = gzip.compress(b"this is not json")

    # WHEN / THEN the error says so
    with pytest.raises(InputError, match="not valid JSON"):
        list(read_bytes(data))


@pytest.mark.parametrize(
    ("awslogs_value", "message"),
    [
        ({"data": "!!!not base64!!!"}, "awslogs.data is not valid base64"),
        (
            {"data": base64.b64encode(b"plain text, not gzip").decode()},
            "awslogs.data is not gzip-compressed",
        ),
        ({"data": base64.b64encode(gzip.compress(b"{oops")).decode()}, "does not hold valid JSON"),
        ({"data": base64.b64encode(gzip.compress(b"\xff\xfe\xfa")).decode()}, "UTF-8"),
        ({"data": 42}, "awslogs.data must be a string"),
        ("not-an-object", "awslogs.data must be a string"),
    ],
    ids=["invalid-base64", "not-gzip", "not-json", "not-utf8", "data-not-string", "not-object"],
)
def test_bad_awslogs_payload_raises_input_error(awslogs_value: Any, message: str) -> None:
    # GIVEN a Lambda event whose awslogs.data cannot be decoded
    event = {"awslogs": awslogs_value}

    # WHEN / THEN read_event raises InputError naming the problem
    with pytest.raises(InputError, match=message):
        list(read_any(event))


def test_gzip_truncated_inside_awslogs_is_an_input_error() -> None:
    # GIVEN a gzip stream cut in the middle, base64-encoded
    packed = gzip.compress(json.dumps(logs_payload([build_raw()])).encode())
    event = {"awslogs": {"data": base64.b64encode(packed[: len(packed) // 2]).decode()}}

    # WHEN / THEN it is reported as not gzip
    with pytest.raises(InputError, match="not gzip-compressed"):
        list(read_any(event))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"messageType": "SOMETHING_NEW", "logEvents": []},
            "unknown CloudWatch Logs messageType 'SOMETHING_NEW'",
        ),
        (
            {"messageType": "DATA_MESSAGE", "logEvents": "nope"},
            "logEvents must be an array, got string",
        ),
        (["a", "list"], "the CloudWatch Logs payload must be an object, got array"),
    ],
    ids=["unknown-message-type", "log-events-not-array", "payload-not-object"],
)
def test_bad_logs_payload_raises_input_error(payload: Any, message: str) -> None:
    # GIVEN a decodable Lambda event whose payload is not a usable DATA_MESSAGE
    event = awslogs(payload)

    # WHEN / THEN read_event raises InputError naming it
    with pytest.raises(InputError, match=message):
        list(read_any(event))


def test_bad_log_events_are_errors_and_the_others_still_read() -> None:
    # GIVEN a DATA_MESSAGE whose log events are a good record and several broken ones
    payload = logs_payload(
        [
            build_raw(eventID="good"),
            "[1, 2]",
            "{not json",
            '"just a string"',
            build_raw(eventID="also"),
        ]
    )
    payload["logEvents"][1]["message"] = 17  # a message that is not a string at all
    payload["logEvents"].append("not an object")

    # WHEN it is read
    items = list(read_any(awslogs(payload)))

    # THEN each broken log event is its own error, naming its position, and good ones are read
    assert [i.index for i in items] == [0, 1, 2, 3, 4, 5]
    assert items[0].event_id == "good"
    assert items[1].error == "logEvents[1].message must be a string, got number"
    assert items[1].origin_id == f"3{1:055d}"
    assert items[2].error is not None
    assert items[2].error.startswith("logEvents[2].message is not a JSON CloudTrail record")
    assert items[3].error == "record must be an object, got string"
    assert items[4].event_id == "also"
    assert items[4].record is not None
    assert items[5].error == "logEvents[5] must be an object, got string"


# ---------------------------------------------------------------------------------------------
# Bad records: rejected, naming the field


WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    (
        "read-only-string",
        {"readOnly": "true"},
        'readOnly must be a JSON boolean, got the string "true"',
    ),
    (
        "recovery-window-string",
        {
            "eventName": "DeleteSecret",
            "requestParameters": {"secretId": "s", "recoveryWindowInDays": "7"},
        },
        "requestParameters.recoveryWindowInDays must be a whole number, got a string of 1 characters",
    ),
    (
        "recovery-window-float",
        {
            "eventName": "DeleteSecret",
            "requestParameters": {"secretId": "s", "recoveryWindowInDays": 7.5},
        },
        "requestParameters.recoveryWindowInDays must be a whole number",
    ),
    (
        "force-delete-string",
        {
            "eventName": "DeleteSecret",
            "requestParameters": {"secretId": "s", "forceDeleteWithoutRecovery": "true"},
        },
        "requestParameters.forceDeleteWithoutRecovery must be a JSON boolean, got a string of 4 characters",
    ),
    (
        "force-delete-number",
        {
            "eventName": "DeleteSecret",
            "requestParameters": {"secretId": "s", "forceDeleteWithoutRecovery": 1},
        },
        "requestParameters.forceDeleteWithoutRecovery must be a JSON boolean, got a number",
    ),
    (
        "resource-policy-not-json",
        {
            "eventName": "PutResourcePolicy",
            "requestParameters": {"secretId": "s", "resourcePolicy": "not json"},
        },
        "requestParameters.resourcePolicy is not valid JSON",
    ),
    (
        "resource-policy-json-array",
        {
            "eventName": "PutResourcePolicy",
            "requestParameters": {"secretId": "s", "resourcePolicy": "[1]"},
        },
        "requestParameters.resourcePolicy must be a JSON policy document, got an array of 1 items",
    ),
    (
        "request-parameters-string",
        {"requestParameters": "a string"},
        "requestParameters must be an object or null",
    ),
    (
        "response-elements-list",
        {"responseElements": []},
        "responseElements must be an object or null, got an array of 0 items",
    ),
    (
        "additional-data-number",
        {"additionalEventData": 3},
        "additionalEventData must be an object or null",
    ),
    ("user-identity-string", {"userIdentity": "root"}, "userIdentity must be an object or null"),
    (
        "user-identity-type-number",
        {"userIdentity": {"type": 5}},
        "userIdentity.type must be a string",
    ),
    (
        "event-time-words",
        {"eventTime": "yesterday"},
        'eventTime must be an ISO 8601 time, got the string "yesterday"',
    ),
    (
        "event-time-without-zone",
        {"eventTime": "2026-10-21T17:09:13"},
        "eventTime must be an ISO 8601 time with a zone",
    ),
    (
        "event-time-number",
        {"eventTime": 1792602553},
        "eventTime must be a non-empty string, got the number",
    ),
    ("error-code-number", {"errorCode": 400}, "errorCode must be a string, got the number 400"),
    (
        "error-message-object",
        {"errorMessage": {"a": 1}},
        "errorMessage must be a string, got object",
    ),
    (
        "event-name-empty",
        {"eventName": ""},
        'eventName must be a non-empty string, got the string ""',
    ),
    ("event-type-null", {"eventType": None}, "eventType must be a non-empty string, got null"),
    (
        "version-stages-mixed",
        {"requestParameters": {"secretId": "s", "versionStages": ["AWSCURRENT", 1]}},
        "requestParameters.versionStages must be an array of strings",
    ),
    (
        "version-id-number",
        {"responseElements": {"versionId": 5}},
        "responseElements.versionId must be a string, got a number",
    ),
    (
        "rotation-days-string",
        {"requestParameters": {"secretId": "s", "rotationRules": {"automaticallyAfterDays": "30"}}},
        "requestParameters.rotationRules.automaticallyAfterDays must be a whole number",
    ),
    (
        "rotation-rules-list",
        {"requestParameters": {"secretId": "s", "rotationRules": [30]}},
        "requestParameters.rotationRules must be an object or null",
    ),
    (
        "replica-regions-bad",
        {"requestParameters": {"secretId": "s", "addReplicaRegions": [{"region": 1}]}},
        "requestParameters.addReplicaRegions must be an array of {region} objects",
    ),
    (
        "replica-regions-not-a-list",
        {"requestParameters": {"secretId": "s", "addReplicaRegions": "us-east-1"}},
        "requestParameters.addReplicaRegions must be an array of {region} objects",
    ),
    (
        "kms-key-number",
        {"requestParameters": {"secretId": "s", "kmsKeyId": 12}},
        "requestParameters.kmsKeyId must be a string",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(overrides, message) for _, overrides, message in WRONG_TYPES],
    ids=[name for name, _, _ in WRONG_TYPES],
)
def test_decision_field_of_the_wrong_type_rejects_the_record(
    overrides: dict[str, Any], message: str
) -> None:
    # GIVEN a record whose decision field has the wrong JSON type
    raw = build_raw(eventID="bad-1", **overrides)

    # WHEN it is read
    item = only(read_any(raw))

    # THEN it is rejected with a message naming the field, and the raw record is kept
    assert item.record is None
    assert item.skipped is None
    assert item.error is not None
    assert message in item.error
    assert item.event_id == "bad-1"
    assert item.raw == raw


@pytest.mark.parametrize("field", ["eventName", "eventID", "eventTime", "eventType"])
def test_missing_required_field_rejects_the_record(field: str) -> None:
    # GIVEN a record without one of its required fields
    raw = build_raw()
    del raw[field]

    # WHEN it is read
    error = error_of(raw)

    # THEN the error names the missing field
    assert error == f"{field} is missing"


def test_missing_event_source_rejects_a_record_inside_a_log_file() -> None:
    # GIVEN a log file record with no eventSource
    raw = build_raw()
    del raw["eventSource"]

    # WHEN it is read
    error = error_of({"Records": [raw]})

    # THEN the error names eventSource
    assert error == "eventSource is missing"


def test_rejection_inside_eventbridge_names_the_detail_path() -> None:
    # GIVEN an EventBridge event whose record has forceDeleteWithoutRecovery "true" (a string)
    detail = build_raw(
        eventID="eb-bad",
        eventName="DeleteSecret",
        requestParameters={"secretId": "s", "forceDeleteWithoutRecovery": "true"},
    )
    event = eventbridge(detail)

    # WHEN it is read
    item = only(read_any(event))

    # THEN the field is named with its path in the event and the whole event is kept
    assert item.error is not None
    assert item.error.startswith("detail.requestParameters.forceDeleteWithoutRecovery")
    assert "forceDeleteWithoutRecovery" in item.error
    assert item.event_id == "eb-bad"
    assert item.event_name == "DeleteSecret"
    assert item.origin_id == "eb-0001"
    assert item.raw == event


def test_normalise_raises_record_rejected_with_the_field() -> None:
    # GIVEN a raw record with readOnly "true"
    raw = build_raw(eventID="nr-1", readOnly="true")

    # WHEN / THEN normalise raises RecordRejected carrying the field and the event id
    with pytest.raises(RecordRejected) as caught:
        normalise(raw)
    assert caught.value.field == "readOnly"
    assert caught.value.event_id == "nr-1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ({"detail": None}, "detail is missing"),
        ({"detail": "text"}, "detail must be an object, got string"),
        ({"detail": [1]}, "detail must be an object, got array"),
        ({"source": 7}, "source must be a string, got number"),
        ({"detail-type": 7}, "detail-type must be a string, got number"),
    ],
    ids=["no-detail", "detail-string", "detail-array", "source-number", "detail-type-number"],
)
def test_broken_eventbridge_envelope_is_an_error(mutate: dict[str, Any], message: str) -> None:
    # GIVEN an EventBridge event with a broken envelope
    event = eventbridge(build_raw())
    event.update(mutate)

    # WHEN it is read
    item = only(read_any(event))

    # THEN it is an error (not a crash, not a skip) naming the envelope field
    assert item.error == message
    assert item.origin_id == "eb-0001"


def test_eventbridge_event_without_detail_key_is_an_error() -> None:
    # GIVEN an EventBridge event with no detail key at all
    event = eventbridge(build_raw())
    del event["detail"]

    # WHEN / THEN it is an error naming detail
    assert error_of(event) == "detail is missing"


@pytest.mark.parametrize(
    "event_time",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"],
    ids=["after-year-9999-in-utc", "before-year-1-in-utc"],
)
def test_event_time_out_of_range_in_utc_rejects_the_record(event_time: str) -> None:
    # GIVEN a valid ISO time with a zone whose UTC instant is outside datetime's range
    raw = build_raw(eventTime=event_time)

    # WHEN it is read
    items = list(read_any(raw))

    # THEN it is one rejected item naming eventTime (never an OverflowError)
    assert len(items) == 1
    assert items[0].error is not None
    assert "eventTime" in items[0].error


def test_deeply_nested_json_file_is_an_input_error() -> None:
    # GIVEN a file of 100 000 nested arrays (too deep for the JSON decoder)
    data = b"[" * 100_000

    # WHEN / THEN read_bytes raises InputError, never RecursionError
    with pytest.raises(InputError):
        list(read_bytes(data))


DEEP = "[" * 100_000


def test_deeply_nested_json_inside_an_awslogs_payload_is_an_input_error() -> None:
    # GIVEN a Lambda event whose gzip payload is 100 000 nested arrays
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(DEEP.encode())).decode()}}

    # WHEN / THEN read_event raises InputError, never RecursionError
    with pytest.raises(InputError):
        list(read_any(event))


@pytest.mark.parametrize(
    ("read", "field"),
    [
        (lambda: read_bytes(json.dumps(build_raw()).encode() + b"\n" + DEEP.encode()), "line 2"),
        (lambda: read_any(logs_payload([build_raw(), DEEP])), "logEvents[1].message"),
        (
            lambda: read_any(
                {
                    "Events": [
                        {"CloudTrailEvent": json.dumps(build_raw())},
                        {"CloudTrailEvent": DEEP},
                    ]
                }
            ),
            "Events[1].CloudTrailEvent",
        ),
        (
            lambda: read_any(
                {
                    "Records": [
                        build_raw(),
                        build_raw(requestParameters={"secretId": "s", "resourcePolicy": DEEP}),
                    ]
                }
            ),
            "requestParameters.resourcePolicy",
        ),
    ],
    ids=["json-lines", "log-event-message", "lookup-events", "resource-policy"],
)
def test_deeply_nested_json_in_one_record_rejects_only_that_record(
    read: Callable[[], Iterator[ReadItem]], field: str
) -> None:
    # GIVEN an input whose second record (or its nested JSON string) is nested too deeply
    # WHEN it is read
    items = list(read())

    # THEN the first record is read and the second is an error naming where it is
    assert len(items) == 2
    assert items[0].record is not None
    assert items[1].error is not None
    assert field in items[1].error


# ---------------------------------------------------------------------------------------------
# Descriptive fields: unknown, with a warning


@pytest.mark.parametrize(
    ("overrides", "attribute", "warning"),
    [
        ({"awsRegion": 5}, "region", "awsRegion ignored: expected a string, got the number 5"),
        ({"sourceIPAddress": ["1.2.3.4"]}, "source_ip", "sourceIPAddress ignored"),
        ({"userAgent": False}, "user_agent", "userAgent ignored"),
        ({"recipientAccountId": 111122223333}, "account_id", "recipientAccountId ignored"),
        ({"vpcEndpointId": {}}, "vpc_endpoint_id", "vpcEndpointId ignored"),
    ],
)
def test_descriptive_field_of_the_wrong_type_is_unknown_with_a_warning(
    overrides: dict[str, Any], attribute: str, warning: str
) -> None:
    # GIVEN a record whose descriptive field has the wrong type
    raw = build_raw(**overrides)

    # WHEN it is read
    record = record_of(raw)

    # THEN the record is kept, the field is unknown and a warning says why
    assert getattr(record, attribute) is None
    assert any(warning in text for text in record.warnings), record.warnings


def test_caller_descriptive_fields_of_the_wrong_type_are_warnings() -> None:
    # GIVEN a userIdentity whose arn and sessionContext have the wrong types
    identity = {"type": "IAMUser", "arn": 5, "userName": "alice", "sessionContext": "x"}

    # WHEN it is read
    record = record_of(eventbridge(build_raw(userIdentity=identity)))

    # THEN the caller is partly known and the warnings name the paths
    assert record.caller.type == "IAMUser"
    assert record.caller.arn is None
    assert record.caller.user_name == "alice"
    assert "detail.userIdentity.arn ignored: expected a string, got the number 5" in record.warnings
    assert any("detail.userIdentity.sessionContext ignored" in w for w in record.warnings)


def test_record_without_user_identity_is_evaluated_with_an_unknown_caller() -> None:
    # GIVEN a record with no userIdentity at all
    raw = build_raw()
    del raw["userIdentity"]

    # WHEN it is read
    record = record_of(raw)

    # THEN the caller is entirely unknown and a warning is recorded
    assert all(value is None for value in dataclasses.asdict(record.caller).values())
    assert record.warnings == ("userIdentity is missing: the caller is unknown",)


def test_secret_ids_of_the_wrong_type_are_warnings_and_the_next_source_is_used() -> None:
    # GIVEN a response whose arn is a number, and a request naming the secret
    raw = build_raw(requestParameters={"secretId": "prod/db/orders"}, responseElements={"arn": 9})

    # WHEN it is normalised
    record = normalise(raw)

    # THEN the secret comes from the request and the bad arn is a warning
    assert record.secret == SecretRef("prod/db/orders")
    assert any("responseElements.arn ignored" in w for w in record.warnings)


# ---------------------------------------------------------------------------------------------
# Immutability


def test_records_and_items_are_frozen() -> None:
    # GIVEN a read item holding a normalised record
    item = only(read_any(build_raw(requestParameters={"secretId": SECRET_ARN})))
    record = item.record
    assert record is not None
    assert record.secret is not None

    # WHEN / THEN every assignment raises FrozenInstanceError
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.event_name = "DeleteSecret"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.caller.type = "Root"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.secret.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.request.force_delete_without_recovery = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.error = "changed"  # type: ignore[misc]


def test_normalise_does_not_modify_its_input(raw_record: RawFactory) -> None:
    # GIVEN a raw record with a U+2019 error message
    raw = raw_record(errorCode="InvalidRequestException", errorMessage=CURLY_PENDING)
    before = copy.deepcopy(raw)

    # WHEN it is normalised
    normalise(raw)

    # THEN the raw record is untouched
    assert raw == before
