"""Audit items: the shape of what is stored per event, its keys, and its bounds in bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from shared import bounds
from shared.models import (
    SEVERITY_RANK,
    AlertState,
    CloudTrailRecord,
    Evaluation,
    Finding,
    format_time,
)
from shared.narrate import facts
from shared.redact import redact

RULE_SLOTS = ("rule_0", "rule_1", "rule_2")
INDEX_BY_SECRET, INDEX_BY_PRINCIPAL, INDEX_BY_DAY = "by-secret", "by-principal", "by-day"
RULE_INDEXES = {"rule_0": "by-rule-0", "rule_1": "by-rule-1", "rule_2": "by-rule-2"}
CLAIMED: AlertState = "claimed"
RETRY: AlertState = "retry"
SENT: AlertState = "sent"
SUPPRESSED: AlertState = "suppressed"
KIND_EVENT, KIND_REJECTED = "event", "rejected"
BATCH_WRITE_MAX, BATCH_GET_MAX = 25, 100
MAX_RAW_BYTES = 300_000  # the kept raw input of a rejected record; the item stops at 400 KB
# Key attributes (table and index keys) and their byte limits.
KEY_LIMITS: dict[str, int] = {
    "event_id": bounds.PARTITION_KEY_MAX,
    "secret_name": bounds.PARTITION_KEY_MAX,
    "principal_name": bounds.PARTITION_KEY_MAX,
    "day": bounds.PARTITION_KEY_MAX,
    **dict.fromkeys(RULE_SLOTS, bounds.PARTITION_KEY_MAX),
    "time_key": bounds.SORT_KEY_MAX,
}
# Free text that may be longer than bounds.TEXT_MAX.
TEXT_LIMITS: dict[str, int] = {
    "raw": MAX_RAW_BYTES,
    "request.resource_policy": 20_000,
    "error": 8_192,
}


class AlertEntry(TypedDict, total=False):
    """One alert's life in its audit item (``alerts.<rule id>``), see docs/delivery.md."""

    state: AlertState
    alert_id: str
    owner: str  # the attempt token of the invocation holding the claim
    invocation: str  # that invocation's request id, for people
    deadline: int  # epoch ms: the claim ends with the invocation that took it
    claimed_at: str
    handed_back: str  # why the alert was given up for the next delivery
    why: str  # why a suppressed alert is not sent (an exception, an audit-only rule)
    sent_at: str
    message_id: str
    resolves: str  # a resolution: the id of the alert it closes


class FindingEntry(TypedDict, total=False):
    rule: str
    severity: str
    description: str
    mode: str  # "audit-only" (absent: the rule alerts)
    exception: str  # the id of the exception that suppressed it
    state: str  # "folded" into a dedup window, "counted" or "fired" by a threshold
    detail: dict[str, Any]  # the dedup window or threshold it belongs to (shared.stateful)


class AuditItem(TypedDict, total=False):
    """An audit item as stored: every attribute optional but the keys (unknowns are left out)."""

    event_id: str
    kind: str  # "event" or "rejected"
    event_name: str
    event_type: str
    event_time: str
    time_key: str
    day: str
    event_source: str
    region: str
    account_id: str
    read_only: bool
    error_code: str
    error_message: str
    secret_name: str
    secret_arn: str
    principal: str
    principal_name: str
    caller: dict[str, Any]
    source: dict[str, Any]
    request: dict[str, Any]
    facts: dict[str, bool]
    findings: list[FindingEntry]
    severity: str
    alerts: dict[str, AlertEntry]
    rule_0: str
    rule_1: str
    rule_2: str
    route: str
    recorded_at: str
    expires_at: int
    request_id: str
    shared_event_id: str
    event_version: str
    warnings: list[str]
    rule_errors: list[str]
    enrichment: dict[str, Any]
    threshold_counts: list[dict[str, Any]]  # threshold rules this record counted towards
    bounded: list[str]  # attributes cut to fit DynamoDB's limits
    storage_error: str  # why only a small item could be kept
    error: str  # a rejected record's reason
    raw: str  # a rejected record's raw input, redacted, cut by bytes
    raw_bytes: int
    raw_truncated: bool
    remediation: dict[str, Any]  # what auto-restore did (shared.remediate)


# ---------------------------------------------------------------------------------------------
# Keys and ids


def event_key(event_id: str) -> str:
    """The table key of an event id (bounded: a forged id of any length stays a valid key)."""
    return bounds.key(event_id, bounds.PARTITION_KEY_MAX)


