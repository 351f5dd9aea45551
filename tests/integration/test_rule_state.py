"""Rule state on the moto server: dedup windows and digests, thresholds, alerts that resolve.

The real handlers and the stack's state table from template.yaml. Arrival time (dedup windows,
digests being due) comes from a clock the test moves; event time from the records.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from scripts.make_events import subscription_event

from handlers import eventbridge, log_subscription
from shared.deliver import Notifier
from shared.digests import DigestSender
from shared.errors import DeliveryError
from shared.runtime import get_pipeline
from shared.state.store import StateStore
from shared.stateful import StatefulRules
from tests.integration.conftest import Server
from tests.integration.test_handlers_over_http import Context

EVENTS = Path(__file__).resolve().parents[2] / "events"
HOUR_MS = 3_600_000

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now_ms: int = 1_790_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock(server: Server) -> Clock:
    """The deployed pipeline, its state decided on a clock the test controls."""
    clock = Clock()
    pipeline = get_pipeline()
    assert pipeline.state is not None  # the template gives the functions STATE_TABLE_NAME
    pipeline.state = StatefulRules(pipeline.state.store, clock_ms=clock)
    return clock


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each single-item write atomically: a conditional UpdateItem's condition
    and its update are one step, whoever else writes the item at that moment. moto's server does
    not: two concurrent UpdateItems of one item can both read it before either writes (measured
    on moto 5.2.5: 16 of 20 racing pairs both saw the item absent). These tests give moto that
    atomicity with one lock around its write operations, so that what they test is this code's
    use of conditions, not moto's lack of isolation."""
    from moto.dynamodb import models

    lock = threading.Lock()
    for name in ("update_item", "put_item", "delete_item"):
        original = getattr(models.DynamoDBBackend, name)

        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(models.DynamoDBBackend, name, atomic)


def state_store(server: Server) -> StateStore:
    assert server.stack.state_table_name is not None
    return StateStore(server.client("dynamodb"), server.stack.state_table_name)


def digests(server: Server, clock: Clock) -> DigestSender:
    return DigestSender(
        state_store(server),
        Notifier(server.client("sns"), server.stack.topic_arn),
        clock_ms=clock,
    )


def sample(name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "eventbridge" / f"{name}.json").read_text())
    assert isinstance(event, dict)
    return event


