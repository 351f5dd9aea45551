"""The state table: dedup windows, threshold counts and open alerts, one item each, with a TTL.

Every change is one conditional UpdateItem whose effect a retry repeats harmlessly: an event id
goes into a string set (adding it twice counts it once), the first event of a window or the event
that fires a threshold is written into the item, so the retry of a dead invocation recognises
itself. Items (``pk``):

- ``dedup#<rule>#<key hash>``: the open window of one dedup key: its first event and alert, its
  end, the repeats folded into it (event ids, principals, source IPs, event names; bounded) and
  the digest's delivery state. Listed in the ``due`` index until its digest is done.
- ``digest#<alert id>``: a window that closed while findings still arrived, kept for its digest.
- ``threshold#<rule>#<group hash>``: a group's matching events of the last windows (a set per
  window-long bucket of event time) and when it last fired.
- ``open#<rule>#<secret hash>``: an alert some rule can resolve, until it is resolved. Listed in
  the ``due`` index under ``open``, which ``secretwatch audit --open`` reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.audit.codec import from_item, to_item
from shared.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

from shared.state.keys import (
    BUCKET_MAX,
    DUE_DIGEST,
    DUE_INDEX,
    DUE_OPEN,
    KEEP_AFTER_S,
    WINDOW_DETAIL_MAX,
    bounded,
    repeats,
)


class StateStore:
    """Reads and conditional writes of the state table; AWS failures become DeliveryError."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    # --- dedup ---------------------------------------------------------------------------------

    def fold(
        self,
        pk: str,
        *,
        rule_id: str,
        event_id: str,
        alert_id: str,
        now_ms: int,
        window_ms: int,
        key_text: str,
        facts: Mapping[str, str],
    ) -> dict[str, Any]:
        """Put one finding in its key's window. The window as it stands after, ``first_event``
        telling whether this event opened it (then its alert goes out) or was folded."""
        end = now_ms + window_ms
        names = {"#pk": "pk"}
        values: dict[str, Any] = {
            ":eid": event_id,
            ":eids": {event_id},
            ":aid": alert_id,
            ":now": now_ms,
            ":end": end,
            ":rule": rule_id,
            ":key": bounded(key_text, 1024),
            ":ttl": (end // 1000) + KEEP_AFTER_S,
            ":due": DUE_DIGEST,
            ":cap": WINDOW_DETAIL_MAX,
        }
        sets = {"principals": "principal", "source_ips": "source_ip", "event_names": "event_name"}
        adds = ["events :eids"]
        for attribute, fact in sets.items():
            values[f":{attribute}"] = {bounded(facts.get(fact))}
            adds.append(f"{attribute} :{attribute}")
        update = (
            "SET first_event = if_not_exists(first_event, :eid), "
            "first_alert = if_not_exists(first_alert, :aid), "
            "opened_at = if_not_exists(opened_at, :now), "
            "window_end = if_not_exists(window_end, :end), rule_id = :rule, "
            "key_text = if_not_exists(key_text, :key), last_at = :now, expires_at = :ttl, "
            "due_part = if_not_exists(due_part, :due), due_at = if_not_exists(due_at, :end) "
            "ADD " + ", ".join(adds)
        )
        # Open window (or this event's own retry), and room for one more repeat's details.
        open_or_ours = (
            "(attribute_not_exists(#pk) OR window_end > :now OR first_event = :eid "
            "OR contains(events, :eid))"
        )
        room = "(attribute_not_exists(events) OR size(events) < :cap OR contains(events, :eid))"
        try:
            return self._update(pk, update, f"{open_or_ours} AND {room}", names, values)
        except _ConditionFailed as failed:
            old = failed.item
        if old.get("window_end", 0) > now_ms or old.get("first_event") == event_id:
            # Open, but its details are full: count the repeat, nothing more (a retry of it may
            # count it twice: the count beyond the details is approximate).
            try:
                return self._update(
                    pk,
                    "ADD overflow :one SET last_at = :now",
                    "window_end > :now",
                    None,
                    {":one": 1, ":now": now_ms},
                )
            except _ConditionFailed as closed:
                old = closed.item
        return self._roll_over(pk, old, event_id=event_id, alert_id=alert_id, values=values)

    def _roll_over(
        self,
        pk: str,
        old: dict[str, Any],
        *,
        event_id: str,
        alert_id: str,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        """The key's window closed: keep it for its digest (when it has repeats not yet told),
        and open a new one with this event first."""
        if repeats(old) and old.get("digest_state") != "sent":
            kept = {
                **old,
                "pk": f"digest#{old.get('first_alert')}",
                "due_part": DUE_DIGEST,
                "due_at": old.get("window_end", 0),
            }
            self._put(kept, "attribute_not_exists(pk)", ignore_conflict=True)
        fresh = {
            "pk": pk,
            "first_event": event_id,
            "first_alert": alert_id,
            "opened_at": values[":now"],
            "window_end": values[":end"],
            "rule_id": values[":rule"],
            "key_text": values[":key"],
            "last_at": values[":now"],
            "expires_at": values[":ttl"],
            "due_part": DUE_DIGEST,
            "due_at": values[":end"],
            "events": {event_id},
            "principals": values[":principals"],
            "source_ips": values[":source_ips"],
            "event_names": values[":event_names"],
        }
        condition = "first_event = :old"
        if self._put(fresh, condition, {":old": old.get("first_event")}, ignore_conflict=True):
            return fresh
        # Another invocation rolled it over first: this finding belongs to the window it opened.
        return self.fold_again(pk, event_id=event_id, values=values)

    def fold_again(self, pk: str, *, event_id: str, values: dict[str, Any]) -> dict[str, Any]:
        return self._update(
            pk,
            "SET last_at = :now ADD events :eids, principals :principals, "
            "source_ips :source_ips, event_names :event_names",
            "attribute_exists(pk)",
            None,
            {key: values[key] for key in (":now", ":eids", ":principals", ":source_ips")}
            | {":event_names": values[":event_names"]},
        )

    # --- thresholds ----------------------------------------------------------------------------

    def threshold_state(self, pk: str) -> dict[str, Any]:
        return self.get(pk) or {}

    def count_hit(
        self,
        pk: str,
        *,
        rule_id: str,
        bucket: int,
        hit: str,
        expires_at: int,
        fire: Mapping[str, Any] | None,
        suppress_from: int,
        suppress_until: int,
    ) -> dict[str, Any] | None:
        """Add one matching event to its bucket; with ``fire``, mark the group fired in the same
        write, unless another event fired it within the suppression span meanwhile (then None).
        The item as it stands after."""
        names = {"#b": f"b{bucket}"}
        values: dict[str, Any] = {
            ":hit": {hit},
            ":rule": rule_id,
            ":ttl": expires_at,
            ":cap": BUCKET_MAX,
        }
        update = "SET rule_id = :rule, expires_at = :ttl"
        removes = [f"#old{n}" for n in range(3, 7)]
        for n in range(3, 7):
            names[f"#old{n}"] = f"b{bucket - n}"
        condition = "(attribute_not_exists(#b) OR size(#b) < :cap)"
        if fire is not None:
            update += ", fired_at = :fat, fired_by = :fby, fired_alert = :falert"
            values |= {
                ":fat": fire["at"],
                ":fby": fire["by"],
                ":falert": fire["alert_id"],
                ":lo": suppress_from,
                ":hi": suppress_until,
            }
            condition += (
                " AND (attribute_not_exists(fired_at) OR fired_at <= :lo OR fired_at >= :hi "
                "OR fired_by = :fby)"
            )
        update += " ADD #b :hit REMOVE " + ", ".join(removes)
        try:
            return self._update(pk, update, condition, names, values)
        except _ConditionFailed:
            return None

    # --- open alerts ---------------------------------------------------------------------------

    def open_alert(self, pk: str, entry: Mapping[str, Any]) -> None:
        """Record an alert a rule can resolve (again, on a retry: the same values)."""
        item = {**entry, "pk": pk, "due_part": DUE_OPEN, "due_at": entry["opened_ms"]}
        self._put(item, None)

    def resolve(self, pk: str, *, event_id: str, by: str, at_ms: int) -> dict[str, Any] | None:
        """Close an open alert; the alert as it was when this event resolved it, or None when
        nothing was open (a retry of the resolving event finds its own resolution)."""
        try:
            return self._update(
                pk,
                "SET resolved_by = :by, resolved_event = :eid, resolved_ms = "
                "if_not_exists(resolved_ms, :at) REMOVE due_part, due_at",
                "attribute_exists(alert_id) AND "
                "(attribute_not_exists(resolved_event) OR resolved_event = :eid)",
                None,
                {":by": bounded(by, 1024), ":eid": event_id, ":at": at_ms},
            )
        except _ConditionFailed:
            return None

    # --- the due index (digests, open alerts) --------------------------------------------------

    def due(
        self, part: str, until_ms: int | None = None, *, limit: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Items of the ``due`` index: digests due by ``until_ms``, or open alerts."""
        condition = "due_part = :part"
        values: dict[str, Any] = {":part": {"S": part}}
        if until_ms is not None:
            condition += " AND due_at <= :until"
            values[":until"] = {"N": str(until_ms)}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        seen = 0
        while seen < limit:
            try:
                response = self._client.query(**kwargs)
            except (BotoCoreError, ClientError) as exc:
                raise DeliveryError(f"could not read the due index: {_reason(exc)}") from exc
            for raw in response.get("Items", []):
                seen += 1
                yield from_item(raw)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryError(f"could not read state: {_reason(exc)}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def claim_digest(
        self, pk: str, *, window_end: int, token: str, deadline_ms: int, now_ms: int
    ) -> bool:
        """Take a due digest for this invocation: unclaimed, handed back, or whose claim lapsed."""
        try:
            self._update(
                pk,
                "SET digest_state = :claimed, digest_owner = :token, digest_deadline = :deadline",
                "due_part = :due AND window_end = :end AND (attribute_not_exists(digest_state) "
                "OR digest_state = :retry OR (digest_state = :claimed AND digest_deadline < :now))",
                None,
                {
                    ":claimed": "claimed",
                    ":retry": "retry",
                    ":token": token,
                    ":deadline": deadline_ms,
                    ":now": now_ms,
                    ":due": DUE_DIGEST,
                    ":end": window_end,
                },
            )
        except _ConditionFailed:
            return False
        return True

    def finish_digest(self, pk: str, *, token: str | None, state: str, **facts: Any) -> None:
        """A digest sent (or with nothing to tell): out of the due index, its facts kept."""
        sets = ", ".join(f"{name} = :{name}" for name in facts)
        update = "SET digest_state = :state" + (f", {sets}" if sets else "")
        update += " REMOVE due_part, due_at"
        values = {":state": state, **{f":{name}": value for name, value in facts.items()}}
        condition = "attribute_exists(pk)"
        if token is not None:
            condition = "digest_owner = :token"
            values[":token"] = token
        # On a failed condition the window was rolled over meanwhile; its kept copy is told.
        with contextlib.suppress(_ConditionFailed):
            self._update(pk, update, condition, None, values)

    def hand_back_digest(self, pk: str, *, token: str) -> None:
        # Should this fail, the claim lapses at its deadline and the next run takes it.
        with contextlib.suppress(_ConditionFailed, DeliveryError):
            self._update(
                pk,
                "SET digest_state = :retry",
                "digest_owner = :token",
                None,
                {":retry": "retry", ":token": token},
            )

    # --- plumbing ------------------------------------------------------------------------------

    def _update(
        self,
        pk: str,
        update: str,
        condition: str | None,
        names: dict[str, str] | None,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": update,
            "ExpressionAttributeValues": to_item(values),
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if names:
            used = {k: v for k, v in names.items() if k in update or k in (condition or "")}
            if used:
                kwargs["ExpressionAttributeNames"] = used
        try:
            response = self._client.update_item(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raw: Any = exc.response.get("Item") or {}  # ReturnValuesOnConditionCheckFailure
                raise _ConditionFailed(from_item(raw) if raw else {}) from None
            raise DeliveryError(f"could not update state: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise DeliveryError(f"could not update state: {_reason(exc)}") from exc
        return from_item(response.get("Attributes") or {})

    def _put(
        self,
        item: Mapping[str, Any],
        condition: str | None,
        values: Mapping[str, Any] | None = None,
        *,
        ignore_conflict: bool = False,
    ) -> bool:
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": to_item(dict(item))}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = to_item(dict(values))
        try:
            self._client.put_item(**kwargs)
        except ClientError as exc:
            if (
                ignore_conflict
                and exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            ):
                return False
            raise DeliveryError(f"could not write state: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise DeliveryError(f"could not write state: {_reason(exc)}") from exc
        return True


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}"[:300]
    return type(exc).__name__
