"""Composing alerts: one SNS message per alert, shaped for every kind of subscriber.

An alert is published with ``MessageStructure="json"``: e-mail subscribers get a plain-text
message, SMS subscribers one GSM-7 segment, and queues, functions and HTTP endpoints the same
machine-readable JSON document. Every alert carries a stable ``alert_id`` (a message attribute
and a field of the JSON document), identical on every send of that alert, so a consumer can drop
the rare repeat (docs/delivery.md).

Much of what an alert shows is chosen by whoever made the call (user agent, secret name and
description, role session name, tag values, error text, policy text): every such string goes
through ``shared.text``, the one escaping policy, for the medium it lands in.

No secret value appears anywhere: CloudTrail never records one, and nothing here reads one.
"""

from __future__ import annotations

import logging
import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.audit.items import alert_id as stable_alert_id
from shared.audit.items import event_view
from shared.impact import describe, reader_lines, sms_note
from shared.models import Caller, CloudTrailRecord, Finding, RequestFields, format_time
from shared.narrate import DEFAULT_RECOVERY_WINDOW_DAYS, headline
from shared.selftest import SELFTEST_EVENT_NAME, SELFTEST_KIND, SELFTEST_RULE_ID
from shared.text import (
    ASCII_PRINTABLE,
    ELLIPSIS,
    GSM7_SAFE,
    attribute,
    clean,
    cut,
    dumps,
    fit,
    fold,
    is_lookalike,
    json_ready,
)

if TYPE_CHECKING:
    from shared.models import Enrichment, SecretDetails
    from shared.remediate import Remediation

# A child of the Powertools service logger ("secretwatch"): same JSON handler, same level.
logger = logging.getLogger("secretwatch." + __name__.rpartition(".")[2])

SCHEMA_VERSION = 1
SUBJECT_MAX = 99  # SNS: "less than 100 characters", ASCII, no line breaks or control characters
SMS_MAX = 160  # one GSM-7 segment
USER_AGENT_MAX = 200
# SNS accepts at most 256 KiB per message; leave room for the subject and the attributes.
MESSAGE_MAX_BYTES = 256 * 1024 - 8 * 1024
# Subscriber protocols that receive the machine-readable document.
MACHINE_PROTOCOLS: tuple[str, ...] = ("sqs", "lambda", "http", "https", "firehose", "email-json")
LOOKALIKE_TAG = "LOOK-ALIKE NAME"

# --- the message --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertMessage:
    subject: str  # ASCII printable, at most SUBJECT_MAX characters, no line breaks
    email: str
    sms: str  # GSM-7 basic characters only, at most SMS_MAX characters
    machine: dict[str, Any]
    attributes: dict[str, str]  # SNS message attributes, for subscription filter policies

    @property
    def alert_id(self) -> str | None:
        return self.attributes.get("alert_id")

    @property
    def event_id(self) -> str | None:
        event = self.machine.get("event")
        return event.get("id") if isinstance(event, dict) else None

    @property
    def rule_id(self) -> str | None:
        rule = self.machine.get("rule")
        return rule if isinstance(rule, str) else None


def build_alert(
    record: CloudTrailRecord,
    finding: Finding,
    enrichment: Enrichment,
    *,
    item: Mapping[str, Any] | None = None,
    alert_id: str | None = None,
    console_domain: str | None = None,
    remediation: Remediation | None = None,
) -> AlertMessage:
    """The alert for one finding. Never raises: if composing the full message fails on some
    hostile input, a short message with the essentials goes out instead (a lost alert is worse
    than a terse one).

    ``item`` is the record's audit item, which the e-mail's first line narrates (built from the
    record when not given); ``alert_id`` defaults to the finding's stable id.
    """
    if alert_id is None:
        alert_id = stable_alert_id(record.event_id, finding.rule_id)
    try:
        view = item if item is not None else event_view(record)
        alert = _full_alert(
            record, finding, enrichment, view, alert_id=alert_id, console_domain=console_domain
        )
        return alert if remediation is None else _with_remediation(alert, record, remediation)
    except Exception as exc:  # noqa: BLE001 — the alert must go out whatever the record holds
        logger.error(
            "alert composed in short form",
            extra={"event_id": attribute(record.event_id), "error": type(exc).__name__},
        )
        return _short_alert(record, finding, alert_id, type(exc).__name__)


