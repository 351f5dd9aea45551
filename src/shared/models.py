"""Typed, immutable records that flow through secretwatch.

Raw JSON is turned into these at the edge (``shared.parse``) and only these travel inward.
Every field that the event may not carry is ``None`` ("unknown"), never a guessed default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

SECRETSMANAGER_SOURCE = "secretsmanager.amazonaws.com"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """The secret an event touched: canonical name (no random suffix) and the ARN when known."""

    name: str
    arn: str | None = None
    region: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the call, from ``userIdentity`` (every field may be unknown)."""

    type: str | None = None  # IAMUser, AssumedRole, Root, ... ; None for service events
    principal: str | None = None  # the most specific identifier: ARN, service or account
    identity_arn: str | None = None  # the IAM identity behind a session (role or user ARN)
    name: str | None = None  # a short name to show and search: SSO user, user, role, service
    arn: str | None = None
    principal_id: str | None = None
    account_id: str | None = None
    user_name: str | None = None
    role_name: str | None = None
    session_name: str | None = None
    sso_user: str | None = None
    sso_permission_set: str | None = None
    identity_store_user_id: str | None = None
    access_key_id: str | None = None
    invoked_by: str | None = None
    source_identity: str | None = None
    mfa_authenticated: bool | None = None
    console_session: bool | None = None


@dataclass(frozen=True, slots=True)
class RotationRules:
    automatically_after_days: int | None = None
    schedule_expression: str | None = None
    duration: str | None = None


@dataclass(frozen=True, slots=True)
class RequestFields:
    """The request and response members that the rules read, decoded and type-checked."""

    recovery_window_days: int | None = None
    force_delete_without_recovery: bool | None = None
    resource_policy: dict[str, Any] | None = None  # decoded from its JSON string
    block_public_policy: bool | None = None
    rotation_lambda_arn: str | None = None
    rotation_rules: RotationRules | None = None
    rotate_immediately: bool | None = None
    kms_key_id: str | None = None
    version_stages: tuple[str, ...] | None = None
    new_version_id: str | None = None  # responseElements.versionId: a new value was stored
    add_replica_regions: tuple[str, ...] | None = None
    remove_replica_regions: tuple[str, ...] | None = None
    deletion_date: str | None = None  # responseElements.deletionDate, a human string


@dataclass(frozen=True, slots=True)
class CloudTrailRecord:
    """One Secrets Manager CloudTrail record, normalised."""

    event_id: str
    event_name: str
    event_type: str  # AwsApiCall, AwsServiceEvent, ...
    event_time: datetime  # timezone-aware, UTC
    event_source: str
    region: str | None
    account_id: str | None  # recipientAccountId: the account whose trail logged it
    read_only: bool | None
    error_code: str | None
    error_message: str | None  # U+2019 apostrophes normalised to ASCII
    secret: SecretRef | None
    caller: Caller
    source_ip: str | None  # an IP, a service name, or "AWS Internal"
    user_agent: str | None
    vpc_endpoint_id: str | None
    request: RequestFields
    event_version: str | None = None
    shared_event_id: str | None = None
    request_id: str | None = None
    warnings: tuple[str, ...] = ()  # descriptive fields that were present but unusable

    @property
    def failed(self) -> bool:
        return self.error_code is not None or self.error_message is not None

    @property
    def event_time_iso(self) -> str:
        return format_time(self.event_time)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired on a record, with the severity it fired at."""

    rule_id: str
    severity: Severity
    description: str
    runbook: str


@dataclass(frozen=True, slots=True)
class RuleError:
    """A rule that raised while evaluating one record (the other rules still ran)."""

    rule_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    findings: tuple[Finding, ...] = ()
    rule_errors: tuple[RuleError, ...] = field(default_factory=tuple)


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second as CloudTrail writes it (more if present)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
