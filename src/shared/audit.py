"""The audit trail: one DynamoDB item per CloudTrail event id, written idempotently.

Table (template.yaml ``AuditTable``): hash key ``event_id``; GSIs, each sorted by ``time_key``
(``<eventTime>#<event_id>``, so time order is key order): ``by-secret`` (secret_name),
``by-principal`` (principal_name), ``by-day`` (day, for time windows across all secrets) and
``by-rule-0/1/2`` (rule_0..rule_2). A GSI key must be one scalar, and an event can fire several
rules, so the first three findings (by severity) each get a slot; with the default rules an
event fires at most three (root-activity + secret-value-changed + kms-key-changed).

Idempotency: an alerting record is written with a conditional put (``attribute_not_exists``) and
carries ``alerts``: rule id → "claimed" (this delivery owns the alert), "retry" (publishing
failed; the next delivery may claim it) or "suppressed" (recorded without alerting: a replay
without --notify, so a backfill never floods anyone's phone). Records without findings are written in batches after
a BatchGetItem skips the ids already present, so a second delivery writes nothing new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import DeliveryError
from shared.models import SEVERITY_RANK, CloudTrailRecord, Evaluation, format_time

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RULE_SLOTS = ("rule_0", "rule_1", "rule_2")
INDEX_BY_SECRET, INDEX_BY_PRINCIPAL, INDEX_BY_DAY = "by-secret", "by-principal", "by-day"
RULE_INDEXES = {"rule_0": "by-rule-0", "rule_1": "by-rule-1", "rule_2": "by-rule-2"}
CLAIMED, RETRY, SUPPRESSED = "claimed", "retry", "suppressed"
KIND_EVENT, KIND_REJECTED = "event", "rejected"
BATCH_WRITE_MAX, BATCH_GET_MAX = 25, 100
MAX_RAW_CHARS = 300_000  # DynamoDB items stop at 400 KB


# ---------------------------------------------------------------------------------------------
# Items


def time_key(when: datetime, event_id: str) -> str:
    return f"{format_time(when)}#{event_id}"


def build_item(
    record: CloudTrailRecord,
    evaluation: Evaluation,
    enrichment: Mapping[str, Any] | None,
    *,
    route: str,
    retention_days: int,
    now: datetime,
    alert_state: str = CLAIMED,
) -> dict[str, Any]:
    """The audit item for one record: metadata only, never a secret value (CloudTrail has none)."""
    caller = record.caller
    item: dict[str, Any] = {
        "event_id": record.event_id,
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
        "expires_at": int((record.event_time + timedelta(days=retention_days)).timestamp()),
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
        item["alerts"] = {f.rule_id: alert_state for f in evaluation.findings}
        for slot, finding in zip(RULE_SLOTS, evaluation.findings, strict=False):
            item[slot] = finding.rule_id
    return _compact(item)


def request_dict(record: CloudTrailRecord) -> dict[str, Any]:
    request = record.request
    rules = request.rotation_rules
    return _compact(
        {
            "recovery_window_days": request.recovery_window_days,
            "force_delete_without_recovery": request.force_delete_without_recovery,
            # Kept as JSON text: a policy document is arbitrary JSON (floats, empty keys).
            "resource_policy": json.dumps(request.resource_policy, sort_keys=True)
            if request.resource_policy is not None
            else None,
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


def rejected_item(
    item_id: str, error: str, raw: Any, *, route: str, retention_days: int, now: datetime
) -> dict[str, Any]:
    """A failure record: the raw input is kept so it can be fixed and replayed, never dropped."""
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    truncated = len(text) > MAX_RAW_CHARS
    return _compact(
        {
            "event_id": f"rejected#{item_id}",
            "kind": KIND_REJECTED,
            "error": error,
            "raw": text[:MAX_RAW_CHARS],
            "raw_truncated": truncated or None,
            "route": route,
            "recorded_at": format_time(now),
            "event_time": format_time(now),
            "time_key": time_key(now, f"rejected#{item_id}"),
            "day": now.strftime("%Y-%m-%d"),
            "expires_at": int((now + timedelta(days=retention_days)).timestamp()),
        }
    )


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown (None) and empty values: DynamoDB index keys may not be empty strings."""
    return {k: v for k, v in values.items() if v is not None and v not in ("", {}, [])}


# ---------------------------------------------------------------------------------------------
# DynamoDB attribute values (a small, exact codec: no floats or sets in our items)


def to_attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attribute(value: Mapping[str, Any]) -> Any:
    ((kind, data),) = value.items()
    if kind == "S":
        return data
    if kind == "N":
        number = float(data)
        return (
            int(number)
            if number.is_integer() and "." not in data and "e" not in data.lower()
            else number
        )
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attribute(v) for k, v in data.items()}
    if kind == "L":
        return [from_attribute(v) for v in data]
    if kind in {"SS", "NS"}:
        return list(data)
    raise TypeError(f"unsupported DynamoDB type {kind}")


def to_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in item.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: from_attribute(v) for k, v in item.items()}


# ---------------------------------------------------------------------------------------------
# The store


class AuditStore:
    """Writes and reads audit items. Every failure to write raises DeliveryError (retry)."""

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

    def put_new(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write ``item`` unless its event id exists. None when written, else the existing item."""
        event_id = item["event_id"]
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(event_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
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

    def set_alert_state(
        self, event_id: str, rule_id: str, state: str, *, expect: str | None = None
    ) -> bool:
        """Move one alert to ``state``; with ``expect``, only from that state. True when moved."""
        condition = "attribute_exists(event_id)"
        values: dict[str, Any] = {":state": {"S": state}}
        if expect is not None:
            condition += " AND alerts.#rule = :expect"
            values[":expect"] = {"S": expect}
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key={"event_id": {"S": event_id}},
                UpdateExpression="SET alerts.#rule = :state",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#rule": rule_id},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _delivery("update the alert state", exc, event_id, rule_id) from exc
        except BotoCoreError as exc:
            raise _delivery("update the alert state", exc, event_id, rule_id) from exc
        return True

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
        """Write the items whose event ids are new, 25 a call. Returns (written, duplicates)."""
        unique = list({item["event_id"]: item for item in items}.values())
        if not unique:
            return 0, 0
        existing = self.existing_ids(item["event_id"] for item in unique)
        new = [item for item in unique if item["event_id"] not in existing]
        for start in range(0, len(new), BATCH_WRITE_MAX):
            requests: list[Any] = [
                {"PutRequest": {"Item": to_item(item)}}
                for item in new[start : start + BATCH_WRITE_MAX]
            ]
            attempt = 0
            while requests:
                try:
                    response = self._db.batch_write_item(RequestItems={self.table_name: requests})
                except (ClientError, BotoCoreError) as exc:
                    raise _delivery("write audit records", exc) from exc
                requests = list(response.get("UnprocessedItems", {}).get(self.table_name, []))
                attempt = self._backoff(attempt, bool(requests), "write audit records")
        return len(new), len(items) - len(new)

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


def _delivery(
    what: str, exc: Exception, event_id: str | None = None, rule_id: str | None = None
) -> DeliveryError:
    code = (
        exc.response.get("Error", {}).get("Code")
        if isinstance(exc, ClientError)
        else type(exc).__name__
    )
    return DeliveryError(f"could not {what}: {code}", event_id=event_id, rule_id=rule_id)


def utc_now() -> datetime:
    return datetime.now(UTC)
