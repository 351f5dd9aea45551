"""Alerts: one SNS message per finding, safe to read whatever the caller put in the event."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
import moto
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.audit.items import alert_id
from shared.compose import (
    MACHINE_PROTOCOLS,
    MESSAGE_MAX_BYTES,
    SMS_MAX,
    SUBJECT_MAX,
    AlertMessage,
    build_alert,
    console_url,
    to_sns_message,
)
from shared.deliver import Notifier
from shared.errors import DeliveryError
from shared.models import (
    Caller,
    CloudTrailRecord,
    Enrichment,
    Finding,
    RequestFields,
    RotationRules,
    SecretDetails,
    SecretRef,
)
from shared.text import clean

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

ACCOUNT = "111122223333"
REGION = "eu-west-1"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/payments/db-password-AbC123"

# GSM 03.38 basic character set (without ESC), written out independently of the code under test.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# What must never reach a reader raw: controls, format characters (bidi), separators.
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
HOSTILE_USER_AGENT = "aws-cli/2.15\r\nSubject: pwned\u202eexe.txt\u2028Bcc: evil@example.com"

CRITICAL = Finding(
    rule_id="secret-deleted",
    severity="critical",
    description="A secret was scheduled for deletion.",
    runbook="1. Ask the owner.\n2. Restore it: aws secretsmanager restore-secret.",
)
MEDIUM = replace(CRITICAL, rule_id="secret-tagged", severity="medium")


def sso_caller(**overrides: Any) -> Caller:
    caller = Caller(
        type="AssumedRole",
        principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b/alice@example.com",
        identity_arn=f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_AdministratorAccess_0a1b",
        name="alice@example.com",
        account_id=ACCOUNT,
        role_name="AWSReservedSSO_AdministratorAccess_0a1b",
        session_name="alice@example.com",
        sso_user="alice@example.com",
        sso_permission_set="AdministratorAccess",
        access_key_id="ASIAEXAMPLE",
        mfa_authenticated=False,
    )
    return replace(caller, **overrides)


def make_record(**overrides: Any) -> CloudTrailRecord:
    record = CloudTrailRecord(
        event_id="3f2c1e9a-0000-4000-8000-000000000001",
        event_name="DeleteSecret",
        event_type="AwsApiCall",
        event_time=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        event_source="secretsmanager.amazonaws.com",
        region=REGION,
        account_id=ACCOUNT,
        read_only=False,
        error_code=None,
        error_message=None,
        secret=SecretRef(
            name="prod/payments/db-password", arn=SECRET_ARN, region=REGION, account_id=ACCOUNT
        ),
        caller=sso_caller(),
        source_ip="203.0.113.7",
        user_agent="aws-cli/2.15",
        vpc_endpoint_id=None,
        request=RequestFields(recovery_window_days=7),
    )
    return replace(record, **overrides)


def make_enrichment(**overrides: Any) -> Enrichment:
    details = SecretDetails(
        name="prod/payments/db-password",
        arn=SECRET_ARN,
        description="Payments database password",
        tags={"owner": "payments-oncall", "env": "prod"},
        owner="payments-oncall",
        rotation_enabled=True,
        rotation_lambda_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rotate-db",
        kms_key_id="alias/payments",
        deleted_date=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
    )
    enrichment = Enrichment(secret=details, account_alias="acme-prod", account_name="Production")
    return replace(enrichment, **overrides)


def with_secret_name(record: CloudTrailRecord, name: str) -> CloudTrailRecord:
    assert record.secret is not None
    return replace(record, secret=replace(record.secret, name=name))


def assert_safe_text(text: str, *, allow_newlines: bool) -> None:
    for ch in text:
        if ch == "\n" and allow_newlines:
            continue
        assert unicodedata.category(ch) not in UNSAFE_CATEGORIES, repr(ch)


# --- subject ------------------------------------------------------------------------------------


def test_subject_names_severity_rule_secret_and_caller() -> None:
    # GIVEN a critical finding on a DeleteSecret by an SSO user
    # WHEN the alert is built
    alert = build_alert(make_record(), CRITICAL, make_enrichment())

    # THEN the subject is the short form
    assert alert.subject == (
        "[CRITICAL] secret-deleted: prod/payments/db-password by alice@example.com"
    )


def test_subject_of_a_512_character_secret_name_is_cut_cleanly() -> None:
    # GIVEN a secret name of the maximum length
    record = with_secret_name(make_record(), "n" * 256 + "/" + "m" * 255)

    # WHEN the alert is built
    subject = build_alert(record, CRITICAL, make_enrichment()).subject

    # THEN the subject fits SNS's limit, keeps its head and the caller, and shows the cut
    assert len(subject) <= SUBJECT_MAX <= 100
    assert subject.startswith("[CRITICAL] secret-deleted: nnn")
    assert "..." in subject
    assert subject.endswith(" by alice@example.com")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(min_size=1, max_size=600), caller=st.text(max_size=300))
def test_subject_is_always_valid_for_sns(name: str, caller: str) -> None:
    # GIVEN any secret name and caller name
    record = replace(with_secret_name(make_record(), name), caller=Caller(name=caller or None))

    # WHEN the alert is built
    subject = build_alert(record, CRITICAL, Enrichment.empty()).subject

    # THEN the subject is printable ASCII, short, and does not start with whitespace
    assert 0 < len(subject) <= SUBJECT_MAX
    assert all(0x20 <= ord(ch) < 0x7F for ch in subject)
    assert not subject[0].isspace()


# --- SMS ----------------------------------------------------------------------------------------


def test_sms_is_one_short_line() -> None:
    # GIVEN a critical finding
    # WHEN the alert is built
    sms = build_alert(make_record(), CRITICAL, make_enrichment()).sms

    # THEN the SMS reads as one line with severity, rule, secret, caller, account and region
    assert sms == (
        "secretwatch CRITICAL secret-deleted prod/payments/db-password by alice@example.com "
        "111122223333 eu-west-1"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user_agent=st.text(max_size=1100),
    secret_name=st.text(min_size=1, max_size=600),
    session_name=st.text(max_size=100),
    caller_name=st.text(max_size=300),
)
def test_sms_is_one_gsm7_segment_whatever_the_input(
    user_agent: str, secret_name: str, session_name: str, caller_name: str
) -> None:
    # GIVEN hostile caller-controlled strings
    record = replace(
        with_secret_name(make_record(), secret_name),
        user_agent=user_agent,
        caller=sso_caller(session_name=session_name, name=caller_name or None, sso_user=None),
    )

    # WHEN the alert is built
    sms = build_alert(record, CRITICAL, make_enrichment()).sms

    # THEN the SMS is at most 160 GSM-7 basic characters, on one line, severity and rule intact
    assert len(sms) <= SMS_MAX
    assert set(sms) <= GSM7_BASIC
    assert "\n" not in sms
    assert "\r" not in sms
    assert sms.startswith("secretwatch CRITICAL secret-deleted ")


def test_sms_folds_accents_and_replaces_what_gsm7_lacks() -> None:
    # GIVEN a secret name with accents, brackets and an emoji
    record = with_secret_name(make_record(), "prod/café[1]{x}~|😀")

    # WHEN the alert is built
    sms = build_alert(record, CRITICAL, make_enrichment()).sms

    # THEN accents are folded, brackets mapped, and the rest shown as "?"
    assert " prod/cafe(1)(x)-/? by " in sms


def test_sms_marks_a_failed_call() -> None:
    # GIVEN a denied DeleteSecret
    record = make_record(error_code="AccessDeniedException", error_message="denied")

    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, make_enrichment())

    # THEN the SMS and the subject say the call failed
    assert alert.sms.endswith(" FAILED 111122223333 eu-west-1")
    assert alert.subject.endswith(" by alice@example.com (failed)")


# --- e-mail -------------------------------------------------------------------------------------


def test_email_opens_with_who_did_what_to_which_secret() -> None:
    # GIVEN a DeleteSecret with a 7-day window by an SSO user
    # WHEN the alert is built
    email = build_alert(make_record(), CRITICAL, make_enrichment()).email

    # THEN the first line is a sentence a reader understands at a glance: the narrator's, the
    # same as the timeline's
    assert email.splitlines()[0] == (
        "prod/payments/db-password: deletion scheduled (7-day recovery window) by "
        "alice@example.com (SSO, permission set AdministratorAccess) from 203.0.113.7."
    )


def test_email_has_every_labelled_line() -> None:
    # GIVEN a full record and enrichment
    record = make_record(vpc_endpoint_id="vpce-0123456789abcdef0")

    # WHEN the alert is built
    email = build_alert(record, CRITICAL, make_enrichment()).email

    # THEN every part is there, labelled
    for expected in (
        "Rule:     secret-deleted (CRITICAL)",
        "When:     2026-11-23T10:00:00Z (event id 3f2c1e9a-0000-4000-8000-000000000001)",
        "Account:  111122223333 (alias acme-prod, name Production)",
        "Region:   eu-west-1",
        f"Who:      arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b/",
        "type AssumedRole; MFA no; access key ASIAEXAMPLE",
        "session alice@example.com",
        'From:     IP 203.0.113.7; user agent "aws-cli/2.15"; VPC endpoint vpce-0123456789abcdef0',
        "Secret:   prod/payments/db-password",
        f"ARN: {SECRET_ARN}",
        "Owner: payments-oncall",
        "Tags: env=prod, owner=payments-oncall",
        "Description: Payments database password",
        "Rotation: enabled, function arn:aws:lambda:",
        "KMS key: alias/payments",
        "Deletion date: 2026-11-30T10:00:00Z",
        "Request:  recovery window 7 days",
        "A secret was scheduled for deletion.",
        "Runbook:\n1. Ask the owner.\n2. Restore it: aws secretsmanager restore-secret.",
        "Console: https://eu-west-1.console.aws.amazon.com/secretsmanager/secret"
        "?name=prod%2Fpayments%2Fdb-password&region=eu-west-1",
        "Look up: secretwatch audit show 3f2c1e9a-0000-4000-8000-000000000001",
    ):
        assert expected in email


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        (
            {"request": RequestFields(force_delete_without_recovery=True)},
            "prod/payments/db-password: deleted immediately (no recovery window) by",
        ),
        (
            {"request": RequestFields()},
            "deletion scheduled (30-day recovery window) by",
        ),
        (
            {"error_code": "AccessDeniedException", "error_message": "User is not authorized"},
            "prod/payments/db-password: deletion scheduled (7-day recovery window) by "
            "alice@example.com (SSO, permission set AdministratorAccess) from 203.0.113.7 — "
            "refused (AccessDeniedException).",
        ),
        (
            {"event_name": "GetSecretValue", "read_only": True},
            "value read by alice@example.com (SSO, permission set AdministratorAccess)",
        ),
        (
            {"event_name": "SomeFutureApi"},
            "prod/payments/db-password: SomeFutureApi by",
        ),
        (
            {
                "event_name": "RotationFailed",
                "event_type": "AwsServiceEvent",
                "error_message": "Error when executing lambda",
                "caller": Caller(invoked_by="secretsmanager.amazonaws.com"),
            },
            "prod/payments/db-password: rotation failed: Error when executing lambda.",
        ),
        (
            {"caller": Caller(type="Root", account_id=ACCOUNT)},
            f"by the root user of account {ACCOUNT} from",
        ),
        (
            {
                "caller": Caller(
                    type="AssumedRole",
                    role_name="deployer",
                    session_name="ci-42",
                    invoked_by="cloudformation.amazonaws.com",
                )
            },
            "by role deployer (session ci-42) via cloudformation.amazonaws.com",
        ),
        (
            {"caller": Caller(type="IAMUser", user_name="bob")},
            "by IAM user bob",
        ),
        ({"caller": Caller()}, "by an unknown caller"),
        (
            {"caller": Caller(type="FederatedUser", name="carol")},
            "by federated user carol",
        ),
        (
            {"caller": Caller(type="AWSAccount", account_id="999988887777", principal_id="AROA:x")},
            "by a principal of account 999988887777 (AROA:x)",
        ),
        (
            {"caller": Caller(type="IdentityCenterUser", identity_store_user_id="u-1")},
            "by Identity Center user u-1",
        ),
        (
            {"caller": Caller(type="AWSService", invoked_by="rds.amazonaws.com")},
            "by AWS service rds.amazonaws.com",
        ),
    ],
)
def test_email_sentence_variants(overrides: dict[str, Any], sentence: str) -> None:
    # GIVEN a record variant  WHEN the alert is built  THEN the first line says what happened
    email = build_alert(make_record(**overrides), CRITICAL, make_enrichment()).email
    assert sentence in email.splitlines()[0]


def test_email_error_line_for_failed_calls() -> None:
    # GIVEN a denied call
    record = make_record(error_code="AccessDeniedException", error_message="User: x is denied")

    # WHEN the alert is built
    email = build_alert(record, CRITICAL, make_enrichment()).email

    # THEN the error is labelled
    assert "Error:    AccessDeniedException: User: x is denied" in email


def test_hostile_user_agent_is_escaped_not_a_new_line() -> None:
    # GIVEN a user agent trying to add a header and reverse the text
    record = make_record(user_agent=HOSTILE_USER_AGENT)

    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, make_enrichment())

    # THEN the e-mail shows the escapes, on the From line, and no forged line exists
    email = alert.email
    assert "\\r\\nSubject: pwned\\u202eexe.txt\\u2028Bcc: evil@example.com" in email
    assert "\u202e" not in email
    assert "\u2028" not in email
    assert "\r" not in email
    assert not any(line.startswith(("Subject:", "Bcc:")) for line in email.splitlines())
    from_line = next(line for line in email.splitlines() if line.startswith("From:"))
    assert "Subject: pwned" in from_line
    # and the subject and SMS carry no trace of it either
    assert "\r" not in alert.subject
    assert "\n" not in alert.subject
    # while the machine document keeps the raw value
    assert alert.machine["source"]["user_agent"] == HOSTILE_USER_AGENT


def test_long_user_agent_is_cut_with_an_ellipsis() -> None:
    # GIVEN a 1 KB user agent
    record = make_record(user_agent="Mozilla/5.0 " + "x" * 1012)

    # WHEN the alert is built
    email = build_alert(record, CRITICAL, make_enrichment()).email

    # THEN the e-mail shows at most 200 characters of it, ending in "…"
    shown = email.split('user agent "', 1)[1].split('"', 1)[0]
    assert len(shown) == 200
    assert shown.endswith("…")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hostile=st.lists(
        st.text(
            alphabet=st.characters(codec=None, exclude_categories=[]), min_size=1, max_size=300
        ),
        min_size=8,
        max_size=8,
    )
)
def test_email_lines_cannot_be_forged(hostile: list[str]) -> None:
    # GIVEN hostile text in every caller-controlled field, including surrogates and separators
    ua, name, session, message, description, tag, policy, code = hostile
    record = replace(
        with_secret_name(make_record(), name),
        user_agent=ua,
        caller=sso_caller(session_name=session),
        error_code=code,
        error_message=message,
        request=RequestFields(resource_policy={"Statement": [{"Sid": policy}]}),
    )
    enrichment = make_enrichment(
        secret=SecretDetails(name=name, description=description, tags={"owner": tag}, owner=tag)
    )
    baseline_record = replace(
        with_secret_name(make_record(), "n"),
        user_agent="u",
        caller=sso_caller(session_name="s"),
        error_code="c",
        error_message="m",
        request=RequestFields(resource_policy={"Statement": [{"Sid": "p"}]}),
    )
    baseline_enrichment = make_enrichment(
        secret=SecretDetails(name="n", description="d", tags={"owner": "t"}, owner="t")
    )

    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, enrichment)
    baseline = build_alert(baseline_record, CRITICAL, baseline_enrichment)

    # THEN the e-mail has exactly the lines a benign one has, and nothing unsafe in them
    assert len(alert.email.splitlines()) == len(baseline.email.splitlines())
    assert_safe_text(alert.email, allow_newlines=True)
    assert_safe_text(alert.sms, allow_newlines=False)
    # and the whole message can be encoded and sent
    to_sns_message(alert).encode("utf-8")


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("plain", 10, "plain"),
        ("a\r\nb", 10, "a\\r\\nb"),
        ("\x00\x85\u2029", 30, "\\x00\\x85\\u2029"),
        ("\U000e0041", 20, "\\U000e0041"),
        ("abcdefghij", 5, "abcd…"),
        ("ab\ncd", 4, "ab…"),  # never splits an escape
    ],
)
def test_clean(value: str, limit: int, expected: str) -> None:
    # GIVEN a value  WHEN cleaned  THEN escapes are visible and the cut is clean
    assert clean(value, limit) == expected


# --- machine ------------------------------------------------------------------------------------


def test_machine_document_carries_every_field_and_round_trips() -> None:
    # GIVEN a PutResourcePolicy finding with a policy object
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*"}]}
    record = make_record(
        event_name="PutResourcePolicy",
        request=RequestFields(resource_policy=policy, block_public_policy=False),
        user_agent=HOSTILE_USER_AGENT,
    )

    # WHEN the alert is built
    machine = build_alert(record, CRITICAL, make_enrichment()).machine

    # THEN it round-trips through JSON and has every part, raw
    assert json.loads(json.dumps(machine)) == machine
    assert machine["schema_version"] == 1
    assert machine["rule"] == "secret-deleted"
    assert machine["severity"] == "critical"
    assert machine["runbook"] == CRITICAL.runbook
    assert machine["event"]["id"] == record.event_id
    assert machine["event"]["time"] == "2026-11-23T10:00:00Z"
    assert machine["event"]["error"] is None
    assert machine["secret"]["arn"] == SECRET_ARN
    assert machine["caller"]["sso_permission_set"] == "AdministratorAccess"
    assert machine["caller"]["mfa_authenticated"] is False
    assert machine["source"] == {
        "ip": "203.0.113.7",
        "user_agent": HOSTILE_USER_AGENT,
        "vpc_endpoint": None,
    }
    assert machine["request"] == {"resource_policy": policy, "block_public_policy": False}
    assert machine["enrichment"] == make_enrichment().to_dict()
    assert machine["console_url"].startswith("https://eu-west-1.console.aws.amazon.com/")
    assert machine["lookup_command"] == f"secretwatch audit show {record.event_id}"


def test_machine_error_and_lone_surrogates() -> None:
    # GIVEN a failed call whose message holds a lone surrogate (valid JSON, invalid Unicode)
    record = make_record(error_code="AccessDeniedException", error_message="bad \ud800 text")

    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, make_enrichment())

    # THEN the error is there, with the surrogate replaced, and the message encodes
    assert alert.machine["event"]["error"] == {
        "code": "AccessDeniedException",
        "message": "bad \ufffd text",
    }
    to_sns_message(alert).encode("utf-8")


def test_attributes_are_strings_for_filter_policies() -> None:
    # GIVEN a record without a region  WHEN the alert is built
    attributes = build_alert(make_record(region=None), CRITICAL, make_enrichment()).attributes

    # THEN every attribute is a non-empty string, the alert's stable id among them
    assert attributes == {
        "severity": "critical",
        "rule": "secret-deleted",
        "event_name": "DeleteSecret",
        "account": ACCOUNT,
        "region": "unknown",
        "alert_id": alert_id(make_record().event_id, "secret-deleted"),
        "kind": "alert",
    }


def test_sns_message_has_a_string_for_every_protocol() -> None:
    # GIVEN an alert
    alert = build_alert(make_record(), CRITICAL, make_enrichment())

    # WHEN it becomes an SNS JSON message
    message = json.loads(to_sns_message(alert))

    # THEN "default" and every protocol are strings; machine protocols get the document
    assert message["default"] == alert.email
    assert message["email"] == alert.email
    assert message["sms"] == alert.sms
    assert all(isinstance(value, str) for value in message.values())
    for protocol in MACHINE_PROTOCOLS:
        assert json.loads(message[protocol]) == alert.machine


def test_sns_message_stays_under_the_size_limit() -> None:
    # GIVEN the largest metadata a secret can have: 50 tags of 128 + 256 non-ASCII characters
    tags = {f"{i:02d}" + "é" * 126: "ü" * 256 for i in range(50)}
    enrichment = make_enrichment(
        secret=SecretDetails(name="x" * 512, description="ø" * 2048, tags=tags)
    )
    record = make_record(user_agent="ä" * 1024, error_code="E", error_message="ö" * 1024)
    alert = build_alert(record, CRITICAL, enrichment)

    # WHEN it becomes an SNS JSON message
    body = to_sns_message(alert)

    # THEN it fits, and the document says it was truncated
    assert len(body.encode("utf-8")) <= MESSAGE_MAX_BYTES
    machine = json.loads(json.loads(body)["sqs"])
    assert machine["truncated"] is True
    assert machine["event"]["id"] == record.event_id


@pytest.mark.parametrize(
    ("arn", "region", "domain", "expected"),
    [
        (
            SECRET_ARN,
            REGION,
            None,
            "https://eu-west-1.console.aws.amazon.com/secretsmanager/secret"
            "?name=prod%2Fdb%20%26x%3D1&region=eu-west-1",
        ),
        (
            "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:prod/db-AbC123",
            "cn-north-1",
            None,
            "https://cn-north-1.console.amazonaws.cn/secretsmanager/secret"
            "?name=prod%2Fdb%20%26x%3D1&region=cn-north-1",
        ),
        (
            None,
            REGION,
            "console.example.internal",
            "https://eu-west-1.console.example.internal/secretsmanager/secret"
            "?name=prod%2Fdb%20%26x%3D1&region=eu-west-1",
        ),
        (None, "evil.example.com/x", None, None),
        ("arn:aws-iso:secretsmanager:us-iso-east-1:1:secret:x", "us-iso-east-1", None, None),
    ],
)
def test_console_url(arn: str | None, region: str, domain: str | None, expected: str) -> None:
    # GIVEN a secret whose name needs quoting
    record = make_record(
        region=region, secret=SecretRef(name="prod/db &x=1", arn=arn, region=region)
    )

    # WHEN the console link is built  THEN it is quoted, per partition, or None when unsafe
    assert console_url(record, console_domain=domain) == expected


def test_no_secret_no_console_link() -> None:
    # GIVEN a ListSecrets record  WHEN the alert is built  THEN it says there is no link
    alert = build_alert(make_record(secret=None, event_name="ListSecrets"), CRITICAL, Enrichment())
    assert alert.machine["console_url"] is None
    assert "Console: (no link" in alert.email
    assert "(no secret)" in alert.subject


# --- delivery -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws() -> Iterator[None]:
    with moto.mock_aws():
        yield


@pytest.fixture
def sns(aws: None) -> SNSClient:
    return boto3.client("sns", region_name=REGION)


@pytest.fixture
def sqs(aws: None) -> SQSClient:
    return boto3.client("sqs", region_name=REGION)


def subscribe_queue(
    sns: SNSClient, sqs: SQSClient, topic_arn: str, name: str, filter_policy: str | None = None
) -> str:
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    attributes = {"RawMessageDelivery": "false"}
    if filter_policy is not None:
        attributes["FilterPolicy"] = filter_policy
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes)
    return queue_url


def receive(sqs: SQSClient, queue_url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_queue_subscriber_receives_the_machine_document_and_attributes(
    sns: SNSClient, sqs: SQSClient
) -> None:
    # GIVEN a topic with a queue subscribed (SNS envelope, not raw delivery)
    topic_arn = sns.create_topic(Name="secretwatch-alerts")["TopicArn"]
    queue_url = subscribe_queue(sns, sqs, topic_arn, "alerts")
    alert = build_alert(make_record(user_agent=HOSTILE_USER_AGENT), CRITICAL, make_enrichment())

    # WHEN the alert is published
    message_id = Notifier(sns, topic_arn).publish(alert)

    # THEN the queue gets the machine document, the subject and the attributes
    (envelope,) = receive(sqs, queue_url)
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == alert.subject
    assert json.loads(envelope["Message"]) == alert.machine
    assert {key: value["Value"] for key, value in envelope["MessageAttributes"].items()} == (
        alert.attributes
    )


def test_filter_policy_on_severity(sns: SNSClient, sqs: SQSClient) -> None:
    # GIVEN a pager queue that only wants high and critical alerts
    topic_arn = sns.create_topic(Name="secretwatch-alerts")["TopicArn"]
    pager = subscribe_queue(
        sns, sqs, topic_arn, "pager", json.dumps({"severity": ["high", "critical"]})
    )
    notifier = Notifier(sns, topic_arn)

    # WHEN a critical and a medium alert are published
    notifier.publish(build_alert(make_record(), CRITICAL, make_enrichment()))
    notifier.publish(build_alert(make_record(event_id="e-medium"), MEDIUM, make_enrichment()))

    # THEN only the critical one reaches the pager
    received = [json.loads(envelope["Message"]) for envelope in receive(sqs, pager)]
    assert [(m["rule"], m["severity"]) for m in received] == [("secret-deleted", "critical")]


def test_publish_failure_raises_delivery_error(sns: SNSClient) -> None:
    # GIVEN a topic that does not exist
    notifier = Notifier(sns, f"arn:aws:sns:{REGION}:123456789012:no-such-topic")
    alert = build_alert(make_record(), CRITICAL, make_enrichment())

    # WHEN the alert is published
    with pytest.raises(DeliveryError) as caught:
        notifier.publish(alert)

    # THEN the error says which event and rule, and keeps the AWS error as its cause
    assert caught.value.event_id == alert.event_id
    assert caught.value.rule_id == "secret-deleted"
    assert isinstance(caught.value.__cause__, ClientError)
    assert "NotFound" in str(caught.value)


def test_alert_message_ids() -> None:
    # GIVEN an alert without an event block  WHEN asked for ids  THEN None, no crash
    alert = AlertMessage(subject="s", email="e", sms="s", machine={}, attributes={})
    assert alert.event_id is None
    assert alert.rule_id is None


def test_email_request_and_detail_lines() -> None:
    # GIVEN a RotateSecret with every request member, from a service, with partial enrichment
    request = RequestFields(
        rotation_lambda_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rotate-db",
        rotation_rules=RotationRules(
            automatically_after_days=30, schedule_expression="rate(30 days)", duration="2h"
        ),
        rotate_immediately=True,
        kms_key_id="alias/other",
        version_stages=("AWSCURRENT",),
        new_version_id="v-2",
        add_replica_regions=("us-east-1",),
        remove_replica_regions=("eu-central-1",),
        deletion_date="May 3, 2018 5:51:02 PM",
        force_delete_without_recovery=False,
    )
    record = make_record(
        event_name="RotateSecret",
        request=request,
        source_ip="cloudformation.amazonaws.com",
        caller=sso_caller(console_session=True),
    )
    details = SecretDetails(
        name="prod/payments/db-password",
        rotation_enabled=False,
        last_rotated_date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        primary_region="us-east-1",
    )
    enrichment = make_enrichment(secret=details, notes=("DescribeAccount: AccessDenied",))

    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, enrichment)

    # THEN each member has its line, and the document has them as JSON values
    for expected in (
        "prod/payments/db-password: rotation set up (every 30 days) by",
        "From:     service cloudformation.amazonaws.com",
        "MFA no; console session yes; access key ASIAEXAMPLE",
        "Rotation: disabled, last rotated 2026-01-02T03:04:05Z",
        "KMS key: aws/secretsmanager (AWS managed key)",
        "Primary region: us-east-1",
        "Request:  force delete without recovery: no",
        "rotation function: arn:aws:lambda:eu-west-1:111122223333:function:rotate-db",
        "rotation schedule: every 30 days, rate(30 days), window 2h",
        "rotate immediately: yes",
        "KMS key: alias/other",
        "version stages: AWSCURRENT",
        "new version: v-2",
        "add replica regions: us-east-1",
        "remove replica regions: eu-central-1",
        "deletion date (as AWS wrote it): May 3, 2018 5:51:02 PM",
        "Notes:    DescribeAccount: AccessDenied",
    ):
        assert expected in alert.email
    assert alert.machine["request"]["rotation_rules"] == {
        "automatically_after_days": 30,
        "schedule_expression": "rate(30 days)",
        "duration": "2h",
    }
    assert alert.machine["request"]["version_stages"] == ["AWSCURRENT"]


def test_deletion_date_without_enrichment_is_computed_from_the_event() -> None:
    # GIVEN DeleteSecret records and no secret details (DescribeSecret was denied)
    enrichment = make_enrichment(secret=None)
    forced = make_record(request=RequestFields(force_delete_without_recovery=True))
    windowed = make_record(request=RequestFields(recovery_window_days=7), source_ip=None)

    # WHEN the alerts are built
    forced_email = build_alert(forced, CRITICAL, enrichment).email
    windowed_email = build_alert(windowed, CRITICAL, enrichment).email

    # THEN the deletion date is derived from the event time and the request
    assert "details: unavailable (see Notes)" in forced_email
    assert "Deletion date: 2026-11-23T10:00:00Z (deleted without recovery)" in forced_email
    assert "Deletion date: 2026-11-30T10:00:00Z (event time + 7 days)" in windowed_email
    assert "From:     source unknown" in windowed_email


def test_an_absurdly_long_rule_id_still_fits() -> None:
    # GIVEN a rule id longer than the subject and the SMS
    finding = replace(CRITICAL, rule_id="r" * 300)

    # WHEN the alert is built
    alert = build_alert(make_record(), finding, make_enrichment())

    # THEN both are cut to their limits
    assert len(alert.subject) <= SUBJECT_MAX
    assert alert.subject.endswith("...")
    assert len(alert.sms) <= SMS_MAX
    assert alert.sms.startswith("secretwatch CRITICAL rrr")


def test_unicode_spaces_fold_to_spaces_in_the_sms() -> None:
    # GIVEN a secret name with a no-break space and an ogham space mark
    record = with_secret_name(make_record(), "a\u00a0b\u1680c")

    # WHEN the alert is built  THEN they are plain spaces in the SMS, and the name is flagged:
    # with plain spaces it would read exactly like another secret's
    assert " a b c LOOKALIKE by " in build_alert(record, CRITICAL, make_enrichment()).sms


def test_govcloud_console_domain() -> None:
    # GIVEN a GovCloud secret  WHEN the link is built  THEN it uses the GovCloud console
    arn = "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:db-AbC123"
    record = make_record(
        region="us-gov-west-1", secret=SecretRef(name="db", arn=arn, region="us-gov-west-1")
    )
    assert console_url(record) == (
        "https://us-gov-west-1.console.amazonaws-us-gov.com/secretsmanager/secret"
        "?name=db&region=us-gov-west-1"
    )


class UnreachableSNS:
    def publish(self, **_: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://sns.eu-west-1.amazonaws.com")


def test_publish_connection_error_raises_delivery_error() -> None:
    # GIVEN an SNS endpoint that cannot be reached
    notifier = Notifier(cast("SNSClient", UnreachableSNS()), "arn:aws:sns:eu-west-1:1:t")

    # WHEN an alert is published  THEN a DeliveryError carries the cause
    with pytest.raises(DeliveryError, match="EndpointConnectionError") as caught:
        notifier.publish(build_alert(make_record(), CRITICAL, make_enrichment()))
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


@pytest.mark.parametrize("name", ["ｐｒｏｄ/payments/db", "𝐩𝐫𝐨𝐝/payments/db"])
def test_a_lookalike_secret_name_is_flagged_in_every_short_form(name: str) -> None:
    # GIVEN a secret whose name only looks like prod/payments/db (fullwidth, mathematical)
    record = with_secret_name(make_record(), name)
    # WHEN the alert is built
    alert = build_alert(record, CRITICAL, make_enrichment())
    # THEN the subject, the SMS and the e-mail say so, and the JSON document marks it
    assert "[LOOK-ALIKE NAME]" in alert.subject
    assert "LOOKALIKE" in alert.sms
    assert "look-alike characters: it reads as prod/payments/db" in alert.email.splitlines()[0]
    assert alert.machine["secret"]["lookalike"] is True
    # AND a plain name is not flagged
    plain = build_alert(
        with_secret_name(make_record(), "prod/payments/db"), CRITICAL, make_enrichment()
    )
    assert "LOOK" not in plain.subject + plain.sms
    assert plain.machine["secret"]["lookalike"] is False


def test_every_json_variant_and_attribute_is_escaped() -> None:
    # GIVEN hostile text in the caller-controlled fields
    hostile = "x\u202ey\u2066z\u200b\u2028\x85\ufeff"
    record = replace(
        with_secret_name(make_record(), "prod/" + hostile),
        user_agent=hostile,
        event_name="GetSecretValue" + hostile,
    )
    alert = build_alert(record, CRITICAL, make_enrichment())
    # WHEN it becomes an SNS message
    message = json.loads(to_sns_message(alert))
    # THEN every machine variant is ASCII-only JSON, and the attributes hold no raw format,
    # separator or control character
    for protocol in MACHINE_PROTOCOLS:
        assert message[protocol].isascii()
        assert json.loads(message[protocol])["alert_id"] == alert.alert_id
    for value in alert.attributes.values():
        assert all(unicodedata.category(ch) not in UNSAFE_CATEGORIES for ch in value)
    assert "\\u202e" in alert.attributes["event_name"]