KIND_ALERT, KIND_DIGEST, KIND_RESOLVED = "alert", "digest", "resolved"


def _attributes(record: CloudTrailRecord, finding: Finding, alert_id: str) -> dict[str, str]:
    return {
        "severity": finding.severity,
        "rule": attribute(finding.rule_id),
        "event_name": attribute(record.event_name),
        "account": attribute(record.account_id),
        "region": attribute(record.region),
        "alert_id": alert_id,
        # What the SMS subscription's filter policy admits (template.yaml): alerts, never a
        # self-test's.
        "kind": SELFTEST_KIND
        if finding.rule_id == SELFTEST_RULE_ID and record.event_name == SELFTEST_EVENT_NAME
        else KIND_ALERT,
    }


def _full_alert(
    record: CloudTrailRecord,
    finding: Finding,
    enrichment: Enrichment,
    view: Mapping[str, Any],
    *,
    alert_id: str,
    console_domain: str | None,
) -> AlertMessage:
    url = console_url(record, console_domain=console_domain)
    command = lookup_command(record.event_id)
    return AlertMessage(
        subject=_subject(record, finding),
        email=_email(record, finding, enrichment, view, url=url, command=command),
        sms=_sms_with_readers(_sms(record, finding), enrichment),
        machine=_machine(record, finding, enrichment, url=url, command=command, alert_id=alert_id),
        attributes=_attributes(record, finding, alert_id),
    )


def _with_remediation(
    alert: AlertMessage, record: CloudTrailRecord, remediation: Remediation
) -> AlertMessage:
    """The alert of a finding that auto-restore acted on says so first, in every medium."""
    secret, who = _secret_name(record), _short_caller(record.caller)
    reader = remediation.reader or who
    severity = str(alert.machine.get("severity", "")).upper()

    def fitted(head: str, limit: int, alphabet: frozenset[str], marker: str) -> str:
        fixed = len(head) + len(fold(remediation.sentence("", ""), alphabet))
        short_secret, short_who = fit(
            [fold(secret, alphabet), fold(who, alphabet)], max(limit - fixed, 16), marker
        )
        line = head + fold(remediation.sentence(short_secret, short_who), alphabet)
        return cut(line, limit, marker).rstrip()

    line = remediation.sentence(clean(secret, 520), clean(reader, 300))
    action = (
        f"{clean(remediation.mode, 20)}: RestoreSecret on {clean(remediation.secret, 600)} at "
        f"{clean(remediation.at, 40)}: {remediation.result}"
    )
    if remediation.error:
        action += f" ({clean(remediation.error, 200)})"
    return AlertMessage(
        subject=fitted(f"[{severity}] ", SUBJECT_MAX, ASCII_PRINTABLE, "..."),
        email=f"{line[:1].upper()}{line[1:]}.\n{_label('Action', action)}\n\n{alert.email}",
        sms=fitted(f"secretwatch {severity} ", SMS_MAX, GSM7_SAFE, ".."),
        machine={
            **alert.machine,
            "headline": json_ready(remediation.sentence(secret, reader)),
            "remediation": json_ready(remediation.to_dict()),
        },
        attributes=alert.attributes,
    )


