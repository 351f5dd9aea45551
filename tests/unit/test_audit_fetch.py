"""Whole items for index entries: BatchGetItem in order, 100 keys a call, unprocessed keys again."""

from __future__ import annotations

from typing import Any

import pytest

from shared.audit.fetch import batch_get, full_items
from shared.errors import DeliveryError

TABLE = "audit"


class FakeDynamoDB:
    """Answers BatchGetItem in reverse order, leaving the first ``unprocessed`` calls' last key."""

    def __init__(self, present: set[str], unprocessed: int = 0) -> None:
        self.present = present
        self.unprocessed = unprocessed
        self.requests: list[list[str]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        keys = [k["event_id"]["S"] for k in RequestItems[TABLE]["Keys"]]
        self.requests.append(keys)
        left: list[str] = []
        if self.unprocessed > 0:
            self.unprocessed -= 1
            left, keys = keys[-1:], keys[:-1]
        items = [{"event_id": {"S": k}, "n": {"N": k[1:]}} for k in keys if k in self.present]
        return {
            "Responses": {TABLE: list(reversed(items))},
            "UnprocessedKeys": {TABLE: {"Keys": [{"event_id": {"S": k}} for k in left]}}
            if left
            else {},
        }


def ids(n: int) -> list[str]:
    return [f"e{i}" for i in range(n)]


def test_items_come_back_in_the_order_asked_missing_ones_left_out() -> None:
    # GIVEN five keys, one of them without an item (TTL deleted it after the index read)
    client: Any = FakeDynamoDB(set(ids(5)) - {"e2"})
    # WHEN reading them
    items = batch_get(client, TABLE, ids(5))
    # THEN in the order asked, despite DynamoDB's order, without the missing one
    assert [i["event_id"]["S"] for i in items] == ["e0", "e1", "e3", "e4"]


def test_unprocessed_keys_are_asked_again_with_backoff() -> None:
    # GIVEN DynamoDB leaving a key unprocessed twice
    client: Any = FakeDynamoDB(set(ids(3)), unprocessed=2)
    pauses: list[float] = []
    # WHEN reading
    items = batch_get(client, TABLE, ids(3), sleep=pauses.append)
    # THEN every item, after two more calls for the key left, each after a longer pause
    assert [i["event_id"]["S"] for i in items] == ids(3)
    assert client.requests == [ids(3), ["e2"], ["e2"]]
    assert pauses == [0.1, 0.2]


def test_a_key_left_unprocessed_every_time_fails_the_read() -> None:
    # GIVEN DynamoDB never processing the last key
    client: Any = FakeDynamoDB(set(ids(2)), unprocessed=99)
    # WHEN / THEN the read fails after the attempts, rather than silently dropping a record
    with pytest.raises(DeliveryError, match="unprocessed"):
        batch_get(client, TABLE, ids(2), sleep=lambda _: None, max_attempts=3)


def test_more_than_100_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 100"):
        batch_get(FakeDynamoDB(set()), TABLE, ids(101))  # type: ignore[arg-type]


def test_full_items_reads_100_keys_a_call_lazily_in_entry_order() -> None:
    # GIVEN 250 index entries
    client: Any = FakeDynamoDB(set(ids(250)))
    entries = ({"event_id": i} for i in ids(250))
    # WHEN reading them whole
    items = list(full_items(client, TABLE, entries))
    # THEN in entry order, in calls of 100, 100 and 50
    assert [i["event_id"]["S"] for i in items] == ids(250)
    assert [len(r) for r in client.requests] == [100, 100, 50]


def test_full_items_reads_no_more_than_the_reader_takes() -> None:
    # GIVEN 250 entries and a reader wanting 5 (as search passes its limit)
    client: Any = FakeDynamoDB(set(ids(250)))
    pulled: list[str] = []

    def entries() -> Any:
        for i in ids(250):
            pulled.append(i)
            yield {"event_id": i}

    # WHEN the reader takes five
    stream = full_items(client, TABLE, entries(), wanted=5)
    taken = [next(stream) for _ in range(5)]
    # THEN five keys were read, in one call, and no more entries pulled
    assert [i["event_id"]["S"] for i in taken] == ids(5)
    assert client.requests == [ids(5)]
    assert pulled == ids(5)


def test_full_items_asks_only_for_what_is_still_wanted() -> None:
    # GIVEN 250 entries and a reader wanting 230
    client: Any = FakeDynamoDB(set(ids(250)))
    # WHEN reading them whole
    items = list(full_items(client, TABLE, ({"event_id": i} for i in ids(250)), wanted=230))
    # THEN 100, 100, then the 30 still wanted; what follows (the reader would have stopped) in
    # calls of one
    assert [len(r) for r in client.requests[:3]] == [100, 100, 30]
    assert set(map(len, client.requests[3:])) <= {1}
    assert [i["event_id"]["S"] for i in items] == ids(250)
