"""parse → enrich → evaluate → record → notify, for one event of either route, or a replay.

Failure policy (docs/delivery.md):
- every record stands alone: whatever goes wrong while reading, normalising, enriching,
  evaluating or building one record turns that record into a kept ``rejected#`` item with the
  reason, and the rest of the batch goes on;
- enrichment never raises (it degrades to what the event says);
- only AWS delivery failures (an audit write, an alert publish) fail the invocation, and only
  after the whole batch was handled, so the platform retries it; the retry writes nothing twice
  and sends every alert that is not yet known to be sent;
- an alert is claimed by this invocation until its deadline, marked sent only after SNS accepted
  it, and handed back when publishing fails or time runs short.

The pipeline returns what it decided for every record (:class:`Summary`, :class:`Decision`). A
pipeline without a store is a dry run: it evaluates and decides, and writes and sends nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.audit.items import (
    CLAIMED,
    RETRY,
    RULE_SLOTS,
    SUPPRESSED,
    AlertEntry,
    AuditItem,
    alert_id,
    build_item,
    event_key,
    finding_entry,
    finding_upgrade,
    rejected_item,
)
from shared.audit.store import AuditStore
from shared.envelopes import (
    ReadItem,
    outside_region,
    read_any,
    read_awslogs_event,
    read_eventbridge_event,
)
from shared.errors import DeliveryError, InputError
from shared.live_rules import RulesSource, StaticRules
from shared.models import (
    SEVERITY_RANK,
    CloudTrailRecord,
    Enrichment,
    Evaluation,
    Finding,
    Route,
    format_time,
)
from shared.observability import count
from shared.remediate import Remediation, Restorer
from shared.rules import RuleSet
from shared.selftest import selftest_rules
from shared.state.keys import RESOLUTION_PREFIX
from shared.text import clean, dumps

if TYPE_CHECKING:
    from shared.compose import AlertMessage
    from shared.stateful import Resolution, StatefulRules

logger = logging.getLogger("secretwatch.pipeline")

ROUTE_EVENTBRIDGE: Route = "eventbridge"
ROUTE_LOGS: Route = "cloudwatch-logs"
ROUTE_REPLAY: Route = "replay"
# No alert is claimed with less time than this left: a Publish (one attempt, 2 s to connect,
# 5 s to answer) and the state update that follows must finish inside the claim.
DEADLINE_MARGIN_MS = 10_000
# A claim's length when the caller gives no deadline (the command line): Lambda's longest run.
DEFAULT_LEASE_MS = 15 * 60 * 1000
# At most this many decisions travel in a handler's return value (a Lambda response is small).
RETURNED_DECISIONS = 1000

Outcome = Literal["written", "duplicate", "rejected", "skipped", "evaluated"]


class EnricherPort(Protocol):
    def enrich(self, record: CloudTrailRecord) -> Enrichment: ...


class NotifierPort(Protocol):
    def publish(self, alert: AlertMessage) -> str: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline decided about one record (or log event) of its input."""

    index: int
    outcome: Outcome  # "evaluated": a dry run decided it and wrote nothing
    event_id: str | None = None
    event_name: str | None = None
    event_time: str | None = None
    secret: str | None = None
    principal: str | None = None
    caller: str | None = None  # the caller's short name (user, role, SSO user, service)
    caller_type: str | None = None
    findings: tuple[Finding, ...] = ()
    error: str | None = None  # why it was rejected
    skipped: str | None = None  # why it is out of scope

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "outcome": self.outcome,
            "event_id": self.event_id,
            "event_name": self.event_name,
            "secret": self.secret,
            "principal": self.principal,
            "caller": self.caller,
            "caller_type": self.caller_type,
            "findings": [{"rule": f.rule_id, "severity": f.severity} for f in self.findings],
            "error": self.error,
        }


