"""The shipped rule catalogue (src/shared/rules/default_rules.json), rule by rule, at its edges.

Records are built by the conftest factory and normalised by shared.parse.normalise, so these
tests go through the same path as real events (the samples in events/ are covered by
test_event_catalogue.py).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from shared.models import CloudTrailRecord
from shared.rules import RuleSet, load_rules
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, SECRET_ARN, RecordFactory

ASCII_PENDING = "You can't perform this operation on the secret because it was marked for deletion."
CURLY_PENDING = (
    "You can\u2019t perform this operation on the secret because it was marked for deletion."
)
LEGACY_DELETED = "You can\u2019t perform this operation on the secret because it was deleted."

CATALOGUE = [
    "secret-deleted",
    "deletion-forced-no-recovery",
    "access-while-pending-deletion",
    "rotation-failed",
    "resource-policy-changed",
    "rotation-disabled",
    "secret-restored",
    "secret-value-changed",
    "replication-removed",
    "kms-key-changed",
    "root-activity",
    "access-denied-burst",
    "read-burst",
    "rotation-succeeded",
    "secretwatch-tampered",
]

ROOT_IDENTITY = {
    "type": "Root",
    "principalId": ACCOUNT,
    "arn": f"arn:aws:iam::{ACCOUNT}:root",
    "accountId": ACCOUNT,
}
SERVICE_IDENTITY = {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"}


@functools.cache
def defaults() -> RuleSet:
    return load_rules()


def findings(record: CloudTrailRecord) -> dict[str, str]:
    """rule id → severity for every finding; fails the test if any rule raised."""
    evaluation = defaults().evaluate(record)
    assert evaluation.rule_errors == ()
    # A threshold rule's match is only counted (its state decides whether it fires): not a
    # finding of this one record.
    return {
        finding.rule_id: finding.severity
        for finding in evaluation.findings
        if finding.state != "counted"
    }


def policy(*statements: dict[str, Any]) -> str:
    """A resource policy as CloudTrail logs it: a JSON-encoded string."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


# ---------------------------------------------------------------------------------------------
# The catalogue


def test_catalogue_ids_are_exactly_the_catalogue() -> None:
    # GIVEN / WHEN the bundled rules are loaded
    ids = [rule.id for rule in defaults().rules]

    # THEN they are exactly the contract's ids, in catalogue order
    assert ids == CATALOGUE


@pytest.mark.parametrize(
    ("rule_id", "severity", "events", "outcome"),
    [
        ("secret-deleted", "high", {"DeleteSecret"}, "success"),
        ("deletion-forced-no-recovery", "critical", {"DeleteSecret"}, "success"),
        ("access-while-pending-deletion", "high", {"GetSecretValue"}, "failure"),
        ("rotation-failed", "high", {"RotationFailed", "TestRotationFailed"}, "any"),
        (
            "resource-policy-changed",
            "medium",
            {"PutResourcePolicy", "DeleteResourcePolicy"},
            "success",
        ),
        ("rotation-disabled", "medium", {"CancelRotateSecret"}, "success"),
        ("secret-restored", "low", {"RestoreSecret"}, "success"),
        ("secret-value-changed", "low", {"PutSecretValue", "UpdateSecret"}, "success"),
        (
            "replication-removed",
            "medium",
            {"RemoveRegionsFromReplication", "StopReplicationToReplica"},
            "success",
        ),
        ("kms-key-changed", "medium", {"UpdateSecret"}, "success"),
        ("root-activity", "critical", set(), "any"),
    ],
)
def test_rule_metadata(rule_id: str, severity: str, events: set[str], outcome: str) -> None:
    # GIVEN a catalogue rule
    rule = defaults().get(rule_id)
    assert rule is not None

    # WHEN / THEN its base severity, events (empty: every event) and outcome are as documented
    assert rule.severity == severity
    assert rule.events == frozenset(events)
    assert rule.outcome == outcome
    assert rule.description
    assert rule.runbook


# ---------------------------------------------------------------------------------------------
# Deletion


