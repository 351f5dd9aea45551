"""What a rule's state makes of its findings: dedup windows, thresholds, open and resolved alerts.

Runs after the rules and before the audit write, so the audit item records what was decided
(folded into which alert, counted towards which threshold, which alert it resolved). Each
decision is one conditional write to the state table (``shared.state.store``) that a retry of the
same event repeats harmlessly and recognises as its own, so a record whose invocation died is
decided the same way the second time.

A failure of the state table never costs an alert: a dedup finding whose window cannot be read
alerts as if it were the first (a duplicate, not a loss). A threshold cannot be counted without
its state, so that failure fails the record and the platform retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shared.audit.items import alert_id as stable_alert_id
from shared.errors import DeliveryError
from shared.models import CloudTrailRecord, Enrichment, Evaluation, Finding
from shared.rules.engine import Rule, RuleSet, Threshold
from shared.state.keys import RESOLUTION_PREFIX, bounded, key_hash
from shared.text import clean

logger = logging.getLogger("secretwatch.stateful")

OPEN_KEEP_S = 400 * 86400  # an alert nobody resolves stays listed as open this long
OTHERS_MAX = 50  # events a threshold alert lists besides the one that crossed it


@dataclass(frozen=True, slots=True)
class Resolution:
    """An open alert closed by this record's finding."""

    key: str  # the alert slot in the audit item: "resolved:<rule id>"
    alert_id: str  # the resolution message's own id
    resolved_alert_id: str
    rule_id: str  # the rule whose alert is closed
    by_rule: str  # the rule that closed it
    by: str  # who closed it (principal)
    opened_event_id: str
    opened_ms: int
    resolved_ms: int
    secret: str


class StateBackend(Protocol):
    """Where rule state lives: the state table (shared.state.store) or memory (the CLI)."""

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
    ) -> dict[str, Any]: ...

    def threshold_state(self, pk: str) -> dict[str, Any]: ...

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
    ) -> dict[str, Any] | None: ...

    def open_alert(self, pk: str, entry: Mapping[str, Any]) -> None: ...

    def resolve(self, pk: str, *, event_id: str, by: str, at_ms: int) -> dict[str, Any] | None: ...


