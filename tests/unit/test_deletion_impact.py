"""What a deletion will break: recent readers from the audit trail, on in-process moto.

The stack comes from template.yaml (create_stack under mock_aws). Reads are audited the way they
are in an account, by the CloudWatch Logs route, before the deletion arrives.

moto gaps, checked here rather than assumed: DescribeSecret in moto 5.2.5 never returns
LastAccessedDate (even after GetSecretValue), so LastAccessedDate is tested on SecretDetails
directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from scripts.make_events import subscription_event

from cli.local_stack import LocalStack, create_stack
from shared.audit.codec import from_item
from shared.audit.recent_readers import RecentReaders
from shared.audit.store import AuditStore
from shared.compose import AlertMessage, build_alert
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.impact import ImpactEnricher, days_since_read
from shared.models import Enrichment, SecretDetails
from shared.normalise import normalise
from shared.pipeline import ROUTE_EVENTBRIDGE, ROUTE_LOGS, Pipeline, Summary
from shared.rules import load_rules
from shared.rules.fields import getter_for
from tests.conftest import ACCOUNT, build_raw
from tests.unit.moto_stack import subscribed_inbox
from tests.unit.test_pipeline import Faulty

REGION = "eu-west-1"
SECRET = "prod/db/orders"
DELETED_AT = datetime(2026, 10, 21, 17, 9, 13, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def read(
    n: int, when: datetime, who: str = "app", *, failed: bool = False, secret: str = SECRET
) -> dict[str, Any]:
    raw = build_raw(
        eventID=f"00000000-0000-4000-8000-{n:012d}",
        eventTime=stamp(when),
        requestParameters={"secretId": secret},
        userIdentity={
            "type": "IAMUser",
            "principalId": f"AIDA{who.upper()}",
            "arn": user_arn(who),
            "accountId": ACCOUNT,
            "userName": who,
        },
    )
    if failed:
        raw["errorCode"] = "AccessDeniedException"
        raw["errorMessage"] = "denied"
    return raw


def deletion(n: int = 999, when: datetime = DELETED_AT, secret: str = SECRET) -> dict[str, Any]:
    return build_raw(
        eventID=f"dddddddd-0000-4000-8000-{n:012d}",
        eventTime=stamp(when),
        eventName="DeleteSecret",
        readOnly=False,
        requestParameters={"secretId": secret, "recoveryWindowInDays": 7},
        responseElements={"name": secret, "deletionDate": "Oct 28, 2026 5:09:13 PM"},
    )


def eventbridge_event(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": detail["eventID"],
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "time": detail["eventTime"],
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


@dataclass
class World:
    stack: LocalStack
    inbox: str

    def pipeline(
        self, *, dynamodb: Any = None, page_size: int = 250, max_pages: int = 4
    ) -> Pipeline:
        db = dynamodb or self.stack.client("dynamodb")
        enricher = Enricher(self.stack.client("secretsmanager"), self.stack.client("iam"), None)
        readers = RecentReaders(
            db,
            self.stack.table_name,
            stats=enricher.stats,
            page_size=page_size,
            max_pages=max_pages,
        )
        return Pipeline(
            ruleset=load_rules(),
            enricher=ImpactEnricher(enricher, readers),
            store=AuditStore(self.stack.client("dynamodb"), self.stack.table_name),
            notifier=Notifier(self.stack.client("sns"), self.stack.topic_arn),
            retention_days=30,
            clock=lambda: DELETED_AT + timedelta(minutes=1),
        )

    def audit_reads(self, *records: dict[str, Any]) -> None:
        """Reads arrive by the CloudWatch Logs route, as in an account."""
        event = subscription_event([json.dumps(r) for r in records])
        self.pipeline().process_event(event, ROUTE_LOGS)

    def messages(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.inbox, ReceiptHandle=message["ReceiptHandle"])

    def item(self, event_id: str) -> dict[str, Any]:
        found = self.stack.client("dynamodb").get_item(
            TableName=self.stack.table_name, Key={"event_id": {"S": event_id}}
        )["Item"]
        return from_item(found)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = create_stack(None, region=REGION)
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=SECRET, SecretString="not-read-by-secretwatch"
        )
        url = subscribed_inbox(stack, REGION)
        yield World(stack, url)


def alert_of(world: World, rule: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the SNS envelope, its per-protocol messages) of the one alert of ``rule``."""
    for envelope in world.messages():
        machine = json.loads(envelope["Message"])
        if machine["rule"] == rule:
            return envelope, machine
    raise AssertionError(f"no alert for {rule}")