def test_delete_with_no_parameters_fires_secret_deleted(make_record: RecordFactory) -> None:
    # GIVEN a DeleteSecret with neither a recovery window nor the force flag (default 30 days)
    record = make_record(
        eventName="DeleteSecret", readOnly=False, requestParameters={"secretId": "prod/db"}
    )

    # WHEN / THEN secret-deleted fires, high
    assert findings(record) == {"secret-deleted": "high"}


@pytest.mark.parametrize("window", [7, 30])
def test_delete_with_a_recovery_window_fires_secret_deleted(
    make_record: RecordFactory, window: int
) -> None:
    # GIVEN a DeleteSecret with an explicit recovery window
    record = make_record(
        eventName="DeleteSecret",
        requestParameters={"secretId": "prod/db", "recoveryWindowInDays": window},
    )

    # WHEN / THEN secret-deleted fires
    assert findings(record) == {"secret-deleted": "high"}


def test_delete_with_force_false_is_an_ordinary_deletion(make_record: RecordFactory) -> None:
    # GIVEN a DeleteSecret with forceDeleteWithoutRecovery false
    record = make_record(
        eventName="DeleteSecret",
        requestParameters={"secretId": "prod/db", "forceDeleteWithoutRecovery": False},
    )

    # WHEN / THEN it is secret-deleted
    assert findings(record) == {"secret-deleted": "high"}


def test_forced_delete_fires_only_deletion_forced(make_record: RecordFactory) -> None:
    # GIVEN a DeleteSecret with forceDeleteWithoutRecovery true
    record = make_record(
        eventName="DeleteSecret",
        requestParameters={"secretId": "prod/db", "forceDeleteWithoutRecovery": True},
    )

    # WHEN / THEN deletion-forced-no-recovery fires, critical, instead of secret-deleted
    assert findings(record) == {"deletion-forced-no-recovery": "critical"}


@pytest.mark.parametrize("force", [None, True])
def test_failed_delete_fires_nothing(make_record: RecordFactory, force: bool | None) -> None:
    # GIVEN a DeleteSecret that failed (AccessDenied), forced or not
    params: dict[str, Any] = {"secretId": "prod/db"}
    if force is not None:
        params["forceDeleteWithoutRecovery"] = force
    record = make_record(
        eventName="DeleteSecret",
        requestParameters=params,
        errorCode="AccessDenied",
        errorMessage="User is not authorized to perform: secretsmanager:DeleteSecret",
    )

    # WHEN / THEN no success rule fires
    assert findings(record) == {}


def test_service_event_named_delete_secret_is_not_a_new_deletion(
    make_record: RecordFactory,
) -> None:
    # GIVEN a (hypothetical) service-generated DeleteSecret at the end of the recovery window
    record = make_record(
        eventName="DeleteSecret",
        eventType="AwsServiceEvent",
        userIdentity=SERVICE_IDENTITY,
        requestParameters=None,
        additionalEventData={"SecretId": SECRET_ARN},
    )

    # WHEN / THEN it is not reported as a deletion
    assert findings(record) == {}


# ---------------------------------------------------------------------------------------------
# Access while pending deletion


@pytest.mark.parametrize(
    "message",
    [ASCII_PENDING, CURLY_PENDING, LEGACY_DELETED],
    ids=["current", "2019-curly", "2018-deleted"],
)
def test_each_pending_deletion_wording_fires(make_record: RecordFactory, message: str) -> None:
    # GIVEN a GetSecretValue that failed on a secret scheduled for deletion
    record = make_record(errorCode="InvalidRequestException", errorMessage=message)

    # WHEN / THEN access-while-pending-deletion fires, high
    assert findings(record) == {"access-while-pending-deletion": "high"}