class StatefulRules:
    """Applies the state of the rules to one record's evaluation."""

    def __init__(self, store: StateBackend, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self._clock_ms = clock_ms
        self.writes = 0  # state writes made, for make bench

    def apply(
        self,
        record: CloudTrailRecord,
        enrichment: Enrichment | None,
        evaluation: Evaluation,
        ruleset: RuleSet,
    ) -> tuple[Evaluation, list[Resolution]]:
        if not evaluation.findings or not ruleset.stateful:
            return evaluation, []
        findings: list[Finding] = []
        resolutions: list[Resolution] = []
        for found in evaluation.findings:
            rule = ruleset.get(found.rule_id)
            if rule is None or not (rule.stateful or found.rule_id in ruleset.resolvable):
                findings.append(found)
                continue
            finding = found
            if rule.threshold is not None:
                finding = self._threshold(record, enrichment, found, rule, rule.threshold)
            elif rule.dedup is not None and found.alerts:
                finding = self._dedup(record, enrichment, found, rule)
            if finding.alerts and finding.rule_id in ruleset.resolvable:
                key = self._open(record, finding)
                if key is not None:  # where `audit show` finds whether it was resolved
                    finding = replace(finding, detail={**(finding.detail or {}), "open": key})
            findings.append(finding)
            if rule.resolves and record.secret is not None:
                resolutions += self._resolve(record, rule)
        return replace(evaluation, findings=tuple(findings)), resolutions

    # --- dedup ---------------------------------------------------------------------------------

    def _dedup(
        self,
        record: CloudTrailRecord,
        enrichment: Enrichment | None,
        finding: Finding,
        rule: Rule,
    ) -> Finding:
        dedup = rule.dedup
        assert dedup is not None
        values = [getter(record, enrichment) for getter in dedup.getters]
        pk = f"dedup#{rule.id}#{key_hash(values)}"
        own = stable_alert_id(record.event_id, rule.id)
        try:
            self.writes += 1
            window = self.store.fold(
                pk,
                rule_id=rule.id,
                event_id=record.event_id,
                alert_id=own,
                now_ms=self._clock_ms(),
                window_ms=dedup.window_s * 1000,
                key_text=" / ".join(
                    f"{k}={bounded(v, 200)}" for k, v in zip(dedup.key, values, strict=True)
                ),
                facts={
                    "principal": record.caller.principal or "-",
                    "source_ip": record.source_ip or "-",
                    "event_name": record.event_name,
                },
            )
        except DeliveryError as exc:
            count("StateFailures")
            logger.error(
                "dedup state unavailable: the finding alerts as the first of its window",
                extra={
                    "rule_id": rule.id,
                    "event_id": clean(record.event_id, 256),
                    "error": str(exc),
                },
            )
            return finding
        if window.get("first_event") == record.event_id:
            return replace(
                finding, detail={"window_end_ms": window.get("window_end"), "window": pk}
            )
        return replace(
            finding,
            state="folded",
            detail={
                "folded_into": window.get("first_alert"),
                "window_end_ms": window.get("window_end"),
                "window": pk,
            },
        )

    # --- thresholds ----------------------------------------------------------------------------

    def _threshold(
        self,
        record: CloudTrailRecord,
        enrichment: Enrichment | None,
        finding: Finding,
        rule: Rule,
        threshold: Threshold,
    ) -> Finding:
        group = [getter(record, enrichment) for getter in threshold.group_getters]
        pk = f"threshold#{rule.id}#{key_hash(group)}"
        window_ms = threshold.window_s * 1000
        at = int(record.event_time.timestamp() * 1000)
        distinct = (
            threshold.distinct_getter(record, enrichment)
            if threshold.distinct_getter is not None
            else record.event_id
        )
        hit = _hit(at, key_hash([distinct])[:12], bounded(record.event_id, 64))
        bucket = at // window_ms
        own = stable_alert_id(record.event_id, rule.id)
        expires = (at + 7 * window_ms) // 1000 + 86400
        for _ in range(3):  # a race with another invocation is decided again, with its hits
            state = self.store.threshold_state(pk)
            hits = _hits(state, bucket) | {hit}
            fired_at = state.get("fired_at")
            if state.get("fired_by") == record.event_id:  # this event fired it: a retry
                span, _ = _crossing(hits, at, window_ms, threshold.count)
                return _fired(finding, threshold, group, span, record.event_id)
            # Fired within a window of this event: it only counts (and no span is computed:
            # a hot group's every record would otherwise sort all its hits).
            suppressed = isinstance(fired_at, int) and abs(at - fired_at) < window_ms
            span, seen = (
                (None, threshold.count)
                if suppressed
                else _crossing(hits, at, window_ms, threshold.count)
            )
            fire = None
            if span is not None:
                fire = {"at": at, "by": record.event_id, "alert_id": own}
            self.writes += 1
            after = self.store.count_hit(
                pk,
                rule_id=rule.id,
                bucket=bucket,
                hit=hit,
                expires_at=expires,
                fire=fire,
                suppress_from=at - window_ms,
                suppress_until=at + window_ms,
            )
            if after is None:
                if fire is None:  # the bucket is full: far past any count; it was counted
                    return _counted(finding, threshold, group, seen)
                continue  # another event fired it meanwhile: decide again
            if fire is not None:
                return _fired(finding, threshold, group, span, record.event_id)
            if suppressed:
                return _counted(finding, threshold, group, seen)
            # Concurrent invocations each adding hits may cross together: look again when the
            # stored hits are more than this one saw.
            stored = _hits(after, bucket)
            if len(stored) <= len(hits):
                return _counted(finding, threshold, group, seen)
            crossed, seen = _crossing(stored, at, window_ms, threshold.count)
            if crossed is None:
                return _counted(finding, threshold, group, seen)
            if isinstance(after.get("fired_at"), int) and abs(at - after["fired_at"]) < window_ms:
                return _counted(finding, threshold, group, threshold.count)
        raise DeliveryError(f"threshold state of {rule.id} kept changing", event_id=record.event_id)

    # --- open and resolved alerts --------------------------------------------------------------

    def _open(self, record: CloudTrailRecord, finding: Finding) -> str | None:
        secret = record.secret
        if secret is None:
            return None
        at = int(record.event_time.timestamp() * 1000)
        self.writes += 1
        key = _open_key(finding.rule_id, record)
        self.store.open_alert(
            key,
            {
                "alert_id": stable_alert_id(record.event_id, finding.rule_id),
                "rule_id": finding.rule_id,
                "severity": finding.severity,
                "event_id": record.event_id,
                "opened_ms": at,
                "secret": bounded(secret.name, 1024),
                "principal": bounded(record.caller.principal, 1024),
                "expires_at": at // 1000 + OPEN_KEEP_S,
            },
        )
        return key

    def _resolve(self, record: CloudTrailRecord, rule: Rule) -> list[Resolution]:
        assert record.secret is not None
        at = int(record.event_time.timestamp() * 1000)
        by = record.caller.principal or record.caller.name or "-"
        resolutions: list[Resolution] = []
        for target in rule.resolves:
            self.writes += 1
            closed = self.store.resolve(
                _open_key(target, record), event_id=record.event_id, by=by, at_ms=at
            )
            if closed is None:
                continue
            key = f"{RESOLUTION_PREFIX}{target}"
            resolutions.append(
                Resolution(
                    key=key,
                    alert_id=stable_alert_id(record.event_id, key),
                    resolved_alert_id=str(closed.get("alert_id")),
                    rule_id=target,
                    by_rule=rule.id,
                    by=str(closed.get("resolved_by") or by),
                    opened_event_id=str(closed.get("event_id")),
                    opened_ms=int(closed.get("opened_ms") or at),
                    resolved_ms=int(closed.get("resolved_ms") or at),
                    secret=str(closed.get("secret") or record.secret.name),
                )
            )
        return resolutions


def in_memory() -> StatefulRules:
    """Rule state for one run of the command line, in memory: repeats fold and thresholds
    count across the records it reads, as a deployed stack would decide them if they arrived
    now (dedup windows run on arrival time)."""
    import time  # noqa: PLC0415

    from shared.state.memory import MemoryState  # noqa: PLC0415

    return StatefulRules(MemoryState(), clock_ms=lambda: time.time_ns() // 1_000_000)


def count(metric: str) -> None:
    """A metric, from the functions; the command line (which uses this module offline) loads
    no Powertools for it."""
    from shared.observability import count as emit  # noqa: PLC0415

    emit(metric)


def _open_key(rule_id: str, record: CloudTrailRecord) -> str:
    secret = record.secret
    assert secret is not None
    return f"open#{rule_id}#{key_hash([secret.account_id or record.account_id, secret.region or record.region, secret.name])}"


def _hits(state: dict[str, Any], bucket: int) -> set[str]:
    """The matching events a decision about ``bucket`` needs: its own and its neighbours'."""
    found: set[str] = set()
    for n in (bucket - 1, bucket, bucket + 1):
        found.update(state.get(f"b{n}") or ())
    return found


TIME_DIGITS = 15  # epoch ms, zero-padded: hits sort by time as strings (any year to 33658)


def _hit(at: int, value: str, event_id: str) -> str:
    """One counted event as stored: ``<time>|<value hash 12>|<event id>``."""
    return f"{max(at, 0):0{TIME_DIGITS}d}|{value}|{event_id}"


def _crossing(
    hits: set[str], at: int, window_ms: int, needed: int
) -> tuple[list[tuple[int, str]] | None, int]:
    """A window-long span of event time holding ``at`` and ``needed`` distinct values, if any
    (its events, oldest first), and how many distinct values were seen near ``at`` (exact for a
    span that crosses; when too few to cross, those of the two windows around it). One pass over
    the hits sorted as strings (a sliding window): the fullest such span can be taken to start
    at one of the events in the window before ``at``."""
    low = f"{max(at - window_ms + 1, 0):0{TIME_DIGITS}d}"
    high = f"{max(at + window_ms, 0):0{TIME_DIGITS}d}"
    now = f"{max(at, 0):0{TIME_DIGITS}d}|~"  # after every hit at ``at``
    value_at = slice(TIME_DIGITS + 1, TIME_DIGITS + 13)
    near_hits = [text for text in hits if low <= text < high]
    distinct = len({text[value_at] for text in near_hits})
    if distinct < needed:  # not even the two windows around ``at`` hold enough
        return None, distinct
    near = sorted(near_hits)
    values: dict[str, int] = {}
    best = end = 0
    for start, text in enumerate(near):
        if text > now:
            break
        limit = f"{int(text[:TIME_DIGITS]) + window_ms:0{TIME_DIGITS}d}"
        while end < len(near) and near[end] < limit:
            value = near[end][value_at]
            values[value] = values.get(value, 0) + 1
            end += 1
        best = max(best, len(values))
        if len(values) >= needed:
            span = near[start:end]
            return [(int(t[:TIME_DIGITS]), t[TIME_DIGITS + 14 :]) for t in span], best
        value = text[value_at]  # slide: the span's first event leaves it
        values[value] -= 1
        if not values[value]:
            del values[value]
    return None, best


def _fired(
    finding: Finding,
    threshold: Threshold,
    group: Sequence[Any],
    span: list[tuple[int, str]] | None,
    event_id: str,
) -> Finding:
    events = [other for _, other in span or ()]
    return replace(
        finding,
        state="fired",
        detail={
            "count": threshold.count,
            "window_s": threshold.window_s,
            "group": _group(threshold, group),
            "distinct": threshold.distinct,
            "seen": len(events),
            "crossed_by": event_id,
            "others": [other for other in events if other != event_id][:OTHERS_MAX],
        },
    )


def _group(threshold: Threshold, group: Sequence[Any]) -> dict[str, str]:
    """The group a threshold counts for, by field name (bounded, for the item and the alert)."""
    return {k: bounded(v, 256) for k, v in zip(threshold.group_by, group, strict=True)}


def _counted(finding: Finding, threshold: Threshold, group: Sequence[Any], seen: int) -> Finding:
    return replace(
        finding,
        state="counted",
        detail={
            "count": threshold.count,
            "window_s": threshold.window_s,
            "seen": min(seen, threshold.count),
            "group": _group(threshold, group),
        },
    )
