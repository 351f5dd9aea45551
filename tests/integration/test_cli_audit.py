"""``secretwatch audit`` against a moto server with the table from template.yaml, over HTTP.

Every look-up here goes through a recording wrapper of the DynamoDB client, and every test
asserts at the end that Scan was never called: the audit command reads by keys and indexes only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cli import audit_view as view
from cli.aws import Aws
from cli.errors import error_line, exit_status
from cli.main import build_parser, main
from shared.audit import query as q
from shared.audit.items import AuditItem, build_item
from shared.audit.store import AuditStore
from shared.errors import SecretwatchError
from shared.models import Evaluation, Finding, format_time
from shared.normalise import normalise
from shared.pipeline import ROUTE_EVENTBRIDGE
from shared.runtime import get_pipeline
from tests.conftest import ACCOUNT, build_raw
from tests.integration.conftest import REGION, Server

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
ORDERS = "prod/rds/orders-primary"
ORDERS_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{ORDERS}-Vb5Wc1"
T0 = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)
CHANGE = "PutSecretValue"  # a write: in every index it has a key for (a routine read is not by day)

Run = tuple[int, str, str]


# ---------------------------------------------------------------------------------------------
# Helpers


class Recorder:
    """Wraps a boto3 client and records the name of every operation called on it."""

    def __init__(self, client: Any, fail_with: str | None = None) -> None:
        self._client = client
        self._fail_with = fail_with
        self.calls: list[str] = []
        self.indexes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name == "meta" or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if "IndexName" in kwargs:
                self.indexes.append(kwargs["IndexName"])
            if self._fail_with is not None:
                raise ClientError({"Error": {"Code": self._fail_with, "Message": "no"}}, name)
            return attribute(*args, **kwargs)

        return call


@dataclass
class Cli:
    """Runs ``secretwatch audit ...`` in-process against the server, recording DynamoDB calls."""

    server: Server
    capsys: pytest.CaptureFixture[str]
    recorders: list[Recorder] = field(default_factory=list)
    fail_with: str | None = None

    @property
    def calls(self) -> list[str]:
        return [name for recorder in self.recorders for name in recorder.calls]

    @property
    def indexes(self) -> list[str]:
        return [name for recorder in self.recorders for name in recorder.indexes]

    def wrap(self, args: argparse.Namespace) -> Recorder:
        real = Aws.from_args(args).client("dynamodb")
        recorder = Recorder(real, self.fail_with)
        self.recorders.append(recorder)
        return recorder

    def __call__(self, *argv: str, table: bool = True) -> Run:
        full = ["audit", *argv, "--endpoint-url", self.server.stack.endpoint_url or ""]
        if table:
            full += ["--table", self.server.stack.table_name]
        args = build_parser().parse_args(full)
        args.client_factory = self.wrap
        self.capsys.readouterr()  # what came before (the pipeline's logs) is not ours
        try:
            status: int = args.handler(args)
        except SecretwatchError as exc:  # as the real entry point reports it
            print(error_line(exc), file=sys.stderr)
            status = exit_status(exc)
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    def json(self, *argv: str) -> list[dict[str, Any]]:
        status, out, err = self(*argv, "--format", "json")
        assert status == 0, err
        return [json.loads(line) for line in out.splitlines()]

    def ids(self, *argv: str) -> list[str]:
        return [item["event_id"] for item in self.json(*argv)]


@pytest.fixture
def cli(server: Server, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    runner = Cli(server, capsys)
    yield runner
    # THEN (every test): the table was read by its keys and indexes, never scanned
    assert "scan" not in runner.calls


def send(*names: str) -> list[dict[str, Any]]:
    """Process EventBridge payloads through the real pipeline; return their CloudTrail details."""
    details = []
    for name in names:
        event = json.loads((EVENTS / f"{name}.json").read_text())
        get_pipeline().process_event(event, ROUTE_EVENTBRIDGE)
        details.append(event["detail"])
    return details


def event_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def synthetic(
    n: int,
    when: datetime,
    *,
    target: str = "prod/app/db",
    event_name: str = "GetSecretValue",
    user: str = "alice",
    findings: Sequence[tuple[str, str]] = (),
    error_code: str | None = None,
) -> AuditItem:
    """An audit item built by the real build_item from a realistic record."""
    overrides: dict[str, Any] = {
        "eventID": event_id(n),
        "eventTime": format_time(when),
        "eventName": event_name,
        "readOnly": event_name.startswith(("Get", "BatchGet", "Describe", "List")),
        "requestParameters": {"secretId": target},
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{user.upper()}",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
            "accountId": ACCOUNT,
            "userName": user,
        },
    }
    if error_code is not None:
        overrides["errorCode"] = error_code
        overrides["errorMessage"] = "refused"
    evaluation = Evaluation(
        findings=tuple(Finding(rule, sev, f"{rule} fired", "runbook") for rule, sev in findings)  # type: ignore[arg-type]
    )
    return build_item(
        normalise(build_raw(**overrides)),
        evaluation,
        None,
        route=ROUTE_EVENTBRIDGE,
        retention_days=30,
        now=when,
    )


def store(server: Server, items: Sequence[AuditItem]) -> None:
    AuditStore(server.client("dynamodb"), server.stack.table_name).write_batch(items)


def newest_first(details: Sequence[dict[str, Any]]) -> list[str]:
    ordered = sorted(details, key=lambda d: (d["eventTime"], d["eventID"]), reverse=True)
    return [d["eventID"] for d in ordered]


ORDERS_EVENTS = (
    "rotation-failed",
    "rotation-disabled",
    "control-rotation-put-pending",
    "control-rotation-succeeded",
    "kms-key-changed",
    "control-get-secret-value",
)


# ---------------------------------------------------------------------------------------------
# Look-ups by each filter


def test_secret_lookup_by_name_or_arn_lists_that_secret_newest_first(cli: Cli) -> None:
    # GIVEN the orders secret's events and others, through the real pipeline
    details = send(*ORDERS_EVENTS, "secret-restored", "resource-policy-public")
    orders = [d for d in details if d["eventID"] in {x["eventID"] for x in details[:6]}]
    # WHEN looking it up by name and by full ARN
    by_name = cli.ids("--secret", ORDERS)
    by_arn = cli.ids("--secret", ORDERS_ARN)
    # THEN exactly its events, newest first, the same either way
    assert by_name == newest_first(orders)
    assert by_arn == by_name
    assert "query" in cli.calls


def test_secret_and_rule_combine(cli: Cli) -> None:
    # GIVEN the orders secret's events (one kms-key-changed, one rotation-disabled finding)
    send(*ORDERS_EVENTS, "secret-value-changed-put")
    # WHEN filtering the secret by rule
    items = cli.json("--secret", ORDERS, "--rule", "kms-key-changed")
    # THEN only the event on which that rule fired
    assert [i["event_name"] for i in items] == ["UpdateSecret"]
    assert cli.ids("--secret", ORDERS, "--rule", "secret-value-changed") == []


def test_secret_and_since_keep_the_window(cli: Cli) -> None:
    # GIVEN the orders events (2026-11-03 .. 2026-11-16)
    send(*ORDERS_EVENTS)
    # WHEN asking from 2026-11-10 on
    items = cli.json("--secret", ORDERS, "--since", "2026-11-10")
    # THEN only the 16 November events
    assert {i["event_time"][:10] for i in items} == {"2026-11-16"}
    assert len(items) == 4


def test_principal_by_arn_and_name_with_severity(cli: Cli, server: Server) -> None:
    # GIVEN bob's and alice's events, some with findings of different severities
    store(
        server,
        [
            synthetic(1, T0, user="bob", findings=[("secret-deleted", "high")]),
            synthetic(2, T0 + timedelta(minutes=1), user="bob", findings=[("x-low", "low")]),
            synthetic(3, T0 + timedelta(minutes=2), user="bob"),
            synthetic(4, T0 + timedelta(minutes=3), user="alice", findings=[("root", "critical")]),
            synthetic(5, T0 + timedelta(minutes=4), user="Bob", findings=[("y", "critical")]),
        ],
    )
    # WHEN looking up bob at medium or higher, by user ARN and by bare name
    by_arn = cli.ids("--principal", f"arn:aws:iam::{ACCOUNT}:user/bob", "--severity", "medium")
    by_name = cli.ids("--principal", "BOB", "--severity", "medium")
    # THEN the ARN disambiguates (user "Bob" is another ARN); the name matches both, lowercased
    assert by_arn == [event_id(1)]
    assert by_name == [event_id(5), event_id(1)]


def test_principal_assumed_role_and_sso_user(cli: Cli) -> None:
    # GIVEN events by an SSO user (carol) and by a role session
    send("rotation-disabled", "kms-key-changed", "secret-restored")
    # WHEN looking up the SSO session ARN, the role ARN, and the role's session ARN
    carol = cli.ids(
        "--principal",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/carol@example.com",
    )
    role = cli.ids("--principal", f"arn:aws:iam::{ACCOUNT}:role/github-actions-terraform")
    session = cli.ids(
        "--principal", f"arn:aws:sts::{ACCOUNT}:assumed-role/github-actions-terraform/GitHubActions"
    )
    # THEN each finds its own event
    assert carol == ["f1e13df1-5174-4940-94ef-2ab6af30f08b"]
    assert role == session == ["8950c3b4-4744-4e49-9986-6bbfb486419f"]


def test_rule_merges_the_three_slots_newest_first_and_until_bounds_it(
    cli: Cli, server: Server
) -> None:
    # GIVEN the rule in slot 0, 1 and 2 of different events
    first = ("root-activity", "critical")
    store(
        server,
        [
            synthetic(1, T0, findings=[("r", "high")]),
            synthetic(2, T0 + timedelta(hours=1), findings=[first, ("r", "low")]),
            synthetic(3, T0 + timedelta(hours=2), findings=[first, ("a", "low"), ("r", "low")]),
            synthetic(4, T0 + timedelta(hours=3), findings=[("r", "high")]),
            synthetic(5, T0 + timedelta(hours=4), findings=[first]),
        ],
    )
    # WHEN looking up the rule, and the rule until 02:30 after T0
    every = cli.ids("--rule", "r")
    until = cli.ids("--rule", "r", "--until", format_time(T0 + timedelta(hours=2, minutes=30)))
    # THEN all of its events merged newest first; the window drops the later one
    assert every == [event_id(4), event_id(3), event_id(2), event_id(1)]
    assert until == [event_id(3), event_id(2), event_id(1)]
    assert set(cli.indexes) == {"by-rule-0", "by-rule-1", "by-rule-2"}


def test_event_name_only_searches_the_last_30_days_by_day_with_a_note(
    cli: Cli, server: Server
) -> None:
    # GIVEN recent events, one DeleteSecret 40 days ago (outside the default window)
    now = datetime.now(UTC).replace(microsecond=0)
    store(
        server,
        [
            synthetic(1, now - timedelta(days=2), event_name="DeleteSecret"),
            synthetic(2, now - timedelta(days=1), event_name="GetSecretValue"),
            synthetic(3, now - timedelta(hours=1), event_name="DeleteSecret"),
            synthetic(4, now - timedelta(days=40), event_name="DeleteSecret"),
        ],
    )
    # WHEN asking by event name only
    status, out, err = cli("--event-name", "DeleteSecret", "--format", "json")
    # THEN the recent ones, newest first, and a one-line note naming the index and a narrower filter
    assert status == 0
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [event_id(3), event_id(1)]
    assert err.count("\n") == 1
    assert "no index on event name; searched the last 30 days day by day" in err
    assert "--secret or --rule" in err


def test_severity_with_a_window_needs_no_note(cli: Cli, server: Server) -> None:
    # GIVEN events of several severities on two days
    store(
        server,
        [
            synthetic(1, T0, findings=[("a", "low")]),
            synthetic(2, T0 + timedelta(days=1), findings=[("b", "high")]),
            synthetic(3, T0 + timedelta(days=1, hours=1), findings=[("c", "critical")]),
        ],
    )
    # WHEN asking for high or higher within a window
    status, out, err = cli(
        "--severity", "high", "--since", "2026-11-01", "--until", "2026-11-02", "--format", "json"
    )
    # THEN the high and the critical one, newest first, and no note
    assert status == 0
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [event_id(3), event_id(2)]
    assert err == ""


# ---------------------------------------------------------------------------------------------
# Pagination, limits, windows, order


def test_limit_250_of_300_items_across_pages(cli: Cli, server: Server) -> None:
    # GIVEN 300 events of one secret, a minute apart
    store(server, [synthetic(n, T0 + timedelta(minutes=n)) for n in range(300)])
    # WHEN asking for 250, with small pages (Limit=7) and with the default page size
    small = cli.ids("--secret", "prod/app/db", "--limit", "250", "--page-size", "7")
    default = cli.ids("--secret", "prod/app/db", "--limit", "250")
    # THEN the newest 250, newest first, across many pages
    assert small == [event_id(n) for n in range(299, 49, -1)]
    assert default == small
    assert cli.calls.count("query") >= 250 // 7 + 1


def test_default_limit_is_50_and_search_pages_with_last_evaluated_key(server: Server) -> None:
    # GIVEN 120 events on one day
    store(server, [synthetic(n, T0 + timedelta(seconds=n), event_name=CHANGE) for n in range(120)])
    client: Any = Recorder(server.client("dynamodb"))
    filters = q.Filters(since=T0, until=T0 + timedelta(hours=1))
    # WHEN searching the day index with pages of 7
    result = q.search(client, server.stack.table_name, filters, page_size=7)
    # THEN 50 records, newest first, found in ceil(50/7) pages and no more, then read whole
    # from the table in one BatchGetItem of the 50 keys
    assert [i["event_id"] for i in result.items] == [event_id(n) for n in range(119, 69, -1)]
    assert client.calls == ["query"] * 8 + ["batch_get_item"]
    assert result.index == "by-day"
    assert result.note is None


def test_day_by_day_stops_when_the_limit_is_reached(server: Server) -> None:
    # GIVEN one event a day for ten days
    store(server, [synthetic(n, T0 + timedelta(days=n), event_name=CHANGE) for n in range(10)])
    client: Any = Recorder(server.client("dynamodb"))
    # WHEN asking for the 3 newest over the ten days
    filters = q.Filters(since=T0, until=T0 + timedelta(days=9, hours=1), limit=3)
    result = q.search(client, server.stack.table_name, filters)
    # THEN three days were queried, not ten, and their three records read whole at once
    assert [i["event_id"] for i in result.items] == [event_id(9), event_id(8), event_id(7)]
    assert client.calls == ["query"] * 3 + ["batch_get_item"]


def test_window_edges_are_inclusive_to_the_second(cli: Cli, server: Server) -> None:
    # GIVEN events one second before, at, inside, at the end of and one second after a window
    since, until = T0, T0 + timedelta(hours=1)
    store(
        server,
        [
            synthetic(1, since - timedelta(seconds=1), event_name=CHANGE),
            synthetic(2, since, event_name=CHANGE),
            synthetic(3, since + timedelta(minutes=30), event_name=CHANGE),
            synthetic(4, until, event_name=CHANGE),
            synthetic(5, until + timedelta(seconds=1), event_name=CHANGE),
        ],
    )
    window = ("--since", format_time(since), "--until", format_time(until))
    # WHEN searching by secret and by day within it
    by_secret = cli.ids("--secret", "prod/app/db", *window)
    by_day = cli.ids(*window)
    # THEN both edges are in, the seconds outside are out
    assert by_secret == by_day == [event_id(4), event_id(3), event_id(2)]


# ---------------------------------------------------------------------------------------------
# Formats


def test_csv_parses_back_to_the_same_rows_as_json(cli: Cli) -> None:
    # GIVEN events with findings, errors and odd characters
    send(*ORDERS_EVENTS, "access-while-pending-deletion")
    # WHEN printing the same look-up as JSON lines and as CSV
    items = cli.json("--since", "2026-11-01", "--until", "2026-11-30")
    status, out, _ = cli("--since", "2026-11-01", "--until", "2026-11-30", "--format", "csv")
    # THEN the CSV parses back with DictReader to the summary rows of the JSON records
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [view.summary_row(item) for item in items]
    # (7 events, less the routine read: it is in the secret and principal indexes, not by day)
    assert len(rows) == 6
    assert list(rows[0]) == list(view.ROW_FIELDS)


def test_table_is_aligned_cut_and_safe(cli: Cli, server: Server) -> None:
    # GIVEN an event whose secret name is very long and holds a control character
    store(
        server,
        [synthetic(1, T0, target="prod/" + "x" * 80 + "\x1b[31m", findings=[("r", "high")])],
    )
    # WHEN printing a table
    status, out, _ = cli("--rule", "r", "--format", "table")
    # THEN a header, one row, the long value cut with …, no raw escape character
    lines = out.splitlines()
    assert status == 0
    assert lines[0].split()[:3] == ["TIME", "EVENT", "NAME"]
    assert "…" in lines[1]
    assert "\x1b" not in out
    assert "2026-11-01 10:00:00Z" in lines[1]
    assert "high" in lines[1]


def test_empty_result_says_so(cli: Cli) -> None:
    # GIVEN an empty table WHEN looking up a secret as a table
    status, out, _ = cli("--secret", "nothing/here", "--format", "table")
    # THEN the header and "(no records)"
    assert status == 0
    assert out.splitlines()[-1] == "(no records)"


# ---------------------------------------------------------------------------------------------
# show


def test_show_prints_the_whole_record_as_json_and_as_sections(cli: Cli) -> None:
    # GIVEN the public-policy event through the pipeline
    (detail,) = send("resource-policy-public")
    # WHEN showing it as JSON and as text
    items = cli.json("show", detail["eventID"])
    status, out, _ = cli("show", detail["eventID"], "--format", "table")
    # THEN one JSON object with findings and enrichment; labelled sections in text
    (item,) = items
    assert item["event_id"] == detail["eventID"]
    assert item["findings"][0]["rule"] == "resource-policy-changed"
    assert "enrichment" in item
    assert status == 0
    assert out.splitlines()[0].startswith("policy changed (public!) by IAM user bob")
    for label in ("findings", "caller", "source", "request", "enrichment", "record"):
        assert label in out.splitlines()
    assert "critical  resource-policy-changed" in out


def test_show_unknown_id_is_one_line_and_exit_1(cli: Cli) -> None:
    # GIVEN an empty table WHEN showing an unknown id
    status, out, err = cli("show", "no-such-id")
    # THEN exit 1 with one line
    assert (status, out) == (1, "")
    assert (
        err
        == f"secretwatch: no audit record with event id no-such-id in {cli.server.stack.table_name}\n"
    )
    assert cli.calls == ["get_item"]


# ---------------------------------------------------------------------------------------------
# timeline


def test_timeline_tells_the_story_oldest_first(cli: Cli) -> None:
    # GIVEN the orders secret's events through the pipeline
    send(*ORDERS_EVENTS)
    # WHEN telling its timeline
    status, out, _ = cli("timeline", ORDERS, "--format", "table")
    # THEN one sentence per event, oldest first, findings with their severity
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"{ORDERS}: 6 event(s), oldest first"
    assert lines[1].startswith("2026-11-03 04:00:31Z  rotation failed: Error when executing lambda")
    assert "[high: rotation-failed]" in lines[1]
    assert lines[2].startswith(
        "2026-11-05 10:48:26Z  rotation turned off by carol@example.com (SSO, permission set AdministratorAccess) from 198.51.100.140"
    )
    assert "new pending value stored (rotation) by role rotate-db-role" in lines[3]
    # (recorded by the audit-only rotation-succeeded, which resolved the open rotation-failed)
    assert lines[4].endswith("rotation succeeded  [info: rotation-succeeded(audit-only)]")
    assert "encryption key changed to" in lines[5]
    assert "[medium: kms-key-changed]" in lines[5]
    assert "value read by role payments-api-task-role" in lines[6]


def test_timeline_marks_refused_calls_and_honours_the_window(cli: Cli, server: Server) -> None:
    # GIVEN a crafted life: created, value changed, refused delete, scheduled deletion, read, restore
    secret = "prod/story"
    store(
        server,
        [
            synthetic(1, T0, target=secret, event_name="CreateSecret"),
            synthetic(2, T0 + timedelta(days=1), target=secret, event_name="PutSecretValue"),
            synthetic(
                3, T0 + timedelta(days=2), target=secret, event_name="DeleteSecret",
                error_code="AccessDeniedException",
            ),
            synthetic(4, T0 + timedelta(days=3), target=secret, event_name="RestoreSecret"),
        ],
    )  # fmt: skip
    # WHEN telling it as JSON lines, then as CSV within a window
    rows = cli.json("timeline", secret)
    status, out, _ = cli(
        "timeline", secret, "--since", "2026-11-02", "--until", "2026-11-03", "--format", "csv"
    )
    # THEN sentences oldest first with the refusal marked; the window keeps the middle two
    assert [r["sentence"] for r in rows] == [
        "created by IAM user alice from 198.51.100.7",
        "value changed by IAM user alice from 198.51.100.7",
        "deletion scheduled (30-day recovery window) by IAM user alice from 198.51.100.7 — refused (AccessDeniedException)",
        "restored (its deletion cancelled) by IAM user alice from 198.51.100.7",
    ]
    assert status == 0
    assert [r["event_id"] for r in csv.DictReader(io.StringIO(out))] == [event_id(2), event_id(3)]


# ---------------------------------------------------------------------------------------------
# Where the table is, and what goes wrong


def test_missing_table_is_one_line_exit_1(cli: Cli) -> None:
    # GIVEN a table name that does not exist WHEN searching
    status, out, err = cli("--secret", "x", "--table", "nope", table=False)
    # THEN exit 1 with the table, the Region and what to check
    assert (status, out) == (1, "")
    assert (
        err
        == f"secretwatch: audit table nope not found in {REGION} (check --table/--stack/--region)\n"
    )


def test_no_table_is_a_usage_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no --table, --stack or SECRETWATCH_TABLE
    monkeypatch.delenv("SECRETWATCH_TABLE", raising=False)
    # WHEN searching through the real entry point
    status = main(["audit", "--secret", "x"])
    # THEN exit 2 and one line
    err = capsys.readouterr().err
    assert status == 2
    assert (
        err
        == "secretwatch: error: no audit table: pass --table, --stack or set SECRETWATCH_TABLE\n"
    )


def test_table_from_the_environment_through_main(
    cli: Cli, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN SECRETWATCH_TABLE and AWS_ENDPOINT_URL (set by the fixture), and one event
    monkeypatch.setenv("SECRETWATCH_TABLE", server.stack.table_name)
    send("secret-restored")
    # WHEN the real command runs without --table or --endpoint-url
    status = main(["audit", "--secret", "prod/orders/stripe-api-key", "--format", "json"])
    # THEN it finds the event
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out)["event_id"] == "0b8cb015-0078-47cb-9070-d1a81a40bd8e"


def test_table_from_a_stack_output(cli: Cli, server: Server) -> None:
    # GIVEN a CloudFormation stack whose AuditTableName output names the table
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"AuditTableName": {"Value": server.stack.table_name}},
    }
    server.client("cloudformation").create_stack(
        StackName="secretwatch", TemplateBody=json.dumps(template)
    )
    send("secret-restored")
    # WHEN searching with --stack
    status, out, _ = cli(
        "--stack",
        "secretwatch",
        "--secret",
        "prod/orders/stripe-api-key",
        "--format",
        "json",
        table=False,
    )
    # THEN the table was found through the stack; a missing stack is one line
    assert status == 0
    assert len(out.splitlines()) == 1
    status, _, err = cli("--stack", "missing", "--secret", "x", table=False)
    assert status == 1
    assert err == f"secretwatch: stack missing not found in {REGION} (check --stack/--region)\n"


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_access_denied_names_the_permissions(cli: Cli, code: str) -> None:
    # GIVEN a client that is refused (moto does not enforce IAM: injected)
    cli.fail_with = code
    # WHEN searching and showing
    status, _, err = cli("--secret", "x")
    status_show, _, err_show = cli("show", "x")
    # THEN exit 1 with one line naming the permissions
    expected = (
        f"secretwatch: access denied ({code}): the caller needs dynamodb:Query/GetItem on the "
        f"table {cli.server.stack.table_name} and its indexes\n"
    )
    assert (status, err) == (status_show, err_show) == (1, expected)


def test_missing_credentials_is_one_line(
    cli: Cli,
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN no credentials anywhere
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        empty = tmp_path / name
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    # WHEN searching through the real entry point
    status = main(["audit", "--table", server.stack.table_name, "--secret", "x"])
    # THEN exit 1 and one line, no traceback
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("secretwatch: no AWS credentials: ")
    assert err.count("\n") == 1


def test_missing_profile_is_one_line(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an empty AWS config
    config = tmp_path / "config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    # WHEN naming a profile that is not there
    status, _, err = cli("--secret", "x", "--profile", "ghost")
    # THEN exit 2 (the user fixes it with an option) and one line
    assert (status, err) == (
        2,
        "secretwatch: error: AWS profile ghost not found: check --profile or AWS_PROFILE "
        "(`aws configure list-profiles` lists them)\n",
    )


def test_unreachable_endpoint_is_one_line(
    capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    # GIVEN an endpoint nobody listens on WHEN searching through the real entry point
    status = main(
        ["audit", "--table", "t", "--secret", "x", "--endpoint-url", "http://127.0.0.1:9"]
    )
    # THEN exit 1 and one line naming it
    err = capsys.readouterr().err
    assert status == 1
    assert err == "secretwatch: cannot reach http://127.0.0.1:9/\n"


def test_bad_time_is_a_usage_error(cli: Cli) -> None:
    # GIVEN a time nobody can read WHEN searching THEN exit 2 before any AWS call
    status, _, err = cli("--since", "yesterday-ish")
    assert status == 2
    assert "cannot read time 'yesterday-ish'" in err
    assert cli.calls == []
