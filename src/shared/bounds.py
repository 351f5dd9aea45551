"""DynamoDB's limits, checked in bytes before anything is written.

Every field of a CloudTrail record is chosen by the caller, and DynamoDB refuses an item whose
partition key exceeds 2,048 bytes, whose sort key exceeds 1,024 bytes (index keys included),
whose size exceeds 400 KB, or whose numbers have more than 38 significant digits. One such item
must not cost the rest of a batch, so items are bounded here first:

- key attributes longer than their limit keep a readable prefix and end with a hash of the
  whole value (:func:`key`), so two long keys stay distinct and a look-up that bounds its value
  the same way still finds them;
- free text is cut to a byte budget at a character boundary (:func:`text`);
- integers beyond 38 digits, and NaN or Infinity, are kept as strings; other floats as Decimal;
- values nested deeper than DynamoDB's 32 levels are replaced by a note;
- :func:`item_size` estimates the stored size, so an item that still cannot be stored is
  replaced by a small one that says why.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

PARTITION_KEY_MAX = 2048
SORT_KEY_MAX = 1024
ITEM_MAX = 400 * 1024
TEXT_MAX = 4096  # bytes for a free-text attribute unless the item's layout says otherwise
NUMBER_DIGITS_MAX = 38
NESTING_MAX = 32
_INT_LIMIT = 10**NUMBER_DIGITS_MAX
_HASH_CHARS = 32
_CUT = "…"


def _valid(value: str) -> str:
    """DynamoDB stores UTF-8: lone surrogates (possible in decoded JSON) become U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value


def _prefix(data: bytes, limit: int) -> str:
    """The longest prefix of ``data`` that fits ``limit`` bytes and ends on a character."""
    return data[: max(limit, 0)].decode("utf-8", "ignore")


def key(value: str, limit: int = PARTITION_KEY_MAX) -> str:
    """``value`` as a key attribute of at most ``limit`` bytes, unique and deterministic."""
    value = _valid(value)
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    digest = hashlib.sha256(data).hexdigest()[:_HASH_CHARS]
    tail = f"{_CUT}#{digest}"
    return _prefix(data, limit - len(tail.encode("utf-8"))) + tail


def text(value: str, limit: int = TEXT_MAX) -> str:
    """Free text cut to at most ``limit`` bytes, ending with an ellipsis when cut."""
    value = _valid(value)
    if len(value) * 4 <= limit:  # cheap: no character takes more than 4 bytes
        return value
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    return _prefix(data, limit - len(_CUT.encode("utf-8"))) + _CUT


def number(value: int | float | Decimal) -> int | Decimal | str:
    """A number DynamoDB can store, or its text when it cannot (too many digits, NaN, ∞)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT < value < _INT_LIMIT:
            return value
        try:
            return str(value)
        except ValueError:  # more digits than Python converts to text
            return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        value = Decimal(repr(value))
    if not value.is_finite():
        return str(value)
    exponent = value.adjusted()
    if len(value.as_tuple().digits) > NUMBER_DIGITS_MAX or not -130 <= exponent <= 125:
        return str(value)
    return value


def bound(
    value: Any,
    *,
    keys: Mapping[str, int] | None = None,
    limits: Mapping[str, int] | None = None,
    default_limit: int = TEXT_MAX,
) -> tuple[Any, list[str]]:
    """A copy of an item (or any value) within DynamoDB's limits, and the paths it had to cut.

    ``keys`` names top-level key attributes and their byte limit; ``limits`` gives free-text
    byte limits by dotted path (``request.resource_policy``); other strings get
    ``default_limit``.
    """
    cut: list[str] = []
    key_limits = keys or {}
    text_limits = limits or {}

    def walk(item: Any, path: str, depth: int) -> Any:
        if isinstance(item, str):
            if path in key_limits:
                bounded = key(item, key_limits[path])
            else:
                bounded = text(item, text_limits.get(path, default_limit))
            if bounded != item:
                cut.append(path)
            return bounded
        if item is None or isinstance(item, bool):
            return item
        if isinstance(item, int | float | Decimal):
            stored = number(item)
            if isinstance(stored, str):
                cut.append(path)
            return stored
        if depth >= NESTING_MAX:
            cut.append(path)
            return f"<nested deeper than {NESTING_MAX} levels, removed>"
        if isinstance(item, Mapping):
            return {
                str(k): walk(v, f"{path}.{k}" if path else str(k), depth + 1)
                for k, v in item.items()
            }
        if isinstance(item, list | tuple):
            return [walk(v, path, depth + 1) for v in item]
        return text(str(item), default_limit)

    return walk(value, "", 0), cut


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item, in bytes (attribute names included), slightly over-counted."""
    return sum(len(str(name).encode("utf-8")) + _size(value) for name, value in item.items())


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | Decimal):
        return len(str(value)) // 2 + 2
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode("utf-8")) + _size(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(_size(v) + 1 for v in value)
    return len(str(value).encode("utf-8", "replace"))