def variant(event: dict[str, Any], n: int, **detail: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out["id"] = f"10000000-0000-4000-8000-{n:012d}"
    out["detail"]["eventID"] = f"20000000-0000-4000-8000-{n:012d}"
    out["detail"].update(detail)
    return out


def as_role(role: str) -> dict[str, Any]:
    identity: dict[str, Any] = copy.deepcopy(
        sample("access-while-pending-deletion")["detail"]["userIdentity"]
    )
    identity["arn"] = f"arn:aws:sts::111122223333:assumed-role/{role}/session"
    identity["sessionContext"]["sessionIssuer"]["arn"] = f"arn:aws:iam::111122223333:role/{role}"
    identity["sessionContext"]["sessionIssuer"]["userName"] = role
    return identity


def messages(server: Server) -> list[dict[str, Any]]:
    out = []
    for envelope in server.drain():
        body = json.loads(envelope["Message"])
        body["_attributes"] = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
        out.append(body)
    return out


def item(server: Server, event_id: str) -> dict[str, Any]:
    from shared.audit.codec import from_item

    found = server.client("dynamodb").get_item(
        TableName=server.stack.table_name, Key={"event_id": {"S": event_id}}
    )["Item"]
    return dict(from_item(found))


# --- dedup and digests ------------------------------------------------------------------------


def test_a_storm_of_thirty_failures_is_one_alert_then_one_digest(
    server: Server, clock: Clock
) -> None:
    # GIVEN an application reading a secret pending deletion 30 times, a second apart
    storm = [
        variant(sample("access-while-pending-deletion"), n, eventTime=f"2026-11-18T07:13:{n:02d}Z")
        for n in range(30)
    ]
    # WHEN each arrives by EventBridge, within the rule's one-hour window
    clock_start = clock.now_ms
    for event in storm:
        eventbridge.lambda_handler(event, Context())
        clock.now_ms += 1000
    # THEN one alert went out, for the first; every event is audited, the 29 others folded in
    sent = messages(server)
    assert [(m["kind"], m["event"]["id"]) for m in sent] == [
        ("alert", storm[0]["detail"]["eventID"])
    ]
    first_alert = sent[0]["alert_id"]
    assert sent[0]["state"]["window_end_ms"] == clock_start + HOUR_MS
    for event in storm[1:]:
        (finding,) = item(server, event["detail"]["eventID"])["findings"]
        assert finding["state"] == "folded"
        assert finding["detail"]["folded_into"] == first_alert
    # AND no digest while the window is open
    assert digests(server, clock).run().sent == 0
    # WHEN the window has closed and the digest function runs (twice)
    clock.now_ms += HOUR_MS
    run = digests(server, clock).run()
    again = digests(server, clock).run()
    # THEN one digest, with the count, the times, the principals, IPs and event names seen
    (digest,) = messages(server)
    assert run.sent == 1
    assert again.sent == 0
    assert digest["kind"] == "digest"
    assert digest["_attributes"]["kind"] == "digest"
    assert digest["digest_of"] == first_alert
    assert digest["count"] == 29
    assert digest["event_names"] == ["GetSecretValue"]
    assert digest["principals"] == [storm[0]["detail"]["userIdentity"]["arn"]]
    assert len(digest["source_ips"]) == 1
    assert digest["first_event_id"] == storm[0]["detail"]["eventID"]


def test_another_principal_or_secret_is_never_folded_into_someone_elses_alert(
    server: Server, clock: Clock
) -> None:
    base = sample("access-while-pending-deletion")
    events = [
        variant(base, 1),
        variant(base, 2),  # same principal, same secret: folded
        variant(base, 3, userIdentity=as_role("batch-role")),  # another principal
        variant(base, 4, requestParameters={"secretId": "prod/other/secret"}),  # another secret
    ]
    for event in events:
        eventbridge.lambda_handler(event, Context())
    alerted = sorted(m["event"]["id"] for m in messages(server) if m["kind"] == "alert")
    assert alerted == sorted(events[i]["detail"]["eventID"] for i in (0, 2, 3))


def test_two_invocations_racing_on_one_key_send_its_first_alert_once(
    server: Server, clock: Clock, atomic_writes: None
) -> None:
    # GIVEN five keys (five principals), two events each
    base = sample("access-while-pending-deletion")
    pairs = [
        (
            variant(base, 100 + 2 * k, userIdentity=as_role(f"role-{k}")),
            variant(base, 101 + 2 * k, userIdentity=as_role(f"role-{k}")),
        )
        for k in range(5)
    ]
    errors: list[BaseException] = []

    def invoke(event: dict[str, Any], start: threading.Barrier) -> None:
        start.wait()
        try:
            eventbridge.lambda_handler(event, Context())
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    # WHEN the two events of each key are handled by two concurrent invocations
    for first, second in pairs:
        start = threading.Barrier(2)
        threads = [threading.Thread(target=invoke, args=(e, start)) for e in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # THEN each key got exactly one alert and its other event was folded into it
    assert errors == []
    alerts = [m for m in messages(server) if m["kind"] == "alert"]
    by_principal: dict[str, int] = {}
    for message in alerts:
        principal = message["caller"]["principal"]
        by_principal[principal] = by_principal.get(principal, 0) + 1
    assert sorted(by_principal.values()) == [1] * 5
    for first, second in pairs:
        states = [
            item(server, e["detail"]["eventID"])["findings"][0].get("state")
            for e in (first, second)
        ]
        assert sorted(states, key=str) == sorted([None, "folded"], key=str)


def test_a_retry_after_a_death_between_state_and_audit_still_sends_the_first_alert(
    server: Server, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an invocation that dies after the dedup window is written, before the audit write
    event = variant(sample("access-while-pending-deletion"), 7)
    store = get_pipeline().store
    assert store is not None
    real_put = store.put_new

    def dead(item: Any) -> Any:
        raise DeliveryError("killed")

    monkeypatch.setattr(store, "put_new", dead)
    with pytest.raises(DeliveryError):
        eventbridge.lambda_handler(event, Context())
    assert messages(server) == []
    # WHEN Lambda retries the event
    monkeypatch.setattr(store, "put_new", real_put)
    eventbridge.lambda_handler(event, Context())
    # THEN the retry recognises the window as its own and the alert goes out, once
    assert [m["kind"] for m in messages(server)] == ["alert"]
    assert item(server, event["detail"]["eventID"])["findings"][0].get("state") is None


def test_a_digest_that_could_not_be_published_goes_out_on_the_next_run(
    server: Server, clock: Clock
) -> None:
    base = sample("access-while-pending-deletion")
    for n in range(3):
        eventbridge.lambda_handler(variant(base, 300 + n), Context())
    messages(server)  # the alert
    clock.now_ms += HOUR_MS

    class Refusing:
        def publish(self, alert: Any) -> str:
            raise DeliveryError("SNS refused")

    sender = digests(server, clock)
    sender.notifier = Refusing()
    with pytest.raises(DeliveryError):
        sender.run()
    assert messages(server) == []
    run = digests(server, clock).run()
    (digest,) = messages(server)
    assert run.sent == 1
    assert digest["count"] == 2


# --- thresholds -------------------------------------------------------------------------------


def denial(n: int, at: str, role: str = "payments-api-task-role") -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(sample("control-get-secret-value")["detail"])
    record.update(
        eventID=f"30000000-0000-4000-8000-{n:012d}",
        eventTime=at,
        errorCode="AccessDenied",
        errorMessage="User is not authorized to perform: secretsmanager:GetSecretValue",
        userIdentity=as_role(role),
    )
    return record


def test_five_denials_across_a_clock_boundary_fire_once_counting_late_records_by_event_time(
    server: Server, clock: Clock
) -> None:
    # GIVEN five denials by one principal between 08:08:10 and 08:12:59 (they straddle 08:10),
    # delivered out of order in two CloudWatch Logs deliveries, the earliest last
    times = ["08:08:10", "08:09:40", "08:10:05", "08:11:30", "08:12:59"]
    records = [denial(n, f"2026-11-16T{t}Z") for n, t in enumerate(times)]
    late_first = [records[4], records[2], records[3]]
    then = [records[1], records[0]]
    # WHEN they are delivered
    log_subscription.lambda_handler(
        subscription_event([json.dumps(r) for r in late_first]), Context()
    )
    assert [m for m in messages(server) if m["rule"] == "access-denied-burst"] == []
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in then]), Context())
    # THEN the fifth (in arrival) crossed the threshold: one alert, naming it and the others
    (burst,) = [m for m in messages(server) if m["rule"] == "access-denied-burst"]
    assert burst["event"]["id"] == records[0]["eventID"]
    assert burst["state"]["state"] == "fired"
    assert burst["state"]["crossed_by"] == records[0]["eventID"]
    assert sorted(burst["state"]["others"]) == sorted(r["eventID"] for r in records[1:])
    # AND the records that only counted say so in their audit items, with no finding
    counted = item(server, records[4]["eventID"])
    assert counted["threshold_counts"][0]["rule"] == "access-denied-burst"
    assert "findings" not in counted or counted["findings"] == []
    # WHEN five more denials come within the window
    more = [denial(10 + n, f"2026-11-16T08:13:{n:02d}Z") for n in range(5)]
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in more]), Context())
    # THEN the group does not fire again until the window has passed
    assert [m for m in messages(server) if m["rule"] == "access-denied-burst"] == []


