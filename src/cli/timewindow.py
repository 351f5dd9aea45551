"""Time windows as the commands take them: one meaning of --since and --until everywhere.

``--since`` and ``--until`` are both inclusive, to the second (CloudTrail's resolution); a bare
date as ``--until`` means the last second of that day, so ``--since 2026-11-01 --until
2026-11-01`` is that whole day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime, *, end_of_day: bool = False) -> datetime:
    """``24h``/``7d``/``30m``/``2w`` before ``now``, a date (start of day, or its last second
    with ``end_of_day``) or a full ISO 8601 time (UTC unless it says otherwise)."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return to_second(now - timedelta(**{_UNITS[unit]: amount}))
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None and len(value) == 10:
        moment = time(23, 59, 59) if end_of_day else time(0, 0, 0)
        return datetime.combine(day, moment, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read time {value!r}: use 24h, 7d, 2026-11-01 or 2026-11-01T10:00:00Z"
        ) from None
    return to_second(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def to_second(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


def in_window(when: datetime, since: datetime | None, until: datetime | None) -> bool:
    """Inclusive at both ends, to the second."""
    second = when.replace(microsecond=0)
    return (since is None or second >= since) and (until is None or second <= until)


def window(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until`` as every command reads them; ValueError when unreadable or
    reversed (the commands turn it into a usage error)."""
    start = parse_time(since, now) if since else None
    end = parse_time(until, now, end_of_day=True) if until else None
    if start and end and start > end:
        raise ValueError("--since must not be later than --until")
    return start, end
