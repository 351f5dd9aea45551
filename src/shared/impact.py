"""What a deletion will break: who read the secret recently, and when it was last read.

A deletion alert (``secret-deleted``, ``deletion-forced-no-recovery``) is far more urgent when
something still reads the secret. Two sources say so:

- the audit trail: successful ``GetSecretValue`` / ``BatchGetSecretValue`` records of the secret in
  the 7 days before the deletion (they arrive by the CloudWatch Logs route), counted per principal
  (:mod:`shared.audit.recent_readers`);
- ``DescribeSecret``'s ``LastAccessedDate``, which AWS keeps to the day (the enricher already asks
  for it, through its cache).

:class:`ImpactEnricher` adds them to the enrichment of deletion records only: every other record
costs exactly what it cost before (no query). A look-up that fails degrades to "readers unknown";
it never costs the alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.models import format_time

if TYPE_CHECKING:
    from shared.enrich import EnrichStats
    from shared.models import CloudTrailRecord, Enrichment

READ_WINDOW_DAYS = 7
DELETION_EVENT = "DeleteSecret"


@dataclass(frozen=True, slots=True)
class Reader:
    """One principal that read the secret in the window."""

    principal: str
    reads: int
    last_read: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "reads": self.reads,
            "last_read": format_time(self.last_read),
        }


@dataclass(frozen=True, slots=True)
class RecentReads:
    """What the audit trail says about the reads of one secret in a window ending at ``until``.

    ``complete`` is False when the page limit stopped the count: the numbers are a lower bound.
    ``error`` is set (and the counts are unknown) when the look-up failed.
    """

    window_days: int
    until: datetime
    reads: int | None = None
    principal_count: int | None = None
    readers: tuple[Reader, ...] = ()  # the most frequent readers first, at most a few
    last_read: datetime | None = None
    last_reader: str | None = None
    complete: bool = True
    error: str | None = None

    @classmethod
    def failed(cls, window_days: int, until: datetime, error: str) -> RecentReads:
        return cls(window_days, until, error=error)


@dataclass(frozen=True, slots=True)
class Readers:
    """The impact of a deletion, as alerts, rules and the audit item see it."""

    recent: RecentReads
    last_accessed: datetime | None  # DescribeSecret LastAccessedDate (a day, 00:00 UTC)
    days_since_read: int | None

    @property
    def known(self) -> bool:
        return self.recent.error is None

    def to_dict(self) -> dict[str, Any]:
        recent = self.recent
        return {
            "window_days": recent.window_days,
            "reads": recent.reads,
            "principal_count": recent.principal_count,
            "readers": [reader.to_dict() for reader in recent.readers],
            "last_read": None if recent.last_read is None else format_time(recent.last_read),
            "last_reader": recent.last_reader,
            "complete": recent.complete,
            "error": recent.error,
            "last_accessed_date": (
                None if self.last_accessed is None else self.last_accessed.strftime("%Y-%m-%d")
            ),
            "days_since_read": self.days_since_read,
        }


def days_since_read(
    when: datetime, last_read: datetime | None, last_accessed: datetime | None
) -> int | None:
    """Whole days from the latest read known (either source) to ``when``; None when unknown.

    LastAccessedDate is a day (00:00 UTC), so from it alone the count is an upper bound: a read
    at 23:59 that day counts as a day old the next morning. A read after ``when`` (a replay of an
    old event) counts as 0.
    """
    known = [value for value in (last_read, last_accessed) if value is not None]
    if not known:
        return None
    return max(0, (when - max(known)) // timedelta(days=1))


def is_deletion(record: CloudTrailRecord) -> bool:
    """A successful DeleteSecret API call: the only record whose readers are looked up."""
    return (
        record.event_name == DELETION_EVENT
        and record.event_type == "AwsApiCall"
        and not record.failed
        and record.secret is not None
    )


# --- text -----------------------------------------------------------------------------------


def _times(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def describe(readers: Readers, escape: Callable[[str], str]) -> str:
    """One line: "read 142 times in the last 7 days by 3 principals, last 2026-12-02 14:03 UTC
    by arn:…/app-role; LastAccessedDate 2026-12-02". ``escape`` makes each caller-controlled
    value (principal ARNs, error codes) safe for the medium."""
    recent = readers.recent
    window = f"in the last {_times(recent.window_days, 'day')}"
    if recent.error is not None:
        parts = [f"readers unknown ({escape(recent.error)})"]
    elif not recent.reads:
        parts = [f"no reads in the audit trail {window}"]
    else:
        least = "" if recent.complete else "at least "
        text = (
            f"read {least}{_times(recent.reads, 'time')} {window} by "
            f"{least}{_times(recent.principal_count or 0, 'principal')}"
        )
        if recent.last_read is not None:
            text += f", last {_minute(recent.last_read)}"
            if recent.last_reader:
                text += f" by {escape(recent.last_reader)}"
        parts = [text]
    accessed = readers.last_accessed
    parts.append(
        f"LastAccessedDate {accessed.strftime('%Y-%m-%d')}"
        if accessed is not None
        else "LastAccessedDate unknown"
    )
    return "; ".join(parts)


def reader_lines(readers: Readers, escape: Callable[[str], str]) -> list[str]:
    """One line per listed reader, for the e-mail."""
    return [
        f"{escape(reader.principal)}: {_times(reader.reads, 'read')}, "
        f"last {_minute(reader.last_read)}"
        for reader in readers.recent.readers
    ]


def sms_note(readers: Readers) -> str:
    """A few characters for the SMS: " read 142x/7d by 3" (GSM-7 safe, no caller text)."""
    recent = readers.recent
    if recent.error is not None:
        return " readers unknown"
    if not recent.reads:
        days = readers.days_since_read
        return f" last read {days}d ago" if days is not None else " no recent reads"
    plus = "" if recent.complete else "+"
    return f" read {recent.reads}{plus}x/{recent.window_days}d by {recent.principal_count}{plus}"


# --- the enricher -------------------------------------------------------------------------------


class _Enricher(Protocol):
    stats: EnrichStats

    def enrich(self, record: CloudTrailRecord) -> Enrichment: ...


class _ReadLookup(Protocol):
    def recent_reads(self, record: CloudTrailRecord) -> RecentReads: ...

    def new_invocation(self) -> None: ...


class ImpactEnricher:
    """The enricher, plus the readers of a secret for deletion records only."""

    def __init__(self, inner: _Enricher, reads: _ReadLookup) -> None:
        self._inner = inner
        self._reads = reads
        self.stats = inner.stats  # the pipeline counts enrichment failures from these

    def new_invocation(self) -> None:
        """Called by the pipeline at the start of each invocation: the reads cache is per
        invocation (a later invocation must see the reads that arrived since)."""
        self._reads.new_invocation()

    def enrich(self, record: CloudTrailRecord) -> Enrichment:
        enrichment = self._inner.enrich(record)
        if not is_deletion(record):
            return enrichment
        recent = self._reads.recent_reads(record)
        details = enrichment.secret
        accessed = details.last_accessed_date if details is not None else None
        readers = Readers(
            recent,
            accessed,
            days_since_read(record.event_time, recent.last_read, accessed),
        )
        return replace(enrichment, readers=readers)
