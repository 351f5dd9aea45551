"""The audit table's writer: items written once, alert states moved by conditional updates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared import bounds
from shared.audit.codec import from_item, serialize, to_item
from shared.audit.items import (
    BATCH_GET_MAX,
    BATCH_WRITE_MAX,
    CLAIMED,
    RETRY,
    SENT,
    storage_failure_item,
)
from shared.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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
        previous: Mapping[str, Any],
    ) -> bool:
        """Take one alert for this invocation (``entry`` holds its owner and deadline).

        Only from what ``previous`` says was there: a handed-back alert ("retry") or a claim
        past its deadline. True when taken.
        """
        names = {"#alerts": "alerts", "#rule": rule_id}
        values: dict[str, Any] = {":entry": serialize(dict(entry))}
        if previous.get("state") == RETRY or previous.get("state") == RETRY:
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

    def add_finding(
        self,
        event_id: str,
        finding: Mapping[str, Any],
        entry: Mapping[str, Any],
        *,
        severity: str | None,
        slot: str | None,
        upgrade: Mapping[str, Any] | None = None,
    ) -> bool:
        """Add a finding the stored item lacks (a rule on enrichment that the first delivery
        could not evaluate), with its alert entry; once only, whoever races. True when added.

        ``severity`` is the item's new top severity (None: unchanged), ``slot`` a free rule
        index slot (rule_0..2) to index the finding under, if any; ``upgrade`` the attributes a
        stored routine read gains with its first finding (``day``, the findings' ``expires_at``).
        """
        rule_id = str(finding["rule"])
        # DynamoDB cannot create a map and set a member of it in one expression: make sure the
        # map exists first (a no-op when it does).
        self._conditional(
            event_id,
            rule_id,
            update="SET #alerts = if_not_exists(#alerts, :empty)",
            condition="attribute_exists(event_id)",
            names={"#alerts": "alerts"},
            values={":empty": {"M": {}}},
        )
        names = {"#alerts": "alerts", "#rule": rule_id, "#findings": "findings"}
        values: dict[str, Any] = {
            ":entry": serialize(dict(entry)),
            ":new": serialize([dict(finding)]),
            ":none": {"L": []},
        }
        update = (
            "SET #alerts.#rule = :entry, #findings = list_append(if_not_exists(#findings, :none),"
            " :new)"
        )
        if severity is not None:
            names["#severity"] = "severity"
            values[":severity"] = {"S": severity}
            update += ", #severity = :severity"
        if slot is not None:
            names["#slot"] = slot
            values[":rule"] = {"S": rule_id}
            update += ", #slot = :rule"
        for position, (name, value) in enumerate(sorted((upgrade or {}).items())):
            names[f"#up{position}"] = name
            values[f":up{position}"] = serialize(value)
            update += f", #up{position} = :up{position}"
        return self._conditional(
            event_id,
            rule_id,
            update=update,
            condition="attribute_not_exists(#alerts.#rule)",
            names=names,
            values=values,
        )

    def add_alert(self, event_id: str, key: str, entry: Mapping[str, Any]) -> bool:
        """Add an alert entry with no finding of its own (a resolution a later delivery made:
        the alert it closes was not open yet the first time); once only. True when added."""
        self._conditional(
            event_id,
            key,
            update="SET #alerts = if_not_exists(#alerts, :empty)",
            condition="attribute_exists(event_id)",
            names={"#alerts": "alerts"},
            values={":empty": {"M": {}}},
        )
        return self._conditional(
            event_id,
            key,
            update="SET #alerts.#key = :entry",
            condition="attribute_not_exists(#alerts.#key)",
            names={"#alerts": "alerts", "#key": key},
            values={":entry": serialize(dict(entry))},
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

    def write_batch(self, items: Sequence[Mapping[str, Any]]) -> set[str]:
        """Write the items whose event ids are new, 25 a call; the event ids written.

        A batch DynamoDB refuses (one invalid item fails all 25) is written item by item
        instead, so one bad item never costs the other 24.
        """
        unique = list({item["event_id"]: item for item in items}.values())
        if not unique:
            return set()
        existing = self.existing_ids(str(item["event_id"]) for item in unique)
        new = [item for item in unique if item["event_id"] not in existing]
        written: set[str] = set()
        for start in range(0, len(new), BATCH_WRITE_MAX):
            chunk = new[start : start + BATCH_WRITE_MAX]
            try:
                self._write_chunk(chunk)
                written.update(str(item["event_id"]) for item in chunk)
            except _Refused:
                written.update(str(i["event_id"]) for i in chunk if self.put_new(i) is None)
        return written

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
