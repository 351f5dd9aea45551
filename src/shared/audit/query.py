"""The audit table's reader: look-ups always through its keys and indexes, never a Scan.

The table (``shared.audit``) is keyed by ``event_id``; every GSI is sorted by ``time_key``
(``<eventTime>#<event_id>``), so a time window is a key condition on ``time_key`` and "newest
first" is ``ScanIndexForward=False``. A look-up picks the most selective index the filters allow
(secret > rule > principal > day) and applies the other filters as a FilterExpression. Key values
are bounded in bytes exactly as the writer bounds them, so a long secret name is still found.

The indexes project their keys and the few attributes the filters need (``PROJECTED``, as
template.yaml declares them), not whole items: a query finds the matching records and
``shared.audit.fetch`` reads them whole from the table, 100 a call, in index order. A filter on
what no index holds (a principal's ARN, which may be the nested ``caller.identity_arn``) is applied
to the whole items, as is every other filter again (an index entry may lag its item).

A time window is inclusive at both ends, to the second (CloudTrail's resolution).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import bounds
from shared.audit.codec import from_item
from shared.audit.fetch import full_items
from shared.audit.items import (
    INDEX_BY_DAY,
    INDEX_BY_PRINCIPAL,
    INDEX_BY_SECRET,
    RULE_INDEXES,
    RULE_SLOTS,
    event_key,
)
from shared.models import SEVERITIES, SEVERITY_RANK, format_time
from shared.normalise import SSO_ROLE_PREFIX, secret_from_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_WINDOW_DAYS = 30
# A day-by-day plan costs one Query per day: a window of years would run thousands of them
# without a word. Longer windows are cut to this many days (newest first), and the note says
# so; Filters.max_days raises it deliberately.
DEFAULT_MAX_DAYS = 90
DEFAULT_LIMIT = 50
_KEY_END = "#\uffff"  # sorts after "<time>#<any event id>": the inclusive upper bound of a second
# The non-key attributes every index projects (template.yaml AuditTable, tests/template checks
# the two agree): what a FilterExpression on an index may name.
PROJECTED = (
    "secret_name",
    "principal_name",
    *RULE_SLOTS,
    "severity",
    "event_name",
    "account_id",
    "error_code",
)

Item = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Filters and the query plan


@dataclass(frozen=True)
class PrincipalLookup:
    """``name``: the by-principal key (None: no key serves it); ``arn``: a filter on the ARN."""

    name: str | None
    arn: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:  # bounded in bytes exactly as the writer bounds it
            object.__setattr__(self, "name", bounds.key(self.name))


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
    account: str | None = None  # the record's account (central mode holds many)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    max_days: int = DEFAULT_MAX_DAYS  # the longest day-by-day plan


def secret_name(value: str) -> str:
    """A secret name, partial ARN or full ARN → the key the items are indexed by."""
    return bounds.key(secret_from_id(value.strip()).name)


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
    until = until or now.astimezone(UTC).replace(microsecond=0)
    note = None
    if since is None:
        since = until - timedelta(days=DEFAULT_WINDOW_DAYS)
        note = f"{_unindexed(filters)}; searched the last {DEFAULT_WINDOW_DAYS} days day by day"
        note += f" — {_suggestion(filters)}"
    span = (until.astimezone(UTC).date() - since.astimezone(UTC).date()).days + 1
    if span > filters.max_days:
        first = until.astimezone(UTC).date() - timedelta(days=filters.max_days - 1)
        since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        note = (
            f"the window spans {span} days and no index serves this look-up: searched only the "
            f"last {filters.max_days} days day by day (from {first.isoformat()}); pass "
            f"--max-days {span} to search it all (one query per day), or {_suggestion(filters)}"
        )
    return Plan(INDEX_BY_DAY, "day", tuple(days_back(since, until)), since, until, note)


def _unindexed(filters: Filters) -> str:
    if filters.principal is not None:
        return "no index on an Identity Center role (its callers are indexed by user)"
    if filters.event_name is not None:
        return "no index on event name"
    if filters.severity is not None:
        return "no index on severity"
    if filters.account is not None:
        return "no index on account"
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
    who = filters.principal
    if who is not None and who.name is not None and index != INDEX_BY_PRINCIPAL:
        parts.append(f"{expr.name('principal_name')} = {expr.value(who.name)}")
    if filters.severity is not None:
        levels = ", ".join(expr.value(s) for s in severities_from(filters.severity))
        parts.append(f"{expr.name('severity')} IN ({levels})")
    if filters.event_name is not None:
        parts.append(f"{expr.name('event_name')} = {expr.value(filters.event_name)}")
    if filters.account is not None:
        parts.append(f"{expr.name('account_id')} = {expr.value(filters.account)}")
    return " AND ".join(parts) or None


def matches(item: Item, filters: Filters) -> bool:
    """Whether a whole item meets every filter but the time window (the key condition's)."""
    if filters.secret is not None and item.get("secret_name") != filters.secret:
        return False
    if filters.rule is not None and filters.rule not in {item.get(s) for s in RULE_SLOTS}:
        return False
    who = filters.principal
    if who is not None:
        if who.name is not None and item.get("principal_name") != who.name:
            return False
        caller = item.get("caller") or {}
        if who.arn is not None and who.arn not in {
            item.get("principal"),
            caller.get("identity_arn"),
        }:
            return False
    if filters.severity is not None and item.get("severity") not in severities_from(
        filters.severity
    ):
        return False
    if filters.event_name is not None and item.get("event_name") != filters.event_name:
        return False
    return filters.account is None or item.get("account_id") == filters.account


def whole(
    client: DynamoDBClient,
    table: str,
    entries: Iterable[Item],
    filters: Filters,
    wanted: int | None = None,
) -> Iterator[Item]:
    """The whole items of index entries, in their order, that meet the filters."""
    for raw in full_items(client, table, entries, wanted=wanted):
        item = from_item(raw)
        if matches(item, filters):
            yield item


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
    """The matching entries of one index partition (keys and projected attributes), page
    after page (LastEvaluatedKey)."""
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
    """The matching index entries, newest first, lazily: stops querying when the reader stops."""
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
    entries = stream(client, table, filters, p, page_size)
    found = whole(client, table, entries, filters, wanted=filters.limit)
    return SearchResult(list(itertools.islice(found, filters.limit)), p.index, p.note)


def get_record(client: DynamoDBClient, table: str, event_id: str) -> Item | None:
    response = client.get_item(TableName=table, Key={"event_id": {"S": event_key(event_id)}})
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
    entries = query_index(
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
    return list(whole(client, table, entries, filters))
