"""Whole audit items for the keys an index gave: BatchGetItem, 100 keys a call, in key order.

The table's indexes project keys and a few filter attributes only (template.yaml, docs/cost.md):
an index query says which records match, and this module reads them from the table. DynamoDB
may leave keys unprocessed (throttling, the 16 MB response limit); they are asked again with
exponential backoff, and a key still unprocessed after the last attempt fails the read rather
than silently dropping a record. A key with no item (TTL deleted it between the index read and
this one; index updates are eventually consistent) is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.audit.items import BATCH_GET_MAX
from shared.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesTypeDef

RawItem = dict[str, Any]  # an item in DynamoDB JSON ({"S": ...})
MAX_ATTEMPTS = 6


def batch_get(
    client: DynamoDBClient,
    table: str,
    event_ids: Sequence[str],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[RawItem]:
    """The items of ``event_ids`` (at most 100), in that order; missing ones left out."""
    if len(event_ids) > BATCH_GET_MAX:
        raise ValueError(f"at most {BATCH_GET_MAX} keys per BatchGetItem, got {len(event_ids)}")
    wanted = list(dict.fromkeys(event_ids))
    request: KeysAndAttributesTypeDef = {"Keys": [{"event_id": {"S": i}} for i in wanted]}
    if projection is not None:
        # event_id is always read back: it is how the answers are put in order.
        request["ProjectionExpression"] = f"event_id, {projection}"
        if names:
            request["ExpressionAttributeNames"] = dict(names)
    found: dict[str, RawItem] = {}
    attempt = 0
    while request["Keys"]:
        response = client.batch_get_item(RequestItems={table: request})
        for item in response.get("Responses", {}).get(table, []):
            found[str(item["event_id"]["S"])] = item
        unprocessed: Any = response.get("UnprocessedKeys", {})
        request["Keys"] = list(unprocessed.get(table, {}).get("Keys", []))
        if request["Keys"]:
            attempt += 1
            if attempt >= max_attempts:
                raise DeliveryError(
                    f"could not read audit records: DynamoDB left {len(request['Keys'])} keys "
                    f"unprocessed after {attempt} attempts"
                )
            sleep(min(0.05 * 2**attempt, 2.0))
    return [found[i] for i in wanted if i in found]


def full_items(
    client: DynamoDBClient,
    table: str,
    entries: Iterable[Mapping[str, Any]],
    *,
    wanted: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RawItem]:
    """The table's items for index entries (each with ``event_id``), lazily, in entry order.

    Up to 100 keys a call, and no more than the ``wanted`` items still missing: a look-up
    wanting 5 records reads 5, not a hundred, and the index query is not read ahead for them.
    (When the reader drops some of them, ``wanted`` is a lower bound: the next call asks for at
    least one more.) The reader stopping stops the index query too.
    """
    given = 0
    pending: list[str] = []

    def size() -> int:
        left = BATCH_GET_MAX if wanted is None else wanted - given
        return max(1, min(BATCH_GET_MAX, left))

    for entry in entries:
        pending.append(str(entry["event_id"]))
        if len(pending) >= size():
            batch = batch_get(client, table, pending, sleep=sleep)
            given += len(pending)
            pending = []
            yield from batch
    if pending:
        yield from batch_get(client, table, pending, sleep=sleep)
