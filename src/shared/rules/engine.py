"""Compiled rules at run time: each rule evaluated in isolation, then the exceptions applied.

What a rule document may say, and how it is validated and compiled, is ``shared.rules.loader``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shared.models import (
    SECRETSMANAGER_SOURCE,
    SEVERITY_RANK,
    CloudTrailRecord,
    Enrichment,
    Evaluation,
    Finding,
    RuleError,
    RuleMode,
    RuleOutcome,
    Severity,
)

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.json")

Condition = Callable[[CloudTrailRecord, Enrichment | None], bool]
Getter = Callable[[CloudTrailRecord, Enrichment | None], Any]
_NOTHING = Evaluation()


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Dedup:
    """Repeats of a finding with the same key inside ``window_s`` of arrival fold into the first
    one's alert; one digest tells of them when the window closes (shared.stateful)."""

    window_s: int
    key: tuple[str, ...]  # field names, as written
    getters: tuple[Getter, ...]


@dataclass(frozen=True, slots=True)
class Threshold:
    """The rule alerts once ``count`` matching events (or distinct values of ``distinct``) of
    one group fall within any ``window_s`` of event time; not again for the group within it."""

    count: int
    window_s: int
    group_by: tuple[str, ...]
    group_getters: tuple[Getter, ...]
    distinct: str | None = None
    distinct_getter: Getter | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: Severity
    runbook: str
    events: frozenset[str]  # empty: every event
    outcome: RuleOutcome
    condition: Condition
    severity_when: tuple[tuple[Severity, Condition], ...]
    source: dict[str, Any]  # the rule as it stands after overlays, for `secretwatch rules list`
    mode: RuleMode = "alert"
    dedup: Dedup | None = None
    threshold: Threshold | None = None
    resolves: tuple[str, ...] = ()  # the rules whose open alert on the same secret this closes
    # The event sources a rule reads: Secrets Manager's unless it says otherwise, so that a rule
    # on every event ("*", such as root-activity) never fires on a tamper record of another
    # service (shared.tamper).
    sources: frozenset[str] = frozenset({SECRETSMANAGER_SOURCE})

    @property
    def stateful(self) -> bool:
        return self.dedup is not None or self.threshold is not None or bool(self.resolves)

    def applies_to_outcome(self, record: CloudTrailRecord) -> bool:
        if self.outcome == "any":
            return True
        return record.failed is (self.outcome == "failure")

    def evaluate(
        self, record: CloudTrailRecord, enrichment: Enrichment | None = None
    ) -> Finding | None:
        if record.event_source not in self.sources:
            return None
        if not self.applies_to_outcome(record) or not self.condition(record, enrichment):
            return None
        severity = self.severity
        for candidate, condition in self.severity_when:
            if condition(record, enrichment):
                severity = candidate
                break
        if self.threshold is not None:
            # One matching event is counted, not alerted: only the rule's state (the pipeline's
            # shared.stateful) can say it crossed the threshold. Without state, it stays counted.
            return Finding(
                self.id, severity, self.description, self.runbook, self.mode, state="counted"
            )
        return Finding(self.id, severity, self.description, self.runbook, self.mode)


@dataclass(frozen=True, slots=True)
class RuleException:
    """A known, accepted case: the findings it covers are recorded, never alerted."""

    id: str
    rules: frozenset[str]  # empty: every rule ("*")
    condition: Condition
    reason: str
    expires: date  # the last day it applies (UTC); after it, it is ignored
    source: dict[str, Any]

    def covers(self, rule_id: str) -> bool:
        return not self.rules or rule_id in self.rules

    def active(self, today: date) -> bool:
        return today <= self.expires


class RuleSet:
    """A validated, compiled set of rules, indexed by event name, with its exceptions."""

    def __init__(
        self,
        rules: Sequence[Rule],
        origin: str = "<rules>",
        *,
        exceptions: Sequence[RuleException] = (),
        document: dict[str, Any] | None = None,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.rules = tuple(rules)
        self.origin = origin
        self.exceptions = tuple(exceptions)
        self.document = document  # the document as written (before overlays), when known
        self._today = today
        wildcard = tuple(rule for rule in self.rules if not rule.events)
        by_event: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for name in rule.events:
                by_event.setdefault(name, []).append(rule)
        # Keep file order within each event's list: findings come out in catalogue order.
        order = {rule.id: position for position, rule in enumerate(self.rules)}
        self._by_event = {
            name: tuple(sorted([*listed, *wildcard], key=lambda r: order[r.id]))
            for name, listed in by_event.items()
        }
        self._wildcard = wildcard
        self._by_id = {rule.id: rule for rule in self.rules}
        # Rules whose alerts stay open until a rule that resolves them fires on the same secret.
        self.resolvable = frozenset(target for rule in self.rules for target in rule.resolves)
        self.stateful = bool(self.resolvable) or any(rule.stateful for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def rules_for(self, event_name: str) -> tuple[Rule, ...]:
        return self._by_event.get(event_name, self._wildcard)

    def expired_exceptions(self, today: date | None = None) -> tuple[RuleException, ...]:
        day = today or self._today()
        return tuple(exception for exception in self.exceptions if not exception.active(day))

    def evaluate(
        self, record: CloudTrailRecord, enrichment: Enrichment | None = None
    ) -> Evaluation:
        findings: list[Finding] = []
        errors: list[RuleError] = []
        for rule in self.rules_for(record.event_name):
            try:
                finding = rule.evaluate(record, enrichment)
            except Exception as exc:  # noqa: BLE001 — one rule raising never stops the others
                errors.append(RuleError(rule.id, f"{type(exc).__name__}: {exc}"))
                continue
            if finding is not None:
                findings.append(finding)
        if not findings and not errors:
            return _NOTHING  # most records: one shared (immutable) answer
        if findings and self.exceptions:
            findings = self._apply_exceptions(findings, record, enrichment, errors)
        if len(findings) > 1:
            findings.sort(key=lambda f: -SEVERITY_RANK[f.severity])
        return Evaluation(tuple(findings), tuple(errors))

    def _apply_exceptions(
        self,
        findings: list[Finding],
        record: CloudTrailRecord,
        enrichment: Enrichment | None,
        errors: list[RuleError],
    ) -> list[Finding]:
        today = self._today()
        active = [exception for exception in self.exceptions if exception.active(today)]
        return [self._excepted(f, active, record, enrichment, errors) for f in findings]

    @staticmethod
    def _excepted(
        finding: Finding,
        active: list[RuleException],
        record: CloudTrailRecord,
        enrichment: Enrichment | None,
        errors: list[RuleError],
    ) -> Finding:
        """The finding, marked with the first active exception that covers it."""
        for exception in active:
            if not exception.covers(finding.rule_id):
                continue
            try:
                matched = exception.condition(record, enrichment)
            except Exception as exc:  # noqa: BLE001 — a broken exception never hides a finding
                errors.append(RuleError(f"exception {exception.id}", type(exc).__name__))
                continue
            if matched:
                return replace(finding, exception=exception.id)
        return finding
