"""Rule state held in memory, for one run of the command line (``evaluate``, ``replay``).

The same decisions as ``shared.state.store`` over the same item shapes, without DynamoDB: an
offline evaluation folds repeats and counts thresholds across the records it reads, and a replay
decides its records among themselves without touching a deployed stack's live state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shared.state.keys import BUCKET_MAX, WINDOW_DETAIL_MAX, bounded


class MemoryState:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def fold(
        self,
        pk: str,
        *,
        rule_id: str,
        event_id: str,
        alert_id: str,
        now_ms: int,
        window_ms: int,
        key_text: str,
        facts: Mapping[str, str],
    ) -> dict[str, Any]:
        window = self.items.get(pk)
        closed = window is not None and window["window_end"] <= now_ms
        if window is None or (closed and event_id not in window["events"]):
            window = {
                "pk": pk,
                "rule_id": rule_id,
                "first_event": event_id,
                "first_alert": alert_id,
                "opened_at": now_ms,
                "window_end": now_ms + window_ms,
                "key_text": bounded(key_text, 1024),
                "events": set(),
                "principals": set(),
                "source_ips": set(),
                "event_names": set(),
            }
            self.items[pk] = window
        window["last_at"] = now_ms
        if event_id in window["events"] or len(window["events"]) < WINDOW_DETAIL_MAX:
            window["events"].add(event_id)
            window["principals"].add(bounded(facts.get("principal")))
            window["source_ips"].add(bounded(facts.get("source_ip")))
            window["event_names"].add(bounded(facts.get("event_name")))
        else:
            window["overflow"] = window.get("overflow", 0) + 1
        return dict(window)  # read only by the caller

    def threshold_state(self, pk: str) -> dict[str, Any]:
        # The caller only reads it: no copy (a copy of every hit per record made evaluate slow).
        return self.items.get(pk, {})

    def count_hit(
        self,
        pk: str,
        *,
        rule_id: str,
        bucket: int,
        hit: str,
        expires_at: int,
        fire: Mapping[str, Any] | None,
        suppress_from: int,
        suppress_until: int,
    ) -> dict[str, Any] | None:
        item = self.items.setdefault(pk, {"pk": pk})
        hits: set[str] = item.setdefault(f"b{bucket}", set())
        if len(hits) >= BUCKET_MAX:
            return None
        if fire is not None:
            fired_at = item.get("fired_at")
            if (
                isinstance(fired_at, int)
                and suppress_from < fired_at < suppress_until
                and item.get("fired_by") != fire["by"]
            ):
                return None
            item.update(fired_at=fire["at"], fired_by=fire["by"], fired_alert=fire["alert_id"])
        hits.add(hit)
        item["rule_id"] = rule_id
        for n in range(3, 7):
            item.pop(f"b{bucket - n}", None)
        return dict(item)  # read only by the caller

    def open_alert(self, pk: str, entry: Mapping[str, Any]) -> None:
        self.items[pk] = {**entry, "pk": pk}

    def resolve(self, pk: str, *, event_id: str, by: str, at_ms: int) -> dict[str, Any] | None:
        item = self.items.get(pk)
        if item is None or "alert_id" not in item:
            return None
        if item.get("resolved_event") not in (None, event_id):
            return None
        item.update(resolved_by=bounded(by, 1024), resolved_event=event_id)
        item.setdefault("resolved_ms", at_ms)
        return copy.deepcopy(item)