@dataclass
class Summary:
    records: int = 0
    findings: int = 0
    alerts_published: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    failures: int = 0
    deferred: int = 0  # alerts left for the retry: this invocation ran short of time
    enrichment_failures: int = 0  # look-ups that degraded (AccessDenied, not found...)
    rule_errors: int = 0
    by_severity: Counter[str] = field(default_factory=Counter)
    decisions: list[Decision] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counts and (at most RETURNED_DECISIONS) decisions, JSON-ready."""
        counts = {
            key: value
            for key, value in asdict(self).items()
            if key not in {"by_severity", "decisions"}
        }
        return {
            **counts,
            "by_severity": dict(self.by_severity),
            "decisions": [d.as_dict() for d in self.decisions[:RETURNED_DECISIONS]],
            "decisions_truncated": len(self.decisions) > RETURNED_DECISIONS,
        }

    def add(self, other: Summary) -> None:
        """Fold another summary into this one (a replay sums one per file)."""
        for name in (
            "records",
            "findings",
            "alerts_published",
            "written",
            "duplicates",
            "rejected",
            "skipped",
            "failures",
            "deferred",
            "enrichment_failures",
            "rule_errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_severity.update(other.by_severity)
        self.decisions.extend(other.decisions)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One invocation's identity: its claims carry ``token``, and end at ``deadline_ms``."""

    token: str
    deadline_ms: int
    request_id: str | None = None
    has_deadline: bool = True


@dataclass
class _Alert:
    finding: Finding
    message: AlertMessage
    entry: AlertEntry


@dataclass
class _Prepared:
    record: CloudTrailRecord
    item: AuditItem
    evaluation: Evaluation
    alerts: list[_Alert] = field(default_factory=list)


