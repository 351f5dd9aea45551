"""DynamoDB item sizes and write units of audit items, by DynamoDB's documented size rules.

Not on the Lambda path: the tests (tests/unit/test_item_cost.py) and docs/cost.md use it.

Size rules (Amazon DynamoDB Developer Guide, "DynamoDB item sizes and formats"):
- a string: UTF-8 bytes of the attribute name + UTF-8 bytes of the value;
- a number: name bytes + 1 byte per two significant digits (leading and trailing zeros trimmed)
  + 1 byte;
- a binary: name bytes + raw bytes; a Boolean or null: name bytes + 1 byte;
- a list or map: name bytes + 3 bytes + the sizes of its elements + 1 byte per element (a map
  element's size includes its own name; a list element has none);
- a set: name bytes + the sizes of its members.
A write costs one write unit per 1 KB of the item, rounded up, on the table and again on each
global secondary index the item lands in (a GSI entry is the table key, the index key and the
projected attributes; we add DynamoDB's 100-byte per-entry overhead, which the guide documents
for storage, to the entry's write size too: a conservative reading). Storage is billed on the
item plus 100 bytes per item in the table and per entry in each index.

``python -m scripts.ddb_cost`` prints the figures docs/cost.md gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
INDEX_OVERHEAD = 100  # bytes per item and per index entry (storage; here also write size)
UNIT = 1024  # one write unit per KB


def _name(name: str | None) -> int:
    return len(name.encode("utf-8")) if name is not None else 0


def _digits(number: Any) -> int:
    text = format(abs(Decimal(str(number))), "f").replace(".", "").strip("0")
    return max(len(text), 1)


def value_size(value: Mapping[str, Any], name: str | None = None) -> int:
    """The size of one attribute value in DynamoDB JSON ({"S": ...}), with its name if given."""
    (kind, inner), *_ = value.items()
    head = _name(name)
    if kind == "S":
        return head + len(str(inner).encode("utf-8"))
    if kind == "N":
        return head + math.ceil(_digits(inner) / 2) + 1
    if kind == "B":
        return head + len(bytes(inner))
    if kind in {"BOOL", "NULL"}:
        return head + 1
    if kind == "SS":
        return head + sum(len(str(v).encode("utf-8")) for v in inner)
    if kind == "NS":
        return head + sum(math.ceil(_digits(v) / 2) + 1 for v in inner)
    if kind == "BS":
        return head + sum(len(bytes(v)) for v in inner)
    if kind == "L":
        return head + 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return head + 3 + sum(value_size(v, k) + 1 for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size of an item in DynamoDB JSON, in bytes (what write units are counted on)."""
    return sum(value_size(v, k) for k, v in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / UNIT))


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]  # the index's key attributes (hash, range)
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...] = ()


def template_indexes(
    resource: str = "AuditTable", template: Path = TEMPLATE
) -> tuple[tuple[str, ...], list[Index]]:
    """The table's key attributes and its GSIs, as template.yaml declares them."""

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load(template.read_text(), Loader=_Loader)  # noqa: S506 — SafeLoader subclass
    props = document["Resources"][resource]["Properties"]
    table_keys = tuple(k["AttributeName"] for k in props["KeySchema"])
    indexes = [
        Index(
            spec["IndexName"],
            tuple(k["AttributeName"] for k in spec["KeySchema"]),
            spec["Projection"]["ProjectionType"],
            tuple(spec["Projection"].get("NonKeyAttributes", ())),
        )
        for spec in props.get("GlobalSecondaryIndexes", [])
    ]
    return table_keys, indexes


def index_entry(
    item: Mapping[str, Mapping[str, Any]], index: Index, table_keys: Sequence[str]
) -> dict[str, Any] | None:
    """The entry ``item`` makes in ``index`` (None: sparse, the item lacks a key attribute)."""
    if any(key not in item for key in index.keys):
        return None
    if index.projection == "ALL":
        return dict(item)
    wanted = {*table_keys, *index.keys}
    if index.projection == "INCLUDE":
        wanted |= set(index.included)
    return {k: v for k, v in item.items() if k in wanted}


@dataclass(frozen=True)
class Cost:
    size: int  # bytes of the item
    table_units: int
    index_units: dict[str, int]  # per index it lands in
    storage: int  # bytes billed: item + entries, each with its 100-byte overhead

    @property
    def write_units(self) -> int:
        return self.table_units + sum(self.index_units.values())


def cost(item: Mapping[str, Mapping[str, Any]], resource: str = "AuditTable") -> Cost:
    """Write units and stored bytes of one new item, under the template's indexes."""
    table_keys, indexes = template_indexes(resource)
    size = item_size(item)
    units: dict[str, int] = {}
    storage = size + INDEX_OVERHEAD
    for index in indexes:
        entry = index_entry(item, index, table_keys)
        if entry is None:
            continue
        entry_size = item_size(entry) + INDEX_OVERHEAD
        units[index.name] = write_units(entry_size)
        storage += entry_size
    return Cost(size, write_units(size), units, storage)


# Unit prices: us-east-1, on-demand, Standard table class, as AWS lists them since the
# November 2024 on-demand price cut (the review used the same), taken 2026-12-03 from
# that review, not re-read online (no network here): check the pricing pages before relying on
# them. Free tiers are ignored.
PRICE_WRITE_PER_MILLION = 0.625  # write request units
PRICE_READ_PER_MILLION = 0.125  # read request units
PRICE_STORAGE_GB_MONTH = 0.25
PRICE_PITR_GB_MONTH = 0.20  # continuous backups, on the table's size (indexes are rebuilt)
PRICE_LOGS_INGESTION_GB = 0.50  # CloudWatch Logs, Standard log class
DAYS_PER_MONTH = 30
GB = 1024**3


@dataclass(frozen=True)
class Monthly:
    writes: float
    storage: float
    pitr: float

    @property
    def total(self) -> float:
        return self.writes + self.storage + self.pitr


def monthly(reads_per_day: int, figures: Cost, retention_days: int) -> Monthly:
    """The audit table's monthly cost of routine reads alone, at steady state (the table
    holding ``retention_days`` of them)."""
    items = reads_per_day * retention_days
    return Monthly(
        writes=reads_per_day * DAYS_PER_MONTH * figures.write_units / 1e6 * PRICE_WRITE_PER_MILLION,
        storage=items * figures.storage / GB * PRICE_STORAGE_GB_MONTH,
        pitr=items * (figures.size + INDEX_OVERHEAD) / GB * PRICE_PITR_GB_MONTH,
    )


def main() -> None:
    """Print the figures for docs/cost.md."""
    from tests.cost_samples import samples

    for label, item in samples().items():
        figures = cost(item)
        print(
            f"{label:<16} item {figures.size:>5} B  table {figures.table_units} WCU  "
            f"indexes {figures.index_units}  total {figures.write_units} WCU  "
            f"stored {figures.storage} B"
        )
    routine = cost(samples()["routine read"])
    for reads in (10_000, 1_000_000, 100_000_000):
        after = monthly(reads, routine, 90)
        print(
            f"{reads:>11,} reads/day: writes ${after.writes:,.2f}  storage ${after.storage:,.2f}"
            f"  PITR ${after.pitr:,.2f}  total ${after.total:,.2f}"
        )


if __name__ == "__main__":
    main()