@pytest.mark.parametrize(
    ("event_name", "error_code", "message"),
    [
        (
            "GetSecretValue",
            "InvalidRequestException",
            "You provided a parameter value that is not valid for the current state of the resource.",
        ),
        ("GetSecretValue", "InvalidRequestException", None),
        ("GetSecretValue", "ResourceNotFoundException", ASCII_PENDING),
        (
            "GetSecretValue",
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
        ("CreateSecret", "InvalidRequestException", LEGACY_DELETED),
        ("DescribeSecret", "InvalidRequestException", ASCII_PENDING),
    ],
    ids=[
        "unrelated-message",
        "no-message",
        "other-code",
        "not-found",
        "create-after-delete",
        "describe",
    ],
)
def test_other_failures_do_not_fire_pending_deletion(
    make_record: RecordFactory, event_name: str, error_code: str, message: str | None
) -> None:
    # GIVEN a failed call that is not a read of a secret pending deletion
    record = make_record(eventName=event_name, errorCode=error_code, errorMessage=message)

    # WHEN / THEN nothing fires
    assert findings(record) == {}


def test_successful_get_secret_value_fires_nothing(make_record: RecordFactory) -> None:
    # GIVEN an ordinary GetSecretValue
    # WHEN / THEN nothing fires
    assert findings(make_record()) == {}


# ---------------------------------------------------------------------------------------------
# Rotation


@pytest.mark.parametrize(
    ("event_name", "expected"),
    [
        ("RotationFailed", {"rotation-failed": "high"}),
        ("TestRotationFailed", {"rotation-failed": "medium"}),
        ("RotationSucceeded", {"rotation-succeeded": "info"}),  # audit-only: it resolves
        ("RotationStarted", {}),
    ],
)
def test_rotation_service_events(
    make_record: RecordFactory, event_name: str, expected: dict[str, str]
) -> None:
    # GIVEN a rotation service event (no identity type, secret in additionalEventData)
    failed = event_name.endswith("Failed")
    record = make_record(
        eventName=event_name,
        eventType="AwsServiceEvent",
        userIdentity=SERVICE_IDENTITY,
        requestParameters=None,
        additionalEventData={"SecretId": SECRET_ARN},
        errorMessage="Error when executing lambda arn:aws:lambda:eu-west-1:1:function:r during createSecret step"
        if failed
        else None,
    )

    # WHEN / THEN only failures fire (a test rotation at a lower severity); a success is only
    # recorded, by the audit-only rule that resolves an open rotation-failed alert
    assert findings(record) == expected


def test_rotation_failed_without_error_message_still_fires(make_record: RecordFactory) -> None:
    # GIVEN a RotationFailed service event that carries no errorMessage (outcome: any)
    record = make_record(
        eventName="RotationFailed",
        eventType="AwsServiceEvent",
        userIdentity=SERVICE_IDENTITY,
        requestParameters=None,
    )

    # WHEN / THEN it still fires
    assert findings(record) == {"rotation-failed": "high"}


def test_cancel_rotate_secret_fires_rotation_disabled(make_record: RecordFactory) -> None:
    # GIVEN a successful and a failed CancelRotateSecret
    ok = make_record(eventName="CancelRotateSecret", requestParameters={"secretId": "prod/db"})
    failed = make_record(eventName="CancelRotateSecret", errorCode="AccessDenied")

    # WHEN / THEN only the successful one fires, medium
    assert findings(ok) == {"rotation-disabled": "medium"}
    assert findings(failed) == {}


# ---------------------------------------------------------------------------------------------
# Resource policy


@pytest.mark.parametrize(
    ("statements", "severity"),
    [
        ([allow("*")], "critical"),
        ([allow({"AWS": "*"})], "critical"),
        ([allow({"AWS": ["*"]})], "critical"),
        (
            [
                {
                    "Effect": "Allow",
                    "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "*",
                }
            ],
            "critical",
        ),
        ([allow(f"arn:aws:iam::{ACCOUNT}:role/app"), allow("*")], "critical"),
        ([allow("*", {"StringEquals": {"aws:UserAgent": "x"}})], "critical"),
        ([allow({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})], "high"),
        ([allow({"AWS": OTHER_ACCOUNT})], "high"),
        (
            [
                allow(
                    {
                        "AWS": [
                            f"arn:aws:iam::{ACCOUNT}:role/app",
                            f"arn:aws:iam::{OTHER_ACCOUNT}:role/x",
                        ]
                    }
                )
            ],
            "high",
        ),
        ([allow("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}})], "high"),
        ([allow("*", {"StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}})], "high"),
        (
            [
                allow(
                    "*",
                    {"ArnLike": {"aws:SourceArn": [f"arn:aws:sns:eu-west-1:{OTHER_ACCOUNT}:t"]}},
                )
            ],
            "high",
        ),
        ([allow("*", {"StringEquals": {"aws:SourceAccount": ACCOUNT}})], "medium"),
        ([allow("*", {"StringEquals": {"aws:sourceaccount": [ACCOUNT]}})], "medium"),
        ([allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"})], "medium"),
        ([allow({"Service": "lambda.amazonaws.com"})], "medium"),
        ([{"Effect": "Deny", "Principal": "*", "Action": "*"}], "medium"),
        ([], "medium"),
    ],
    ids=[
        "principal-star",
        "aws-star",
        "aws-star-list",
        "not-principal",
        "one-public-statement-among-others",
        "star-with-non-confining-condition",
        "other-account-root",
        "other-account-id",
        "mixed-principals",
        "org-confined-not-public",
        "source-account-other",
        "source-arn-other",
        "source-account-same-not-public",
        "lowercase-condition-key",
        "same-account-role",
        "service-principal",
        "deny-only",
        "no-statements",
    ],
)
def test_put_resource_policy_severity(
    make_record: RecordFactory, statements: list[dict[str, Any]], severity: str
) -> None:
    # GIVEN a PutResourcePolicy with this policy on a secret in ACCOUNT
    record = make_record(
        eventName="PutResourcePolicy",
        readOnly=False,
        requestParameters={
            "secretId": SECRET_ARN,
            "resourcePolicy": policy(*statements),
            "blockPublicPolicy": False,
        },
        responseElements={"arn": SECRET_ARN, "name": "prod/db/orders"},
    )

    # WHEN / THEN resource-policy-changed fires at the expected severity
    assert findings(record) == {"resource-policy-changed": severity}


def test_single_statement_object_is_read_like_a_list(make_record: RecordFactory) -> None:
    # GIVEN a policy whose Statement is a single object, not a list
    text = json.dumps({"Version": "2012-10-17", "Statement": allow("*")})
    record = make_record(
        eventName="PutResourcePolicy", requestParameters={"secretId": "s", "resourcePolicy": text}
    )

    # WHEN / THEN it is public
    assert findings(record) == {"resource-policy-changed": "critical"}


def test_owner_unknown_but_principal_account_named_is_cross_account(
    make_record: RecordFactory,
) -> None:
    # GIVEN a policy naming an account, on a record with no recipient account and a secret name
    record = make_record(
        eventName="PutResourcePolicy",
        recipientAccountId=None,
        requestParameters={
            "secretId": "prod/db",
            "resourcePolicy": policy(allow({"AWS": ACCOUNT})),
        },
    )

    # WHEN / THEN the grant cannot be shown to stay in the account: high
    assert findings(record) == {"resource-policy-changed": "high"}


def test_owner_from_secret_arn_when_recipient_account_is_missing(
    make_record: RecordFactory,
) -> None:
    # GIVEN a same-account grant with no recipientAccountId but a secret ARN naming the account
    record = make_record(
        eventName="PutResourcePolicy",
        recipientAccountId=None,
        requestParameters={
            "secretId": SECRET_ARN,
            "resourcePolicy": policy(allow({"AWS": ACCOUNT})),
        },
    )

    # WHEN / THEN the owner comes from the ARN: medium
    assert findings(record) == {"resource-policy-changed": "medium"}


def test_delete_resource_policy_is_medium(make_record: RecordFactory) -> None:
    # GIVEN a DeleteResourcePolicy (no policy in the request)
    record = make_record(
        eventName="DeleteResourcePolicy", requestParameters={"secretId": SECRET_ARN}
    )

    # WHEN / THEN resource-policy-changed fires, medium
    assert findings(record) == {"resource-policy-changed": "medium"}


def test_failed_put_resource_policy_fires_nothing(make_record: RecordFactory) -> None:
    # GIVEN a public PutResourcePolicy refused by BlockPublicPolicy
    record = make_record(
        eventName="PutResourcePolicy",
        requestParameters={
            "secretId": SECRET_ARN,
            "resourcePolicy": policy(allow("*")),
            "blockPublicPolicy": True,
        },
        errorCode="PublicPolicyException",
        errorMessage="This resource policy contains a public policy.",
    )

    # WHEN / THEN nothing fires
    assert findings(record) == {}


# ---------------------------------------------------------------------------------------------
# Restore, value changes, replication, KMS


def test_restore_secret_is_low(make_record: RecordFactory) -> None:
    # GIVEN a RestoreSecret
    record = make_record(eventName="RestoreSecret", requestParameters={"secretId": "prod/db"})

    # WHEN / THEN secret-restored fires, low
    assert findings(record) == {"secret-restored": "low"}


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (None, {"secret-value-changed": "low"}),
        (["AWSCURRENT"], {"secret-value-changed": "low"}),
        (["AWSPENDING"], {}),
        (["AWSCURRENT", "AWSPENDING"], {}),
        ([], {"secret-value-changed": "low"}),
    ],
    ids=["no-stages", "current", "pending", "current-and-pending", "empty"],
)
def test_put_secret_value_stages(
    make_record: RecordFactory, stages: list[str] | None, expected: dict[str, str]
) -> None:
    # GIVEN a PutSecretValue with these version stages
    params: dict[str, Any] = {"secretId": "prod/db", "clientRequestToken": "t-1"}
    if stages is not None:
        params["versionStages"] = stages
    record = make_record(eventName="PutSecretValue", requestParameters=params)

    # WHEN / THEN it fires unless the value was staged as AWSPENDING (rotation's own step)
    assert findings(record) == expected


@pytest.mark.parametrize(
    ("request_extra", "response", "expected"),
    [
        (
            {},
            {"arn": SECRET_ARN, "name": "prod/db/orders", "versionId": "v-2"},
            {"secret-value-changed": "low"},
        ),
        ({"description": "new text"}, {"arn": SECRET_ARN, "name": "prod/db/orders"}, {}),
        ({"kmsKeyId": "alias/other"}, {"arn": SECRET_ARN}, {"kms-key-changed": "medium"}),
        (
            {"kmsKeyId": "alias/other"},
            {"arn": SECRET_ARN, "versionId": "v-3"},
            {"kms-key-changed": "medium", "secret-value-changed": "low"},
        ),
        ({}, None, {}),
    ],
    ids=["new-version", "description-only", "kms-only", "kms-and-value", "no-response"],
)
def test_update_secret(
    make_record: RecordFactory,
    request_extra: dict[str, Any],
    response: dict[str, Any] | None,
    expected: dict[str, str],
) -> None:
    # GIVEN an UpdateSecret with this request and response
    record = make_record(
        eventName="UpdateSecret",
        readOnly=False,
        requestParameters={"secretId": "prod/db/orders", **request_extra},
        responseElements=response,
    )

    # WHEN / THEN a new version fires secret-value-changed and a new key fires kms-key-changed
    assert findings(record) == expected


def test_failed_update_secret_fires_nothing(make_record: RecordFactory) -> None:
    # GIVEN an UpdateSecret with a new key that failed
    record = make_record(
        eventName="UpdateSecret",
        requestParameters={"secretId": "prod/db", "kmsKeyId": "alias/x"},
        errorCode="AccessDeniedException",
    )

    # WHEN / THEN nothing fires
    assert findings(record) == {}


@pytest.mark.parametrize("event_name", ["RemoveRegionsFromReplication", "StopReplicationToReplica"])
def test_replication_removed(make_record: RecordFactory, event_name: str) -> None:
    # GIVEN a call removing or stopping a replica
    record = make_record(
        eventName=event_name,
        requestParameters={"secretId": SECRET_ARN, "removeReplicaRegions": ["us-east-1"]},
    )

    # WHEN / THEN replication-removed fires, medium
    assert findings(record) == {"replication-removed": "medium"}


# ---------------------------------------------------------------------------------------------
# Root


def test_root_call_fires_root_activity(make_record: RecordFactory) -> None:
    # GIVEN a read by the root user
    record = make_record(userIdentity=ROOT_IDENTITY)

    # WHEN / THEN root-activity fires, critical
    assert findings(record) == {"root-activity": "critical"}


def test_root_failed_call_still_fires_root_activity(make_record: RecordFactory) -> None:
    # GIVEN a failed call by the root user
    record = make_record(
        eventName="DeleteSecret", userIdentity=ROOT_IDENTITY, errorCode="ResourceNotFoundException"
    )

    # WHEN / THEN root-activity fires (outcome any) and no success rule does
    assert findings(record) == {"root-activity": "critical"}


def test_root_deletion_fires_both_most_severe_first(make_record: RecordFactory) -> None:
    # GIVEN a successful DeleteSecret by root
    record = make_record(eventName="DeleteSecret", userIdentity=ROOT_IDENTITY)

    # WHEN it is evaluated
    evaluation = defaults().evaluate(record)

    # THEN root-activity (critical) comes before secret-deleted (high)
    assert [(f.rule_id, f.severity) for f in evaluation.findings] == [
        ("root-activity", "critical"),
        ("secret-deleted", "high"),
    ]


def test_root_on_an_event_no_other_rule_knows(make_record: RecordFactory) -> None:
    # GIVEN a root call to an event name no rule lists
    record = make_record(eventName="SomeFutureEvent", userIdentity=ROOT_IDENTITY)

    # WHEN / THEN the wildcard rule still fires
    assert findings(record) == {"root-activity": "critical"}


@pytest.mark.parametrize(
    "identity",
    [
        {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/root"},
        {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Root/root"},
        SERVICE_IDENTITY,
    ],
    ids=["user-named-root", "role-named-root", "service"],
)
def test_non_root_callers_do_not_fire_root_activity(
    make_record: RecordFactory, identity: dict[str, Any]
) -> None:
    # GIVEN a caller that only looks like root by name
    # WHEN / THEN root-activity does not fire
    assert findings(make_record(userIdentity=identity)) == {}


def test_unknown_caller_does_not_fire_root_activity(make_record: RecordFactory) -> None:
    # GIVEN a record with no userIdentity
    record = make_record(userIdentity=None)

    # WHEN / THEN nothing fires (unknown is not Root)
    assert findings(record) == {}


@pytest.mark.parametrize(
    ("document", "severity"),
    [
        ({"Statement": "not a list"}, "medium"),
        ({"Statement": ["junk", {"Effect": "Allow", "Principal": {"AWS": 5}}]}, "medium"),
        (
            {
                "Statement": [
                    allow("*", {"Bool": "odd", "StringEquals": {"aws:SourceAccount": [5, ACCOUNT]}})
                ]
            },
            "medium",
        ),
        (
            {
                "Statement": [
                    allow(
                        "*",
                        {"Bool": "odd", "StringEquals": {"aws:SourceAccount": [5, OTHER_ACCOUNT]}},
                    )
                ]
            },
            "high",
        ),
    ],
    ids=["statement-not-a-list", "junk-statements", "odd-operands-same", "odd-operands-other"],
)
def test_odd_policy_shapes_never_raise(
    make_record: RecordFactory, document: dict[str, Any], severity: str
) -> None:
    # GIVEN a policy document with shapes IAM would reject but CloudTrail could still carry
    record = make_record(
        eventName="PutResourcePolicy",
        requestParameters={"secretId": SECRET_ARN, "resourcePolicy": json.dumps(document)},
    )

    # WHEN / THEN the rule still fires at a sensible severity, without a rule error
    assert findings(record) == {"resource-policy-changed": severity}
