"""parse → enrich → evaluate → record → notify, for one Lambda event of either route.

Failure policy (STYLE.md §7):
- a record that cannot be parsed is logged with its id and kept as a failure record in the
  audit table, and the rest of the batch goes on;
- enrichment never raises (it degrades to what the event says);
- an audit write or an alert publish that fails raises DeliveryError *after* the rest of the
  batch was processed, so the platform retries the invocation; the retry writes nothing twice
  and publishes each alert once (see shared.audit for the alert states).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from shared import audit
from shared.audit import CLAIMED, RETRY, SUPPRESSED, AuditStore, build_item, rejected_item
from shared.enrich import Enrichment
from shared.errors import DeliveryError, InputError
from shared.models import CloudTrailRecord, Evaluation, Finding
from shared.notify import AlertMessage, build_alert
from shared.observability import count, logger
from shared.parse import ReadItem, read_event
from shared.rules import RuleSet

ROUTE_EVENTBRIDGE, ROUTE_LOGS, ROUTE_REPLAY = "eventbridge", "cloudwatch-logs", "replay"


class EnricherPort(Protocol):
    def enrich(self, record: CloudTrailRecord) -> Enrichment: ...


class NotifierPort(Protocol):
    def publish(self, alert: AlertMessage) -> str: ...


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
    enrichment_failures: int = 0  # look-ups that degraded (AccessDenied, not found...)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Pipeline:
    def __init__(
        self,
        *,
        ruleset: RuleSet,
        enricher: EnricherPort,
        store: AuditStore,
        notifier: NotifierPort | None,
        retention_days: int,
        clock: Callable[[], datetime] = audit.utc_now,
        console_domain: str | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.enricher = enricher
        self.store = store
        self.notifier = notifier  # None: record only, never alert (a replay without --notify)
        self.retention_days = retention_days
        self.clock = clock
        self.console_domain = console_domain

    # --- entry points ----------------------------------------------------------------------

    def process_event(self, event: Any, route: str) -> Summary:
        """One Lambda event of any shape. An unreadable event is kept as a failure record."""
        try:
            items = list(read_event(event))
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
        return self.process(items, route)

    def process(self, items: Iterable[ReadItem], route: str) -> Summary:
        summary = Summary()
        failed_lookups = self._enrichment_failures()
        quiet: list[dict[str, Any]] = []  # audit items without findings: written in batches
        failures: list[DeliveryError] = []
        for item in items:
            if item.error is not None:
                try:
                    self._reject(item, route, summary)
                except DeliveryError as exc:
                    failures.append(exc)
                continue
            if item.record is None:
                summary.skipped += 1
                continue
            summary.records += 1
            try:
                self._handle(item.record, route, summary, quiet)
            except DeliveryError as exc:
                failures.append(exc)
        try:
            self._write_quiet(quiet, summary)
        except DeliveryError as exc:
            failures.append(exc)
        summary.failures = len(failures)
        summary.enrichment_failures = self._enrichment_failures() - failed_lookups
        self._emit(summary)
        if failures:
            first = failures[0]
            logger.error(
                "delivery failed; the invocation will be retried",
                extra={"failures": len(failures), "event_id": first.event_id, "error": str(first)},
            )
            raise DeliveryError(
                f"{len(failures)} delivery failure(s), first: {first}",
                event_id=first.event_id,
                rule_id=first.rule_id,
            )
        return summary

    # --- one record --------------------------------------------------------------------------

    def _handle(
        self, record: CloudTrailRecord, route: str, summary: Summary, quiet: list[dict[str, Any]]
    ) -> None:
        enrichment = self.enricher.enrich(record)
        evaluation = self.ruleset.evaluate(record, enrichment)
        for error in evaluation.rule_errors:
            logger.error(
                "rule failed",
                extra={
                    "rule_id": error.rule_id,
                    "event_id": record.event_id,
                    "error": error.message,
                },
            )
        count("RuleErrors", len(evaluation.rule_errors))
        item = build_item(
            record,
            evaluation,
            enrichment.to_dict(),
            route=route,
            retention_days=self.retention_days,
            now=self.clock(),
            alert_state=CLAIMED if self.notifier is not None else SUPPRESSED,
        )
        if not evaluation.findings:
            quiet.append(item)
            return
        summary.findings += len(evaluation.findings)
        self._record_and_alert(record, evaluation, enrichment, item, summary)

    def _record_and_alert(
        self,
        record: CloudTrailRecord,
        evaluation: Evaluation,
        enrichment: Enrichment,
        item: dict[str, Any],
        summary: Summary,
    ) -> None:
        existing = self.store.put_new(item)
        if existing is None:
            summary.written += 1
            to_send = list(evaluation.findings)
        else:
            summary.duplicates += 1
            logger.info(
                "duplicate delivery", extra={"event_id": record.event_id, "route": item["route"]}
            )
            to_send = self._reclaim(record.event_id, existing, evaluation.findings)
        for finding in evaluation.findings:
            logger.info(
                "rule matched",
                extra={
                    "rule_id": finding.rule_id,
                    "severity": finding.severity,
                    "event_id": record.event_id,
                    "event_name": record.event_name,
                    "secret": record.secret.name if record.secret else None,
                },
            )
        errors: list[DeliveryError] = []
        for finding in to_send:
            try:
                self._alert(record, finding, enrichment, summary)
            except DeliveryError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _reclaim(
        self, event_id: str, existing: dict[str, Any], findings: tuple[Finding, ...]
    ) -> list[Finding]:
        """On a repeated delivery, claim only the alerts a failed attempt handed back ("retry")."""
        states = existing.get("alerts") or {}
        return [
            finding
            for finding in findings
            if states.get(finding.rule_id) == RETRY
            and self.store.set_alert_state(event_id, finding.rule_id, CLAIMED, expect=RETRY)
        ]

    def _alert(
        self, record: CloudTrailRecord, finding: Finding, enrichment: Enrichment, summary: Summary
    ) -> None:
        if self.notifier is None:
            return
        alert = build_alert(record, finding, enrichment, console_domain=self.console_domain)
        try:
            message_id = self.notifier.publish(alert)
        except DeliveryError as exc:
            count("AlertFailures")
            try:
                self.store.set_alert_state(record.event_id, finding.rule_id, RETRY, expect=CLAIMED)
            except DeliveryError:
                # Both SNS and DynamoDB failed: the alert stays "claimed" and will not be resent.
                logger.error(
                    "alert state could not be handed back for retry; the alert may be lost",
                    extra={"event_id": record.event_id, "rule_id": finding.rule_id},
                )
            raise DeliveryError(
                str(exc), event_id=record.event_id, rule_id=finding.rule_id
            ) from exc
        summary.alerts_published += 1
        logger.info(
            "alert published",
            extra={
                "event_id": record.event_id,
                "rule_id": finding.rule_id,
                "message_id": message_id,
            },
        )

    def _write_quiet(self, items: list[dict[str, Any]], summary: Summary) -> None:
        if not items:
            return
        if len(items) == 1:  # one record (the EventBridge route): one conditional put
            if self.store.put_new(items[0]) is None:
                summary.written += 1
            else:
                summary.duplicates += 1
            return
        written, duplicates = self.store.write_batch(items)
        summary.written += written
        summary.duplicates += duplicates

    def _reject(self, item: ReadItem, route: str, summary: Summary) -> None:
        summary.rejected += 1
        item_id = item.event_id or item.origin_id or _digest(item.raw)
        logger.warning(
            "record rejected and kept",
            extra={
                "event_id": item.event_id,
                "origin_id": item.origin_id,
                "index": item.index,
                "error": item.error,
            },
        )
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
        count("EnrichmentFailures", summary.enrichment_failures)


def _digest(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
