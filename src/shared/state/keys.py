"""Names and bounds of the state items, shared by the state table and the in-memory state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

RESOLUTION_PREFIX = "resolved:"  # the alert slot of a resolution: resolved:<rule it closes>
DUE_INDEX = "due"
DUE_DIGEST, DUE_OPEN = "digest", "open"
# Repeats whose details a window keeps (beyond them it only counts), and the longest value kept:
# 200 x (64 + 3 x 256) bytes stays far below DynamoDB's 400 KB item limit.
WINDOW_DETAIL_MAX = 200
VALUE_MAX = 256
# Matching events a threshold bucket keeps: enough for any count the loader allows.
BUCKET_MAX = 1000
KEEP_AFTER_S = 86400  # how long an item outlives what it describes (TTL), for people to look


def key_hash(values: Sequence[Any]) -> str:
    """A short stable hash of a key's values (any JSON-able values; None is a value too)."""
    text = "\x1f".join("\x00" if value is None else str(value) for value in values)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def bounded(value: Any, limit: int = VALUE_MAX) -> str:
    text = "-" if value is None else str(value)
    data = text.encode("utf-8", "replace")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def repeats(window: Mapping[str, Any]) -> int:
    """Findings folded into a window: its events but the first, plus those only counted."""
    events = window.get("events") or ()
    return max(len(events) - 1, 0) + int(window.get("overflow") or 0)
