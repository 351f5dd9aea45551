"""Who read a secret recently, from the audit trail: one bounded query on the by-secret index.

Successful reads reach the audit table by the CloudWatch Logs route (EventBridge delivers only
failed reads). For a deletion, the reads of the secret in the 7 days before it are counted per
principal. The query is bounded: a page size, a page limit (a secret read every second would
otherwise cost thousands of pages on the path of one alert), and every principal kept is cut to a
byte budget as ``shared.bounds`` cuts text. The index holds keys and filter attributes only, so
the reads it finds are then read from the table with BatchGetItem (100 a call, four attributes:
the principal, the caller's identity, the time, and the error message that tells a failed read
without an error code). Answers are cached for one invocation. Any failure becomes ``RecentReads.failed``: the alert goes out saying
the readers are unknown.

A read is counted under the IAM identity behind the session (``caller.identity_arn``: the role,
not each of its sessions), else the principal.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared import bounds
from shared.audit.fetch import batch_get
from shared.audit.items import BATCH_GET_MAX, INDEX_BY_SECRET
from shared.errors import DeliveryError
from shared.impact import READ_WINDOW_DAYS, Reader, RecentReads
from shared.models import format_time

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from shared.enrich import EnrichStats
    from shared.models import CloudTrailRecord

logger = logging.getLogger("secretwatch." + __name__.rpartition(".")[2])

API_RECENT_READS = "Query (recent readers)"
READ_EVENTS = ("GetSecretValue", "BatchGetSecretValue")
PAGE_SIZE = 250  # items DynamoDB evaluates per page (the filter applies after the limit)
MAX_PAGES = 4  # at most 1,000 audit items read per deletion
LISTED_READERS = 5  # readers listed by name in the alert and the item
PRINCIPAL_MAX_BYTES = 1024
_KEY_END = "#\uffff"  # after "<time>#<any event id>": the window includes its last second
UNKNOWN_PRINCIPAL = "(unknown principal)"
_ITEM_NAMES = {
    "#p": "principal",
    "#c": "caller",
    "#i": "identity_arn",
    "#w": "event_time",
    "#em": "error_message",
}


class RecentReaders:
    """Counts the successful reads of a secret in the window before a record's time."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        stats: EnrichStats | None = None,
        window_days: int = READ_WINDOW_DAYS,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self._db = dynamodb
        self._table = table_name
        self._stats = stats
        self._window = timedelta(days=window_days)
        self._window_days = window_days
        self._page_size = page_size
        self._max_pages = max_pages
        # Per invocation, by secret: a batch deleting one secret twice asks once.
        self._cache: dict[str, RecentReads] = {}

    def new_invocation(self) -> None:
        self._cache.clear()

    def recent_reads(self, record: CloudTrailRecord) -> RecentReads:
        assert record.secret is not None  # only deletions of a named secret are looked up
        secret_key = bounds.key(record.secret.name)  # as the writer bounds it
        cached = self._cache.get(secret_key)
        if cached is not None:
            if self._stats is not None:
                self._stats.cache_hits[API_RECENT_READS] += 1
            return cached
        if self._stats is not None:
            self._stats.calls[API_RECENT_READS] += 1
        try:
            result = self._query(secret_key, record.event_time)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "UnknownError")
            result = self._failed(record, code)
        except BotoCoreError as exc:
            result = self._failed(record, type(exc).__name__)
        except DeliveryError:  # BatchGetItem kept leaving keys unprocessed
            result = self._failed(record, "UnprocessedKeys")
        self._cache[secret_key] = result
        return result

    def _failed(self, record: CloudTrailRecord, code: str) -> RecentReads:
        if self._stats is not None:
            self._stats.failures[API_RECENT_READS] += 1
        logger.warning(
            "recent readers look-up failed",
            extra={"api": API_RECENT_READS, "error_code": code},
        )
        return RecentReads.failed(self._window_days, record.event_time, f"audit query: {code}")

    def _query(self, secret_key: str, until: datetime) -> RecentReads:
        since = until - self._window
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX_BY_SECRET,
            "KeyConditionExpression": "#s = :s AND #t BETWEEN :lo AND :hi",
            # On projected attributes only (template.yaml): the rest is checked on the items.
            "FilterExpression": "#n IN (:get, :batch) AND attribute_not_exists(#ec)",
            "ExpressionAttributeNames": {
                "#s": "secret_name",
                "#t": "time_key",
                "#n": "event_name",
                "#ec": "error_code",
            },
            "ExpressionAttributeValues": {
                ":s": {"S": secret_key},
                ":lo": {"S": format_time(since)},
                ":hi": {"S": format_time(until) + _KEY_END},
                ":get": {"S": READ_EVENTS[0]},
                ":batch": {"S": READ_EVENTS[1]},
            },
            "ScanIndexForward": False,  # newest first: a cut-off count keeps the latest reads
            "Limit": self._page_size,
        }
        counts: Counter[str] = Counter()
        last: dict[str, datetime] = {}
        complete = False
        for _ in range(self._max_pages):
            response = self._db.query(**request)
            for item in self._whole(response.get("Items", [])):
                if "error_message" in item:
                    continue  # a failed read that carries no error code
                who, when = _reader(item)
                if when is None:
                    continue
                counts[who] += 1
                if who not in last or when > last[who]:
                    last[who] = when
            start = response.get("LastEvaluatedKey")
            if not start:
                complete = True
                break
            request["ExclusiveStartKey"] = start
        return _summary(counts, last, self._window_days, until, complete)

    def _whole(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The attributes a count needs, read from the table for these index entries."""
        ids = [str(entry["event_id"]["S"]) for entry in entries]
        items: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH_GET_MAX):
            items += batch_get(
                self._db,
                self._table,
                ids[start : start + BATCH_GET_MAX],
                projection="#p, #c.#i, #w, #em",
                names=_ITEM_NAMES,
            )
        return items


def _reader(item: dict[str, Any]) -> tuple[str, datetime | None]:
    caller = item.get("caller", {}).get("M", {})
    name = caller.get("identity_arn", {}).get("S") or item.get("principal", {}).get("S")
    who = bounds.text(name, PRINCIPAL_MAX_BYTES) if name else UNKNOWN_PRINCIPAL
    stamp = item.get("event_time", {}).get("S")
    try:
        when = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        when = None  # a hand-edited item: not counted rather than failing the alert
    return who, when


def _summary(
    counts: Counter[str],
    last: dict[str, datetime],
    window_days: int,
    until: datetime,
    complete: bool,
) -> RecentReads:
    ranked = sorted(counts, key=lambda who: (-counts[who], -last[who].timestamp(), who))
    readers = tuple(Reader(who, counts[who], last[who]) for who in ranked[:LISTED_READERS])
    latest = max(last, key=lambda who: last[who]) if last else None
    return RecentReads(
        window_days,
        until,
        reads=sum(counts.values()),
        principal_count=len(counts),
        readers=readers,
        last_read=last[latest] if latest else None,
        last_reader=latest,
        complete=complete,
    )