def deliver_deletion(world: World, pipeline: Pipeline | None = None) -> Summary:
    pipeline = pipeline or world.pipeline()
    return pipeline.process_event(eventbridge_event(deletion()), ROUTE_EVENTBRIDGE)


# --- readers listed ----------------------------------------------------------------------------


def test_deletion_alert_lists_who_read_the_secret_in_the_last_seven_days(world: World) -> None:
    # GIVEN audited reads: app 3 times, batch-job twice, ops once (the latest), plus reads that
    # must not count: a failed one, one 8 days old, one of another secret
    hours = [DELETED_AT - timedelta(hours=h) for h in range(1, 10)]
    world.audit_reads(
        read(1, hours[5], "app"),
        read(2, hours[4], "app"),
        read(3, hours[3], "app"),
        read(4, hours[6], "batch-job"),
        read(5, hours[7], "batch-job"),
        read(6, hours[1], "ops"),
        read(7, hours[0], "intruder", failed=True),
        read(8, DELETED_AT - timedelta(days=8), "old-app"),
        read(9, hours[2], "app", secret="prod/db/other"),
    )
    world.messages()  # the failed read alerted nothing of interest here

    # WHEN the deletion arrives
    deliver_deletion(world)

    # THEN the JSON document, e-mail, SMS and audit item carry who still reads it
    envelope, machine = alert_of(world, "secret-deleted")
    readers = machine["enrichment"]["readers"]
    assert readers["reads"] == 6
    assert readers["principal_count"] == 3
    assert readers["complete"] is True
    assert [r["principal"] for r in readers["readers"]] == [
        user_arn("app"),
        user_arn("batch-job"),
        user_arn("ops"),
    ]
    assert readers["readers"][0]["reads"] == 3
    assert readers["last_reader"] == user_arn("ops")
    assert readers["last_read"] == stamp(hours[1])
    assert readers["days_since_read"] == 0
    assert readers["last_accessed_date"] is None  # moto does not report LastAccessedDate
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"
    item = world.item(deletion()["eventID"])
    assert item["enrichment"]["readers"]["reads"] == 6


def compose_deletion_alert(world: World) -> AlertMessage:
    """The secret-deleted alert as the pipeline composes it (SNS hands the e-mail and SMS
    variants to their subscribers; the test queue only sees the JSON one)."""
    record = normalise(deletion())
    enrichment = world.pipeline().enricher.enrich(record)
    assert enrichment.readers is not None
    (finding,) = [
        f
        for f in load_rules().evaluate(record, enrichment).findings
        if f.rule_id == "secret-deleted"
    ]
    return build_alert(record, finding, enrichment)


def test_email_and_sms_say_it_in_words(world: World) -> None:
    # GIVEN two reads by two principals, the latest 2 hours before the deletion
    latest = DELETED_AT - timedelta(hours=2)
    world.audit_reads(read(1, latest, "app"), read(2, latest - timedelta(hours=1), "ops"))

    # WHEN the deletion's alert is composed
    alert = compose_deletion_alert(world)

    # THEN the e-mail has one Readers line and one line per reader; the SMS a short note
    line = next(row for row in alert.email.splitlines() if row.startswith("Readers:"))
    assert line == (
        "Readers:  read 2 times in the last 7 days by 2 principals, last 2026-10-21 15:09 UTC by "
        f"{user_arn('app')}; LastAccessedDate unknown"
    )
    assert f"{user_arn('app')}: 1 read, last 2026-10-21 15:09 UTC" in alert.email
    assert alert.sms.endswith(" read 2x/7d by 2")
    assert len(alert.sms) <= 160


def test_caller_controlled_principal_is_escaped_in_the_email(world: World) -> None:
    # GIVEN a read by a principal whose name carries a line break and a fake header
    world.audit_reads(read(1, DELETED_AT - timedelta(hours=1), "app\nBcc: evil@example.com"))

    # WHEN the deletion alert is composed
    email = compose_deletion_alert(world).email

    # THEN no line of the e-mail starts with the injected header; it is shown escaped
    assert not any(line.startswith("Bcc:") for line in email.splitlines())
    assert "Bcc: evil@example.com" in email


