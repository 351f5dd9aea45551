"""Read every shape in which a Secrets Manager CloudTrail record arrives, and normalise it.

Shapes (``read_event`` takes a decoded JSON value, ``read_bytes`` the bytes of a file):

1. an EventBridge event, ``AWS API Call via CloudTrail`` or ``AWS Service Event via CloudTrail``;
2. a CloudWatch Logs subscription Lambda event ``{"awslogs": {"data": <base64 gzip>}}`` and its
   decoded payload (``DATA_MESSAGE``; a ``CONTROL_MESSAGE`` is acknowledged and yields nothing);
3. a CloudTrail log file ``{"Records": [...]}`` as delivered to S3;
4. a single bare CloudTrail record;
and, for convenience, a JSON array of any of these, JSON Lines, and the output of
``aws cloudtrail lookup-events`` (``{"Events": [{"CloudTrailEvent": "<json>"}]}``).

Each record becomes a ``ReadItem``: a normalised ``CloudTrailRecord``, or a rejection naming the
field (the raw record is kept so nothing is lost), or a skip for another event source.
The FACTS.md traps handled here: ``aRN``/``arn``, ARN-or-name secret ids, service events with no
``userIdentity.type``, U+2019 apostrophes, ``resourcePolicy`` as a JSON string, and string
booleans in ``sessionContext`` (decided exactly, never guessed).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import InputError, OutOfScope, RecordRejected
from shared.models import (
    SECRETSMANAGER_SOURCE,
    Caller,
    CloudTrailRecord,
    RequestFields,
    RotationRules,
    SecretRef,
)
from shared.redact import ECHO_MEMBERS, describe

EVENTBRIDGE_SOURCE = "aws.secretsmanager"
CLOUDTRAIL_DETAIL_TYPES = frozenset(
    {"AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"}
)
SSO_ROLE_PREFIX = "AWSReservedSSO_"
# IAM Identity Center creates its roles under this path (optionally followed by a Region): a role
# merely named AWSReservedSSO_... elsewhere is not an SSO session.
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
# CloudWatch Logs delivers at most about 1 MB of log events per batch. In the decoded payload a
# message byte can take up to six (a control character written as \u0001) plus each event's
# framing, so a genuine batch stays under 8 MiB; a lower cap would let one hostile log event
# written into the trail's log group get its whole batch refused. More than that is refused
# after reading 8 MiB, never inflated whole (the function has 256 MB).
MAX_AWSLOGS_BYTES = 8 * 1024 * 1024
# An IAM policy nests about six levels (Statement, Condition, operator, key, values); the rules
# walk policies recursively, so a deeper one is refused at the edge.
MAX_POLICY_DEPTH = 16
# A full secret ARN ends with "-" and six random characters; AWS applies the same test to a
# partial ARN, so a name that looks like it ends in a suffix is treated as one (as AWS does).
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_REQUEST_KEYS = frozenset(
    {
        "recoveryWindowInDays",
        "forceDeleteWithoutRecovery",
        "resourcePolicy",
        "blockPublicPolicy",
        "rotationLambdaARN",
        "rotationRules",
        "rotateImmediately",
        "kmsKeyId",
        "versionStages",
        "addReplicaRegions",
        "removeReplicaRegions",
    }
)
_EMPTY_REQUEST = RequestFields()
_EMPTY_CALLER = Caller()


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


# ---------------------------------------------------------------------------------------------
# Inputs


class LongNumber(str):
    """A JSON integer of more than 38 digits, kept as its digits: DynamoDB stores no longer
    number, and Python refuses to convert ones of thousands of digits."""


class NonFiniteNumber(str):
    """NaN, Infinity or an overflowing float, kept as its text: JSON has no such numbers."""


_MAX_INT_DIGITS = 38


def _parse_int(text: str) -> int | str:
    digits = len(text) - (text[0] == "-")
    return int(text) if digits <= _MAX_INT_DIGITS else LongNumber(text)


def _parse_float(text: str) -> float | str:
    value = float(text)
    return value if value not in (_INF, -_INF) else NonFiniteNumber(text)


_INF = float("inf")


def _loads(data: str | bytes) -> Any:
    """json.loads for caller-controlled input: every failure is a JSONDecodeError.

    JSON nested too deeply for the parser, integers too long to convert and NaN/Infinity (which
    Python's parser would accept) never escape as other errors or as floats that JSON cannot
    write back.
    """
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=NonFiniteNumber
        )
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except RecursionError:
        text = _preview(data)
        raise json.JSONDecodeError("nested too deeply to be a CloudTrail record", text, 0) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise json.JSONDecodeError(
            f"unreadable value ({type(exc).__name__})", _preview(data), 0
        ) from None


def _preview(data: str | bytes) -> str:
    return data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")


def read_bytes(data: bytes) -> Iterator[ReadItem]:
    """Read a file's bytes: JSON or JSON Lines, plain or gzip. Raises InputError if unreadable."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"not a valid gzip file ({exc})") from exc
    if not data.strip():
        raise InputError("the file is empty")
    try:
        value = _loads(data)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InputError(f"not valid JSON: {_json_error(exc)}") from exc
        return _read_json_lines(data)
    return read_event(value)


def read_event(event: Any) -> Iterator[ReadItem]:
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
            value = _loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = _json_error(exc) if isinstance(exc, json.JSONDecodeError) else exc.reason
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
        raise InputError(f"expected a JSON object, got {_json_type(value)}")
    if "awslogs" in value:
        return _read_logs_payload(_decode_awslogs(value["awslogs"]), counter)
    if "logEvents" in value and "messageType" in value:
        return _read_logs_payload(value, counter)
    if "detail-type" in value or ("detail" in value and "source" in value):
        return iter((_read_eventbridge(value, next(counter)),))
    if "Records" in value:
        records = value["Records"]
        if not isinstance(records, list):
            raise InputError(f"Records must be an array, got {_json_type(records)}")
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
        return _loads(payload)
    except UnicodeDecodeError as exc:
        raise InputError(f"awslogs.data does not hold UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"awslogs.data does not hold valid JSON: {_json_error(exc)}") from exc


def inflate(compressed: bytes, limit: int, what: str) -> bytes:
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
            f"{what} inflates to more than {limit:,} bytes (CloudWatch Logs batches hold about "
            f"1 MB of log events): refused unread ({len(compressed):,} compressed bytes)"
        )
    return payload


def _read_logs_payload(payload: Any, counter: Iterator[int]) -> Iterator[ReadItem]:
    if not isinstance(payload, dict):
        raise InputError(
            f"the CloudWatch Logs payload must be an object, got {_json_type(payload)}"
        )
    message_type = payload.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        return iter(())  # a reachability check from CloudWatch Logs: acknowledged, nothing to do
    if message_type != "DATA_MESSAGE":
        raise InputError(f"unknown CloudWatch Logs messageType {message_type!r}")
    log_events = payload.get("logEvents")
    if not isinstance(log_events, list):
        raise InputError(f"logEvents must be an array, got {_json_type(log_events)}")
    return (
        _read_log_event(event, position, next(counter)) for position, event in enumerate(log_events)
    )


def _read_log_event(log_event: Any, position: int, index: int) -> ReadItem:
    where = f"logEvents[{position}]"
    if not isinstance(log_event, dict):
        return ReadItem(index, error=f"{where} must be an object, got {_json_type(log_event)}")
    log_id = log_event.get("id")
    origin = log_id if isinstance(log_id, str) else None
    message = log_event.get("message")
    if not isinstance(message, str):
        error = f"{where}.message must be a string, got {_json_type(message)}"
        return ReadItem(index, error=error, origin_id=origin, raw=log_event)
    try:
        record = _loads(message)
    except json.JSONDecodeError as exc:
        error = f"{where}.message is not a JSON CloudTrail record: {_json_error(exc)}"
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
            record = _loads(text)
        except json.JSONDecodeError as exc:
            yield ReadItem(index, error=f"{where} is not valid JSON: {_json_error(exc)}", raw=text)
            continue
        yield _read_record(record, index, "")


def _read_eventbridge(event: dict[str, Any], index: int) -> ReadItem:
    origin = event.get("id") if isinstance(event.get("id"), str) else None
    detail = event.get("detail")
    hint_id, hint_name = _hints(detail)
    source = event.get("source")
    detail_type = event.get("detail-type")
    if source != EVENTBRIDGE_SOURCE or (
        isinstance(detail_type, str) and detail_type not in CLOUDTRAIL_DETAIL_TYPES
    ):
        # Another service's event is out of scope whatever else it lacks.
        if not isinstance(source, str) or (
            source == EVENTBRIDGE_SOURCE and not isinstance(detail_type, str)
        ):
            field = "source" if not isinstance(source, str) else "detail-type"
            error = f"{field} must be a string, got {_json_type(event.get(field))}"
            return ReadItem(index, error=error, event_id=hint_id, origin_id=origin, raw=event)
        reason = (
            f"EventBridge event {source} / {detail_type} is not a Secrets Manager CloudTrail record"
        )
        return ReadItem(
            index, skipped=reason, event_id=hint_id, event_name=hint_name, origin_id=origin
        )
    if not isinstance(detail_type, str):
        error = f"detail-type must be a string, got {_json_type(detail_type)}"
        return ReadItem(index, error=error, event_id=hint_id, origin_id=origin, raw=event)
    if detail is None:
        return ReadItem(index, error="detail is missing", origin_id=origin, raw=event)
    return _read_record(detail, index, "detail.", origin, envelope=event)


def _read_record(
    raw: Any, index: int, prefix: str, origin: str | None = None, *, envelope: Any = None
) -> ReadItem:
    kept = envelope if envelope is not None else raw
    if not isinstance(raw, dict):
        error = f"{prefix.rstrip('.') or 'record'} must be an object, got {_json_type(raw)}"
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


def _hints(detail: Any) -> tuple[str | None, str | None]:
    if not isinstance(detail, dict):
        return None, None
    event_id, name = detail.get("eventID"), detail.get("eventName")
    return (
        event_id if isinstance(event_id, str) else None,
        name if isinstance(name, str) else None,
    )


# ---------------------------------------------------------------------------------------------
# Normalisation of one CloudTrail record


def normalise(raw: Mapping[str, Any], *, prefix: str = "") -> CloudTrailRecord:
    """Turn one raw CloudTrail record into a CloudTrailRecord.

    Raises OutOfScope for another event source, and RecordRejected (naming the field) when a
    decision field is missing or of the wrong JSON type. Descriptive fields that are missing are
    unknown (None); descriptive fields of the wrong type are unknown and noted in ``warnings``.
    """
    event_id_value = raw.get("eventID")
    hint = event_id_value if type(event_id_value) is str else None
    fields = _Fields(prefix, hint)

    source = fields.required_str(raw, "eventSource")
    if source != SECRETSMANAGER_SOURCE:
        name = raw.get("eventName")
        raise OutOfScope(
            f"event source {source} is not {SECRETSMANAGER_SOURCE}",
            event_id=hint,
            event_name=name if type(name) is str else None,
        )
    event_name = fields.required_str(raw, "eventName")
    event_id = fields.required_str(raw, "eventID")
    event_type = fields.required_str(raw, "eventType")
    event_time = fields.time(raw, "eventTime")

    error_message = fields.opt_str(raw, "errorMessage")
    if error_message is not None and "\u2019" in error_message:
        error_message = error_message.replace("\u2019", "'")
    request_parameters = fields.opt_object(raw, "requestParameters")
    response_elements = fields.opt_object(raw, "responseElements")
    additional = fields.opt_object(raw, "additionalEventData")
    user_identity = fields.opt_object(raw, "userIdentity")

    record_account = fields.desc_str(raw, "recipientAccountId")
    if user_identity is not None:
        caller = _caller(user_identity, fields, raw)
    else:
        caller = _EMPTY_CALLER
        fields.warnings.append(f"{prefix}userIdentity is missing: the caller is unknown")

    return CloudTrailRecord(
        event_id=event_id,
        event_name=event_name,
        event_type=event_type,
        event_time=event_time,
        event_source=source,
        region=fields.desc_str(raw, "awsRegion"),
        account_id=record_account,
        read_only=fields.opt_bool(raw, "readOnly"),
        error_code=fields.opt_str(raw, "errorCode"),
        error_message=error_message,
        secret=_secret(raw, request_parameters, response_elements, additional, fields),
        caller=caller,
        source_ip=fields.desc_str(raw, "sourceIPAddress"),
        user_agent=fields.desc_str(raw, "userAgent"),
        vpc_endpoint_id=fields.desc_str(raw, "vpcEndpointId"),
        request=_request(request_parameters, response_elements, fields),
        event_version=fields.desc_str(raw, "eventVersion"),
        shared_event_id=fields.desc_str(raw, "sharedEventID"),
        request_id=fields.desc_str(raw, "requestID"),
        warnings=tuple(fields.warnings),
    )


class _Fields:
    """Type-checked access to a record's fields, with the JSON path for error messages."""

    __slots__ = ("event_id", "prefix", "warnings")

    def __init__(self, prefix: str, event_id: str | None) -> None:
        self.prefix = prefix
        self.event_id = event_id
        self.warnings: list[str] = []

    def reject(self, path: str, expected: str, value: Any) -> RecordRejected:
        field = self.prefix + path
        if value is _MISSING:
            message = f"{field} is missing"
        else:
            message = f"{field} must be {expected}, got {_describe(value, path)}"
        return RecordRejected(message, field=field, event_id=self.event_id)

    def required_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str:
        value = obj.get(key, _MISSING)
        if type(value) is str and value:
            return value
        raise self.reject(path + key, "a non-empty string", value)

    def opt_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str | None:
        value = obj.get(key)
        if value is None or type(value) is str:
            return value
        raise self.reject(path + key, "a string", value)

    def opt_bool(self, obj: Mapping[str, Any], key: str, path: str = "") -> bool | None:
        value = obj.get(key)
        if value is None or type(value) is bool:
            return value
        # Never guess the truth of "true": only a JSON boolean is a boolean.
        raise self.reject(path + key, "a JSON boolean", value)

    def opt_int(self, obj: Mapping[str, Any], key: str, path: str = "") -> int | None:
        value = obj.get(key)
        if value is None or type(value) is int:
            return value
        raise self.reject(path + key, "a whole number", value)

    def opt_object(self, obj: Mapping[str, Any], key: str, path: str = "") -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None or type(value) is dict:
            return value
        raise self.reject(path + key, "an object or null", value)

    def opt_str_list(
        self, obj: Mapping[str, Any], key: str, path: str = ""
    ) -> tuple[str, ...] | None:
        value = obj.get(key)
        if value is None:
            return None
        if type(value) is list and all(type(item) is str for item in value):
            return tuple(value)
        raise self.reject(path + key, "an array of strings", value)

    def time(self, obj: Mapping[str, Any], key: str) -> datetime:
        text = self.required_str(obj, key)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise self.reject(key, "an ISO 8601 time", text) from None
        if value.tzinfo is None:
            raise self.reject(key, "an ISO 8601 time with a zone (…Z)", text)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise self.reject(key, "a time between the years 1 and 9999 in UTC", text) from None

    def desc_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str | None:
        """A descriptive string: empty is unknown; the wrong type is unknown with a warning."""
        value = obj.get(key)
        if value is None or type(value) is str:
            return value or None
        self.warnings.append(
            f"{self.prefix}{path}{key} ignored: expected a string, got {_describe(value, path)}"
        )
        return None

    def desc_object(
        self, obj: Mapping[str, Any], key: str, path: str = ""
    ) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None or type(value) is dict:
            return value
        self.warnings.append(
            f"{self.prefix}{path}{key} ignored: expected an object, got {_describe(value, path)}"
        )
        return None


_MISSING: Any = object()


def _describe(value: Any, path: str = "") -> str:
    """A wrong value for an error message. Content echoed from the request or the response may
    hold anything, a secret value included: it is described by its type and size, never quoted."""
    if path.partition(".")[0] in ECHO_MEMBERS:
        return describe(value)
    kind = _json_type(value)
    if kind in {"string", "number", "boolean"}:
        text = json.dumps(value)
        return f"the {kind} {text if len(text) <= 40 else text[:37] + '…'}"
    return kind


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, LongNumber | NonFiniteNumber):
        return "number"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


