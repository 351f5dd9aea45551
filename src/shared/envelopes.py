"""Input shapes: the envelopes in which Secrets Manager CloudTrail records arrive.

Each route's function accepts its own envelope only:

- :func:`read_eventbridge_event` — the EventBridge function: one EventBridge event,
  ``AWS API Call via CloudTrail`` or ``AWS Service Event via CloudTrail``; besides Secrets
  Manager's, the calls that tamper with secretwatch itself (``shared.tamper``);
- :func:`read_awslogs_event` — the log subscription function: a CloudWatch Logs subscription
  event ``{"awslogs": {"data": <base64 gzip>}}`` (``DATA_MESSAGE``; a ``CONTROL_MESSAGE`` is
  acknowledged and yields nothing).

The command line (``evaluate``, ``replay``, ``rules test``) detects the shape instead
(:func:`read_any`, :func:`read_bytes`): either envelope, a decoded CloudWatch Logs payload, a
CloudTrail log file ``{"Records": [...]}`` as delivered to S3, a bare record, a JSON array of
any of these, JSON Lines, and ``aws cloudtrail lookup-events`` output.

Each record becomes a ``ReadItem``: a normalised ``CloudTrailRecord`` (``shared.normalise``), a
rejection naming the field (the raw record is kept so nothing is lost), or a skip for another
event source.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shared.errors import InputError, OutOfScope, RecordRejected
from shared.jsonvalue import json_error, json_type, loads
from shared.models import CloudTrailRecord
from shared.normalise import normalise
from shared.selftest import is_selftest_event
from shared.text import clean

EVENTBRIDGE_SOURCE = "aws.secretsmanager"
# The services whose calls can blind secretwatch (shared.tamper), by their EventBridge source:
# the TamperRule delivers their CloudTrail records, each must come from its own service.
TAMPER_EVENTBRIDGE_SOURCES = {
    f"aws.{service}": f"{service}.amazonaws.com"
    for service in ("events", "cloudtrail", "logs", "kms", "lambda", "sns")
}
CLOUDTRAIL_DETAIL_TYPES = frozenset(
    {"AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"}
)
# CloudWatch Logs delivers at most about 1 MB of log events per batch. In the decoded payload a
# message byte can take up to six (a control character written as \u0001) plus each event's
# framing, so a genuine batch stays under 8 MiB; a lower cap would let one hostile log event
# written into the trail's log group get its whole batch refused. More than that is refused
# after reading 8 MiB, never inflated whole (the function has 256 MB).
MAX_AWSLOGS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One record (or log event) found in an input, with what became of it."""

    index: int
    record: CloudTrailRecord | None = None
    error: str | None = None  # why it was rejected; names the field
    skipped: str | None = None  # why it is out of scope
    event_id: str | None = None  # best effort, also for rejected and skipped items
    event_name: str | None = None
    origin_id: str | None = None  # EventBridge event id or CloudWatch Logs log event id
    raw: Any = None  # the raw record of a rejected item, so it can be kept
    selftest: bool = False  # a `secretwatch selftest` event (shared.selftest)


# ---------------------------------------------------------------------------------------------
# The routes' envelopes


def read_eventbridge_event(event: Any) -> Iterator[ReadItem]:
    """The EventBridge function's input: one EventBridge event, and nothing else."""
    if not isinstance(event, dict) or not (
        "detail-type" in event or ("detail" in event and "source" in event)
    ):
        raise InputError(
            "the EventBridge function takes one EventBridge event (source, detail-type, detail), "
            f"got {_shape(event)}"
        )
    return iter((_read_eventbridge(event, 0),))


def read_awslogs_event(event: Any) -> Iterator[ReadItem]:
    """The log subscription function's input: one CloudWatch Logs subscription event."""
    if not isinstance(event, dict) or "awslogs" not in event:
        raise InputError(
            'the log subscription function takes a CloudWatch Logs event {"awslogs": {"data": '
            f"...}}}}, got {_shape(event)}"
        )
    return _read_logs_payload(_decode_awslogs(event["awslogs"]), itertools.count())