class _Broken(Exception):
    """A record could not be handled at some stage (not an AWS failure): it is kept rejected."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"could not {stage} the record: {type(cause).__name__}")
        self.stage = stage


class Pipeline:
    def __init__(
        self,
        *,
        ruleset: RuleSet | RulesSource,
        enricher: EnricherPort,
        store: AuditStore | None,
        notifier: NotifierPort | None,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        console_domain: str | None = None,
        state: StatefulRules | None = None,
        remediator: Restorer | None = None,
        logs_region: str | None = None,
        routine_retention_days: int | None = None,
    ) -> None:
        # A source (the live document of a deployed stack) is asked once per invocation, so one
        # invocation applies one document throughout.
        self.rules: RulesSource = (
            ruleset if isinstance(ruleset, RulesSource) else StaticRules(ruleset)
        )
        self.enricher = enricher
        self.store = store  # None: a dry run, nothing is written
        self.notifier = notifier  # None: record only, never alert (a replay without --notify)
        self.retention_days = retention_days
        # None: routine reads keep retention_days too (a replay, the command line).
        self.routine_retention_days = routine_retention_days
        self.clock = clock
        self.console_domain = console_domain
        self.state = state  # None: no dedup, thresholds or resolution (a dry run, a replay)
        self.remediator = remediator  # None: no remediation (AutoRestore disabled, the CLI)
        # The logs route takes only this Region's records (LogsRouteRegions); None: every Region.
        self.logs_region = logs_region

    @property
    def dry_run(self) -> bool:
        return self.store is None

    # --- entry points ----------------------------------------------------------------------

    def process_event(
        self,
        event: Any,
        route: Route,
        *,
        deadline_ms: int | None = None,
        request_id: str | None = None,
    ) -> Summary:
        """One event in the route's own envelope; an unreadable event is kept as a failure record."""
        reader = _READERS.get(route, read_any)
        try:
            items = list(reader(event))
            if route == ROUTE_LOGS and self.logs_region is not None:
                items = [outside_region(item, self.logs_region) for item in items]
        except InputError as exc:
            summary = Summary()
            origin = (
                event.get("id")
                if isinstance(event, dict) and isinstance(event.get("id"), str)
                else None
            )
            self._reject(ReadItem(0, error=str(exc), origin_id=origin, raw=event), route, summary)
            self._emit(summary)
            return summary
        return self.process(items, route, deadline_ms=deadline_ms, request_id=request_id)

    def process(
        self,
        items: Iterable[ReadItem],
        route: Route,
        *,
        deadline_ms: int | None = None,
        request_id: str | None = None,
    ) -> Summary:
        summary = Summary()
        attempt = self._attempt(deadline_ms, request_id)
        ruleset = self.rules.current()
        _new_invocation(self.enricher)
        failed_lookups = self._enrichment_failures()
        quiet: list[tuple[ReadItem, AuditItem]] = []  # no findings: written in batches
        failures: list[DeliveryError] = []
        for item in _guarded(items):
            try:
                if item.error is not None:
                    self._reject(item, route, summary)
                elif item.record is None:
                    summary.skipped += 1
                    summary.decisions.append(_decision(item, "skipped"))
                else:
                    summary.records += 1
                    self._handle(item, route, summary, quiet, attempt, ruleset=ruleset)
            except DeliveryError as exc:
                failures.append(exc)
        try:
            self._write_quiet(quiet, summary)
        except DeliveryError as exc:
            failures.append(exc)
        summary.decisions.sort(key=lambda decision: decision.index)  # quiet ones came last
        summary.failures = len(failures)
        summary.enrichment_failures = self._enrichment_failures() - failed_lookups
        self._emit(summary)
        if failures or summary.deferred:
            first = failures[0] if failures else None
            logger.error(
                "delivery incomplete; the invocation will be retried",
                extra={
                    "failures": len(failures),
                    "deferred_alerts": summary.deferred,
                    "event_id": clean(first.event_id, 256) if first and first.event_id else None,
                    "error": str(first) if first else "time ran short",
                },
            )
            if first is None:
                raise DeliveryError(
                    f"{summary.deferred} alert(s) left for the retry: the deadline was near"
                )
            raise DeliveryError(
                f"{len(failures)} delivery failure(s), first: {first}",
                event_id=first.event_id,
                rule_id=first.rule_id,
            )
        return summary

    def _attempt(self, deadline_ms: int | None, request_id: str | None) -> Attempt:
        token = os.urandom(16).hex()  # unique per attempt; uuid would import platform at start
        if deadline_ms is None:
            return Attempt(token, self._now_ms() + DEFAULT_LEASE_MS, request_id, False)
        return Attempt(token, deadline_ms, request_id)

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _time_short(self, attempt: Attempt) -> bool:
        return attempt.has_deadline and self._now_ms() + DEADLINE_MARGIN_MS >= attempt.deadline_ms

    # --- one record --------------------------------------------------------------------------

    def _handle(
        self,
        read: ReadItem,
        route: Route,
        summary: Summary,
        quiet: list[tuple[ReadItem, AuditItem]],
        attempt: Attempt,
        *,
        ruleset: RuleSet,
    ) -> None:
        record = read.record
        assert record is not None  # only records are handled
        if read.selftest:  # never the rule document: the one self-test finding (shared.selftest)
            ruleset = selftest_rules()
        try:
            enrichment, evaluation = self._evaluate(record, summary, ruleset)
            resolutions: list[Resolution] = []
            if self.store is not None:
                evaluation, resolutions = self._apply_state(record, enrichment, evaluation, ruleset)
            # A threshold's match that did not cross it is a count, not a finding of the record.
            findings = tuple(f for f in evaluation.findings if f.state != "counted")
            summary.findings += len(findings)
            summary.by_severity.update(f.severity for f in findings)
            if self.store is None:
                summary.decisions.append(_decision(read, "evaluated", findings))
                return
            prepared = self._prepare(
                record, route, attempt, enrichment, evaluation, resolutions=resolutions
            )
        except _Broken as broken:
            self._keep_broken(read, broken, route, summary)
            return
        if not any(alert.finding.alerts for alert in prepared.alerts):
            # Nothing to send (no finding, or only counted, folded, audit-only or excepted)
            quiet.append((read, prepared.item))
            return
        try:
            outcome = self._record_and_alert(prepared, summary, attempt)
        except DeliveryError:
            raise
        except Exception as exc:
            self._hand_back_all(prepared, attempt, f"internal error: {type(exc).__name__}")
            raise DeliveryError(
                f"could not record or alert the record: {type(exc).__name__}",
                event_id=prepared.item["event_id"],
            ) from exc
        summary.decisions.append(_decision(read, outcome, findings))

    def _evaluate(
        self, record: CloudTrailRecord, summary: Summary, ruleset: RuleSet
    ) -> tuple[Enrichment, Evaluation]:
        stage = "enrich"
        try:
            enrichment = self.enricher.enrich(record)
            stage = "evaluate"
            evaluation = ruleset.evaluate(record, enrichment)
        except Exception as exc:
            raise _Broken(stage, exc) from exc
        for error in evaluation.rule_errors:
            logger.error(
                "rule failed",
                extra={
                    "rule_id": error.rule_id,
                    "event_id": clean(record.event_id, 256),
                    "error": error.message,
                },
            )
        summary.rule_errors += len(evaluation.rule_errors)
        count("RuleErrors", len(evaluation.rule_errors))
        return enrichment, evaluation

    def _apply_state(
        self,
        record: CloudTrailRecord,
        enrichment: Enrichment,
        evaluation: Evaluation,
        ruleset: RuleSet,
    ) -> tuple[Evaluation, list[Resolution]]:
        """Dedup, thresholds and resolutions (shared.stateful). Its AWS failures fail the record
        for a retry; a fault of its own leaves the findings as the rules made them (alerted: a
        duplicate is better than a loss)."""
        if self.state is None or not evaluation.findings:
            return evaluation, []
        try:
            return self.state.apply(record, enrichment, evaluation, ruleset)
        except DeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001 — the findings go out as they are
            count("StateFailures")
            logger.error(
                "rule state not applied: the findings alert as they are",
                extra={"event_id": clean(record.event_id, 256), "error": type(exc).__name__},
            )
            return evaluation, []

    def _prepare(
        self,
        record: CloudTrailRecord,
        route: Route,
        attempt: Attempt,
        enrichment: Enrichment,
        evaluation: Evaluation,
        *,
        resolutions: list[Resolution] | None = None,
    ) -> _Prepared:
        """Everything that can fail on the record's content, before anything is written."""
        stage = "remediate"
        try:
            remediation = self._remediate(record, evaluation, enrichment)
            stage = "build the audit record for"
            item = build_item(
                record,
                evaluation,
                enrichment.to_dict(),
                route=route,
                retention_days=self.retention_days,
                routine_retention_days=self.routine_retention_days,
                now=self.clock(),
            )
            if remediation is not None:
                item["remediation"] = remediation.to_dict()
            stage = "compose the alerts for"
            alerts = self._alerts(
                record, evaluation, enrichment, attempt, item, remediation=remediation
            )
            alerts += self._resolution_alerts(record, resolutions or [], attempt)
            if alerts:
                item["alerts"] = {alert.finding.rule_id: alert.entry for alert in alerts}
        except Exception as exc:
            raise _Broken(stage, exc) from exc
        return _Prepared(record, item, evaluation, alerts)

    def _alerts(
        self,
        record: CloudTrailRecord,
        evaluation: Evaluation,
        enrichment: Enrichment,
        attempt: Attempt,
        item: AuditItem,
        *,
        remediation: Remediation | None = None,
    ) -> list[_Alert]:
        alerts: list[_Alert] = []
        short = self._time_short(attempt)
        for finding in evaluation.findings:
            if finding.state == "counted":
                continue  # not a finding of this record (the item keeps it as a count)
            identifier = alert_id(record.event_id, finding.rule_id)
            entry = AlertEntry(state=SUPPRESSED, alert_id=identifier)
            if not finding.alerts:  # recorded, not sent
                entry["why"] = _why_quiet(finding)
            elif self.notifier is not None and short:
                entry["state"] = RETRY
                entry["handed_back"] = "the invocation ran short of time"
            elif self.notifier is not None:
                entry = self._claim_entry(identifier, attempt)
            # Composing is only needed by the few records that alert: loaded on first use, so
            # that it stays out of every container's cold start.
            from shared.compose import build_alert  # noqa: PLC0415

            message = build_alert(
                record,
                finding,
                enrichment,
                item=item,
                alert_id=identifier,
                console_domain=self.console_domain,
                remediation=remediation
                if remediation is not None and remediation.rule_id == finding.rule_id
                else None,
            )
            alerts.append(_Alert(finding, message, entry))
        return alerts

    def _resolution_alerts(
        self, record: CloudTrailRecord, resolutions: list[Resolution], attempt: Attempt
    ) -> list[_Alert]:
        """One ``resolved`` message per open alert this record closed, delivered like alerts."""
        from shared.messages import build_resolution  # noqa: PLC0415 — only resolutions need it

        alerts: list[_Alert] = []
        for resolution in resolutions:
            entry = AlertEntry(state=SUPPRESSED, alert_id=resolution.alert_id)
            if self.notifier is None:
                entry["why"] = "recorded only: no notifier"
            elif self._time_short(attempt):
                entry["state"] = RETRY
                entry["handed_back"] = "the invocation ran short of time"
            else:
                entry = self._claim_entry(resolution.alert_id, attempt)
            entry["resolves"] = resolution.resolved_alert_id
            carrier = Finding(resolution.key, "info", f"resolves {resolution.rule_id}", "")
            message = build_resolution(record, resolution)
            alerts.append(_Alert(carrier, message, entry))
        return alerts

    def _remediate(
        self, record: CloudTrailRecord, evaluation: Evaluation, enrichment: Enrichment
    ) -> Remediation | None:
        """Opt-in auto-restore (shared.remediate); before the item is built, so it records it."""
        if self.remediator is None:
            return None
        return self.remediator.act(
            record, evaluation, enrichment, previous=lambda: self._stored_remediation(record)
        )

    def _stored_remediation(self, record: CloudTrailRecord) -> Mapping[str, Any] | None:
        """What a previous delivery of this event did: a retry must not act a second time."""
        if self.store is None:
            return None
        try:
            existing = self.store.get(event_key(record.event_id))
        except DeliveryError:
            # Acting again is still safe: RestoreSecret on a restored secret is refused with
            # InvalidRequestException, which reads as "already restored".
            return None
        found = (existing or {}).get("remediation")
        return found if isinstance(found, Mapping) else None

    def _claim_entry(self, identifier: str, attempt: Attempt) -> AlertEntry:
        entry = AlertEntry(
            state=CLAIMED,
            alert_id=identifier,
            owner=attempt.token,
            deadline=attempt.deadline_ms,
            claimed_at=format_time(self.clock()),
        )
        if attempt.request_id:
            entry["invocation"] = attempt.request_id
        return entry

    def _record_and_alert(self, prepared: _Prepared, summary: Summary, attempt: Attempt) -> Outcome:
        assert self.store is not None  # a dry run records nothing
        item = prepared.item
        event_id = str(item["event_id"])
        existing = self.store.put_new(item)
        outcome: Outcome
        if existing is None or _written_by(existing, attempt):
            # Written now, or by this very attempt before an answer was lost (botocore retried
            # the put and met our own item): the claims in it are ours.
            outcome = "written"
            summary.written += 1
            to_send = [a for a in prepared.alerts if a.entry.get("owner") == attempt.token]
            summary.deferred += sum(a.entry["state"] == RETRY for a in prepared.alerts)
        else:
            outcome = "duplicate"
            summary.duplicates += 1
            logger.info(
                "duplicate delivery",
                extra={"event_id": clean(event_id, 256), "route": item["route"]},
            )
            to_send = self._reclaim(event_id, existing, prepared.alerts, attempt, summary)
        for finding in prepared.evaluation.findings:
            logger.info(
                "rule matched",
                extra={
                    "rule_id": finding.rule_id,
                    "severity": finding.severity,
                    "event_id": clean(event_id, 256),
                    "event_name": clean(prepared.record.event_name, 128),
                    "secret": clean(prepared.record.secret.name, 256)
                    if prepared.record.secret
                    else None,
                },
            )
        errors: list[DeliveryError] = []
        for position, alert in enumerate(to_send):
            if self._time_short(attempt):
                for rest in to_send[position:]:
                    self._hand_back(event_id, rest, attempt, "the invocation ran short of time")
                    summary.deferred += 1
                break
            try:
                self._publish(event_id, alert, attempt, summary)
            except DeliveryError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return outcome

    def _reclaim(
        self,
        event_id: str,
        existing: Mapping[str, Any],
        alerts: list[_Alert],
        attempt: Attempt,
        summary: Summary,
    ) -> list[_Alert]:
        """On a repeated delivery, claim the alerts no live invocation owns: handed back, or
        claimed by an invocation whose deadline has passed (it died: timeout, crash, kill)."""
        if self.store is None:
            return []
        states: Mapping[str, Any] = existing.get("alerts") or {}
        now_ms = self._now_ms()
        taken: list[_Alert] = []
        for alert in alerts:
            previous = states.get(alert.finding.rule_id)
            if previous is None and alert.finding.rule_id.startswith(RESOLUTION_PREFIX):
                # A resolution this delivery made (the alert it closes was not open before).
                added = self._add_resolution(event_id, alert, attempt)
                if added is not None:
                    taken.append(added)
                continue
            if previous is None:
                # A finding the first delivery could not make (its enrichment failed then):
                # added to the record, and alerted, now.
                added = self._add_finding(event_id, existing, alert, attempt)
                if added is not None:
                    taken.append(added)
                continue
            if not isinstance(previous, Mapping) or not _claimable(previous, now_ms):
                continue
            if self.notifier is None or not alert.finding.alerts:
                continue
            if self._time_short(attempt):
                summary.deferred += 1  # the retry will take it
                continue
            entry = self._claim_entry(alert.entry["alert_id"], attempt)
            if self.store.claim(
                event_id, alert.finding.rule_id, entry, now_ms=now_ms, previous=previous
            ):
                taken.append(_Alert(alert.finding, alert.message, entry))
        return taken

    def _add_resolution(self, event_id: str, alert: _Alert, attempt: Attempt) -> _Alert | None:
        assert self.store is not None
        if self.notifier is None or self._time_short(attempt):
            entry = AlertEntry(**alert.entry)
        else:
            entry = self._claim_entry(alert.entry["alert_id"], attempt)
            entry["resolves"] = alert.entry.get("resolves", "")
        added = self.store.add_alert(event_id, alert.finding.rule_id, entry)
        return _Alert(alert.finding, alert.message, entry) if added and "owner" in entry else None

    def _add_finding(
        self, event_id: str, existing: Mapping[str, Any], alert: _Alert, attempt: Attempt
    ) -> _Alert | None:
        """Add a finding the stored item lacks; the alert to send when this invocation may."""
        assert self.store is not None
        finding = alert.finding
        entry = alert.entry
        sending = finding.alerts and self.notifier is not None and not self._time_short(attempt)
        if sending:
            entry = self._claim_entry(entry["alert_id"], attempt)
        elif finding.alerts and self.notifier is not None:
            entry = AlertEntry(
                state=RETRY, alert_id=entry["alert_id"], handed_back="time ran short"
            )
        top = existing.get("severity")
        severity = (
            finding.severity
            if top is None or SEVERITY_RANK[finding.severity] > SEVERITY_RANK.get(str(top), -1)
            else None
        )
        slot = next((name for name in RULE_SLOTS if name not in existing), None)
        added = self.store.add_finding(
            event_id,
            finding_entry(finding),
            entry,
            severity=severity,
            slot=slot,
            upgrade=finding_upgrade(existing, self.retention_days, self.clock()),
        )
        if added:
            logger.info(
                "finding added on a later delivery",
                extra={"event_id": clean(event_id, 256), "rule_id": finding.rule_id},
            )
        return _Alert(finding, alert.message, entry) if added and sending else None

    def _publish(self, event_id: str, alert: _Alert, attempt: Attempt, summary: Summary) -> None:
        assert self.notifier is not None  # only claimed alerts are published
        assert self.store is not None
        rule_id = alert.finding.rule_id
        try:
            message_id = self.notifier.publish(alert.message)
        except DeliveryError as exc:
            count("AlertFailures")
            self._hand_back(event_id, alert, attempt, str(exc))
            raise DeliveryError(str(exc), event_id=event_id, rule_id=rule_id) from exc
        summary.alerts_published += 1
        logger.info(
            "alert published",
            extra={
                "event_id": clean(event_id, 256),
                "rule_id": rule_id,
                "alert_id": alert.entry["alert_id"],
                "message_id": message_id,
            },
        )
        try:
            self.store.mark_sent(
                event_id,
                rule_id,
                attempt.token,
                sent_at=format_time(self.clock()),
                message_id=message_id,
            )
        except DeliveryError as exc:
            # SNS has the alert: failing the invocation would only send it again now. The claim
            # stays until its deadline; a later delivery of this event may repeat it, with the
            # same alert_id.
            count("AlertStateFailures")
            logger.error(
                "alert sent but not marked sent",
                extra={"event_id": clean(event_id, 256), "rule_id": rule_id, "error": str(exc)},
            )

    def _hand_back(self, event_id: str, alert: _Alert, attempt: Attempt, reason: str) -> None:
        assert self.store is not None
        try:
            self.store.hand_back(event_id, alert.finding.rule_id, attempt.token, reason)
        except DeliveryError:
            # The claim lapses at this invocation's deadline; a later delivery takes it then.
            logger.error(
                "alert could not be handed back; it is retried after the claim's deadline",
                extra={"event_id": clean(event_id, 256), "rule_id": alert.finding.rule_id},
            )

    def _hand_back_all(self, prepared: _Prepared, attempt: Attempt, reason: str) -> None:
        for alert in prepared.alerts:
            if alert.entry.get("owner") == attempt.token:
                self._hand_back(str(prepared.item["event_id"]), alert, attempt, reason)

    def _write_quiet(self, entries: list[tuple[ReadItem, AuditItem]], summary: Summary) -> None:
        if not entries or self.store is None:
            return
        items = [item for _, item in entries]
        if len(items) == 1:  # one record (the EventBridge route): one conditional put
            new = set() if self.store.put_new(items[0]) is not None else {items[0]["event_id"]}
        else:
            new = self.store.write_batch(items)
        for read, item in entries:
            written = item["event_id"] in new
            summary.decisions.append(_decision(read, "written" if written else "duplicate"))
        summary.written += len(new)
        summary.duplicates += len(items) - len(new)

    def _keep_broken(self, read: ReadItem, broken: _Broken, route: Route, summary: Summary) -> None:
        """A record that broke while being handled is kept, as a rejected item, with the stage."""
        count("RecordErrors")
        record = read.record
        raw = {"normalised_record": asdict(record) if record else None, "stage": broken.stage}
        kept = ReadItem(
            read.index,
            error=str(broken),
            event_id=read.event_id,
            event_name=read.event_name,
            origin_id=read.origin_id,
            raw=raw,
        )
        self._reject(kept, route, summary)

    def _reject(self, item: ReadItem, route: Route, summary: Summary) -> None:
        summary.rejected += 1
        summary.decisions.append(_decision(item, "rejected"))
        logger.warning(
            "record rejected and kept" if self.store is not None else "record rejected",
            extra={
                "event_id": clean(item.event_id, 256) if item.event_id else None,
                "origin_id": clean(item.origin_id, 256) if item.origin_id else None,
                "index": item.index,
                "error": clean(item.error or "unreadable", 2048),
            },
        )
        if self.store is None:
            return
        item_id = item.event_id or item.origin_id or _digest(item.raw)
        kept = rejected_item(
            item_id,
            item.error or "unreadable",
            item.raw,
            route=route,
            retention_days=self.retention_days,
            now=self.clock(),
        )
        if self.store.put_new(kept) is None:
            summary.written += 1
        else:
            summary.duplicates += 1

    def _enrichment_failures(self) -> int:
        stats = getattr(self.enricher, "stats", None)
        return sum(stats.failures.values()) if stats is not None else 0

    def _emit(self, summary: Summary) -> None:
        count("RecordsParsed", summary.records)
        count("RecordsRejected", summary.rejected)
        count("RecordsSkipped", summary.skipped)
        count("Findings", summary.findings)
        count("AuditWrites", summary.written)
        count("Duplicates", summary.duplicates)
        count("AlertsPublished", summary.alerts_published)
        count("AlertsDeferred", summary.deferred)
        count("EnrichmentFailures", summary.enrichment_failures)