# --- the secret --------------------------------------------------------------------------------


def secret_from_id(secret_id: str) -> SecretRef:
    """A secret id as users and events give it (name, partial ARN or full ARN) → SecretRef."""
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":", 6)
        if len(parts) == 7 and parts[2] == "secretsmanager" and parts[5] == "secret":
            name = parts[6]
            stripped = _ARN_SUFFIX.sub("", name)
            return SecretRef(
                name=stripped or name,
                arn=secret_id if stripped != name else None,
                region=parts[3] or None,
                account_id=parts[4] or None,
            )
    return SecretRef(name=secret_id)


def _secret(
    raw: Mapping[str, Any],
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
    additional: dict[str, Any] | None,
    fields: _Fields,
) -> SecretRef | None:
    # Most specific first: response ARNs are full ARNs; a request secretId may be a name.
    candidates: list[tuple[Mapping[str, Any], str, str]] = []
    if response is not None:
        candidates += [
            (response, "arn", "responseElements."),
            (response, "aRN", "responseElements."),
        ]
    if additional is not None:
        candidates.append((additional, "SecretId", "additionalEventData."))
    if request is not None:
        candidates += [
            (request, "secretId", "requestParameters."),
            (request, "name", "requestParameters."),
        ]
    if response is not None:
        candidates.append((response, "name", "responseElements."))
    service_details = fields.desc_object(raw, "serviceEventDetails")
    if service_details is not None:
        candidates.append((service_details, "secretId", "serviceEventDetails."))

    found: SecretRef | None = None
    for obj, key, path in candidates:
        value = fields.desc_str(obj, key, path)
        if not value:
            continue
        ref = secret_from_id(value)
        if found is None or (found.arn is None and ref.arn is not None and ref.name == found.name):
            found = ref
        if found.arn is not None:
            break
    if found is None:
        found = _secret_from_resources(raw, fields)
    return found


