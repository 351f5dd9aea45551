"""Representative audit items, built by the real item builder, for the cost figures.

The routine read is the CloudWatch Logs payload events/cloudwatch-logs/control-get-secret-value.json
(an ECS task role reading a database secret through a VPC endpoint with the Java SDK's long
user agent), enriched as DescribeSecret describes a typical production secret; the finding is a
DeleteSecret by an SSO user with its alert claimed and its recent readers; the rejected record
keeps a 1.2 KB raw input. scripts/ddb_cost.py measures them; tests/unit/test_item_cost.py holds
the figures to their bounds.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.audit.codec import to_item
from shared.audit.items import AlertEntry, build_item, rejected_item
from shared.impact import Reader, Readers, RecentReads
from shared.models import Enrichment, Evaluation, Finding, SecretDetails
from shared.normalise import normalise

EVENTS = Path(__file__).resolve().parents[1] / "events"
NOW = datetime(2026, 11, 16, 8, 45, tzinfo=UTC)
RETENTION_DAYS, ROUTINE_DAYS = 400, 90


def routine_raw() -> dict[str, Any]:
    payload = json.loads((EVENTS / "cloudwatch-logs" / "control-get-secret-value.json").read_text())
    data = json.loads(gzip.decompress(base64.b64decode(payload["awslogs"]["data"])))
    raw: dict[str, Any] = json.loads(data["logEvents"][0]["message"])
    return raw


def enrichment(readers: Readers | None = None) -> Enrichment:
    secret = SecretDetails(
        name="prod/rds/orders-primary",
        arn="arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/rds/orders-primary-Vb5Wc1",
        description="Orders primary database: application user credentials",
        tags={"owner": "payments-team", "env": "prod", "app": "orders", "cost-centre": "cc-4410"},
        owner="payments-team",
        rotation_enabled=True,
        rotation_lambda_arn="arn:aws:lambda:eu-west-1:111122223333:function:rotate-db",
        kms_key_id="arn:aws:kms:eu-west-1:111122223333:key/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        last_changed_date=NOW - timedelta(days=3),
        last_rotated_date=NOW - timedelta(days=3),
        last_accessed_date=NOW.replace(hour=0, minute=0),
    )
    return Enrichment(secret=secret, account_alias="acme-payments-prod", readers=readers)


def read_burst_count() -> Finding:
    """What every successful read carries: the read-burst threshold counting it (not a finding)."""
    return Finding(
        "read-burst",
        "medium",
        "Many secrets read",
        "",
        state="counted",
        detail={"seen": 3, "count": 20, "window_s": 600},
    )


def routine_read() -> dict[str, Any]:
    record = normalise(routine_raw())
    item = build_item(
        record,
        Evaluation(findings=(read_burst_count(),)),
        enrichment().to_dict(),
        route="cloudwatch-logs",
        retention_days=RETENTION_DAYS,
        routine_retention_days=ROUTINE_DAYS,
        now=NOW,
    )
    return to_item(item)


def finding() -> dict[str, Any]:
    raw = routine_raw()
    raw.update(
        eventName="DeleteSecret",
        readOnly=False,
        userIdentity={
            "type": "AssumedRole",
            "principalId": "AROA3XFRBF23EXAMPLE07:carol@example.com",
            "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/carol@example.com",
            "accountId": "111122223333",
            "accessKeyId": "ASIATXVSEC6GEXAMPLE7",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA3XFRBF23EXAMPLE07",
                    "arn": "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                    "accountId": "111122223333",
                    "userName": "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                },
                "attributes": {"creationDate": "2026-11-16T07:46:03Z", "mfaAuthenticated": "true"},
            },
        },
        requestParameters={"secretId": "prod/rds/orders-primary", "recoveryWindowInDays": 7},
        responseElements={
            "name": "prod/rds/orders-primary",
            "arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/rds/orders-primary-Vb5Wc1",
            "deletionDate": "Nov 23, 2026 8:44:03 AM",
        },
        eventID="7c1d0e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
        userAgent="aws-internal/3 aws-sdk-java/1.12.770",
        vpcEndpointId=None,
    )
    record = normalise(raw)
    found = Finding(
        "secret-deleted",
        "critical",
        "A secret was scheduled for deletion.",
        "Check who deleted it and whether anything still reads it.",
    )
    recent = RecentReads(
        7,
        record.event_time,
        reads=142,
        principal_count=3,
        readers=(
            Reader(
                "arn:aws:iam::111122223333:role/payments-api-task-role",
                120,
                NOW - timedelta(hours=1),
            ),
            Reader("arn:aws:iam::111122223333:role/orders-batch-role", 20, NOW - timedelta(days=1)),
            Reader("arn:aws:iam::111122223333:user/ci-deployer", 2, NOW - timedelta(days=5)),
        ),
        last_read=NOW - timedelta(hours=1),
        last_reader="arn:aws:iam::111122223333:role/payments-api-task-role",
        complete=True,
    )
    readers = Readers(recent, NOW.replace(hour=0, minute=0), 0)
    alert = AlertEntry(
        state="sent",
        alert_id="8d1c2b3a-4f5e-4d6c-9b8a-7f6e5d4c3b2a",
        owner="attempt-0f1e2d3c",
        invocation="9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        deadline=1_795_336_000_000,
        claimed_at="2026-11-16T08:44:05Z",
        sent_at="2026-11-16T08:44:06Z",
        message_id="0f9e8d7c-6b5a-4948-8372-6150f4e3d2c1",
    )
    item = build_item(
        record,
        Evaluation(findings=(found,)),
        enrichment(readers).to_dict(),
        route="eventbridge",
        retention_days=RETENTION_DAYS,
        routine_retention_days=ROUTINE_DAYS,
        now=NOW,
        alerts={"secret-deleted": alert},
    )
    return to_item(item)


def rejected() -> dict[str, Any]:
    raw = routine_raw()
    raw["eventTime"] = "not a time"
    item = rejected_item(
        "b441c28e-d0ed-46d7-9970-df0cb4e821b2",
        "eventTime: not an ISO 8601 time",
        json.dumps(raw),
        route="cloudwatch-logs",
        retention_days=RETENTION_DAYS,
        now=NOW,
    )
    return to_item(item)


def samples() -> dict[str, dict[str, Any]]:
    return {"routine read": routine_read(), "finding": finding(), "rejected": rejected()}