_READERS = {ROUTE_EVENTBRIDGE: read_eventbridge_event, ROUTE_LOGS: read_awslogs_event}


def _decision(read: ReadItem, outcome: Outcome, findings: tuple[Finding, ...] = ()) -> Decision:
    record = read.record
    if record is None:
        return Decision(
            read.index,
            outcome,
            event_id=read.event_id,
            event_name=read.event_name,
            error=read.error,
            skipped=read.skipped,
        )
    return Decision(
        read.index,
        outcome,
        event_id=record.event_id,
        event_name=record.event_name,
        event_time=record.event_time_iso,
        secret=record.secret.name if record.secret else None,
        principal=record.caller.principal,
        caller=record.caller.name,
        caller_type=record.caller.type,
        findings=findings,
        error=read.error,
    )


def _why_quiet(finding: Finding) -> str:
    detail = finding.detail or {}
    if finding.exception is not None:
        return f"exception {finding.exception}"
    if finding.state == "folded":
        return f"folded into alert {detail.get('folded_into')} (dedup)"
    if finding.state == "counted":
        return f"counted towards its threshold: {detail.get('seen')} of {detail.get('count')}"
    return "the rule is audit-only"


def _written_by(existing: Mapping[str, Any], attempt: Attempt) -> bool:
    """The stored item holds a claim of this attempt: the put was ours, its answer was lost."""
    states = existing.get("alerts")
    return isinstance(states, Mapping) and any(
        isinstance(entry, Mapping) and entry.get("owner") == attempt.token
        for entry in states.values()
    )


def _claimable(entry: Mapping[str, Any], now_ms: int) -> bool:
    state = entry.get("state")
    if state == RETRY:
        return True
    deadline = entry.get("deadline")
    return state == CLAIMED and isinstance(deadline, int) and deadline < now_ms


def _new_invocation(enricher: EnricherPort) -> None:
    """Per-invocation caches (the readers of a deleted secret) start empty."""
    begin = getattr(enricher, "new_invocation", None)
    if begin is not None:
        begin()


def _guarded(items: Iterable[ReadItem]) -> Iterator[ReadItem]:
    """The items of an input; should reading itself fail, the failure becomes one more item."""
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 — what was read so far is still handled
            yield ReadItem(-1, error=f"the input could not be read further: {type(exc).__name__}")
            return
        yield item


def _digest(raw: Any) -> str:
    try:
        text = raw if isinstance(raw, str) else dumps(raw, sort_keys=True)
    except (ValueError, TypeError, RecursionError):
        text = repr(type(raw))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def deadline_from(context: Any) -> int | None:
    """The end of a Lambda invocation, in epoch milliseconds, from its context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return int(time.time() * 1000) + int(remaining())