def test_denials_spread_wider_than_the_window_never_fire(server: Server, clock: Clock) -> None:
    records = [denial(40 + n, f"2026-11-16T08:{n * 11:02d}:00Z") for n in range(5)]
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in records]), Context())
    assert [m for m in messages(server) if m["rule"] == "access-denied-burst"] == []


def test_two_invocations_crossing_a_threshold_together_fire_it_once(
    server: Server, clock: Clock, atomic_writes: None
) -> None:
    # GIVEN three denials already counted for one principal
    first = [denial(60 + n, f"2026-11-16T09:00:0{n}Z") for n in range(3)]
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in first]), Context())
    # WHEN two invocations add two more each at the same moment (either pair crosses it)
    batches = [
        [denial(70, "2026-11-16T09:01:00Z"), denial(71, "2026-11-16T09:01:01Z")],
        [denial(72, "2026-11-16T09:01:02Z"), denial(73, "2026-11-16T09:01:03Z")],
    ]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def invoke(batch: list[dict[str, Any]]) -> None:
        start.wait()
        try:
            log_subscription.lambda_handler(
                subscription_event([json.dumps(r) for r in batch]), Context()
            )
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=invoke, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN the threshold fired exactly once
    assert errors == []
    assert len([m for m in messages(server) if m["rule"] == "access-denied-burst"]) == 1


