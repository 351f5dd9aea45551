"""Typed, immutable records that flow through secretwatch.

Raw JSON is turned into these at the edge (``shared.envelopes``, ``shared.normalise``) and only
these travel inward. Every field that the event may not carry is ``None`` ("unknown"), never a
guessed default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import UnexpectedResponse

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.type_defs import DescribeSecretResponseTypeDef

    from shared.impact import Readers

Severity = Literal["info", "low", "medium", "high", "critical"]
Route = Literal["eventbridge", "cloudwatch-logs", "replay"]
RuleOutcome = Literal["success", "failure", "any"]  # which calls a rule looks at
AlertState = Literal["claimed", "retry", "sent", "suppressed"]
RuleMode = Literal["alert", "audit-only"]  # audit-only: findings are recorded, never alerted
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
class TargetRef:
    """The resource a call of another service acts on (tampering with secretwatch itself,
    ``shared.tamper``): its kind, its name (bounded), and what it belongs to."""

    kind: str  # eventbridge-rule, trail, subscription-filter, log-group, function, kms-key, ...
    name: str
    parent: str | None = None  # a rule's event bus, a filter's log group, a subscription's topic
    disables: bool | None = None  # PutRule: the call sets the rule's state to DISABLED


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
    target: TargetRef | None = None  # not a secret: the resource a tamper call acts on

    @property
    def failed(self) -> bool:
        return self.error_code is not None or self.error_message is not None

    @property
    def event_time_iso(self) -> str:
        return format_time(self.event_time)


FindingState = Literal["folded", "counted", "fired"]
_QUIET = frozenset({"folded", "counted"})


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired on a record, with the severity it fired at.

    It is alerted unless its rule is ``audit-only`` or an exception of the rule document covers
    it (``exception`` names it); either way it is recorded.
    """

    rule_id: str
    severity: Severity
    description: str
    runbook: str
    mode: RuleMode = "alert"
    exception: str | None = None  # the id of the exception that suppressed it
    # What the rule's state made of it (shared.stateful): None (a rule without state, or the
    # first of a dedup window), "folded" (a repeat inside a dedup window, into ``detail``'s
    # ``folded_into``), "counted" (towards a threshold not reached) or "fired" (it crossed one).
    state: FindingState | None = None
    detail: Mapping[str, Any] | None = None

    @property
    def alerts(self) -> bool:
        return self.mode == "alert" and self.exception is None and self.state not in _QUIET


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


# --- enrichment: what the service's read-only look-ups add to a record -------------------------

# Tag keys naming whoever answers for a secret, in priority order (compared case-insensitively).
OWNER_TAG_KEYS: tuple[str, ...] = ("owner", "team", "contact")
_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


def _utc(value: datetime | None) -> datetime | None:
    """botocore may hand back local-time datetimes; the audit trail is UTC throughout."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def owner_from_tags(tags: Mapping[str, str]) -> str | None:
    """The first non-empty owner/team/contact tag; "owner", then "Owner", wins among spellings."""
    for wanted in OWNER_TAG_KEYS:
        matches = [key for key in tags if key.lower() == wanted]
        matches.sort(key=lambda key: (key != wanted, key != wanted.capitalize(), key))
        for key in matches:
            value = tags[key].strip()
            if value:
                return value
    return None


@dataclass(frozen=True, slots=True)
class SecretDetails:
    """What ``DescribeSecret`` says about a secret (metadata only, never the value)."""

    name: str
    arn: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = _EMPTY_TAGS
    owner: str | None = None
    rotation_enabled: bool | None = None  # None: never configured for rotation
    rotation_lambda_arn: str | None = None
    kms_key_id: str | None = None  # None: the AWS managed key aws/secretsmanager
    deleted_date: datetime | None = None  # when the secret is (or was) scheduled to be deleted
    last_changed_date: datetime | None = None
    last_rotated_date: datetime | None = None
    primary_region: str | None = None
    # The day the secret was last read (AWS keeps it to the day); None: never, or not reported.
    last_accessed_date: datetime | None = None

    def __post_init__(self) -> None:
        # A read-only view over a private copy: the caller's dict cannot change it afterwards.
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))

    @classmethod
    def from_describe(cls, response: DescribeSecretResponseTypeDef) -> SecretDetails:
        """The details from a DescribeSecret answer; UnexpectedResponse when it names no secret."""
        name = response.get("Name")
        if not isinstance(name, str) or not name:
            raise UnexpectedResponse("DescribeSecret answered without the secret's Name")
        tags = {
            str(tag["Key"]): str(tag.get("Value", ""))
            for tag in response.get("Tags") or []
            if "Key" in tag
        }
        return cls(
            name=name,
            arn=response.get("ARN"),
            description=response.get("Description"),
            tags=tags,
            owner=owner_from_tags(tags),
            rotation_enabled=response.get("RotationEnabled"),
            rotation_lambda_arn=response.get("RotationLambdaARN"),
            kms_key_id=response.get("KmsKeyId"),
            deleted_date=_utc(response.get("DeletedDate")),
            last_changed_date=_utc(response.get("LastChangedDate")),
            last_rotated_date=_utc(response.get("LastRotatedDate")),
            primary_region=response.get("PrimaryRegion"),
            last_accessed_date=_utc(response.get("LastAccessedDate")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "description": self.description,
            "tags": dict(self.tags),
            "owner": self.owner,
            "rotation_enabled": self.rotation_enabled,
            "rotation_lambda_arn": self.rotation_lambda_arn,
            "kms_key_id": self.kms_key_id,
            "deleted_date": _time(self.deleted_date),
            "last_changed_date": _time(self.last_changed_date),
            "last_rotated_date": _time(self.last_rotated_date),
            "primary_region": self.primary_region,
            "last_accessed_date": _time(self.last_accessed_date),
        }


@dataclass(frozen=True, slots=True)
class Enrichment:
    """Context for one record; ``notes`` says why any part of it is missing."""

    secret: SecretDetails | None = None
    account_alias: str | None = None  # IAM alias of the account the event was recorded in
    account_name: str | None = None  # Organizations name of that account
    notes: tuple[str, ...] = ()
    readers: Readers | None = None  # deletion records only: who still reads the secret
    # Tamper records only: which of this stack's resources the call acts on (shared.tamper);
    # None when it acts on something else, or the stack's identity is unknown.
    own_target: str | None = None

    @classmethod
    def empty(cls) -> Enrichment:
        return cls()

    @property
    def partial(self) -> bool:
        return bool(self.notes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 UTC strings, tags as a plain dict."""
        out: dict[str, Any] = {
            "secret": None if self.secret is None else self.secret.to_dict(),
            "account_alias": self.account_alias,
            "account_name": self.account_name,
            "notes": list(self.notes),
        }
        if self.readers is not None:  # absent, not null, on every record that is no deletion
            out["readers"] = self.readers.to_dict()
        if self.own_target is not None:
            out["own_target"] = self.own_target
        return out
