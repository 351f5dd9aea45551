"""One event, two stacks: the multi-Region trail's logs route must not record it a second time.

Region A holds the multi-Region trail and its log group, so A's log subscription receives every
Region's records; Region B's stack receives B's events from EventBridge. With
``LogsRouteRegions=this-region`` (the default) the subscription filter matches ``$.awsRegion`` and
the function skips another Region's record as well; ``all-regions`` is the old behaviour, kept for
a single stack that is meant to take every Region.

moto does not evaluate CloudWatch Logs JSON filter patterns (its ``FilterPattern`` parser marks
them unsupported), so the pattern is checked here with a small evaluator of the one form the
template uses, ``{ ($.a = "x") && ($.b = "y") }``; the function-side skip is what runs against moto.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from scripts.make_events import subscription_event

from cli.local_stack import LocalStack, Resolver, create_stack, load_template
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.pipeline import ROUTE_EVENTBRIDGE, ROUTE_LOGS, Pipeline
from shared.rules import load_rules
from shared.settings import Settings

EVENTS = Path(__file__).resolve().parents[2] / "events"
TRAIL_REGION, OTHER_REGION = "us-east-1", "eu-west-2"


def _pipeline(stack: LocalStack) -> Pipeline:
    settings = Settings.from_env({**stack.environment, "AWS_REGION": stack.region})
    return Pipeline(
        ruleset=load_rules(),
        enricher=Enricher(stack.client("secretsmanager"), stack.client("iam"), None),
        store=AuditStore(stack.client("dynamodb"), stack.table_name, sleep=lambda _: None),
        notifier=Notifier(stack.client("sns"), stack.topic_arn),
        retention_days=30,
        logs_region=settings.logs_region,
    )


def _inbox(stack: LocalStack) -> str:
    sqs = stack.client("sqs")
    url: str = sqs.create_queue(QueueName=f"inbox-{stack.region}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.client("sns").subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _count(stack: LocalStack, inbox: str) -> tuple[int, int]:
    items = stack.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    messages = stack.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)
    return len(items), len(messages.get("Messages", []))


def _event_in(region: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (EVENTS / "eventbridge" / "deletion-forced-no-recovery.json").read_text()
    )
    event["region"] = region
    event["detail"]["awsRegion"] = region
    return event


@pytest.fixture
def regions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        yield


@pytest.mark.parametrize(
    ("setting", "records", "alerts"),
    [("this-region", (0, 1), (0, 1)), ("all-regions", (1, 1), (1, 1))],
)
def test_one_event_by_both_routes_is_recorded_and_alerted_once(
    regions: None, setting: str, records: tuple[int, int], alerts: tuple[int, int]
) -> None:
    # GIVEN a stack in the trail's Region (logs route) and one in another Region (EventBridge)
    parameters = {"LogsRouteRegions": setting}
    trail_stack = create_stack(None, region=TRAIL_REGION, parameters=parameters)
    other_stack = create_stack(None, region=OTHER_REGION, parameters=parameters)
    trail_inbox, other_inbox = _inbox(trail_stack), _inbox(other_stack)
    event = _event_in(OTHER_REGION)

    # WHEN one forced deletion in the other Region reaches both: its own EventBridge rule, and
    # the trail Region's log group through the multi-Region trail
    other = _pipeline(other_stack).process_event(event, ROUTE_EVENTBRIDGE)
    trail = _pipeline(trail_stack).process_event(
        subscription_event([json.dumps(event["detail"])]), ROUTE_LOGS
    )

    # THEN with this-region it is one audit record and one alert, in its own Region; the trail
    # Region's copy is a skip. all-regions shows the double alert the default prevents.
    trail_counts, other_counts = _count(trail_stack, trail_inbox), _count(other_stack, other_inbox)
    assert (trail_counts[0], other_counts[0]) == records
    assert (trail_counts[1], other_counts[1]) == alerts
    assert other.alerts_published == 1
    assert trail.skipped == (1 if setting == "this-region" else 0)


def test_the_trail_regions_own_records_and_records_without_region_are_kept(regions: None) -> None:
    # GIVEN the trail Region's stack with the default setting
    stack = create_stack(None, region=TRAIL_REGION)
    own = _event_in(TRAIL_REGION)["detail"]
    unplaced = copy.deepcopy(own)
    unplaced["eventID"] = "11111111-2222-3333-4444-555555555555"
    del unplaced["awsRegion"]
    foreign = copy.deepcopy(own)
    foreign["eventID"] = "66666666-7777-8888-9999-000000000000"
    foreign["awsRegion"] = "ap-south-1\n<b>"  # attacker-shaped text stays bounded and escaped

    # WHEN its log group delivers one record of its own Region, one without Region, one foreign
    summary = _pipeline(stack).process_event(
        subscription_event([json.dumps(r) for r in (own, unplaced, foreign)]), ROUTE_LOGS
    )

    # THEN the first two are recorded, the foreign one skipped with the reason, escaped
    assert (summary.written, summary.skipped) == (2, 1)
    (skip,) = [d for d in summary.decisions if d.outcome == "skipped"]
    assert skip.skipped is not None
    assert skip.skipped.startswith("a record of ap-south-1\\n<b>: the stack in that Region")


def test_the_eventbridge_route_is_never_filtered_by_region(regions: None) -> None:
    # GIVEN a central stack receives a member's event of another Region on its bus
    stack = create_stack(None, region=TRAIL_REGION)
    event = _event_in(OTHER_REGION)
    # WHEN it arrives by EventBridge, THEN it is recorded (only the logs route is scoped)
    assert _pipeline(stack).process_event(event, ROUTE_EVENTBRIDGE).written == 1


# --- the subscription filter pattern ----------------------------------------------------------

_CLAUSE = re.compile(r'\(\$\.(\w+) = "([^"]*)"\)')


def _matches(pattern: str, record: Mapping[str, Any]) -> bool:
    """CloudWatch Logs' JSON pattern, for the conjunction of equalities the template writes."""
    body = pattern.strip()
    assert body.startswith("{"), pattern
    assert body.endswith("}"), pattern
    body = body[1:-1].strip()
    if not body.startswith("("):
        body = f"({body})"
    clauses = [c.strip() for c in body.split("&&")]
    parsed = [_CLAUSE.fullmatch(c) for c in clauses]
    assert all(parsed), f"outside the evaluated subset: {pattern}"
    return all(record.get(m.group(1)) == m.group(2) for m in parsed if m)


