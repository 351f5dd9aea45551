"""The audit trail: one DynamoDB item per CloudTrail event id, written exactly once.

Table (template.yaml ``AuditTable``): hash key ``event_id``; GSIs, each sorted by ``time_key``
(``<eventTime>#<event_id>``, so time order is key order): ``by-secret`` (secret_name),
``by-principal`` (principal_name), ``by-day`` (day, for time windows across all secrets) and
``by-rule-0/1/2`` (rule_0..rule_2). A GSI key must be one scalar, and an event can fire several
rules, so the first three findings (by severity) each get a slot.

Every item is bounded in bytes before it is written (``shared.bounds``): keys within DynamoDB's
key limits (long ones end with a hash), free text capped, long numbers as text.

Alerts (see docs/delivery.md). An alerting record carries ``alerts``: rule id → the life of that
alert::

    {"state": "claimed", "alert_id": "…", "owner": "<attempt token>", "invocation": "<request id>",
     "deadline": <epoch ms>}

- ``claimed``: the invocation holding ``owner`` publishes it; its claim ends at ``deadline`` (the
  end of that invocation), after which any later delivery of the event may claim it again;
- ``retry``: handed back (publishing failed, or the invocation ran short of time): any
  delivery may claim it;
- ``sent``: SNS accepted it (``sent_at``, ``message_id``);
- ``suppressed``: recorded without alerting (a replay without --notify).

The audit item is written with one conditional put (``attribute_not_exists``); every change of
an alert's state is a conditional update, so two deliveries never both own one alert.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from shared import bounds
from shared.errors import DeliveryError
from shared.models import SEVERITY_RANK, CloudTrailRecord, Evaluation, format_time
from shared.redact import redact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RULE_SLOTS = ("rule_0", "rule_1", "rule_2")
INDEX_BY_SECRET, INDEX_BY_PRINCIPAL, INDEX_BY_DAY = "by-secret", "by-principal", "by-day"
RULE_INDEXES = {"rule_0": "by-rule-0", "rule_1": "by-rule-1", "rule_2": "by-rule-2"}
CLAIMED, RETRY, SENT, SUPPRESSED = "claimed", "retry", "sent", "suppressed"
KIND_EVENT, KIND_REJECTED = "event", "rejected"
BATCH_WRITE_MAX, BATCH_GET_MAX = 25, 100
MAX_RAW_BYTES = 300_000  # the kept raw input of a rejected record; the item stops at 400 KB
# Key attributes (table and index keys) and their byte limits.
KEY_LIMITS: dict[str, int] = {
    "event_id": bounds.PARTITION_KEY_MAX,
    "secret_name": bounds.PARTITION_KEY_MAX,
    "principal_name": bounds.PARTITION_KEY_MAX,
    "day": bounds.PARTITION_KEY_MAX,
    **dict.fromkeys(RULE_SLOTS, bounds.PARTITION_KEY_MAX),
    "time_key": bounds.SORT_KEY_MAX,
}
# Free text that may be longer than bounds.TEXT_MAX.
TEXT_LIMITS: dict[str, int] = {
    "raw": MAX_RAW_BYTES,
    "request.resource_policy": 20_000,
    "error": 8_192,
}
_TIME_PREFIX = len("2026-11-01T10:00:00.000000Z#")
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


# ---------------------------------------------------------------------------------------------
# Keys and ids


def event_key(event_id: str) -> str:
    """The table key of an event id (bounded: a forged id of any length stays a valid key)."""
    return bounds.key(event_id, bounds.PARTITION_KEY_MAX)


def time_key(when: datetime, event_id: str) -> str:
    stamp = format_time(when)
    return f"{stamp}#{bounds.key(event_id, bounds.SORT_KEY_MAX - len(stamp) - 1)}"


def alert_id(event_id: str, rule_id: str) -> str:
    """The stable id of one alert: the same on every send, by any route, from any attempt."""
    digest = hashlib.sha256(f"{event_key(event_id)}\x1f{rule_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def expiry(when: datetime, retention_days: int, now: datetime) -> int:
    """The TTL of an item: ``retention_days`` after the event, counted from arrival when the
    event claims to be from the future (a forged eventTime must not keep an item for ever)."""
    base = when if when <= now + timedelta(days=1) else now
    try:
        return int((base + timedelta(days=retention_days)).timestamp())
    except OverflowError:
        return int((now + timedelta(days=retention_days)).timestamp())


# ---------------------------------------------------------------------------------------------
# Items


def build_item(
    record: CloudTrailRecord,
    evaluation: Evaluation,
    enrichment: Mapping[str, Any] | None,
    *,
    route: str,
    retention_days: int,
    now: datetime,
    alerts: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The audit item for one record: metadata only, never a secret value, bounded in bytes.

    ``alerts`` gives each finding's alert entry; a finding without one is recorded as "retry"
    (not sent yet: the next delivery may claim it), so an item can never hide an alert.
    """
    caller = record.caller
    item: dict[str, Any] = {
        "event_id": event_key(record.event_id),
        "kind": KIND_EVENT,
        "event_name": record.event_name,
        "event_type": record.event_type,
        "event_time": record.event_time_iso,
        "time_key": time_key(record.event_time, record.event_id),
        "day": record.event_time.strftime("%Y-%m-%d"),
        "event_source": record.event_source,
        "region": record.region,
        "account_id": record.account_id,
        "read_only": record.read_only,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "secret_name": record.secret.name if record.secret else None,
        "secret_arn": record.secret.arn if record.secret else None,
        "principal": caller.principal,
        "principal_name": caller.name.lower() if caller.name else None,
        "caller": _compact(
            {
                "type": caller.type,
                "name": caller.name,
                "arn": caller.arn,
                "identity_arn": caller.identity_arn,
                "principal_id": caller.principal_id,
                "account_id": caller.account_id,
                "user_name": caller.user_name,
                "role_name": caller.role_name,
                "session_name": caller.session_name,
                "sso_user": caller.sso_user,
                "sso_permission_set": caller.sso_permission_set,
                "identity_store_user_id": caller.identity_store_user_id,
                "access_key_id": caller.access_key_id,
                "invoked_by": caller.invoked_by,
                "source_identity": caller.source_identity,
                "mfa_authenticated": caller.mfa_authenticated,
                "console_session": caller.console_session,
            }
        ),
        "source": _compact(
            {
                "ip": record.source_ip,
                "user_agent": record.user_agent,
                "vpc_endpoint": record.vpc_endpoint_id,
            }
        ),
        "request": request_dict(record),
        "findings": [
            {"rule": f.rule_id, "severity": f.severity, "description": f.description}
            for f in evaluation.findings
        ],
        "route": route,
        "recorded_at": format_time(now),
        "expires_at": expiry(record.event_time, retention_days, now),
        "request_id": record.request_id,
        "shared_event_id": record.shared_event_id,
        "event_version": record.event_version,
        "warnings": list(record.warnings) or None,
        "rule_errors": [f"{e.rule_id}: {e.message}" for e in evaluation.rule_errors] or None,
        "enrichment": dict(enrichment) if enrichment else None,
    }
    if evaluation.findings:
        item["severity"] = max(
            (f.severity for f in evaluation.findings), key=SEVERITY_RANK.__getitem__
        )
        given = alerts or {}
        item["alerts"] = {
            f.rule_id: dict(
                given.get(f.rule_id)
                or {"state": RETRY, "alert_id": alert_id(record.event_id, f.rule_id)}
            )
            for f in evaluation.findings
        }
        for slot, finding in zip(RULE_SLOTS, evaluation.findings, strict=False):
            item[slot] = finding.rule_id
    return bounded(_compact(item))