def _shape(value: Any) -> str:
    if not isinstance(value, dict):
        return json_type(value)
    keys = ", ".join(sorted(str(key)[:40] for key in value)[:8]) or "none"
    return f"an object with the keys {keys}"


# ---------------------------------------------------------------------------------------------
# Every shape, detected (the command line)


def read_bytes(data: bytes, *, inflated_limit: int | None = None) -> Iterator[ReadItem]:
    """Read a file's bytes: JSON or JSON Lines, plain or gzip. Raises InputError if unreadable.

    ``inflated_limit``: a gzip file that would inflate to more is refused after that many bytes
    (the replay function's memory is bounded; the command line reads whole files).
    """
    if data[:2] == b"\x1f\x8b":
        if inflated_limit is not None:
            data = inflate(
                data,
                inflated_limit,
                "the file",
                hint="the replay function's bound; replay it with secretwatch replay FILE",
            )
        else:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"not a valid gzip file ({exc})") from exc
    elif inflated_limit is not None and len(data) > inflated_limit:
        raise InputError(f"the file is larger than {inflated_limit:,} bytes: refused unread")
    if not data.strip():
        raise InputError("the file is empty")
    try:
        text = data.decode("utf-8-sig")  # CloudTrail writes UTF-8; a BOM is tolerated
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InputError(f"not valid JSON: {json_error(exc)}") from exc
        return _read_json_lines(data)
    return read_any(value)


def read_any(event: Any) -> Iterator[ReadItem]:
    """Read a decoded JSON value of any supported shape (a Lambda event, a file's content)."""
    counter = itertools.count()
    if isinstance(event, list):
        return _read_list(event, counter)
    return _read_value(event, counter)


def _read_json_lines(data: bytes) -> Iterator[ReadItem]:
    counter = itertools.count()
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = json_error(exc) if isinstance(exc, json.JSONDecodeError) else exc.reason
            yield ReadItem(
                next(counter), error=f"line {line_no}: not valid JSON: {detail}", raw=line
            )
            continue
        yield from _read_nested(value, counter, f"line {line_no}")


def _read_list(values: list[Any], counter: Iterator[int]) -> Iterator[ReadItem]:
    for position, value in enumerate(values):
        yield from _read_nested(value, counter, f"[{position}]")


def _read_nested(value: Any, counter: Iterator[int], where: str) -> Iterator[ReadItem]:
    """An element of an array or a JSON line: its failure is its own, not the whole input's."""
    try:
        yield from _read_value(value, counter)
    except InputError as exc:
        yield ReadItem(next(counter), error=f"{where}: {exc}", raw=value)


def _read_value(value: Any, counter: Iterator[int]) -> Iterator[ReadItem]:
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {json_type(value)}")
    if "awslogs" in value:
        return _read_logs_payload(_decode_awslogs(value["awslogs"]), counter)
    if "logEvents" in value and "messageType" in value:
        return _read_logs_payload(value, counter)
    if "detail-type" in value or ("detail" in value and "source" in value):
        return iter((_read_eventbridge(value, next(counter)),))
    if "Records" in value:
        records = value["Records"]
        if not isinstance(records, list):
            raise InputError(f"Records must be an array, got {json_type(records)}")
        return (_read_record(record, next(counter), "") for record in records)
    if "Events" in value and isinstance(value["Events"], list):
        return _read_lookup_events(value["Events"], counter)
    if "eventName" in value or "eventSource" in value or "eventVersion" in value:
        return iter((_read_record(value, next(counter), ""),))
    keys = ", ".join(sorted(value)[:8]) or "none"
    raise InputError(
        "not a recognised shape (expected an EventBridge event, a CloudWatch Logs event, "
        f"a CloudTrail log file or a CloudTrail record; top-level keys: {keys})"
    )