def _short_alert(
    record: CloudTrailRecord, finding: Finding, alert_id: str, problem: str
) -> AlertMessage:
    command = lookup_command(record.event_id)
    secret = clean(_secret_name(record), 520)
    email = (
        f"{clean(finding.rule_id, 200)} ({finding.severity.upper()}) fired on "
        f"{clean(record.event_name, 100)} for secret {secret} at {record.event_time_iso}.\n\n"
        f"The full message could not be composed ({problem}); the audit record has every "
        f"detail.\n\nLook up: {clean(command, 300)}\n"
    )
    return AlertMessage(
        subject=cut(
            fold(f"[{finding.severity.upper()}] {finding.rule_id}: {_secret_name(record)}"),
            SUBJECT_MAX,
            "...",
        ),
        email=email,
        sms=cut(
            fold(
                f"secretwatch {finding.severity.upper()} {finding.rule_id} {_secret_name(record)}",
                GSM7_SAFE,
            ),
            SMS_MAX,
            "..",
        ),
        machine={
            "schema_version": SCHEMA_VERSION,
            "alert_id": alert_id,
            "rule": finding.rule_id,
            "severity": finding.severity,
            "event": {
                "id": record.event_id,
                "name": record.event_name,
                "time": record.event_time_iso,
            },
            "secret": None if record.secret is None else {"name": record.secret.name},
            "lookup_command": command,
            "short_form": problem,
        },
        attributes=_attributes(record, finding, alert_id),
    )


def lookup_command(event_id: str) -> str:
    return f"secretwatch audit show {shlex.quote(event_id)}"


_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$")


def console_url(record: CloudTrailRecord, *, console_domain: str | None = None) -> str | None:
    """A link to the secret in the Secrets Manager console, or None when it cannot be built."""
    ref = record.secret
    region = (ref.region if ref else None) or record.region
    if ref is None or region is None or not _REGION.match(region):
        return None  # the region becomes part of a host name: only a well-formed one is used
    domain = console_domain or _console_domain(ref.arn, region)
    if domain is None:
        return None
    name = json_ready(ref.name)  # lone surrogates cannot be percent-encoded
    return (
        f"https://{region}.{domain}/secretsmanager/secret"
        f"?name={quote(name, safe='')}&region={region}"
    )


def _console_domain(arn: str | None, region: str) -> str | None:
    partition = arn.split(":", 2)[1] if arn and arn.count(":") >= 2 else None
    if partition == "aws-cn" or (partition is None and region.startswith("cn-")):
        return "console.amazonaws.cn"
    if partition == "aws-us-gov" or (partition is None and region.startswith("us-gov-")):
        return "console.amazonaws-us-gov.com"
    if partition in (None, "aws"):
        return "console.aws.amazon.com"
    return None  # isolated partitions have no public console


# --- short forms: subject and SMS ---------------------------------------------------------------


def _short_caller(caller: Caller) -> str:
    for value in (
        caller.name,
        caller.sso_user,
        caller.user_name,
        caller.role_name,
        caller.invoked_by,
        caller.principal,
        caller.account_id,
    ):
        if value:
            return value
    return "unknown"


def _secret_name(record: CloudTrailRecord) -> str:
    return record.secret.name if record.secret is not None else "(no secret)"


def _lookalike(record: CloudTrailRecord) -> bool:
    return record.secret is not None and is_lookalike(record.secret.name)


def _subject(record: CloudTrailRecord, finding: Finding) -> str:
    head = fold(f"[{finding.severity.upper()}] {finding.rule_id}: ")
    flag = f" [{LOOKALIKE_TAG}]" if _lookalike(record) else ""
    failed = " (failed)" if record.failed else ""
    secret, caller = (fold(_secret_name(record)), fold(_short_caller(record.caller)))
    budget = SUBJECT_MAX - len(head) - len(flag) - len(" by ") - len(failed)
    if budget < 16:  # an absurdly long rule id: cut the whole line instead
        return cut(f"{head}{secret}{flag} by {caller}{failed}", SUBJECT_MAX, "...").rstrip()
    secret, caller = fit([secret, caller], budget, "...")
    return f"{head}{secret}{flag} by {caller}{failed}".rstrip()


def _sms_with_readers(sms: str, enrichment: Enrichment) -> str:
    """A deletion's readers, in a few characters, when they still fit the one segment."""
    if enrichment.readers is None:
        return sms
    note = sms_note(enrichment.readers)
    return sms + note if len(sms) + len(note) <= SMS_MAX else sms


