"""Replaying CloudTrail log files through the pipeline: what ``secretwatch replay`` does on a laptop
and the replay function does for one batch of files of a Step Functions Distributed Map.

One file at a time: its bytes are read (a failure is that file's, reported, and the run goes
on), its records selected (Secrets Manager records, in the time window if there is one;
rejected records are kept and reported), and the file goes through the Pipeline (route
"replay"), whose idempotent writer makes a second replay of the same files add nothing. Replay
is quiet: the pipeline is built without a notifier (alerts are recorded as suppressed), without
enrichment look-ups (today's tags would be attributed to old events) and with rule state in
memory (a replay never touches a deployed stack's live dedup windows or thresholds).

This module is on the Lambda path: it imports neither the command line nor rich.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.envelopes import ReadItem, read_bytes
from shared.errors import DeliveryError, InputError
from shared.models import SEVERITY_RANK, CloudTrailRecord, Enrichment
from shared.pipeline import ROUTE_REPLAY, Pipeline, Summary

LOG_SUFFIXES = (".json", ".json.gz")
DIGEST_FOLDER = "CloudTrail-Digest"

# What a read may raise that is that file's failure, not the run's: every AWS failure.
AWS_READ_ERRORS = (ClientError, BotoCoreError)

Report = Callable[[str, str], None]  # (file name, problem): one line for the user
Describe = Callable[[BaseException], str]  # an AWS failure as one phrase
Keep = Callable[[CloudTrailRecord], bool]  # the time window: True keeps the record


def is_log_file(parts: Sequence[str]) -> bool:
    """A CloudTrail log file by its path: ``.json``/``.json.gz`` and not in a digest folder."""
    return (
        bool(parts) and parts[-1].lower().endswith(LOG_SUFFIXES) and DIGEST_FOLDER not in parts[:-1]
    )


class NullEnricher:
    """Replay's default: no look-up, so no today's tags on yesterday's events."""

    def enrich(self, record: CloudTrailRecord) -> Enrichment:
        return Enrichment.empty()


@dataclass
class Totals:
    """A replay's figures: the files and records read, and the pipeline's summed summary."""

    files_total: int | None = None  # None: not known up front (S3)
    files_read: int = 0
    files_failed: int = 0
    records: int = 0  # every record in the files read
    sm_records: int = 0  # Secrets Manager records, in the time window
    other_sources: int = 0  # skipped: another event source
    outside_window: int = 0  # Secrets Manager records outside --since/--until
    summary: Summary = field(default_factory=Summary)
    elapsed: float = 0.0

    @property
    def findings(self) -> Counter[str]:
        return self.summary.by_severity

    @property
    def written(self) -> int:
        return self.summary.written

    @property
    def duplicates(self) -> int:
        return self.summary.duplicates

    @property
    def rejected(self) -> int:
        return self.summary.rejected

    @property
    def alerts_published(self) -> int:
        return self.summary.alerts_published

    @property
    def rule_errors(self) -> int:
        return self.summary.rule_errors

    @property
    def failed(self) -> bool:
        return bool(self.files_failed or self.rejected)

    @property
    def rate(self) -> float:
        return self.records / self.elapsed if self.elapsed > 0 else 0.0


