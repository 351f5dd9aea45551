"""Reading the audit table for ``secretwatch audit``: always through its keys and indexes.

The table (see ``shared.audit``) is keyed by ``event_id``; every GSI is sorted by ``time_key``
(``<eventTime>#<event_id>``), so a time window is a key condition on ``time_key`` and "newest
first" is ``ScanIndexForward=False``. A look-up picks the most selective index the filters allow
(secret > rule > principal > day) and applies the other filters as a FilterExpression. Nothing
here ever calls Scan.

A time window is inclusive at both ends, to the second (CloudTrail's resolution).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cli.timewindow import to_second
from shared.audit import (
    INDEX_BY_DAY,
    INDEX_BY_PRINCIPAL,
    INDEX_BY_SECRET,
    RULE_INDEXES,
    RULE_SLOTS,
    from_item,
)
from shared.errors import SecretwatchError
from shared.models import SEVERITIES, SEVERITY_RANK, format_time
from shared.parse import SSO_ROLE_PREFIX, secret_from_id
from shared.text import dumps

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_WINDOW_DAYS = 30
DEFAULT_LIMIT = 50
_KEY_END = "#\uffff"  # sorts after "<time>#<any event id>": the inclusive upper bound of a second

Item = dict[str, Any]


class AuditError(SecretwatchError):
    """A look-up in the audit table failed: missing table, access denied, unknown id, ..."""


# ---------------------------------------------------------------------------------------------
# Time


def display_time(iso: str | None) -> str:
    return (iso or "").replace("T", " ")


# ---------------------------------------------------------------------------------------------
# Filters and the query plan


@dataclass(frozen=True)
class PrincipalLookup:
    """``name``: the by-principal key (None: no key serves it); ``arn``: a filter on the ARN."""

    name: str | None
    arn: str | None = None


def principal_lookup(value: str) -> PrincipalLookup:
    """An IAM user/role/assumed-role/root ARN → the short name the items are indexed by."""
    text = value.strip()
    if not text.startswith("arn:"):
        return PrincipalLookup(text.lower())
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[2] not in {"iam", "sts"}:
        raise ValueError(f"not an IAM or STS principal ARN: {text}")
    kind, _, rest = parts[5].partition("/")
    segments = rest.split("/")
    if kind == "root" or parts[5] == "root":
        return PrincipalLookup("root", text)
    if kind in {"user", "federated-user"} and segments[-1]:
        return PrincipalLookup(segments[-1].lower(), text)
    if kind == "role" and segments[-1]:
        role = segments[-1]
        # An Identity Center role's callers are indexed by their SSO user names, not the role.
        return PrincipalLookup(None if role.startswith(SSO_ROLE_PREFIX) else role.lower(), text)
    if kind == "assumed-role" and len(segments) == 2 and all(segments):
        role, session = segments
        return PrincipalLookup(
            (session if role.startswith(SSO_ROLE_PREFIX) else role).lower(), text
        )
    raise ValueError(f"unsupported principal ARN (user, role, assumed-role or root): {text}")


@dataclass(frozen=True)
class Filters:
    secret: str | None = None  # canonical secret name
    principal: PrincipalLookup | None = None
    rule: str | None = None
    severity: str | None = None  # this level or higher
    event_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT


def secret_name(value: str) -> str:
    """A secret name, partial ARN or full ARN → the name the items are indexed by."""
    return secret_from_id(value.strip()).name


def severities_from(level: str) -> list[str]:
    if level not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {level!r}: one of {', '.join(SEVERITIES)}")
    return [s for s in SEVERITIES if SEVERITY_RANK[s] >= SEVERITY_RANK[level]]


@dataclass(frozen=True)
class Plan:
    """Which index (and hash values) answer a look-up, and a note when none serves it well."""

    index: str  # by-secret, by-principal, by-day, or "by-rule" (by-rule-0/1/2 merged)
    hash_attr: str
    hash_values: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    note: str | None = None


def plan(filters: Filters, now: datetime) -> Plan:
    """The most selective index: secret > rule > principal > day (then day by day, newest first)."""
    since, until = filters.since, filters.until
    if filters.secret is not None:
        return Plan(INDEX_BY_SECRET, "secret_name", (filters.secret,), since, until)
    if filters.rule is not None:
        return Plan("by-rule", "rule", (filters.rule,), since, until)
    if filters.principal is not None and filters.principal.name is not None:
        return Plan(INDEX_BY_PRINCIPAL, "principal_name", (filters.principal.name,), since, until)
    until = until or to_second(now)
    note = None
    if since is None:
        since = until - timedelta(days=DEFAULT_WINDOW_DAYS)
        note = f"{_unindexed(filters)}; searched the last {DEFAULT_WINDOW_DAYS} days day by day"
        note += f" — {_suggestion(filters)}"
    return Plan(INDEX_BY_DAY, "day", tuple(days_back(since, until)), since, until, note)


def _unindexed(filters: Filters) -> str:
    if filters.principal is not None:
        return "no index on an Identity Center role (its callers are indexed by user)"
    if filters.event_name is not None:
        return "no index on event name"
    if filters.severity is not None:
        return "no index on severity"
    return "no filter"


def _suggestion(filters: Filters) -> str:
    if filters.principal is not None:
        return "pass the user's name with --principal, or --secret, to narrow"
    if filters.severity is not None and filters.event_name is None:
        return "add --rule or --secret to narrow"
    return "add --secret or --rule to narrow, or --since to set the window"


def days_back(since: datetime, until: datetime) -> Iterator[str]:
    """The days of a window, newest first, as the by-day index keys them."""
    day = until.astimezone(UTC).date()
    first = since.astimezone(UTC).date()
    while day >= first:
        yield day.isoformat()
        day -= timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Expressions


@dataclass
class Expression:
    """Collects the placeholders of a key condition and a filter: only the ones used."""

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def name(self, path: str) -> str:
        out = []
        for part in path.split("."):
            placeholder = f"#{part}"
            self.names[placeholder] = part
            out.append(placeholder)
        return ".".join(out)

    def value(self, text: str) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = {"S": text}
        return placeholder


def key_condition(expr: Expression, hash_attr: str, hash_value: str, p: Plan) -> str:
    condition = f"{expr.name(hash_attr)} = {expr.value(hash_value)}"
    low = format_time(p.since) if p.since else None
    high = format_time(p.until) + _KEY_END if p.until else None
    if low and high:
        key = expr.name("time_key")
        return f"{condition} AND {key} BETWEEN {expr.value(low)} AND {expr.value(high)}"
    if low:
        return f"{condition} AND {expr.name('time_key')} >= {expr.value(low)}"
    if high:
        return f"{condition} AND {expr.name('time_key')} <= {expr.value(high)}"
    return condition


def filter_expression(expr: Expression, filters: Filters, index: str) -> str | None:
    """The filters the chosen index does not already apply, ANDed together."""
    parts: list[str] = []
    if filters.secret is not None and index != INDEX_BY_SECRET:
        parts.append(f"{expr.name('secret_name')} = {expr.value(filters.secret)}")
    if filters.rule is not None and index != "by-rule":
        value = expr.value(filters.rule)
        parts.append("(" + " OR ".join(f"{expr.name(s)} = {value}" for s in RULE_SLOTS) + ")")
    parts.extend(_principal_filters(expr, filters.principal, index))
    if filters.severity is not None:
        levels = ", ".join(expr.value(s) for s in severities_from(filters.severity))
        parts.append(f"{expr.name('severity')} IN ({levels})")
    if filters.event_name is not None:
        parts.append(f"{expr.name('event_name')} = {expr.value(filters.event_name)}")
    return " AND ".join(parts) or None


def _principal_filters(expr: Expression, who: PrincipalLookup | None, index: str) -> list[str]:
    if who is None:
        return []
    parts = []
    if who.name is not None and index != INDEX_BY_PRINCIPAL:
        parts.append(f"{expr.name('principal_name')} = {expr.value(who.name)}")
    if who.arn is not None:
        arn = expr.value(who.arn)
        parts.append(
            f"({expr.name('principal')} = {arn} OR {expr.name('caller.identity_arn')} = {arn})"
        )
    return parts


# ---------------------------------------------------------------------------------------------
# Queries


def query_index(
    client: DynamoDBClient,
    table: str,
    filters: Filters,
    p: Plan,
    *,
    index: str,
    hash_attr: str,
    hash_value: str,
    newest_first: bool = True,
    page_size: int | None = None,
) -> Iterator[Item]:
    """Every matching item of one index partition, page after page (LastEvaluatedKey)."""
    expr = Expression()
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": key_condition(expr, hash_attr, hash_value, p),
        "ScanIndexForward": not newest_first,
    }
    condition = filter_expression(expr, filters, p.index)
    if condition is not None:
        request["FilterExpression"] = condition
    request["ExpressionAttributeNames"] = expr.names
    request["ExpressionAttributeValues"] = expr.values
    if page_size is not None:
        request["Limit"] = page_size
    while True:
        response = client.query(**request)
        for item in response.get("Items", []):
            yield from_item(item)
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


def merge_newest(streams: Iterable[Iterator[Item]]) -> Iterator[Item]:
    """Merge streams sorted newest first into one, newest first, each event once."""
    seen: set[str] = set()
    for item in heapq.merge(*streams, key=lambda i: str(i["time_key"]), reverse=True):
        if item["event_id"] not in seen:
            seen.add(item["event_id"])
            yield item


def stream(
    client: DynamoDBClient, table: str, filters: Filters, p: Plan, page_size: int | None = None
) -> Iterator[Item]:
    """The matching items, newest first, lazily: stops querying when the reader stops."""
    if p.index == "by-rule":
        return merge_newest(
            query_index(
                client,
                table,
                filters,
                p,
                index=index,
                hash_attr=slot,
                hash_value=p.hash_values[0],
                page_size=page_size,
            )
            for slot, index in RULE_INDEXES.items()
        )
    return itertools.chain.from_iterable(
        query_index(
            client,
            table,
            filters,
            p,
            index=p.index,
            hash_attr=p.hash_attr,
            hash_value=value,
            page_size=page_size,
        )
        for value in p.hash_values
    )


@dataclass(frozen=True)
class SearchResult:
    items: list[Item]
    index: str
    note: str | None


def search(
    client: DynamoDBClient,
    table: str,
    filters: Filters,
    *,
    now: datetime | None = None,
    page_size: int | None = None,
) -> SearchResult:
    """Up to ``filters.limit`` matching items, newest first."""
    p = plan(filters, now or datetime.now(UTC))
    items = list(itertools.islice(stream(client, table, filters, p, page_size), filters.limit))
    return SearchResult(items, p.index, p.note)


def get_record(client: DynamoDBClient, table: str, event_id: str) -> Item | None:
    response = client.get_item(TableName=table, Key={"event_id": {"S": event_id}})
    item = response.get("Item")
    return from_item(item) if item else None


def secret_history(
    client: DynamoDBClient,
    table: str,
    secret: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int | None = None,
) -> list[Item]:
    """Every event of one secret in the window, oldest first."""
    filters = Filters(secret=secret, since=since, until=until)
    p = Plan(INDEX_BY_SECRET, "secret_name", (secret,), since, until)
    return list(
        query_index(
            client,
            table,
            filters,
            p,
            index=p.index,
            hash_attr=p.hash_attr,
            hash_value=secret,
            newest_first=False,
            page_size=page_size,
        )
    )


# ---------------------------------------------------------------------------------------------
# Rows and sentences

ROW_FIELDS = (
    "time",
    "event_name",
    "secret",
    "principal",
    "source_ip",
    "severity",
    "rules",
    "error",
    "event_id",
)


def summary_row(item: Mapping[str, Any]) -> dict[str, str]:
    """One flat row per item: the table and CSV columns."""
    caller = item.get("caller") or {}
    return {
        "time": display_time(item.get("event_time")),
        "event_name": str(item.get("event_name") or ("(rejected)" if item.get("error") else "")),
        "secret": str(item.get("secret_name") or ""),
        "principal": str(caller.get("name") or item.get("principal") or ""),
        "source_ip": str((item.get("source") or {}).get("ip") or ""),
        "severity": str(item.get("severity") or ""),
        "rules": " ".join(str(f.get("rule")) for f in item.get("findings") or []),
        "error": str(item.get("error_code") or item.get("error") or ""),
        "event_id": str(item.get("event_id") or ""),
    }


def who(item: Mapping[str, Any]) -> str:
    """The caller, as a person would say it: "alice@example.com (SSO AdministratorAccess)"."""
    caller: Mapping[str, Any] = item.get("caller") or {}
    if caller.get("sso_user"):
        permission_set = caller.get("sso_permission_set")
        return (
            f"{caller['sso_user']} (SSO {permission_set})"
            if permission_set
            else str(caller["sso_user"])
        )
    if caller.get("type") == "Root":
        return "root"
    if caller.get("user_name") and caller.get("type") == "IAMUser":
        return f"{caller['user_name']} (IAM user)"
    if caller.get("role_name"):
        session = caller.get("session_name")
        return f"role {caller['role_name']}" + (f" (session {session})" if session else "")
    return str(
        caller.get("invoked_by")
        or caller.get("name")
        or item.get("principal")
        or "an unknown caller"
    )


def _origin(item: Mapping[str, Any]) -> str:
    ip = str((item.get("source") or {}).get("ip") or "")
    if not ip or ip == "AWS Internal" or ip.endswith(".amazonaws.com"):
        return ""
    return f" from {ip}"


def _rules_at(item: Mapping[str, Any], rule: str) -> set[str]:
    return {str(f.get("severity")) for f in item.get("findings") or [] if f.get("rule") == rule}


def _what(item: Mapping[str, Any]) -> str:
    """What happened, without who: one phrase per event name, a generic one otherwise."""
    name = str(item.get("event_name") or "")
    request: Mapping[str, Any] = item.get("request") or {}
    error = item.get("error_message")
    phrase = _PHRASES.get(name)
    if phrase is not None:
        return phrase
    if name == "PutSecretValue":
        stages = request.get("version_stages") or []
        return "new pending value stored (rotation)" if "AWSPENDING" in stages else "value changed"
    if name == "UpdateSecret":
        if request.get("new_version_id"):
            return "value changed"
        if request.get("kms_key_id"):
            return f"encryption key changed to {request['kms_key_id']}"
        return "details updated"
    if name == "RotateSecret":
        if request.get("rotation_after_days"):
            return f"rotation set up (every {request['rotation_after_days']} days)"
        if request.get("rotation_schedule"):
            return f"rotation set up ({request['rotation_schedule']})"
        return "rotation set up" if request.get("rotation_lambda_arn") else "rotation started"
    if name in {"RotationFailed", "TestRotationFailed"}:
        test = "test " if name.startswith("Test") else ""
        return f"{test}rotation failed" + (f": {error}" if error else "")
    if name == "DeleteSecret":
        if request.get("force_delete_without_recovery"):
            return "deleted immediately (no recovery window)"
        days = request.get("recovery_window_days") or 30
        return f"deletion scheduled ({days}-day recovery window)"
    if name == "GetSecretValue":
        return (
            "read while pending deletion"
            if _rules_at(item, "access-while-pending-deletion")
            else "value read"
        )
    if name == "PutResourcePolicy":
        levels = _rules_at(item, "resource-policy-changed")
        return "policy changed" + (
            " (public!)"
            if "critical" in levels
            else " (grants another account)"
            if "high" in levels
            else ""
        )
    if name in {"ReplicateSecretToRegions", "RemoveRegionsFromReplication"}:
        key = "add_replica_regions" if name.startswith("Replicate") else "remove_replica_regions"
        regions = ", ".join(request.get(key) or []) or "?"
        return ("replicated to " if key.startswith("add") else "replicas removed from ") + regions
    if name == "UpdateSecretVersionStage":
        return f"version stage {', '.join(request.get('version_stages') or []) or '?'} moved"
    return name or "unknown event"


_PHRASES = {
    "CreateSecret": "created",
    "CancelRotateSecret": "rotation turned off",
    "RotationStarted": "rotation started",
    "RotationSucceeded": "rotation succeeded",
    "RotationAbandoned": "rotation abandoned",
    "TestRotationStarted": "test rotation started",
    "TestRotationSucceeded": "test rotation succeeded",
    "RestoreSecret": "restored",
    "DeleteResourcePolicy": "policy removed",
    "TagResource": "tagged",
    "UntagResource": "tags removed",
    "StopReplicationToReplica": "replication stopped (replica promoted to a standalone secret)",
}
# Service events: the secret's own machinery acts, nobody to name.
_SERVICE_EVENTS = {name for name in _PHRASES if name.startswith(("Rotation", "TestRotation"))} | {
    "RotationFailed",
    "TestRotationFailed",
}


def sentence(item: Mapping[str, Any]) -> str:
    """One event as one sentence: what, by whom, from where, refused or not."""
    if item.get("kind") == "rejected":
        return f"unreadable record kept for replay: {item.get('error')}"
    text = _what(item)
    if item.get("event_name") not in _SERVICE_EVENTS:
        text += f" by {who(item)}{_origin(item)}"
    if item.get("error_code"):
        text += f" — refused ({item['error_code']})"
    return text


def findings_text(item: Mapping[str, Any]) -> str:
    return ", ".join(f"{f.get('severity')}: {f.get('rule')}" for f in item.get("findings") or [])


def timeline_row(item: Mapping[str, Any]) -> dict[str, str]:
    return {
        "time": display_time(item.get("event_time")),
        "sentence": sentence(item),
        "severity": str(item.get("severity") or ""),
        "findings": findings_text(item),
        "event_name": str(item.get("event_name") or ""),
        "event_id": str(item.get("event_id") or ""),
    }


def to_json(item: Mapping[str, Any]) -> str:
    return dumps(item, sort_keys=True)