def _decode_awslogs(awslogs: Any) -> Any:
    if not isinstance(awslogs, dict) or not isinstance(awslogs.get("data"), str):
        raise InputError("awslogs.data must be a string of base64-encoded gzip")
    try:
        compressed = base64.b64decode(awslogs["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"awslogs.data is not valid base64 ({exc})") from exc
    payload = inflate(compressed, MAX_AWSLOGS_BYTES, "awslogs.data")
    try:
        return loads(payload)
    except UnicodeDecodeError as exc:
        raise InputError(f"awslogs.data does not hold UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"awslogs.data does not hold valid JSON: {json_error(exc)}") from exc


def inflate(
    compressed: bytes,
    limit: int,
    what: str,
    *,
    hint: str = "CloudWatch Logs batches hold about 1 MB of log events",
) -> bytes:
    """gzip or zlib data, decompressed to at most ``limit`` bytes: a bomb is refused, not read."""
    # MAX_WBITS | 32 accepts gzip (what CloudWatch Logs sends) and zlib (some fixtures).
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
    try:
        payload = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise InputError(f"{what} is not gzip-compressed ({exc})") from exc
    if len(payload) <= limit and not inflater.unconsumed_tail and not inflater.eof:
        raise InputError(f"{what} is not gzip-compressed (the stream is truncated)")
    if len(payload) > limit or inflater.unconsumed_tail:
        raise InputError(
            f"{what} inflates to more than {limit:,} bytes ({hint}): refused unread "
            f"({len(compressed):,} compressed bytes)"
        )
    return payload


def _read_logs_payload(payload: Any, counter: Iterator[int]) -> Iterator[ReadItem]:
    if not isinstance(payload, dict):
        raise InputError(f"the CloudWatch Logs payload must be an object, got {json_type(payload)}")
    message_type = payload.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        return iter(())  # a reachability check from CloudWatch Logs: acknowledged, nothing to do
    if message_type != "DATA_MESSAGE":
        raise InputError(f"unknown CloudWatch Logs messageType {message_type!r}")
    log_events = payload.get("logEvents")
    if not isinstance(log_events, list):
        raise InputError(f"logEvents must be an array, got {json_type(log_events)}")
    return (
        _read_log_event(event, position, next(counter)) for position, event in enumerate(log_events)
    )


def _read_log_event(log_event: Any, position: int, index: int) -> ReadItem:
    where = f"logEvents[{position}]"
    if not isinstance(log_event, dict):
        return ReadItem(index, error=f"{where} must be an object, got {json_type(log_event)}")
    log_id = log_event.get("id")
    origin = log_id if isinstance(log_id, str) else None
    message = log_event.get("message")
    if not isinstance(message, str):
        error = f"{where}.message must be a string, got {json_type(message)}"
        return ReadItem(index, error=error, origin_id=origin, raw=log_event)
    try:
        record = loads(message)
    except json.JSONDecodeError as exc:
        error = f"{where}.message is not a JSON CloudTrail record: {json_error(exc)}"
        return ReadItem(index, error=error, origin_id=origin, raw=message)
    return _read_record(record, index, "", origin)


def _read_lookup_events(events: list[Any], counter: Iterator[int]) -> Iterator[ReadItem]:
    for position, event in enumerate(events):
        index = next(counter)
        where = f"Events[{position}].CloudTrailEvent"
        text = event.get("CloudTrailEvent") if isinstance(event, dict) else None
        if not isinstance(text, str):
            yield ReadItem(index, error=f"{where} must be a string of JSON", raw=event)
            continue
        try:
            record = loads(text)
        except json.JSONDecodeError as exc:
            yield ReadItem(index, error=f"{where} is not valid JSON: {json_error(exc)}", raw=text)
            continue
        yield _read_record(record, index, "")


def _read_eventbridge(event: dict[str, Any], index: int) -> ReadItem:
    origin = event.get("id") if isinstance(event.get("id"), str) else None
    detail = event.get("detail")
    if is_selftest_event(event):
        read = _read_record(detail, index, "detail.", origin, envelope=event)
        return dataclasses.replace(read, selftest=True) if read.record is not None else read
    hint_id, hint_name = _hints(detail)
    source = event.get("source")
    detail_type = event.get("detail-type")
    tamper_source = TAMPER_EVENTBRIDGE_SOURCES.get(source) if isinstance(source, str) else None
    if tamper_source is not None and detail_type in CLOUDTRAIL_DETAIL_TYPES:
        if not isinstance(detail, dict) or detail.get("eventSource") != tamper_source:
            reason = f"EventBridge event {source} does not carry a {tamper_source} record"
            return ReadItem(
                index, skipped=reason, event_id=hint_id, event_name=hint_name, origin_id=origin
            )
        return _read_record(detail, index, "detail.", origin, envelope=event)
    if source != EVENTBRIDGE_SOURCE or (
        isinstance(detail_type, str) and detail_type not in CLOUDTRAIL_DETAIL_TYPES
    ):
        # Another service's event is out of scope whatever else it lacks.
        if not isinstance(source, str) or (
            source == EVENTBRIDGE_SOURCE and not isinstance(detail_type, str)
        ):
            field = "source" if not isinstance(source, str) else "detail-type"
            error = f"{field} must be a string, got {json_type(event.get(field))}"
            return ReadItem(index, error=error, event_id=hint_id, origin_id=origin, raw=event)
        reason = (
            f"EventBridge event {source} / {detail_type} is not a Secrets Manager CloudTrail record"
        )
        return ReadItem(
            index, skipped=reason, event_id=hint_id, event_name=hint_name, origin_id=origin
        )
    if not isinstance(detail_type, str):
        error = f"detail-type must be a string, got {json_type(detail_type)}"
        return ReadItem(index, error=error, event_id=hint_id, origin_id=origin, raw=event)
    if detail is None:
        return ReadItem(index, error="detail is missing", origin_id=origin, raw=event)
    return _read_record(detail, index, "detail.", origin, envelope=event)


def _read_record(
    raw: Any, index: int, prefix: str, origin: str | None = None, *, envelope: Any = None
) -> ReadItem:
    kept = envelope if envelope is not None else raw
    if not isinstance(raw, dict):
        error = f"{prefix.rstrip('.') or 'record'} must be an object, got {json_type(raw)}"
        return ReadItem(index, error=error, origin_id=origin, raw=kept)
    try:
        record = normalise(raw, prefix=prefix)
    except OutOfScope as exc:
        return ReadItem(
            index,
            skipped=exc.reason,
            event_id=exc.event_id,
            event_name=exc.event_name,
            origin_id=origin,
        )
    except RecordRejected as exc:
        name = raw.get("eventName") if isinstance(raw.get("eventName"), str) else None
        return ReadItem(
            index,
            error=exc.message,
            event_id=exc.event_id,
            event_name=name,
            origin_id=origin,
            raw=kept,
        )
    return ReadItem(
        index,
        record=record,
        event_id=record.event_id,
        event_name=record.event_name,
        origin_id=origin,
    )


def outside_region(item: ReadItem, region: str) -> ReadItem:
    """A record of another Region becomes a skip: that Region's own stack records it.

    A multi-Region trail writes every Region's records to one log group, while each Region's
    stack receives its own Region's events from EventBridge. With both, the trail Region would
    record (and alert on) every other Region's events a second time, in its own table and
    without the enrichment only the event's Region can do. The subscription filter matches
    ``$.awsRegion`` for that reason (template LogsRouteRegions); this applies the same rule where
    no filter pattern runs (the local mode, tests, a filter left from an earlier deployment). A
    record with no Region is kept: it cannot be placed, and a lost record is worse.
    """
    record = item.record
    if record is None or record.region is None or record.region == region:
        return item
    return dataclasses.replace(
        item,
        record=None,
        skipped=f"a record of {clean(record.region, 64)}: the stack in that Region records it "
        "(LogsRouteRegions is this-region)",
    )


def _hints(detail: Any) -> tuple[str | None, str | None]:
    if not isinstance(detail, dict):
        return None, None
    event_id, name = detail.get("eventID"), detail.get("eventName")
    return (
        event_id if isinstance(event_id, str) else None,
        name if isinstance(name, str) else None,
    )
