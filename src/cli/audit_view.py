"""How ``secretwatch audit`` shows audit items: flat rows for tables and CSV, JSON lines.

The sentences come from ``shared.narrate``, the one narrator; this module only lays out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.narrate import sentence
from shared.text import dumps


def display_time(iso: str | None) -> str:
    return (iso or "").replace("T", " ")


ROW_FIELDS = (
    "time",
    "event_name",
    "secret",
    "principal",
    "source_ip",
    "severity",
    "rules",
    "error",
    "event_id",
)


def summary_row(item: Mapping[str, Any]) -> dict[str, str]:
    """One flat row per item: the table and CSV columns."""
    caller = item.get("caller") or {}
    return {
        "time": display_time(item.get("event_time")),
        "event_name": str(item.get("event_name") or ("(rejected)" if item.get("error") else "")),
        "secret": str(item.get("secret_name") or ""),
        "principal": str(caller.get("name") or item.get("principal") or ""),
        "source_ip": str((item.get("source") or {}).get("ip") or ""),
        "severity": str(item.get("severity") or ""),
        "rules": " ".join(rule_label(f) for f in item.get("findings") or []),
        "error": str(item.get("error_code") or item.get("error") or ""),
        "event_id": str(item.get("event_id") or ""),
    }


def rule_label(finding: Mapping[str, Any]) -> str:
    """A finding's rule, with why it was not alerted when it was not."""
    label = str(finding.get("rule"))
    if finding.get("exception"):
        return f"{label}(suppressed:{finding['exception']})"
    if finding.get("mode") == "audit-only":
        return f"{label}(audit-only)"
    return label


def not_alerted(finding: Mapping[str, Any]) -> str:
    """ " — suppressed by exception X" / " — audit-only", or nothing for an alerted finding."""
    if finding.get("exception"):
        return f" — suppressed by exception {finding['exception']}, not alerted"
    if finding.get("mode") == "audit-only":
        return " — audit-only rule, not alerted"
    return ""


def findings_text(item: Mapping[str, Any]) -> str:
    return ", ".join(f"{f.get('severity')}: {rule_label(f)}" for f in item.get("findings") or [])


def timeline_row(item: Mapping[str, Any]) -> dict[str, str]:
    return {
        "time": display_time(item.get("event_time")),
        "sentence": sentence(item),
        "severity": str(item.get("severity") or ""),
        "findings": findings_text(item),
        "event_name": str(item.get("event_name") or ""),
        "event_id": str(item.get("event_id") or ""),
    }


def to_json(item: Mapping[str, Any]) -> str:
    return dumps(item, sort_keys=True)
