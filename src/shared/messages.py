"""The messages of an alert's life besides the alert itself: a dedup window's digest, and the
resolution that closes an open alert. Same channels, escaping and limits as ``shared.compose``;
message attribute ``kind`` tells them apart (the SMS subscription's filter leaves digests out).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.compose import (
    KIND_DIGEST,
    KIND_RESOLVED,
    SCHEMA_VERSION,
    SMS_MAX,
    SUBJECT_MAX,
    AlertMessage,
    format_time_ms,
)
from shared.models import CloudTrailRecord
from shared.text import GSM7_SAFE, attribute, clean, cut, fit, fold

if TYPE_CHECKING:
    from shared.stateful import Resolution

LIST_MAX = 50  # distinct principals, source IPs or event names a digest names


def _for_how_long(milliseconds: int) -> str:
    seconds = max(milliseconds // 1000, 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def build_resolution(record: CloudTrailRecord, resolution: Resolution) -> AlertMessage:
    """ "<rule> resolved: <secret>": the alert it closes, who closed it, how long it was open."""
    open_for = _for_how_long(resolution.resolved_ms - resolution.opened_ms)
    secret = fold(resolution.secret)
    head = fold(f"[RESOLVED] {resolution.rule_id}: ")
    by = fold(resolution.by)
    secret_s, by_s = fit([secret, by], max(SUBJECT_MAX - len(head) - len(" by "), 20), "...")
    subject = cut(f"{head}{secret_s} by {by_s}", SUBJECT_MAX, "...")
    sms_head = f"secretwatch RESOLVED {fold(resolution.rule_id, GSM7_SAFE)}"
    secret_g, by_g = fit(
        [fold(resolution.secret, GSM7_SAFE), fold(resolution.by, GSM7_SAFE)],
        max(SMS_MAX - len(sms_head) - len("  by  after ") - len(open_for), 10),
        "..",
    )
    sms = cut(f"{sms_head} {secret_g} by {by_g} after {open_for}", SMS_MAX, "..")
    email = "\n".join(
        [
            f"The {clean(resolution.rule_id, 200)} alert on secret {clean(resolution.secret, 520)}"
            f" is resolved: {clean(resolution.by_rule, 200)} by {clean(resolution.by, 300)}"
            f" at {format_time_ms(resolution.resolved_ms)}, {open_for} after it opened.",
            "",
            f"Closes:   alert {resolution.resolved_alert_id} (event "
            f"{clean(resolution.opened_event_id, 200)}, {format_time_ms(resolution.opened_ms)})",
            f"Resolved: event {clean(record.event_id, 200)} ({clean(record.event_name, 100)})",
            "",
            f"Look up: secretwatch audit show {shlex.quote(record.event_id)}",
            "",
        ]
    )
    machine = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND_RESOLVED,
        "alert_id": resolution.alert_id,
        "resolves": resolution.resolved_alert_id,
        "rule": resolution.rule_id,
        "resolved_by_rule": resolution.by_rule,
        "resolved_by": resolution.by,
        "opened_event_id": resolution.opened_event_id,
        "opened_at": format_time_ms(resolution.opened_ms),
        "resolved_at": format_time_ms(resolution.resolved_ms),
        "open_seconds": max((resolution.resolved_ms - resolution.opened_ms) // 1000, 0),
        "event": {"id": record.event_id, "name": record.event_name},
        "secret": {"name": resolution.secret},
    }
    return AlertMessage(
        subject=subject,
        email=email,
        sms=sms,
        machine=machine,
        attributes={
            "kind": KIND_RESOLVED,
            "severity": "info",
            "rule": attribute(resolution.rule_id),
            "event_name": attribute(record.event_name),
            "account": attribute(record.account_id),
            "region": attribute(record.region),
            "alert_id": resolution.alert_id,
        },
    )


def build_digest(window: Mapping[str, Any], alert_id: str, repeats: int) -> AlertMessage:
    """One closed dedup window: how many repeats, from when to when, who, from where, what."""
    rule = str(window.get("rule_id") or "?")
    first_alert = str(window.get("first_alert") or "?")
    opened, last = int(window.get("opened_at") or 0), int(window.get("last_at") or 0)
    lists = {
        name: sorted(str(v) for v in (window.get(name) or ()))
        for name in ("principals", "source_ips", "event_names")
    }
    key = clean(str(window.get("key_text") or ""), 1200)
    subject = cut(
        fold(f"[DIGEST] {rule}: {repeats} repeat(s) of alert {first_alert[:12]}"),
        SUBJECT_MAX,
        "...",
    )
    sms = cut(fold(f"secretwatch DIGEST {rule} {repeats} repeats {key}", GSM7_SAFE), SMS_MAX, "..")

    def named(values: list[str]) -> str:
        shown = ", ".join(clean(value, 300) for value in values[:LIST_MAX])
        more = f" and {len(values) - LIST_MAX} more" if len(values) > LIST_MAX else ""
        return (shown + more) or "-"

    email = "\n".join(
        [
            f"{repeats} more finding(s) of {clean(rule, 200)} for {key} were folded into alert "
            f"{first_alert} between {format_time_ms(opened)} and {format_time_ms(last)}.",
            "",
            f"Principals: {named(lists['principals'])}",
            f"Source IPs: {named(lists['source_ips'])}",
            f"Events:     {named(lists['event_names'])}",
            f"Window:     {format_time_ms(opened)} to {format_time_ms(int(window.get('window_end') or 0))}",
            "",
            f"Look up the first: secretwatch audit show {shlex.quote(str(window.get('first_event')))}",
            "",
        ]
    )
    machine = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND_DIGEST,
        "alert_id": alert_id,
        "digest_of": first_alert,
        "rule": rule,
        "key": key,
        "count": repeats,
        "first_event_id": window.get("first_event"),
        "first_at": format_time_ms(opened),
        "last_at": format_time_ms(last),
        "window_end": format_time_ms(int(window.get("window_end") or 0)),
        **{name: values[:LIST_MAX] for name, values in lists.items()},
        "lists_truncated": any(len(values) > LIST_MAX for values in lists.values()),
    }
    return AlertMessage(
        subject=subject,
        email=email,
        sms=sms,
        machine=machine,
        attributes={
            "kind": KIND_DIGEST,
            "severity": "info",
            "rule": attribute(rule),
            "alert_id": alert_id,
        },
    )