def _secret_from_resources(raw: Mapping[str, Any], fields: _Fields) -> SecretRef | None:
    resources = raw.get("resources")
    if type(resources) is not list:
        return None
    for resource in resources:
        if type(resource) is dict:
            arn = resource.get("ARN") or resource.get("arn")
            if type(arn) is str and ":secretsmanager:" in arn:
                return secret_from_id(arn)
    return None


# --- the caller --------------------------------------------------------------------------------


def _caller(identity: dict[str, Any], fields: _Fields, raw: Mapping[str, Any]) -> Caller:
    path = "userIdentity."
    kind = fields.opt_str(identity, "type", path)  # decides root-activity: a decision field
    arn = fields.desc_str(identity, "arn", path)
    principal_id = fields.desc_str(identity, "principalId", path)
    account_id = fields.desc_str(identity, "accountId", path)
    user_name = fields.desc_str(identity, "userName", path)
    invoked_by = fields.desc_str(identity, "invokedBy", path)
    access_key_id = fields.desc_str(identity, "accessKeyId", path)

    context = fields.desc_object(identity, "sessionContext", path) or {}
    issuer = fields.desc_object(context, "sessionIssuer", path + "sessionContext.") or {}
    attributes = fields.desc_object(context, "attributes", path + "sessionContext.") or {}
    mfa = _string_bool(attributes.get("mfaAuthenticated"))
    source_identity = fields.desc_str(context, "sourceIdentity", path + "sessionContext.")

    role_name = role_arn = session_name = None
    if kind == "AssumedRole":
        if issuer.get("type") == "Role":
            role_name = fields.desc_str(issuer, "userName", path + "sessionContext.sessionIssuer.")
            role_arn = fields.desc_str(issuer, "arn", path + "sessionContext.sessionIssuer.")
        if arn is not None and ":assumed-role/" in arn:
            _, _, tail = arn.partition(":assumed-role/")
            arn_role, _, session_name = tail.partition("/")
            role_name = role_name or arn_role or None
            session_name = session_name or None
        elif principal_id is not None and ":" in principal_id:
            session_name = principal_id.partition(":")[2] or None
    elif kind == "FederatedUser" and arn is not None and ":federated-user/" in arn:
        user_name = user_name or arn.partition(":federated-user/")[2] or None

    sso_user = sso_permission_set = None
    if is_sso_role(role_arn) and role_name is not None and role_name.startswith(SSO_ROLE_PREFIX):
        sso_user = session_name
        sso_permission_set = role_name[len(SSO_ROLE_PREFIX) :].rpartition("_")[0] or None

    store_user_id = store_arn = None
    on_behalf = fields.desc_object(identity, "onBehalfOf", path)
    if on_behalf is not None:
        store_user_id = fields.desc_str(on_behalf, "userId", path + "onBehalfOf.")
        store_arn = fields.desc_str(on_behalf, "identityStoreArn", path + "onBehalfOf.")

    if kind == "AssumedRole":
        identity_arn = role_arn
    elif kind in {"IAMUser", "Root", "FederatedUser"}:
        identity_arn = arn
    else:
        identity_arn = None

    if arn is not None:
        principal: str | None = arn
    elif store_user_id is not None:
        principal = (
            f"{store_arn}/user/{store_user_id}" if store_arn else f"identitycenter:{store_user_id}"
        )
    elif invoked_by is not None:
        principal = invoked_by
    elif principal_id is not None:
        principal = f"{account_id}:{principal_id}" if account_id else principal_id
    elif account_id is not None:
        principal = f"account:{account_id}"
    else:
        principal = None

    if kind == "Root":
        name: str | None = "root"
    else:
        name = sso_user or user_name or role_name or store_user_id or invoked_by or principal_id

    console = _string_bool(raw.get("sessionCredentialFromConsole"))
    return Caller(
        type=kind,
        principal=principal,
        identity_arn=identity_arn,
        name=name,
        arn=arn,
        principal_id=principal_id,
        account_id=account_id,
        user_name=user_name,
        role_name=role_name,
        session_name=session_name,
        sso_user=sso_user,
        sso_permission_set=sso_permission_set,
        identity_store_user_id=store_user_id,
        access_key_id=access_key_id,
        invoked_by=invoked_by,
        source_identity=source_identity,
        mfa_authenticated=mfa,
        console_session=console,
    )