@pytest.mark.parametrize(
    ("setting", "own", "foreign"), [("this-region", True, False), ("all-regions", True, True)]
)
@pytest.mark.parametrize(
    "filter_name", ["TrailLogGroupSubscriptionFilter", "ExistingLogGroupSubscriptionFilter"]
)
def test_subscription_filter_pattern_matches_its_region(
    filter_name: str, setting: str, own: bool, foreign: bool
) -> None:
    # GIVEN the template's filter pattern as CloudFormation renders it in the trail Region
    template = load_template()
    resolver = Resolver(template, {}, TRAIL_REGION)
    resolver.parameters["LogsRouteRegions"] = setting
    pattern = resolver.resolve(template["Resources"][filter_name]["Properties"]["FilterPattern"])
    record = {"eventSource": "secretsmanager.amazonaws.com", "awsRegion": TRAIL_REGION}
    # WHEN / THEN it admits this Region's Secrets Manager records, others only with all-regions,
    # and never another service's records
    assert _matches(pattern, record) is own
    assert _matches(pattern, {**record, "awsRegion": OTHER_REGION}) is foreign
    assert _matches(pattern, {**record, "eventSource": "kms.amazonaws.com"}) is False


def test_the_local_resolver_builds_names_from_the_stack_id() -> None:
    # GIVEN the template's names built from the stack id (Select/Split on AWS::StackId)
    template = load_template()
    resolver = Resolver(template, {}, TRAIL_REGION)
    resources = template["Resources"]
    # WHEN the local mode resolves them, THEN they are the names CloudFormation would give
    rule = resolver.resolve(resources["CentralWriteCallsRule"]["Properties"]["Name"])
    function = resolver.resolve(resources["EventBridgeFunction"]["Properties"]["FunctionName"])
    assert re.fullmatch(r"secretwatch-[0-9a-f]{8}-central-writes", rule)
    assert function == rule.replace("central-writes", "eventbridge")