def time_key(when: datetime, event_id: str) -> str:
    stamp = format_time(when)
    return f"{stamp}#{bounds.key(event_id, bounds.SORT_KEY_MAX - len(stamp) - 1)}"


def alert_id(event_id: str, rule_id: str) -> str:
    """The stable id of one alert: the same on every send, by any route, from any attempt."""
    digest = hashlib.sha256(f"{event_key(event_id)}\x1f{rule_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def expiry(when: datetime, retention_days: int, now: datetime) -> int:
    """The TTL of an item: ``retention_days`` after the event, counted from arrival when the
    event claims to be from the future (a forged eventTime must not keep an item for ever)."""
    base = when if when <= now + timedelta(days=1) else now
    try:
        return int((base + timedelta(days=retention_days)).timestamp())
    except OverflowError:
        return int((now + timedelta(days=retention_days)).timestamp())


# ---------------------------------------------------------------------------------------------
# Items


def event_view(record: CloudTrailRecord) -> dict[str, Any]:
    """What a record says, as the audit item stores it (unbounded, unknowns left out): the
    narrator's input, and the core of :func:`build_item`."""
    caller = record.caller
    return _compact(
        {
            "event_id": record.event_id,
            "kind": KIND_EVENT,
            "event_name": record.event_name,
            "event_type": record.event_type,
            "event_time": record.event_time_iso,
            "event_source": record.event_source,
            "region": record.region,
            "account_id": record.account_id,
            "read_only": record.read_only,
            "error_code": record.error_code,
            "error_message": record.error_message,
            "secret_name": record.secret.name if record.secret else None,
            "secret_arn": record.secret.arn if record.secret else None,
            # A tamper record's resource (shared.tamper) instead of a secret.
            "target": _compact(
                {
                    "kind": record.target.kind,
                    "name": record.target.name,
                    "parent": record.target.parent,
                    "disables": record.target.disables,
                }
            )
            if record.target
            else None,
            "principal": caller.principal,
            "principal_name": caller.name.lower() if caller.name else None,
            "caller": _compact(
                {
                    "type": caller.type,
                    "name": caller.name,
                    "arn": caller.arn,
                    "identity_arn": caller.identity_arn,
                    "principal_id": caller.principal_id,
                    "account_id": caller.account_id,
                    "user_name": caller.user_name,
                    "role_name": caller.role_name,
                    "session_name": caller.session_name,
                    "sso_user": caller.sso_user,
                    "sso_permission_set": caller.sso_permission_set,
                    "identity_store_user_id": caller.identity_store_user_id,
                    "access_key_id": caller.access_key_id,
                    "invoked_by": caller.invoked_by,
                    "source_identity": caller.source_identity,
                    "mfa_authenticated": caller.mfa_authenticated,
                    "console_session": caller.console_session,
                }
            ),
            "source": _compact(
                {
                    "ip": record.source_ip,
                    "user_agent": record.user_agent,
                    "vpc_endpoint": record.vpc_endpoint_id,
                }
            ),
            "request": request_dict(record),
            "facts": facts(record),
        }
    )


def build_item(
    record: CloudTrailRecord,
    evaluation: Evaluation,
    enrichment: Mapping[str, Any] | None,
    *,
    route: str,
    retention_days: int,
    now: datetime,
    alerts: Mapping[str, AlertEntry] | None = None,
    routine_retention_days: int | None = None,
) -> AuditItem:
    """The audit item for one record: metadata only, never a secret value, bounded in bytes.

    ``alerts`` gives each finding's alert entry; a finding without one is recorded as "retry"
    (not sent yet: the next delivery may claim it), so an item can never hide an alert.
    A threshold rule's match that did not cross it is not a finding of this record: it is kept
    under ``threshold_counts`` (rule, how many of how many), out of the severity and indexes.
    """
    counted = [f for f in evaluation.findings if f.state == "counted"]
    if counted:
        evaluation = replace(
            evaluation, findings=tuple(f for f in evaluation.findings if f.state != "counted")
        )
    if is_routine_read(record, evaluation):
        return routine_read_item(
            record,
            enrichment,
            route=route,
            retention_days=min(retention_days, routine_retention_days or retention_days),
            now=now,
        )
    item: dict[str, Any] = {
        **event_view(record),
        "event_id": event_key(record.event_id),
        "time_key": time_key(record.event_time, record.event_id),
        "day": record.event_time.strftime("%Y-%m-%d"),
        "findings": [finding_entry(f) for f in evaluation.findings],
        "route": route,
        "recorded_at": format_time(now),
        "expires_at": expiry(record.event_time, retention_days, now),
        "request_id": record.request_id,
        "shared_event_id": record.shared_event_id,
        "event_version": record.event_version,
        "warnings": list(record.warnings) or None,
        "rule_errors": [f"{e.rule_id}: {e.message}" for e in evaluation.rule_errors] or None,
        "enrichment": dict(enrichment) if enrichment else None,
        "threshold_counts": [_counted_entry(f) for f in counted] or None,
    }
    if evaluation.findings:
        item["severity"] = max(
            (f.severity for f in evaluation.findings), key=SEVERITY_RANK.__getitem__
        )
        given = alerts or {}
        item["alerts"] = {
            f.rule_id: given.get(f.rule_id)
            or AlertEntry(state="retry", alert_id=alert_id(record.event_id, f.rule_id))
            for f in evaluation.findings
        }
        for slot, finding in zip(RULE_SLOTS, evaluation.findings, strict=False):
            item[slot] = finding.rule_id
    return bounded(_compact(item))


# ---------------------------------------------------------------------------------------------
# Routine reads: most of the table, so they store only what the CLI, the narrator and deletion
# impact read (docs/cost.md measures it: ≤ 1 KB, one write unit, and one per index it lands in).

_READ_PREFIXES = ("Get", "BatchGet", "Describe", "List")
ROUTINE_USER_AGENT_MAX = 96  # bytes: the SDK, its version, the OS; findings keep the whole text
# Constant for a successful read, or restated elsewhere in the item: left out of routine reads.
_ROUTINE_OMITTED = ("event_source", "event_type", "event_version", "read_only")
# What caller keys restate: arn is the item's principal, role_name its name.
_ROUTINE_CALLER_OMITTED = ("role_name",)


def is_routine_read(record: CloudTrailRecord, evaluation: Evaluation) -> bool:
    """A successful read-only call on which no rule fired (a threshold's count is no finding).

    Both CloudTrail's readOnly and a read's name: a call of any other name keeps its whole item.
    """
    return (
        record.read_only is True
        and record.event_name.startswith(_READ_PREFIXES)
        and record.error_code is None
        and record.error_message is None
        and not evaluation.findings
        and not evaluation.rule_errors
        and not record.warnings
    )


def routine_read_item(
    record: CloudTrailRecord,
    enrichment: Mapping[str, Any] | None,
    *,
    route: str,
    retention_days: int,
    now: datetime,
) -> AuditItem:
    """A routine read's item: no ``day`` (so it stays out of the by-day index; docs/cost.md
    says why), none of the DescribeSecret snapshot every read of the secret would repeat (the
    secret's findings keep it), the user agent cut to its first 96 bytes, no threshold counts
    (the state table holds them), no arrival time, nothing a successful read always says, and
    the expiry of RoutineReadRetentionDays."""
    view = event_view(record)
    for key in _ROUTINE_OMITTED:
        view.pop(key, None)
    caller = {k: v for k, v in view.get("caller", {}).items() if k not in _ROUTINE_CALLER_OMITTED}
    if caller.get("arn") == view.get("principal"):
        caller.pop("arn", None)
    view["caller"] = caller
    source = dict(view.get("source", {}))
    if "user_agent" in source:
        source["user_agent"] = bounds.text(source["user_agent"], ROUTINE_USER_AGENT_MAX)
    view["source"] = source
    account = {
        k: enrichment[k]
        for k in ("account_alias", "account_name")
        if enrichment and enrichment.get(k)
    }
    item: dict[str, Any] = {
        **view,
        "event_id": event_key(record.event_id),
        "time_key": time_key(record.event_time, record.event_id),
        "route": route,
        # No recorded_at: a read's arrival time is in the function's metrics, not worth 31 bytes
        # of every read.
        "expires_at": expiry(record.event_time, retention_days, now),
        "request_id": record.request_id,
        "shared_event_id": record.shared_event_id,
        "enrichment": account or None,
    }
    return bounded(_compact(item))


def finding_upgrade(
    existing: Mapping[str, Any], retention_days: int, now: datetime
) -> dict[str, Any]:
    """What a stored routine read needs when a later delivery adds a finding to it: its
    ``day`` (into the by-day index) and the findings' retention. Nothing for other items."""
    if "day" in existing or existing.get("kind", KIND_EVENT) != KIND_EVENT:
        return {}
    try:
        when = datetime.fromisoformat(str(existing.get("event_time")))
    except ValueError:
        when = now
    return {
        "day": when.strftime("%Y-%m-%d"),
        "expires_at": expiry(when, retention_days, now),
    }


def _counted_entry(finding: Finding) -> dict[str, Any]:
    detail = dict(finding.detail or {})
    return {
        "rule": finding.rule_id,
        **{k: detail[k] for k in ("seen", "count", "window_s") if k in detail},
    }


def finding_entry(finding: Finding) -> FindingEntry:
    entry = FindingEntry(
        rule=finding.rule_id, severity=finding.severity, description=finding.description
    )
    if finding.mode != "alert":
        entry["mode"] = finding.mode
    if finding.exception is not None:
        entry["exception"] = finding.exception
    if finding.state is not None:
        entry["state"] = finding.state
    if finding.detail:
        entry["detail"] = dict(finding.detail)
    return entry


def bounded(item: Mapping[str, Any]) -> AuditItem:
    """``item`` within DynamoDB's limits; the paths that had to be cut are listed in it."""
    result, cut = bounds.bound(item, keys=KEY_LIMITS, limits=TEXT_LIMITS)
    if cut:
        result["bounded"] = sorted(set(cut))
    return cast("AuditItem", result)


def request_dict(record: CloudTrailRecord) -> dict[str, Any]:
    request = record.request
    rules = request.rotation_rules
    return _compact(
        {
            "recovery_window_days": request.recovery_window_days,
            "force_delete_without_recovery": request.force_delete_without_recovery,
            # Kept as JSON text: a policy document is arbitrary JSON (floats, empty keys).
            "resource_policy": _policy_text(request.resource_policy),
            "block_public_policy": request.block_public_policy,
            "rotation_lambda_arn": request.rotation_lambda_arn,
            "rotation_after_days": rules.automatically_after_days if rules else None,
            "rotation_schedule": rules.schedule_expression if rules else None,
            "rotation_duration": rules.duration if rules else None,
            "rotate_immediately": request.rotate_immediately,
            "kms_key_id": request.kms_key_id,
            "version_stages": list(request.version_stages) if request.version_stages else None,
            "new_version_id": request.new_version_id,
            "add_replica_regions": list(request.add_replica_regions)
            if request.add_replica_regions
            else None,
            "remove_replica_regions": list(request.remove_replica_regions)
            if request.remove_replica_regions
            else None,
            "deletion_date": request.deletion_date,
        }
    )


def _policy_text(policy: Mapping[str, Any] | None) -> str | None:
    if policy is None:
        return None
    from shared.text import dumps  # noqa: PLC0415 — only policy changes pay for it

    return dumps(redact(policy), sort_keys=True)


def rejected_item(
    item_id: str, error: str, raw: Any, *, route: str, retention_days: int, now: datetime
) -> AuditItem:
    """A failure record: the raw input is kept (redacted, cut by bytes) so it can be fixed and
    replayed, never dropped."""
    text = raw_text(raw)
    size = len(text.encode("utf-8", "replace"))
    key = event_key(f"rejected#{item_id}")
    item = _compact(
        {
            "event_id": key,
            "kind": KIND_REJECTED,
            "error": error,
            "raw": text,
            "raw_bytes": size,
            "raw_truncated": size > MAX_RAW_BYTES or None,
            "route": route,
            "recorded_at": format_time(now),
            "event_time": format_time(now),
            "time_key": time_key(now, key),
            "day": now.strftime("%Y-%m-%d"),
            "expires_at": expiry(now, retention_days, now),
        }
    )
    return bounded(item)


def raw_text(raw: Any) -> str:
    """A raw input as text for keeping: value-bearing members redacted at any depth first."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):
            return redact(raw)  # type: ignore[no-any-return]
        raw = decoded
    from shared.text import dumps  # noqa: PLC0415 — rejected records only

    return dumps(redact(raw), sort_keys=True)


def storage_failure_item(item: Mapping[str, Any], reason: str) -> AuditItem:
    """What is kept when DynamoDB refuses an item even after bounding: its keys, its findings
    and alert claims (so no alert is lost) and the reason, nothing caller-sized."""
    kept = {
        key: item[key]
        for key in (
            "event_id",
            "kind",
            "event_name",
            "event_time",
            "time_key",
            "day",
            "secret_name",
            "principal_name",
            "severity",
            "alerts",
            "route",
            "recorded_at",
            "expires_at",
            "raw_bytes",
            *RULE_SLOTS,
        )
        if key in item
    }
    if item.get("findings"):
        kept["findings"] = [
            {"rule": f.get("rule"), "severity": f.get("severity")} for f in item["findings"]
        ]
    kept["storage_error"] = reason
    return bounded(kept)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown (None) and empty values: DynamoDB index keys may not be empty strings."""
    return {k: v for k, v in values.items() if v is not None and v not in ("", {}, [])}
