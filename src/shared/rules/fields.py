"""The keys a rule condition may read: one table, so an unknown key fails at load time.

Each entry maps a dotted key to a getter over (record, enrichment). Record keys are always
available; enrichment keys (``secret.tags.<Key>``, ``secret.owner``, ``account.alias``...) are
unknown (None) where no enrichment was done, e.g. in ``secretwatch evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.impact import days_since_read
from shared.models import CloudTrailRecord, Enrichment

Getter = Callable[[CloudTrailRecord, Enrichment | None], Any]


def _secret_attr(name: str) -> Getter:
    def get(record: CloudTrailRecord, _: Enrichment | None) -> Any:
        secret = record.secret
        return None if secret is None else getattr(secret, name)

    return get


def _caller_attr(name: str) -> Getter:
    def get(record: CloudTrailRecord, _: Enrichment | None) -> Any:
        return getattr(record.caller, name)

    return get


def _request_attr(name: str) -> Getter:
    def get(record: CloudTrailRecord, _: Enrichment | None) -> Any:
        return getattr(record.request, name)

    return get


def _rotation_attr(name: str) -> Getter:
    def get(record: CloudTrailRecord, _: Enrichment | None) -> Any:
        rules = record.request.rotation_rules
        return None if rules is None else getattr(rules, name)

    return get


def _target_attr(name: str) -> Getter:
    def get(record: CloudTrailRecord, _: Enrichment | None) -> Any:
        target = record.target
        return None if target is None else getattr(target, name)

    return get


def _own_target(record: CloudTrailRecord, enrichment: Enrichment | None) -> bool | None:
    """Whether a tamper call acts on one of this stack's resources (shared.tamper); unknown
    without enrichment (the command line does not know which stack is meant)."""
    if enrichment is None or record.target is None:
        return None
    return enrichment.own_target is not None


def _cross_account(record: CloudTrailRecord, _: Enrichment | None) -> bool | None:
    caller_account, account = record.caller.account_id, record.account_id
    if caller_account is None or account is None:
        return None
    return caller_account != account


def _enrichment_attr(*path: str) -> Getter:
    def get(_: CloudTrailRecord, enrichment: Enrichment | None) -> Any:
        value = enrichment
        for name in path:
            if value is None:
                return None
            value = getattr(value, name, None)
        return value

    return get


def _days_since_read(record: CloudTrailRecord, enrichment: Enrichment | None) -> int | None:
    """Whole days since the latest read known: the deletion's readers (audit trail and
    LastAccessedDate), else LastAccessedDate alone; None when neither is known."""
    if enrichment is None:
        return None
    if enrichment.readers is not None:
        return enrichment.readers.days_since_read
    accessed = enrichment.secret.last_accessed_date if enrichment.secret is not None else None
    return days_since_read(record.event_time, None, accessed)


FIELDS: dict[str, Getter] = {
    "event.id": lambda r, _: r.event_id,
    "event.name": lambda r, _: r.event_name,
    "event.type": lambda r, _: r.event_type,
    "event.time": lambda r, _: r.event_time_iso,
    "event.source": lambda r, _: r.event_source,
    "event.region": lambda r, _: r.region,
    "event.account": lambda r, _: r.account_id,
    "event.read_only": lambda r, _: r.read_only,
    "event.version": lambda r, _: r.event_version,
    "error.code": lambda r, _: r.error_code,
    "error.message": lambda r, _: r.error_message,
    "error.failed": lambda r, _: r.failed,
    "secret.name": _secret_attr("name"),
    "secret.arn": _secret_attr("arn"),
    "secret.region": _secret_attr("region"),
    "secret.account": _secret_attr("account_id"),
    "caller.type": _caller_attr("type"),
    "caller.principal": _caller_attr("principal"),
    "caller.identity_arn": _caller_attr("identity_arn"),
    "caller.name": _caller_attr("name"),
    "caller.arn": _caller_attr("arn"),
    "caller.account": _caller_attr("account_id"),
    "caller.user_name": _caller_attr("user_name"),
    "caller.role_name": _caller_attr("role_name"),
    "caller.session_name": _caller_attr("session_name"),
    "caller.sso_user": _caller_attr("sso_user"),
    "caller.sso_permission_set": _caller_attr("sso_permission_set"),
    "caller.invoked_by": _caller_attr("invoked_by"),
    "caller.access_key_id": _caller_attr("access_key_id"),
    "caller.mfa": _caller_attr("mfa_authenticated"),
    "caller.console_session": _caller_attr("console_session"),
    "caller.cross_account": _cross_account,
    "source.ip": lambda r, _: r.source_ip,
    "source.user_agent": lambda r, _: r.user_agent,
    "source.vpc_endpoint": lambda r, _: r.vpc_endpoint_id,
    "request.recovery_window_days": _request_attr("recovery_window_days"),
    "request.force_delete_without_recovery": _request_attr("force_delete_without_recovery"),
    "request.resource_policy": _request_attr("resource_policy"),
    "request.block_public_policy": _request_attr("block_public_policy"),
    "request.rotation_lambda_arn": _request_attr("rotation_lambda_arn"),
    "request.rotation_after_days": _rotation_attr("automatically_after_days"),
    "request.rotation_schedule": _rotation_attr("schedule_expression"),
    "request.rotate_immediately": _request_attr("rotate_immediately"),
    "request.kms_key_id": _request_attr("kms_key_id"),
    "request.version_stages": _request_attr("version_stages"),
    "request.new_version_id": _request_attr("new_version_id"),
    "request.add_replica_regions": _request_attr("add_replica_regions"),
    "request.remove_replica_regions": _request_attr("remove_replica_regions"),
    # Tamper records (shared.tamper): the resource the call acts on, and whether it is ours.
    "target.kind": _target_attr("kind"),
    "target.name": _target_attr("name"),
    "target.parent": _target_attr("parent"),
    "target.disables": _target_attr("disables"),
    "target.own": _own_target,
    "target.own_resource": _enrichment_attr("own_target"),
    # Enrichment (issue: pipeline); unknown outside the Lambda pipeline.
    "secret.owner": _enrichment_attr("secret", "owner"),
    "secret.description": _enrichment_attr("secret", "description"),
    "secret.rotation_enabled": _enrichment_attr("secret", "rotation_enabled"),
    "account.alias": _enrichment_attr("account_alias"),
    "account.name": _enrichment_attr("account_name"),
    # What a deletion will break (shared.impact); unknown outside the Lambda pipeline.
    "secret.days_since_read": _days_since_read,
}

TAG_PREFIX = "secret.tags."


def _tag_getter(tag: str) -> Getter:
    def get(_: CloudTrailRecord, enrichment: Enrichment | None) -> Any:
        secret = getattr(enrichment, "secret", None)
        tags = getattr(secret, "tags", None)
        return None if tags is None else tags.get(tag)

    return get


def getter_for(key: str) -> Getter | None:
    """The getter for a condition key, or None if the key is unknown."""
    if key in FIELDS:
        return FIELDS[key]
    if key.startswith(TAG_PREFIX) and len(key) > len(TAG_PREFIX):
        return _tag_getter(key[len(TAG_PREFIX) :])
    return None


def known_keys() -> list[str]:
    return [*FIELDS, TAG_PREFIX + "<TagKey>"]