def _sms(record: CloudTrailRecord, finding: Finding) -> str:
    def gsm(value: str) -> str:
        return fold(value, GSM7_SAFE)

    head = gsm(f"secretwatch {finding.severity.upper()} {finding.rule_id}")
    where = [part for part in (record.account_id, record.region) if part]
    tail = gsm("".join(f" {part[:20]}" for part in where))
    if record.failed:
        tail = " FAILED" + tail
    flag = " LOOKALIKE" if _lookalike(record) else ""
    secret, caller = gsm(_secret_name(record)), gsm(_short_caller(record.caller))
    budget = SMS_MAX - len(head) - len(flag) - len(tail) - len("  by ")
    if budget < 10:
        return cut(f"{head} {secret}{flag} by {caller}{tail}", SMS_MAX, "..")
    secret, caller = fit([secret, caller], budget, "..")
    return f"{head} {secret}{flag} by {caller}{tail}"


# --- e-mail -------------------------------------------------------------------------------------


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


_INDENT = " " * 10


def _label(name: str, value: str) -> str:
    return f"{name + ':':<10}{value}"


def _email(
    record: CloudTrailRecord,
    finding: Finding,
    enrichment: Enrichment,
    view: Mapping[str, Any],
    *,
    url: str | None,
    command: str,
) -> str:
    first = headline(view)
    if _lookalike(record) and record.secret is not None:
        # On the same line: a hostile name must not be able to change the e-mail's shape.
        first += (
            f" WARNING: this secret's name uses look-alike characters: it reads as "
            f"{clean(unicodedata.normalize('NFKC', record.secret.name), 520)} but is a "
            "different name; check which secret this really is before acting."
        )
    lines = [first, ""]
    lines.append(_label("Rule", f"{clean(finding.rule_id, 200)} ({finding.severity.upper()})"))
    lines.append(
        _label("When", f"{record.event_time_iso} (event id {clean(record.event_id, 200)})")
    )
    lines.append(_label("Account", _account_line(record, enrichment)))
    lines.append(_label("Region", clean(record.region, 50) if record.region else "unknown"))
    who = _caller_lines(record.caller)
    lines.append(_label("Who", who[0]))
    lines.extend(_INDENT + line for line in who[1:])
    lines.append(_label("From", _source_line(record)))
    secret = _secret_lines(record, enrichment.secret)
    lines.append(_label("Secret", secret[0]))
    lines.extend(_INDENT + line for line in secret[1:])
    if enrichment.readers is not None:
        escape = _escape_300
        lines.append(_label("Readers", describe(enrichment.readers, escape)))
        lines.extend(_INDENT + line for line in reader_lines(enrichment.readers, escape))
    if record.failed:
        code = clean(record.error_code, 200) if record.error_code else "(no code)"
        message = f": {clean(record.error_message, 1100)}" if record.error_message else ""
        lines.append(_label("Error", code + message))
    request = _request_lines(record.request)
    if request:
        lines.append(_label("Request", request[0]))
        lines.extend(_INDENT + line for line in request[1:])
    if enrichment.notes:
        lines.append(_label("Notes", "; ".join(clean(note, 300) for note in enrichment.notes)))
    state = state_line(finding)
    if state:
        lines.append(_label("Repeats", state))
    lines.extend(["", clean(finding.description, 4000, keep_newlines=True)])
    if finding.runbook:
        lines.extend(["", "Runbook:", clean(finding.runbook, 8000, keep_newlines=True)])
    lines.append("")
    lines.append(f"Console: {url}" if url else "Console: (no link: secret or region unknown)")
    lines.append(f"Look up: {clean(command, 300)}")
    return "\n".join(lines) + "\n"