def is_sso_role(role_arn: str | None) -> bool:
    """An IAM Identity Center role: recognised by the path IAM Identity Center creates it under,
    never by its name (anyone may name a role AWSReservedSSO_...)."""
    if role_arn is None or ":role/" not in role_arn:
        return False
    return role_arn.partition(":role/")[2].startswith(SSO_ROLE_PATH[1:])


def _string_bool(value: Any) -> bool | None:
    """CloudTrail writes some flags as the strings "true"/"false": decide exactly, else unknown."""
    if type(value) is bool:
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    return None


# --- the request -------------------------------------------------------------------------------


def _request(
    request: dict[str, Any] | None, response: dict[str, Any] | None, fields: _Fields
) -> RequestFields:
    version_id = fields.opt_str(response, "versionId", "responseElements.") if response else None
    deletion_date = (
        fields.desc_str(response, "deletionDate", "responseElements.") if response else None
    )
    if (
        (request is None or not (request.keys() & _REQUEST_KEYS))
        and version_id is None
        and deletion_date is None
    ):
        return _EMPTY_REQUEST
    rp = request or {}
    path = "requestParameters."
    return RequestFields(
        recovery_window_days=fields.opt_int(rp, "recoveryWindowInDays", path),
        force_delete_without_recovery=fields.opt_bool(rp, "forceDeleteWithoutRecovery", path),
        resource_policy=_policy(rp, fields),
        block_public_policy=fields.opt_bool(rp, "blockPublicPolicy", path),
        rotation_lambda_arn=fields.opt_str(rp, "rotationLambdaARN", path),
        rotation_rules=_rotation_rules(rp, fields),
        rotate_immediately=fields.opt_bool(rp, "rotateImmediately", path),
        kms_key_id=fields.opt_str(rp, "kmsKeyId", path),
        version_stages=fields.opt_str_list(rp, "versionStages", path),
        new_version_id=version_id,
        add_replica_regions=_replica_regions(rp, fields),
        remove_replica_regions=fields.opt_str_list(rp, "removeReplicaRegions", path),
        deletion_date=deletion_date,
    )