def bounded(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` within DynamoDB's limits; the paths that had to be cut are listed in it."""
    result, cut = bounds.bound(item, keys=KEY_LIMITS, limits=TEXT_LIMITS)
    if cut:
        result["bounded"] = sorted(set(cut))
    return dict(result)


def request_dict(record: CloudTrailRecord) -> dict[str, Any]:
    request = record.request
    rules = request.rotation_rules
    return _compact(
        {
            "recovery_window_days": request.recovery_window_days,
            "force_delete_without_recovery": request.force_delete_without_recovery,
            # Kept as JSON text: a policy document is arbitrary JSON (floats, empty keys).
            "resource_policy": _policy_text(request.resource_policy),
            "block_public_policy": request.block_public_policy,
            "rotation_lambda_arn": request.rotation_lambda_arn,
            "rotation_after_days": rules.automatically_after_days if rules else None,
            "rotation_schedule": rules.schedule_expression if rules else None,
            "rotation_duration": rules.duration if rules else None,
            "rotate_immediately": request.rotate_immediately,
            "kms_key_id": request.kms_key_id,
            "version_stages": list(request.version_stages) if request.version_stages else None,
            "new_version_id": request.new_version_id,
            "add_replica_regions": list(request.add_replica_regions)
            if request.add_replica_regions
            else None,
            "remove_replica_regions": list(request.remove_replica_regions)
            if request.remove_replica_regions
            else None,
            "deletion_date": request.deletion_date,
        }
    )


def _policy_text(policy: Mapping[str, Any] | None) -> str | None:
    if policy is None:
        return None
    from shared.text import dumps  # noqa: PLC0415 — only policy changes pay for it

    return dumps(redact(policy), sort_keys=True)


def rejected_item(
    item_id: str, error: str, raw: Any, *, route: str, retention_days: int, now: datetime
) -> dict[str, Any]:
    """A failure record: the raw input is kept (redacted, cut by bytes) so it can be fixed and
    replayed, never dropped."""
    text = raw_text(raw)
    size = len(text.encode("utf-8", "replace"))
    key = event_key(f"rejected#{item_id}")
    item = _compact(
        {
            "event_id": key,
            "kind": KIND_REJECTED,
            "error": error,
            "raw": text,
            "raw_bytes": size,
            "raw_truncated": size > MAX_RAW_BYTES or None,
            "route": route,
            "recorded_at": format_time(now),
            "event_time": format_time(now),
            "time_key": time_key(now, key),
            "day": now.strftime("%Y-%m-%d"),
            "expires_at": expiry(now, retention_days, now),
        }
    )
    return bounded(item)


def raw_text(raw: Any) -> str:
    """A raw input as text for keeping: value-bearing members redacted at any depth first."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):
            return redact(raw)  # type: ignore[no-any-return]
        raw = decoded
    from shared.text import dumps  # noqa: PLC0415 — rejected records only

    return dumps(redact(raw), sort_keys=True)


def storage_failure_item(item: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """What is kept when DynamoDB refuses an item even after bounding: its keys, its findings
    and alert claims (so no alert is lost) and the reason, nothing caller-sized."""
    kept = {
        key: item[key]
        for key in (
            "event_id",
            "kind",
            "event_name",
            "event_time",
            "time_key",
            "day",
            "secret_name",
            "principal_name",
            "severity",
            "alerts",
            "route",
            "recorded_at",
            "expires_at",
            "raw_bytes",
            *RULE_SLOTS,
        )
        if key in item
    }
    if item.get("findings"):
        kept["findings"] = [
            {"rule": f.get("rule"), "severity": f.get("severity")} for f in item["findings"]
        ]
    kept["storage_error"] = reason
    return bounded(kept)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown (None) and empty values: DynamoDB index keys may not be empty strings."""
    return {k: v for k, v in values.items() if v is not None and v not in ("", {}, [])}


# ---------------------------------------------------------------------------------------------
# DynamoDB attribute values: boto3's own codec, numbers exact (Decimal), integers as int


def to_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _SERIALIZER.serialize(_storable(v)) for k, v in item.items()}


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return bounds.number(value)
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Decimal → int when whole (exactly, at any size), else float; sets → sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


# ---------------------------------------------------------------------------------------------
# The store


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "UnknownError")


class AuditStore:
    """Writes audit items and moves alert states. Every failure to write raises DeliveryError."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_batch_attempts: int = 6,
    ) -> None:
        self._db = dynamodb
        self.table_name = table_name
        self._sleep = sleep
        self._max_batch_attempts = max_batch_attempts

    # -- whole items -----------------------------------------------------------------------------

    def put_new(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write ``item`` unless its event id exists. None when written, else the existing item.

        An item DynamoDB refuses outright (ValidationException) is replaced by a small one that
        keeps its keys, findings and alert claims and says why.
        """
        try:
            return self._put_new(item)
        except _Refused as refused:
            return self._put_new(storage_failure_item(item, refused.reason))

    def _put_new(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        event_id = str(item["event_id"])
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(event_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            code = _code(exc)
            if code == "ValidationException":
                raise _Refused(f"DynamoDB refused the item: {code}") from exc
            if code != "ConditionalCheckFailedException":
                raise _delivery("write the audit record", exc, event_id) from exc
            old: Any = exc.response.get("Item")
            return from_item(old) if old else (self.get(event_id) or dict(item))
        except BotoCoreError as exc:
            raise _delivery("write the audit record", exc, event_id) from exc
        return None

    def get(self, event_id: str) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(
                TableName=self.table_name, Key={"event_id": {"S": event_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _delivery("read the audit record", exc, event_id) from exc
        item = response.get("Item")
        return from_item(item) if item else None

    # -- alert states ------------------------------------------------------------------------------

    def claim(
        self,
        event_id: str,
        rule_id: str,
        entry: Mapping[str, Any],
        *,
        now_ms: int,
        previous: Mapping[str, Any] | None,
    ) -> bool:
        """Take one alert for this invocation (``entry`` holds its owner and deadline).

        Only from what ``previous`` says was there: a handed-back alert ("retry"), a claim past
        its deadline, or no entry at all (a finding the stored item lacks). True when taken.
        """
        names = {"#alerts": "alerts", "#rule": rule_id}
        values: dict[str, Any] = {":entry": _SERIALIZER.serialize(_storable(dict(entry)))}
        if previous is None:
            # A finding the stored item lacks. DynamoDB cannot create a map and set a member of
            # it in one expression: make sure the map exists first (a no-op when it does).
            self._conditional(
                event_id,
                rule_id,
                update="SET #alerts = if_not_exists(#alerts, :empty)",
                condition="attribute_exists(event_id)",
                names={"#alerts": "alerts"},
                values={":empty": {"M": {}}},
            )
            condition = "attribute_not_exists(#alerts.#rule)"
        elif previous.get("state") == RETRY:
            names["#state"] = "state"
            values[":retry"] = {"S": RETRY}
            condition = "#alerts.#rule.#state = :retry"
        elif previous.get("state") == CLAIMED:
            names.update({"#state": "state", "#owner": "owner", "#deadline": "deadline"})
            values.update(
                {
                    ":claimed": {"S": CLAIMED},
                    ":owner": {"S": str(previous.get("owner", ""))},
                    ":now": {"N": str(now_ms)},
                }
            )
            condition = (
                "#alerts.#rule.#state = :claimed AND #alerts.#rule.#owner = :owner"
                " AND #alerts.#rule.#deadline < :now"
            )
        else:
            return False
        return self._conditional(
            event_id,
            rule_id,
            update="SET #alerts.#rule = :entry",
            condition=condition,
            names=names,
            values=values,
        )

    def mark_sent(
        self, event_id: str, rule_id: str, owner: str, *, sent_at: str, message_id: str
    ) -> bool:
        """Record that SNS accepted the alert. Only the claim's owner may; True when recorded."""
        return self._conditional(
            event_id,
            rule_id,
            update="SET #alerts.#rule.#state = :sent, #alerts.#rule.sent_at = :at,"
            " #alerts.#rule.message_id = :mid",
            condition="#alerts.#rule.#owner = :owner",
            names={"#alerts": "alerts", "#rule": rule_id, "#state": "state", "#owner": "owner"},
            values={
                ":sent": {"S": SENT},
                ":at": {"S": sent_at},
                ":mid": {"S": message_id},
                ":owner": {"S": owner},
            },
        )

    def hand_back(self, event_id: str, rule_id: str, owner: str, reason: str) -> bool:
        """Give a claimed alert up for the next delivery (publishing failed, or no time left)."""
        return self._conditional(
            event_id,
            rule_id,
            update="SET #alerts.#rule.#state = :retry, #alerts.#rule.handed_back = :why",
            condition="#alerts.#rule.#owner = :owner AND #alerts.#rule.#state = :claimed",
            names={"#alerts": "alerts", "#rule": rule_id, "#state": "state", "#owner": "owner"},
            values={
                ":retry": {"S": RETRY},
                ":claimed": {"S": CLAIMED},
                ":owner": {"S": owner},
                ":why": {"S": bounds.text(reason, 512)},
            },
        )

    def _conditional(
        self,
        event_id: str,
        rule_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key={"event_id": {"S": event_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise _delivery("update the alert state", exc, event_id, rule_id) from exc
        except BotoCoreError as exc:
            raise _delivery("update the alert state", exc, event_id, rule_id) from exc
        return True

    # -- batches -----------------------------------------------------------------------------------

    def existing_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these event ids already have an item (BatchGetItem, 100 keys a call)."""
        wanted = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys: list[dict[str, Any]] = [
                {"event_id": {"S": i}} for i in wanted[start : start + BATCH_GET_MAX]
            ]
            attempt = 0
            while keys:
                try:
                    response = self._db.batch_get_item(
                        RequestItems={
                            self.table_name: {
                                "Keys": keys,
                                "ProjectionExpression": "event_id",
                                "ConsistentRead": True,
                            }
                        }
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise _delivery("read existing audit records", exc) from exc
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found.add(str(item["event_id"]["S"]))
                unprocessed: Any = response.get("UnprocessedKeys", {})
                keys = list(unprocessed.get(self.table_name, {}).get("Keys", []))
                attempt = self._backoff(attempt, bool(keys), "read existing audit records")
        return found

    def write_batch(self, items: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Write the items whose event ids are new, 25 a call. Returns (written, duplicates).

        A batch DynamoDB refuses (one invalid item fails all 25) is written item by item
        instead, so one bad item never costs the other 24.
        """
        unique = list({item["event_id"]: item for item in items}.values())
        if not unique:
            return 0, 0
        existing = self.existing_ids(str(item["event_id"]) for item in unique)
        new = [item for item in unique if item["event_id"] not in existing]
        written = 0
        for start in range(0, len(new), BATCH_WRITE_MAX):
            chunk = new[start : start + BATCH_WRITE_MAX]
            try:
                self._write_chunk(chunk)
                written += len(chunk)
            except _Refused:
                written += sum(self.put_new(item) is None for item in chunk)
        return written, len(items) - written

    def _write_chunk(self, chunk: Sequence[Mapping[str, Any]]) -> None:
        requests: list[Any] = [{"PutRequest": {"Item": to_item(item)}} for item in chunk]
        attempt = 0
        while requests:
            try:
                response = self._db.batch_write_item(RequestItems={self.table_name: requests})
            except ClientError as exc:
                if _code(exc) == "ValidationException":
                    raise _Refused(_code(exc)) from exc
                raise _delivery("write audit records", exc) from exc
            except BotoCoreError as exc:
                raise _delivery("write audit records", exc) from exc
            requests = list(response.get("UnprocessedItems", {}).get(self.table_name, []))
            attempt = self._backoff(attempt, bool(requests), "write audit records")

    def _backoff(self, attempt: int, pending: bool, what: str) -> int:
        if not pending:
            return 0
        attempt += 1
        if attempt >= self._max_batch_attempts:
            raise DeliveryError(
                f"could not {what}: DynamoDB left items unprocessed after {attempt} attempts"
            )
        self._sleep(min(0.05 * 2**attempt, 2.0))
        return attempt


class _Refused(Exception):
    """DynamoDB refused a request as invalid: retrying it as it is can never succeed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _delivery(
    what: str, exc: Exception, event_id: str | None = None, rule_id: str | None = None
) -> DeliveryError:
    code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return DeliveryError(f"could not {what}: {code}", event_id=event_id, rule_id=rule_id)


def utc_now() -> datetime:
    return datetime.now(UTC)
