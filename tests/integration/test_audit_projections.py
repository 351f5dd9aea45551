"""The audit indexes hold keys and filter attributes only; look-ups still return whole records.

Against the moto server with the table created from template.yaml (INCLUDE projections, which
moto honours: the first test proves it, so the others would fail if the code relied on
attributes an index does not hold).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.audit import query as q
from shared.audit.items import AuditItem, build_item
from shared.audit.store import AuditStore
from shared.models import Evaluation
from shared.normalise import normalise
from shared.pipeline import ROUTE_LOGS
from shared.runtime import get_pipeline
from tests.conftest import ACCOUNT, build_raw
from tests.integration.conftest import Server
from tests.integration.test_cli_audit import Cli, Recorder

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
T0 = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)
SECRET = "prod/app/db"
OTHER_ACCOUNT = "444455556666"


def event_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def read(
    n: int, when: datetime, *, account: str = ACCOUNT, event_name: str = "GetSecretValue"
) -> AuditItem:
    """A role's session reading (or, with another name, changing) the secret."""
    raw = build_raw(
        eventID=event_id(n),
        eventTime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        eventName=event_name,
        readOnly=event_name == "GetSecretValue",
        recipientAccountId=account,
        requestParameters={"secretId": SECRET},
        userIdentity={
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE:s{n}",
            "arn": f"arn:aws:sts::{account}:assumed-role/app/s{n}",
            "accountId": account,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLE",
                    "arn": f"arn:aws:iam::{account}:role/app",
                    "accountId": account,
                    "userName": "app",
                }
            },
        },
    )
    return build_item(
        normalise(raw),
        Evaluation(),
        None,
        route=ROUTE_LOGS,
        retention_days=400,
        routine_retention_days=90,
        now=when,
    )


def store(server: Server, items: list[AuditItem]) -> None:
    AuditStore(server.client("dynamodb"), server.stack.table_name).write_batch(items)


@pytest.fixture
def cli(server: Server, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server, capsys)


def test_the_indexes_hold_no_whole_items(server: Server) -> None:
    # GIVEN a stored routine read
    store(server, [read(1, T0)])
    # WHEN reading its by-secret entry straight from the index
    (entry,) = server.client("dynamodb").query(
        TableName=server.stack.table_name,
        IndexName="by-secret",
        KeyConditionExpression="secret_name = :s",
        ExpressionAttributeValues={":s": {"S": SECRET}},
    )["Items"]
    # THEN it holds keys and filter attributes, not the caller, source or expiry
    assert set(entry) == {
        "event_id", "secret_name", "time_key", "principal_name", "event_name", "account_id",
    }  # fmt: skip


def test_a_secret_look_up_returns_whole_records_across_pages_and_batches(
    cli: Cli, server: Server
) -> None:
    # GIVEN 250 reads of one secret, a minute apart
    store(server, [read(n, T0 + timedelta(minutes=n)) for n in range(250)])
    # WHEN asking for 230 of them in index pages of 40
    items = cli.json("--secret", SECRET, "--limit", "230", "--page-size", "40")
    # THEN the newest 230, newest first, each whole (what no index holds is there)
    assert [i["event_id"] for i in items] == [event_id(n) for n in range(249, 19, -1)]
    assert all(i["caller"]["identity_arn"] == f"arn:aws:iam::{ACCOUNT}:role/app" for i in items)
    assert all(i["source"]["ip"] and i["expires_at"] for i in items)
    # AND they were read from the table 100 keys a call at most: 3 BatchGetItem calls
    assert cli.calls.count("batch_get_item") == 3
    assert cli.calls.count("query") == 230 // 40 + 1
    assert "scan" not in cli.calls


def test_the_principal_arn_filter_holds_though_no_index_projects_it(
    cli: Cli, server: Server
) -> None:
    # GIVEN reads by a role called app in two accounts (one principal name, two identities)
    store(
        server,
        [read(n, T0 + timedelta(minutes=n)) for n in range(0, 120, 2)]
        + [read(n, T0 + timedelta(minutes=n), account=OTHER_ACCOUNT) for n in range(1, 120, 2)],
    )
    # WHEN asking for one account's role by its ARN, and by its name
    by_arn = cli.ids("--principal", f"arn:aws:iam::{OTHER_ACCOUNT}:role/app", "--limit", "500")
    by_name = cli.ids("--principal", "app", "--limit", "500")
    # THEN the ARN gives that identity's 60 reads only, the name all 120
    assert by_arn == [event_id(n) for n in range(119, 0, -2)]
    assert len(by_name) == 120


def test_routine_reads_are_found_by_secret_and_principal_not_by_day(
    cli: Cli, server: Server
) -> None:
    # GIVEN a routine read and a change of the secret on one day
    store(server, [read(1, T0), read(2, T0 + timedelta(minutes=1), event_name="PutSecretValue")])
    window = ("--since", "2026-11-01", "--until", "2026-11-01")
    # WHEN / THEN both are found by secret and by principal; the day index has the change only
    assert cli.ids("--secret", SECRET, *window) == [event_id(2), event_id(1)]
    assert cli.ids("--principal", "app", *window) == [event_id(2), event_id(1)]
    assert cli.ids(*window) == [event_id(2)]


def test_a_timeline_of_more_than_100_events_is_whole_and_oldest_first(server: Server) -> None:
    # GIVEN 130 reads of the secret
    store(server, [read(n, T0 + timedelta(seconds=n)) for n in range(130)])
    client: Any = Recorder(server.client("dynamodb"))
    # WHEN telling its story
    items = q.secret_history(client, server.stack.table_name, SECRET, page_size=50)
    # THEN every event, oldest first, whole, read in two BatchGetItem calls
    assert [i["event_id"] for i in items] == [event_id(n) for n in range(130)]
    assert all("caller" in i for i in items)
    assert client.calls.count("batch_get_item") == 2


def test_the_log_route_keeps_a_routine_read_for_the_stack_routine_retention(
    server: Server,
) -> None:
    # GIVEN the local stack's environment, from template.yaml's defaults
    assert server.stack.environment["ROUTINE_READ_RETENTION_DAYS"] == "90"
    assert server.stack.environment["RETENTION_DAYS"] == "400"
    event = json.loads((EVENTS / "cloudwatch-logs" / "control-get-secret-value.json").read_text())
    # WHEN the log subscription route processes a routine read
    get_pipeline().process_event(event, ROUTE_LOGS)
    # THEN it is kept 90 days after its event, not 400, and carries no by-day key
    (stored,) = [i for i in server.items() if i["event_name"]["S"] == "GetSecretValue"]
    event_time = datetime(2026, 11, 16, 8, 44, 3, tzinfo=UTC)
    assert int(stored["expires_at"]["N"]) == int((event_time + timedelta(days=90)).timestamp())
    assert "day" not in stored
