"""The chat copy of a message: an Amazon Q Developer in chat applications custom notification.

A Slack or Microsoft Teams channel configured by the stack (template.yaml ``SlackChannel``,
``TeamsChannel``) is subscribed to the alert topic over https, so the functions publish this
document as the ``https`` variant of every message (``HTTPS_MESSAGE_FORMAT=chat``): e-mail, SMS,
queues, functions and e-mail-json subscribers still get their own variants. The service renders
only documents in its custom-notification format (``version`` "1.0", ``source`` "custom",
``content`` and ``metadata``) and drops anything else without a word, so every alert, digest,
resolution and self-test is written in it.

Built from the message's machine document, which holds everything an alert shows: who, what,
where, the console link. Every caller-controlled value goes through ``shared.text.chat`` (inline
code, no link, mention or markup can be injected, bounded in bytes); the links are the ones this
code builds. Loaded only when the stack has a chat channel, with the first message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from shared.compose import KIND_DIGEST, KIND_RESOLVED, AlertMessage
from shared.text import chat, chat_bytes

CHAT_VERSION = "1.0"
CHAT_SOURCE = "custom"
TEXT_TYPE = "client-markdown"  # the only type the service supports
# Bounds in bytes. The service documents none that we found; Slack cuts a text block at 3,000
# characters, so the description stays below that (bytes never undercount characters) and the
# whole document stays small next to SNS's 256 KiB, which carries it once among the variants.
TITLE_MAX = 250
DESCRIPTION_MAX = 2900
STEP_MAX = 600
STEPS_MAX = 4
KEYWORDS_MAX = 5
KEYWORD_MAX = 50
SUMMARY_MAX = 200
DOCUMENT_MAX = 8 * 1024
LIST_SHOWN = 10  # principals, source IPs, event names a digest shows in chat

_SEVERITY_ICON = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}
_KEYWORD = re.compile(r"[^A-Za-z0-9._-]")
_EVENT_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$")
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.-]{1,512}$"
)


def chat_notification(alert: AlertMessage) -> dict[str, Any]:
    """The custom notification for one message (alert, digest, resolution or self-test)."""
    machine = alert.machine
    kind = machine.get("kind")
    if kind == KIND_DIGEST:
        document = _digest(machine)
    elif kind == KIND_RESOLVED:
        document = _resolution(machine)
    else:
        document = _alert(machine, alert.attributes.get("kind") or "alert")
    return _bounded(document)


# --- the three kinds ------------------------------------------------------------------------------


def _alert(machine: dict[str, Any], kind: str) -> dict[str, Any]:
    severity = str(machine.get("severity") or "info")
    rule = str(machine.get("rule") or "?")
    event = _dict(machine.get("event"))
    secret = _dict(machine.get("secret"))
    caller = _dict(machine.get("caller"))
    source = _dict(machine.get("source"))
    error = _dict(event.get("error"))
    name = secret.get("name")

    title = f"{_SEVERITY_ICON.get(severity, '')} *{severity.upper()}* {chat(rule, 80)}: " + (
        chat(name, 140) if name else "(no secret)"
    )
    what = f"{chat(event.get('name'), 80)} on {chat(name, 600) if name else '(no secret)'}"
    if error:
        what += f", failed: {chat(error.get('code'), 100)} {chat(error.get('message'), 400)}"
    who = chat(caller.get("principal") or caller.get("arn") or caller.get("identity_arn"), 400)
    detail = [f"type {chat(caller.get('type'), 40)}"] if caller.get("type") else []
    if caller.get("mfa_authenticated") is not None:
        detail.append("MFA " + ("yes" if caller.get("mfa_authenticated") else "no"))
    if detail:
        who += f" ({', '.join(detail)})"
    enrichment = _dict(machine.get("enrichment"))
    alias = enrichment.get("account_name") or enrichment.get("account_alias")
    where = f"account {chat(event.get('account'), 40)}"
    if alias:
        where += f" ({chat(alias, 100)})"
    where += f", Region {chat(event.get('region'), 40)}"
    if source.get("ip"):
        where += f", from {chat(source.get('ip'), 100)}"
    if source.get("user_agent"):
        where += f", user agent {chat(source.get('user_agent'), 200)}"
    lines = []
    if machine.get("headline"):  # auto-restore acted: that comes first, as in every medium
        lines.append(f"*Action:* {chat(machine['headline'], 700)}")
    lines += [
        f"*What:* {what}",
        f"*Who:* {who}",
        f"*Where:* {where}",
        f"*When:* {chat(event.get('time'), 40)} (event {chat(event.get('id'), 80)})",
    ]
    if machine.get("description"):
        lines += ["", chat(machine["description"], 800, code=False)]
    if machine.get("short_form"):
        lines += ["", "The full message could not be composed; the audit record has every detail."]

    steps = []
    console = machine.get("console_url")
    if isinstance(console, str) and console.startswith("https://"):
        steps.append(f"Open the secret in the console: {console}")
    trail = _cloudtrail_url(console, event)
    if trail:
        steps.append(f"See the CloudTrail event: {trail}")
    if machine.get("lookup_command"):
        steps.append(f"Look up the whole record: {chat(machine['lookup_command'], 300)}")
    if machine.get("runbook"):
        steps.append(f"Runbook: {chat(machine['runbook'], STEP_MAX - 20, code=False)}")

    alert_id = _token(machine.get("alert_id"))
    return _document(
        alert_id,
        title=title,
        lines=lines,
        steps=steps,
        keywords=[severity, rule, str(event.get("name") or ""), kind],
        thread=alert_id,
        summary=f"{severity.upper()} {rule}",
        event_type=kind,
        resources=[str(secret.get("arn"))] if _SECRET_ARN.match(str(secret.get("arn"))) else [],
        context={"alert_id": alert_id, "event_id": _token(event.get("id")), "rule": _token(rule)},
    )


def _digest(machine: dict[str, Any]) -> dict[str, Any]:
    rule = str(machine.get("rule") or "?")
    count = machine.get("count")
    first = _token(machine.get("digest_of"))

    def named(values: Any) -> str:
        items = [str(value) for value in values] if isinstance(values, list) else []
        shown = ", ".join(chat(value, 200) for value in items[:LIST_SHOWN])
        more = f" and {len(items) - LIST_SHOWN} more" if len(items) > LIST_SHOWN else ""
        return (shown + more) or "-"

    lines = [
        f"{count} more finding(s) of {chat(rule, 80)} for {chat(machine.get('key'), 400)} were "
        f"folded into alert {chat(first, 80)} between {chat(machine.get('first_at'), 40)} and "
        f"{chat(machine.get('last_at'), 40)}.",
        f"*Principals:* {named(machine.get('principals'))}",
        f"*Source IPs:* {named(machine.get('source_ips'))}",
        f"*Events:* {named(machine.get('event_names'))}",
    ]
    steps = []
    if machine.get("first_event_id"):
        command = f"secretwatch audit show {machine['first_event_id']}"
        steps.append(f"Look up the first: {chat(command, 300)}")
    return _document(
        _token(machine.get("alert_id")),
        title=f":repeat: *DIGEST* {chat(rule, 80)}: {count} repeat(s)",
        lines=lines,
        steps=steps,
        keywords=["digest", rule],
        thread=first,  # under the alert the repeats were folded into
        summary=f"DIGEST {rule}: {count} repeat(s)",
        event_type=KIND_DIGEST,
        resources=[],
        context={"alert_id": _token(machine.get("alert_id")), "digest_of": first},
    )


def _resolution(machine: dict[str, Any]) -> dict[str, Any]:
    rule = str(machine.get("rule") or "?")
    secret = _dict(machine.get("secret")).get("name")
    resolves = _token(machine.get("resolves"))
    seconds = machine.get("open_seconds")
    open_for = _duration(seconds) if isinstance(seconds, int) else "?"
    event = _dict(machine.get("event"))
    lines = [
        f"The {chat(rule, 80)} alert on {chat(secret, 600)} is resolved: "
        f"{chat(machine.get('resolved_by_rule'), 80)} by {chat(machine.get('resolved_by'), 400)} "
        f"at {chat(machine.get('resolved_at'), 40)}, {open_for} after it opened.",
        f"*Closes:* alert {chat(resolves, 80)} (event {chat(machine.get('opened_event_id'), 80)})",
    ]
    steps = []
    if event.get("id"):
        command = f"secretwatch audit show {event['id']}"
        steps.append(f"Look up the resolving event: {chat(command, 300)}")
    return _document(
        _token(machine.get("alert_id")),
        title=f":white_check_mark: *RESOLVED* {chat(rule, 80)}: {chat(secret, 140)}",
        lines=lines,
        steps=steps,
        keywords=["resolved", rule],
        thread=resolves,  # under the alert it closes
        summary=f"RESOLVED {rule}",
        event_type=KIND_RESOLVED,
        resources=[],
        context={"alert_id": _token(machine.get("alert_id")), "resolves": resolves},
    )


# --- the document and its bounds ------------------------------------------------------------------


def _document(
    identifier: str,
    *,
    title: str,
    lines: list[str],
    steps: list[str],
    keywords: list[str],
    thread: str,
    summary: str,
    event_type: str,
    resources: list[str],
    context: dict[str, str],
) -> dict[str, Any]:
    return {
        "version": CHAT_VERSION,
        "source": CHAT_SOURCE,
        "id": identifier,
        "content": {
            "textType": TEXT_TYPE,
            "title": _cut(title, TITLE_MAX),
            "description": _cut("\n".join(lines), DESCRIPTION_MAX),
            "nextSteps": [_cut(step, STEP_MAX) for step in steps[:STEPS_MAX]],
            "keywords": _keywords(keywords),
        },
        "metadata": {
            "threadId": thread,
            "summary": _cut(chat(summary, SUMMARY_MAX, code=False), SUMMARY_MAX),
            "eventType": _token(event_type),
            "relatedResources": resources,
            "additionalContext": {key: value for key, value in context.items() if value},
        },
    }


def _bounded(document: dict[str, Any]) -> dict[str, Any]:
    """Within DOCUMENT_MAX bytes as JSON: the description and steps give way first."""
    from shared.text import dumps  # noqa: PLC0415 — with the rest of this module, lazily

    if chat_bytes(dumps(document)) <= DOCUMENT_MAX:
        return document
    content = document["content"]
    content["nextSteps"] = [_cut(step, 200) for step in content["nextSteps"]]
    content["description"] = _cut(content["description"], 1000)
    return document


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` bytes, cut between lines' pieces (every caller value is already bounded
    by ``chat``; this bounds what they add up to), never inside a UTF-8 sequence."""
    if chat_bytes(text) <= limit:
        return text
    data = text.encode("utf-8")[: max(limit - 3, 0)]
    cut = data.decode("utf-8", errors="ignore")
    if cut.count("`") % 2:  # a cut inside inline code: close it, so no markup leaks out
        cut = cut[: cut.rfind("`")]
    return cut.rstrip() + "…"


def _keywords(values: list[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        keyword = _KEYWORD.sub("-", value)[:KEYWORD_MAX].strip("-")
        if keyword and keyword not in seen:
            seen.append(keyword)
    return seen[:KEYWORDS_MAX]


def _token(value: Any) -> str:
    """An id as metadata: only the characters ids are made of, bounded."""
    return _KEYWORD.sub("-", str(value))[:128] if value else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _duration(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{rest // 60}m")
    return " ".join(parts)


def _cloudtrail_url(console: Any, event: dict[str, Any]) -> str | None:
    """The event in the CloudTrail console's event history, on the secret link's console host
    (so the same partition), for a well-formed event id and Region only."""
    if not isinstance(console, str):
        return None
    event_id, region = str(event.get("id") or ""), str(event.get("region") or "")
    host = urlsplit(console).netloc
    if not _EVENT_ID.match(event_id) or not _REGION.match(region) or not host:
        return None
    return f"https://{host}/cloudtrailv2/home?region={region}#/events/{quote(event_id)}"