def state_line(finding: Finding) -> str | None:
    """What the rule's state says of this alert: a threshold crossed, or a dedup window opened."""
    detail = finding.detail or {}
    if finding.state == "fired":
        others = detail.get("others") or []
        group = ", ".join(
            f"{k} {clean(str(v), 200)}" for k, v in (detail.get("group") or {}).items()
        )
        what = f"distinct {detail['distinct']}" if detail.get("distinct") else "events"
        text = (
            f"threshold crossed: {detail.get('seen')} {what} within {_duration(detail.get('window_s'))}"
            f" (needs {detail.get('count')})" + (f" for {group}" if group else "")
        )
        if others:
            text += "; the others: " + ", ".join(clean(str(e), 80) for e in others[:20])
            if len(others) > 20:
                text += f" and {len(others) - 20} more"
        return text
    if detail.get("window_end_ms"):
        end = format_time_ms(int(detail["window_end_ms"]))
        return f"repeats of this alert until {end} are folded into one digest"
    return None


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_time_ms(value: int) -> str:
    return format_time(datetime.fromtimestamp(value / 1000, UTC).replace(microsecond=0))


def _escape_300(value: str) -> str:
    return clean(value, 300)


def _account_line(record: CloudTrailRecord, enrichment: Enrichment) -> str:
    text = clean(record.account_id, 50) if record.account_id else "unknown"
    known = [
        f"{label} {clean(value, 100)}"
        for label, value in (("alias", enrichment.account_alias), ("name", enrichment.account_name))
        if value
    ]
    return f"{text} ({', '.join(known)})" if known else text


def _caller_lines(caller: Caller) -> list[str]:
    first = caller.principal or caller.arn or caller.identity_arn
    access = [
        f"type {clean(caller.type, 50) if caller.type else 'none (service event)'}",
        f"MFA {_yes_no(caller.mfa_authenticated)}",
    ]
    if caller.console_session is not None:
        access.append(f"console session {_yes_no(caller.console_session)}")
    if caller.access_key_id:
        access.append(f"access key {clean(caller.access_key_id, 40)}")
    groups: list[list[tuple[str, str | None]]] = [
        [("identity", caller.identity_arn if caller.identity_arn != first else None)],
        [("user", caller.user_name), ("role", caller.role_name), ("session", caller.session_name)],
        [("SSO user", caller.sso_user), ("permission set", caller.sso_permission_set)],
        [
            ("Identity Center user id", caller.identity_store_user_id),
            ("source identity", caller.source_identity),
            ("invoked by", caller.invoked_by),
            ("account", caller.account_id),
        ],
    ]
    lines = [clean(first, 300) if first else "(no principal ARN)", "; ".join(access)]
    for group in groups:
        parts = [f"{label} {clean(value, 200)}" for label, value in group if value]
        if parts:
            lines.append("; ".join(parts))
    return lines


def _source_line(record: CloudTrailRecord) -> str:
    source = record.source_ip
    if not source:
        parts = ["source unknown"]
    elif source.endswith(".amazonaws.com") or source == "AWS Internal":
        parts = [f"service {clean(source, 100)}"]
    else:
        parts = [f"IP {clean(source, 100)}"]
    if record.user_agent:
        parts.append(f'user agent "{clean(record.user_agent, USER_AGENT_MAX)}"')
    if record.vpc_endpoint_id:
        parts.append(f"VPC endpoint {clean(record.vpc_endpoint_id, 100)}")
    return "; ".join(parts)


def _secret_lines(record: CloudTrailRecord, details: SecretDetails | None) -> list[str]:
    ref = record.secret
    if ref is None:
        return ["(the event names no secret)"]
    lines = [clean(ref.name, 520)]
    arn = ref.arn or (details.arn if details else None)
    if arn:
        lines.append(f"ARN: {clean(arn, 600)}")
    if details is None:
        lines.append("details: unavailable (see Notes)")
    else:
        if details.owner:
            lines.append(f"Owner: {clean(details.owner, 256)}")
        if details.tags:
            tags = ", ".join(
                f"{clean(key, 128)}={clean(value, 256)}"
                for key, value in sorted(details.tags.items())
            )
            lines.append(f"Tags: {clean(tags, 2000)}")
        if details.description:
            lines.append(f"Description: {clean(details.description, 1000)}")
        lines.append(f"Rotation: {_rotation(details)}")
        kms = details.kms_key_id or "aws/secretsmanager (AWS managed key)"
        lines.append(f"KMS key: {clean(kms, 300)}")
        if details.primary_region:
            lines.append(f"Primary region: {clean(details.primary_region, 50)}")
    deletion = _deletion_date(record, details)
    if deletion:
        lines.append(f"Deletion date: {deletion}")
    return lines