# --- days_since_read raises severity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("read_before", "severity", "days"),
    [
        (timedelta(hours=2), "critical", 0),
        (timedelta(hours=23, minutes=59), "critical", 0),
        (timedelta(hours=25), "high", 1),
        (timedelta(days=3), "high", 3),
    ],
)
def test_a_deletion_of_a_secret_read_in_the_last_24_hours_is_critical(
    world: World, read_before: timedelta, severity: str, days: int
) -> None:
    # GIVEN one audited read some time before the deletion
    world.audit_reads(read(1, DELETED_AT - read_before))

    # WHEN the deletion arrives
    deliver_deletion(world)

    # THEN secret-deleted fires at the severity its days_since_read gives
    envelope, machine = alert_of(world, "secret-deleted")
    assert machine["severity"] == severity
    assert machine["enrichment"]["readers"]["days_since_read"] == days
    assert envelope["MessageAttributes"]["severity"]["Value"] == severity


def test_a_deletion_of_a_secret_nobody_read_stays_high(world: World) -> None:
    # GIVEN no reads at all
    # WHEN the deletion arrives
    deliver_deletion(world)

    # THEN severity high, days_since_read unknown, and the e-mail says no reads were seen
    _, machine = alert_of(world, "secret-deleted")
    assert machine["severity"] == "high"
    assert machine["enrichment"]["readers"]["days_since_read"] is None
    assert machine["enrichment"]["readers"]["reads"] == 0


def test_days_since_read_takes_the_latest_of_both_sources() -> None:
    # GIVEN an audit read 5 days before and a LastAccessedDate 1 day before (00:00 UTC)
    when = DELETED_AT
    last_read = when - timedelta(days=5)
    accessed = datetime(2026, 10, 20, tzinfo=UTC)
    # WHEN / THEN the later one counts, in whole days; none known is None; future reads are 0
    assert days_since_read(when, last_read, accessed) == 1
    assert days_since_read(when, last_read, None) == 5
    assert days_since_read(when, None, None) is None
    assert days_since_read(when, when + timedelta(days=2), None) == 0


def test_the_field_falls_back_on_last_accessed_date_for_other_records(make_record: Any) -> None:
    # GIVEN a record that is no deletion, with DescribeSecret's LastAccessedDate 2 days before
    record = make_record()
    details = SecretDetails(
        name=SECRET, last_accessed_date=record.event_time.replace(hour=0) - timedelta(days=2)
    )
    getter = getter_for("secret.days_since_read")
    assert getter is not None
    # WHEN / THEN the field gives 2; unknown without enrichment or without the date
    assert getter(record, Enrichment(secret=details)) == 2
    assert getter(record, Enrichment(secret=SecretDetails(name=SECRET))) is None
    assert getter(record, None) is None


def test_last_accessed_date_is_read_from_describe_secret() -> None:
    # GIVEN a DescribeSecret answer as AWS gives it (moto omits the field)
    response: Any = {"Name": SECRET, "LastAccessedDate": datetime(2026, 10, 20, tzinfo=UTC)}
    # WHEN / THEN the details keep it, and their dict shows the day
    details = SecretDetails.from_describe(response)
    assert details.last_accessed_date == datetime(2026, 10, 20, tzinfo=UTC)
    assert details.to_dict()["last_accessed_date"] == "2026-10-20T00:00:00Z"


# --- cost and bounds ----------------------------------------------------------------------------