def _policy(request: Mapping[str, Any], fields: _Fields) -> dict[str, Any] | None:
    value = request.get("resourcePolicy")
    if value is None:
        return None
    if type(value) is str:
        try:
            value = _loads(value)
        except json.JSONDecodeError as exc:
            raise RecordRejected(
                f"{fields.prefix}requestParameters.resourcePolicy is not valid JSON: {_json_error(exc)}",
                field=f"{fields.prefix}requestParameters.resourcePolicy",
                event_id=fields.event_id,
            ) from None
    if type(value) is not dict:
        raise fields.reject("requestParameters.resourcePolicy", "a JSON policy document", value)
    if _depth(value) > MAX_POLICY_DEPTH:
        raise fields.reject(
            "requestParameters.resourcePolicy",
            f"a policy document nested at most {MAX_POLICY_DEPTH} levels deep",
            value,
        )
    return value


def _depth(value: Any) -> int:
    """How deeply a decoded JSON value nests, counted without recursion (hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if type(node) is dict:
            stack.extend((child, level + 1) for child in node.values())
        elif type(node) is list:
            stack.extend((child, level + 1) for child in node)
    return deepest


def _rotation_rules(request: Mapping[str, Any], fields: _Fields) -> RotationRules | None:
    rules = fields.opt_object(request, "rotationRules", "requestParameters.")
    if rules is None:
        return None
    path = "requestParameters.rotationRules."
    return RotationRules(
        automatically_after_days=fields.opt_int(rules, "automaticallyAfterDays", path),
        schedule_expression=fields.opt_str(rules, "scheduleExpression", path),
        duration=fields.opt_str(rules, "duration", path),
    )


def _replica_regions(request: Mapping[str, Any], fields: _Fields) -> tuple[str, ...] | None:
    value = request.get("addReplicaRegions")
    if value is None:
        return None
    if type(value) is list:
        regions = [item.get("region") if type(item) is dict else None for item in value]
        if all(type(region) is str for region in regions):
            return tuple(str(region) for region in regions)
    raise fields.reject(
        "requestParameters.addReplicaRegions", "an array of {region} objects", value
    )