def _rotation(details: SecretDetails) -> str:
    if details.rotation_enabled is None:
        text = "never configured"
    else:
        text = "enabled" if details.rotation_enabled else "disabled"
    if details.rotation_lambda_arn:
        text += f", function {clean(details.rotation_lambda_arn, 300)}"
    if details.last_rotated_date:
        text += f", last rotated {format_time(details.last_rotated_date)}"
    return text


def _deletion_date(record: CloudTrailRecord, details: SecretDetails | None) -> str | None:
    if details is not None and details.deleted_date is not None:
        return format_time(details.deleted_date)
    if record.event_name != "DeleteSecret" or record.failed:
        return None
    request = record.request
    if request.force_delete_without_recovery:
        return f"{record.event_time_iso} (deleted without recovery)"
    days = request.recovery_window_days or DEFAULT_RECOVERY_WINDOW_DAYS
    purge = format_time(record.event_time + timedelta(days=days))
    return f"{purge} (event time + {days} days)"


def _request_lines(request: RequestFields) -> list[str]:
    lines: list[str] = []
    if request.recovery_window_days is not None:
        lines.append(f"recovery window {request.recovery_window_days} days")
    if request.force_delete_without_recovery is not None:
        lines.append(
            f"force delete without recovery: {_yes_no(request.force_delete_without_recovery)}"
        )
    if request.resource_policy is not None:
        lines.append(f"resource policy: {clean(dumps(request.resource_policy), 2000)}")
    if request.block_public_policy is not None:
        lines.append(f"block public policy: {_yes_no(request.block_public_policy)}")
    if request.rotation_lambda_arn:
        lines.append(f"rotation function: {clean(request.rotation_lambda_arn, 300)}")
    rules = request.rotation_rules
    if rules is not None:
        parts = [
            f"every {rules.automatically_after_days} days"
            if rules.automatically_after_days
            else "",
            clean(rules.schedule_expression, 200) if rules.schedule_expression else "",
            f"window {clean(rules.duration, 20)}" if rules.duration else "",
        ]
        lines.append(f"rotation schedule: {', '.join(part for part in parts if part) or 'none'}")
    if request.rotate_immediately is not None:
        lines.append(f"rotate immediately: {_yes_no(request.rotate_immediately)}")
    if request.kms_key_id:
        lines.append(f"KMS key: {clean(request.kms_key_id, 300)}")
    if request.version_stages is not None:
        lines.append(f"version stages: {clean(', '.join(request.version_stages), 300)}")
    if request.new_version_id:
        lines.append(f"new version: {clean(request.new_version_id, 100)}")
    if request.add_replica_regions is not None:
        lines.append(f"add replica regions: {clean(', '.join(request.add_replica_regions), 300)}")
    if request.remove_replica_regions is not None:
        regions = ", ".join(request.remove_replica_regions)
        lines.append(f"remove replica regions: {clean(regions, 300)}")
    if request.deletion_date:
        lines.append(f"deletion date (as AWS wrote it): {clean(request.deletion_date, 100)}")
    return lines


# --- machine ------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _jsonable(item) for key, item in asdict(value).items() if item is not None}
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