def test_quiet_records_cost_no_query_and_deletions_one_per_invocation(world: World) -> None:
    # GIVEN a DynamoDB client that counts its calls
    counted = Faulty(world.stack.client("dynamodb"), {})
    pipeline = world.pipeline(dynamodb=counted)
    reads = [read(n, DELETED_AT - timedelta(minutes=n)) for n in range(1, 6)]

    # WHEN a batch of ordinary reads goes through
    pipeline.process_event(subscription_event([json.dumps(r) for r in reads]), ROUTE_LOGS)
    # THEN no Query was made
    assert counted.calls.get("query", 0) == 0

    # WHEN one invocation holds two deletions of the same secret
    twice = [deletion(1), deletion(2, DELETED_AT + timedelta(seconds=5))]
    pipeline.process_event(subscription_event([json.dumps(r) for r in twice]), ROUTE_LOGS)
    # THEN one Query answered both
    assert counted.calls["query"] == 1

    # WHEN a later invocation deletes it again
    pipeline.process_event(eventbridge_event(deletion(3)), ROUTE_EVENTBRIDGE)
    # THEN it asks again (the cache lives for one invocation)
    assert counted.calls["query"] == 2


def test_the_look_up_stops_at_its_page_limit_and_says_at_least(world: World) -> None:
    # GIVEN 10 audited reads and a look-up of 2 pages of 2 items
    world.audit_reads(*[read(n, DELETED_AT - timedelta(minutes=n)) for n in range(1, 11)])
    counted = Faulty(world.stack.client("dynamodb"), {})

    # WHEN the deletion arrives
    deliver_deletion(world, world.pipeline(dynamodb=counted, page_size=2, max_pages=2))

    # THEN two queries were made, the newest 4 reads counted, and the alert says "at least"
    assert counted.calls["query"] == 2
    _, machine = alert_of(world, "secret-deleted")
    readers = machine["enrichment"]["readers"]
    assert (readers["reads"], readers["complete"]) == (4, False)
    assert readers["last_read"] == stamp(DELETED_AT - timedelta(minutes=1))


# --- failure degrades -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "ProvisionedThroughputExceededException"]
)
def test_a_failed_look_up_still_alerts_saying_readers_unknown(world: World, code: str) -> None:
    # GIVEN a read in the last hour, and a Query that fails
    world.audit_reads(read(1, DELETED_AT - timedelta(hours=1)))
    failing = Faulty(world.stack.client("dynamodb"), {"query": (10, code)})
    pipeline = world.pipeline(dynamodb=failing)

    # WHEN the deletion arrives
    summary = deliver_deletion(world, pipeline)

    # THEN the alert goes out at the rule's own severity, saying the readers are unknown
    assert summary.alerts_published == 1
    assert summary.enrichment_failures == 1
    _, machine = alert_of(world, "secret-deleted")
    assert machine["severity"] == "high"
    readers = machine["enrichment"]["readers"]
    assert readers["error"] == f"audit query: {code}"
    assert readers["reads"] is None
    assert readers["days_since_read"] is None
    item = world.item(deletion()["eventID"])
    assert item["enrichment"]["readers"]["error"] == f"audit query: {code}"


def test_forced_deletion_carries_readers_too(world: World) -> None:
    # GIVEN a read an hour before a deletion without recovery
    world.audit_reads(read(1, DELETED_AT - timedelta(hours=1)))
    forced = deletion()
    forced["requestParameters"] = {"secretId": SECRET, "forceDeleteWithoutRecovery": True}

    # WHEN it arrives
    world.pipeline().process_event(eventbridge_event(forced), ROUTE_EVENTBRIDGE)

    # THEN its alert lists the reader
    _, machine = alert_of(world, "deletion-forced-no-recovery")
    assert machine["enrichment"]["readers"]["readers"][0]["principal"] == user_arn("app")


def test_a_failed_deletion_is_not_looked_up(world: World) -> None:
    # GIVEN a DynamoDB client that counts its calls and a denied DeleteSecret
    counted = Faulty(world.stack.client("dynamodb"), {})
    denied = deletion()
    denied["errorCode"] = "AccessDeniedException"
    denied["errorMessage"] = "denied"
    # WHEN it goes through
    world.pipeline(dynamodb=counted).process_event(eventbridge_event(denied), ROUTE_EVENTBRIDGE)
    # THEN no query was made
    assert counted.calls.get("query", 0) == 0


def test_query_errors_are_translated_by_code_not_text(world: World) -> None:
    # GIVEN a client whose query raises a ClientError with a misleading message
    class Client:
        def query(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "x"}}, "Query")

    readers = RecentReaders(Client(), "t")  # type: ignore[arg-type]
    # WHEN / THEN the failure names the code
    assert readers.recent_reads(normalise(deletion())).error == "audit query: ValidationException"