def test_read_burst_counts_distinct_secrets_and_skips_aws_services(
    server: Server, clock: Clock
) -> None:
    base = sample("control-get-secret-value")["detail"]
    reads = []
    for n in range(25):
        record = copy.deepcopy(base)
        record.update(
            eventID=f"40000000-0000-4000-8000-{n:012d}",
            eventTime=f"2026-11-16T10:{n // 6:02d}:{(n * 7) % 60:02d}Z",
            requestParameters={"secretId": f"prod/app/secret-{n % 19:02d}"},  # 19 distinct
        )
        reads.append(record)
    random.Random(4).shuffle(reads)  # noqa: S311 — an arrival order, not a secret
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in reads]), Context())
    assert [m for m in messages(server) if m["rule"] == "read-burst"] == []
    twentieth = copy.deepcopy(base)
    twentieth.update(
        eventID="40000000-0000-4000-8000-000000000999",
        eventTime="2026-11-16T10:05:00Z",
        requestParameters={"secretId": "prod/app/secret-new"},
    )
    log_subscription.lambda_handler(subscription_event([json.dumps(twentieth)]), Context())
    (burst,) = [m for m in messages(server) if m["rule"] == "read-burst"]
    assert burst["state"]["distinct"] == "secret.name"
    assert burst["event"]["id"] == twentieth["eventID"]


# --- alerts that resolve ----------------------------------------------------------------------


def test_a_restore_resolves_the_deletion_alert_and_audit_open_lists_it_until_then(
    server: Server, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    deleted = sample("secret-deleted")
    eventbridge.lambda_handler(deleted, Context())
    (alert,) = [m for m in messages(server) if m["kind"] == "alert"]
    connection = [
        "--state-table",
        str(server.stack.state_table_name),
        "--region",
        server.stack.region,
        "--endpoint-url",
        str(server.stack.endpoint_url),
        "--output",
        "json",
    ]
    # WHEN the alerts still open are listed
    assert main(["audit", "--open", *connection]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["rule"], o["alert_id"]) for o in listed] == [("secret-deleted", alert["alert_id"])]
    # WHEN the secret is restored
    restored = sample("secret-restored")
    restored["detail"]["requestParameters"] = {"secretId": "prod/payments/db-password"}
    restored["detail"]["responseElements"] = {
        "arn": deleted["detail"]["responseElements"]["arn"],
        "name": "prod/payments/db-password",
    }
    restored["detail"]["eventTime"] = "2026-11-21T09:00:00Z"  # a day after the deletion
    eventbridge.lambda_handler(restored, Context())
    # THEN a message of kind resolved names the alert it closes, who closed it, how long it was
    # open; the restore's own low alert goes out too; nothing is open any more
    sent = messages(server)
    (resolution,) = [m for m in sent if m["kind"] == "resolved"]
    assert resolution["_attributes"]["kind"] == "resolved"
    assert resolution["resolves"] == alert["alert_id"]
    assert resolution["rule"] == "secret-deleted"
    assert resolution["resolved_by_rule"] == "secret-restored"
    assert resolution["open_seconds"] > 0
    assert main(["audit", "--open", *connection]) == 0
    assert capsys.readouterr().out.strip() == ""
    # AND `audit show` of the deletion tells the alert's life: opened, then resolved
    show = [
        "audit",
        "show",
        deleted["detail"]["eventID"],
        "--table",
        server.stack.table_name,
        *connection[:-2],
        "--output",
        "table",
    ]
    assert main(show) == 0
    life = capsys.readouterr().out.split("\nlife\n", 1)[1]
    assert f"secret-deleted: alert {alert['alert_id']} opened, sent" in life
    assert "secret-deleted: resolved by arn:aws:sts::111122223333:assumed-role/" in life
    # AND delivering the restore again resolves nothing twice
    eventbridge.lambda_handler(restored, Context())
    assert [m for m in messages(server) if m["kind"] == "resolved"] == []


def test_the_sms_filter_of_the_template_lets_no_digest_or_resolution_through(
    server: Server, clock: Clock
) -> None:
    from cli.demo import _sms_filter

    policy = _sms_filter(server.stack)
    sms = server.subscribe(
        "sms-kinds", {**policy, "severity": ["info", "low", "medium", "high", "critical"]}
    )
    base = sample("access-while-pending-deletion")
    for n in range(2):
        eventbridge.lambda_handler(variant(base, 500 + n), Context())
    clock.now_ms += HOUR_MS
    digests(server, clock).run()
    kinds = {json.loads(m["Message"])["kind"] for m in server.drain()}
    sms_kinds = {json.loads(m["Message"])["kind"] for m in server.drain(sms)}
    assert kinds == {"alert", "digest"}
    assert sms_kinds == {"alert"}