def _machine(
    record: CloudTrailRecord,
    finding: Finding,
    enrichment: Enrichment,
    *,
    url: str | None,
    command: str,
    alert_id: str,
) -> dict[str, Any]:
    ref = record.secret
    error = {"code": record.error_code, "message": record.error_message} if record.failed else None
    request = {
        item.name: _jsonable(getattr(record.request, item.name))
        for item in fields(RequestFields)
        if getattr(record.request, item.name) is not None
    }
    machine: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND_ALERT,
        "alert_id": alert_id,
        "rule": finding.rule_id,
        "severity": finding.severity,
        "description": finding.description,
        "runbook": finding.runbook,
        "event": {
            "id": record.event_id,
            "name": record.event_name,
            "type": record.event_type,
            "time": record.event_time_iso,
            "source": record.event_source,
            "region": record.region,
            "account": record.account_id,
            "read_only": record.read_only,
            "error": error,
            "version": record.event_version,
            "request_id": record.request_id,
            "shared_event_id": record.shared_event_id,
            "warnings": list(record.warnings),
        },
        "secret": None if ref is None else {**asdict(ref), "lookalike": _lookalike(record)},
        "caller": asdict(record.caller),
        "source": {
            "ip": record.source_ip,
            "user_agent": record.user_agent,
            "vpc_endpoint": record.vpc_endpoint_id,
        },
        "request": request,
        "enrichment": enrichment.to_dict(),
        "console_url": url,
        "lookup_command": command,
    }
    if finding.state is not None or finding.detail:
        machine["state"] = {"state": finding.state, **dict(finding.detail or {})}
    return json_ready(machine)  # type: ignore[no-any-return]


def _shrink(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut(value, limit, ELLIPSIS)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            short = cut(key, limit, ELLIPSIS)
            while short in out:  # two long keys with one prefix: keep both
                short += "'"
            out[short] = _shrink(item, limit)
        return out
    if isinstance(value, list):
        return [_shrink(item, limit) for item in value]
    return value


_ESSENTIALS = ("schema_version", "alert_id", "kind", "rule", "severity", "lookup_command")


def _essentials(machine: dict[str, Any]) -> dict[str, Any]:
    """The document reduced to what identifies the alert (the audit record has the rest)."""
    found = machine.get("event")
    event: dict[str, Any] = found if isinstance(found, dict) else {}
    named = machine.get("secret")
    secret: dict[str, Any] | None = named if isinstance(named, dict) else None
    short = {key: machine[key] for key in _ESSENTIALS if key in machine}
    short["event"] = {key: _shrink(event.get(key), 256) for key in ("id", "name", "time")}
    short["secret"] = None if secret is None else {"name": _shrink(secret.get("name"), 256)}
    return short


def to_sns_message(alert: AlertMessage, *, https_format: str = "json") -> str:
    """The ``Message`` for ``MessageStructure="json"``: one string per protocol, "default" first.

    Every JSON variant is written under the one policy (ASCII only, no NaN). If the document
    would exceed SNS's size limit (it is carried once per machine protocol), its long strings
    are cut, step by step, and ``"truncated": true`` is set in it.

    ``https_format="chat"`` (a stack with a Slack or Teams channel, which the chat service
    subscribes over https) makes the ``https`` variant the chat service's custom notification
    (``shared.chat``, loaded only then). Every https subscriber of the topic gets that variant:
    an https endpoint of your own then reads the chat document, not the machine one.
    """
    chat_variant = None
    if https_format == "chat":
        from shared.chat import chat_notification  # noqa: PLC0415 — chat stacks only

        chat_variant = dumps(chat_notification(alert))
    body = ""
    for limit in (None, 4096, 1024, 256, 64, 0):
        if limit is None:
            machine = alert.machine
        elif limit:
            machine = {**_shrink(alert.machine, limit), "truncated": True}
        else:
            machine = {**_essentials(alert.machine), "truncated": True}
        document = dumps(machine)
        message = {"default": alert.email, "email": alert.email, "sms": alert.sms}
        message.update(dict.fromkeys(MACHINE_PROTOCOLS, document))
        if chat_variant is not None:
            message["https"] = chat_variant
        body = dumps(message)
        if len(body.encode("utf-8")) <= MESSAGE_MAX_BYTES:
            break
    return body