def describe_aws_error(exc: BaseException) -> str:
    """An S3 read failure as one phrase, by error code (the command line has richer words)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "UnknownError")
        words = {
            "NoSuchKey": "the object does not exist",
            "404": "the object does not exist",
            "NoSuchBucket": "the bucket does not exist",
            "AccessDenied": "access denied",
            "403": "access denied",
            "InvalidObjectState": "the object is archived (restore it first)",
        }
        return f"{words[code]} ({code})" if code in words else code
    return f"AWS call failed: {type(exc).__name__}"


def read_items(
    name: str,
    read: Callable[[], bytes],
    totals: Totals,
    report: Report,
    *,
    describe: Describe = describe_aws_error,
    inflated_limit: int | None = None,
) -> list[ReadItem] | None:
    """All the records of one file (one file in memory at a time), or None after one report.

    ``inflated_limit`` bounds what a gzip file may inflate to (the Lambda function's memory);
    a bigger one is refused unread.
    """
    try:
        items = list(read_bytes(read(), inflated_limit=inflated_limit))
    except InputError as exc:
        problem = str(exc)
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}"
    except AWS_READ_ERRORS as exc:
        problem = f"cannot read the object: {describe(exc)}"
    else:
        totals.files_read += 1
        totals.records += len(items)
        return items
    totals.files_failed += 1
    report(name, problem)
    return None


def select(items: Iterable[ReadItem], totals: Totals, keep: Keep | None = None) -> list[ReadItem]:
    """Secrets Manager records in the time window, and rejected records (kept and reported)."""
    kept: list[ReadItem] = []
    for item in items:
        if item.error is not None:
            kept.append(item)
        elif item.record is None:
            totals.other_sources += 1
        elif keep is None or keep(item.record):
            totals.sm_records += 1
            kept.append(item)
        else:
            totals.outside_window += 1
    return kept


def write(
    name: str, items: list[ReadItem], pipeline: Pipeline, totals: Totals, report: Report
) -> Summary | None:
    """One file through the Pipeline (quiet records batch-written 25 a call); its summary."""
    try:
        summary = pipeline.process(items, ROUTE_REPLAY)
    except DeliveryError as exc:
        totals.files_failed += 1
        report(name, f"{exc} (replay again to complete it)")
        return None
    totals.summary.add(summary)
    for decision in summary.decisions:
        if decision.outcome == "rejected":
            where = f" (event {decision.event_id})" if decision.event_id else ""
            report(name, f"record {decision.index}{where}: {decision.error}")
    return summary


def replay_one(
    name: str,
    read: Callable[[], bytes],
    pipeline: Pipeline,
    totals: Totals,
    report: Report,
    *,
    keep: Keep | None = None,
    describe: Describe = describe_aws_error,
    inflated_limit: int | None = None,
) -> Summary | None:
    """Read, select and write one file; None when it failed (reported and counted)."""
    items = read_items(name, read, totals, report, describe=describe, inflated_limit=inflated_limit)
    if items is None:
        return None
    return write(name, select(items, totals, keep), pipeline, totals, report)


def totals_as_dict(totals: Totals) -> dict[str, Any]:
    """The figures a summary prints, JSON-ready (the replay function's result for a batch)."""
    summary = totals.summary
    return {
        "files_read": totals.files_read,
        "files_failed": totals.files_failed,
        "records": totals.records,
        "sm_records": totals.sm_records,
        "other_sources": totals.other_sources,
        "written": summary.written,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
        "alerts_published": summary.alerts_published,
        "rule_errors": summary.rule_errors,
        "by_severity": dict(summary.by_severity),
    }


def add_counts(totals: Totals, counts: dict[str, Any]) -> None:
    """Fold a batch's figures (:func:`totals_as_dict`, as read back) into ``totals``.

    Only whole, non-negative numbers count; anything else in a result file is ignored.
    """

    def number(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    totals.files_read += number(counts.get("files_read"))
    totals.files_failed += number(counts.get("files_failed"))
    totals.records += number(counts.get("records"))
    totals.sm_records += number(counts.get("sm_records"))
    totals.other_sources += number(counts.get("other_sources"))
    summary = totals.summary
    summary.written += number(counts.get("written"))
    summary.duplicates += number(counts.get("duplicates"))
    summary.rejected += number(counts.get("rejected"))
    summary.alerts_published += number(counts.get("alerts_published"))
    summary.rule_errors += number(counts.get("rule_errors"))
    severities = counts.get("by_severity")
    if isinstance(severities, dict):
        for severity, value in severities.items():
            if severity in SEVERITY_RANK and number(value):
                summary.by_severity[severity] += number(value)
