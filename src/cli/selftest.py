"""secretwatch selftest --stack NAME: prove a deployed stack works, end to end.

Puts one synthetic Secrets Manager-shaped event (source secretwatch.selftest) on the default
event bus; the stack's SelfTestRule sends it to the EventBridge function, which records it in
the audit table and publishes one info alert with the message attribute kind=selftest (e-mail
subscribers get it, the SMS subscription never does). Each hop is reported with its latency, or
the hop that failed and what to check.

Permissions needed: cloudformation:DescribeStacks on the stack, events:PutEvents on the default
bus, dynamodb:GetItem on the audit table.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cli import aws
from cli.output import describe, examples, output_option, safe
from shared.audit.items import SENT, event_key
from shared.errors import SecretwatchError
from shared.selftest import (
    SECRETSMANAGER_SOURCE,
    SELFTEST_DETAIL_TYPE,
    SELFTEST_EVENT_NAME,
    SELFTEST_RULE_ID,
    SELFTEST_SOURCE,
)
from shared.text import dumps

DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 1.0
SELFTEST_SECRET = "secretwatch/selftest"  # noqa: S105 — a name that never exists, not a password

Wait = Callable[[float], None]


class SelftestFailed(SecretwatchError):
    """A hop failed: exit status 1 (the report says which and what to check)."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "selftest",
        parents=[aws.options()],
        help="prove a deployment end to end: event in, audit record, alert published",
        description=describe(__doc__ or ""),
        epilog=examples(
            "secretwatch selftest --stack secretwatch",
            "secretwatch selftest --stack secretwatch --region eu-west-1 --output json",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for each hop (default {DEFAULT_TIMEOUT:.0f})",
    )
    output_option(parser, ("text", "json"), default="text", help_text="a report or one JSON object")
    parser.set_defaults(handler=run)


@dataclass
class Hop:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    stack: str
    region: str
    event_id: str
    hops: list[Hop] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.hops) and all(h.ok for h in self.hops)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "event_id": self.event_id,
            "passed": self.passed,
            "hops": [
                {"hop": h.name, "ok": h.ok, "seconds": round(h.seconds, 3), "detail": h.detail}
                for h in self.hops
            ],
        }


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "stack", None) and not getattr(args, "table", None):
        from cli.errors import UsageError  # noqa: PLC0415

        raise UsageError("selftest needs --stack NAME (or --table NAME for the audit table)")
    layer = aws.Aws.from_args(args)
    with aws.aws_errors():
        started = time.monotonic()
        table = aws.require_table(args, layer)
        stack_hop = Hop("stack outputs read", True, time.monotonic() - started, f"table {table}")
        report = selftest(
            events=layer.client("events"),
            dynamodb=layer.client("dynamodb"),
            table=table,
            region=layer.region,
            stack=str(getattr(args, "stack", None) or "-"),
            timeout=args.timeout,
        )
    report.hops.insert(0, stack_hop)
    print_report(report, args.format)
    return 0 if report.passed else 1


def synthetic_event(event_id: str, region: str, now: datetime) -> dict[str, Any]:
    """The CloudTrail-shaped record of a self-test (shared.selftest accepts this shape only)."""
    return {
        "eventVersion": "1.11",
        "userIdentity": {"type": "Unknown", "userName": "secretwatch-selftest"},
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": SECRETSMANAGER_SOURCE,
        "eventName": SELFTEST_EVENT_NAME,
        "awsRegion": region,
        "sourceIPAddress": "secretwatch selftest",
        "userAgent": "secretwatch selftest",
        "requestParameters": {"secretId": SELFTEST_SECRET},
        "responseElements": None,
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "eventCategory": "Management",
    }


def selftest(
    *,
    events: Any,
    dynamodb: Any,
    table: str,
    region: str,
    stack: str,
    timeout: float = DEFAULT_TIMEOUT,
    wait: Wait = time.sleep,
) -> Report:
    """Put the event, then watch its audit item appear and its alert turn ``sent``.

    ``wait`` is called between polls (the local stack passes one that also delivers the queued
    event to the handler, as EventBridge would).
    """
    event_id = str(uuid.uuid4())
    report = Report(stack, region, event_id)
    record = synthetic_event(event_id, region, datetime.now(UTC))
    started = time.monotonic()
    answer = events.put_events(
        Entries=[
            {
                "Source": SELFTEST_SOURCE,
                "DetailType": SELFTEST_DETAIL_TYPE,
                "Detail": json.dumps(record),
                "Resources": [],
            }
        ]
    )
    entry = (answer.get("Entries") or [{}])[0]
    if answer.get("FailedEntryCount") or entry.get("ErrorCode"):
        report.hops.append(
            Hop(
                "event put on the default bus",
                False,
                time.monotonic() - started,
                f"PutEvents refused it: {safe(entry.get('ErrorCode'))} "
                f"{safe(entry.get('ErrorMessage'))}; check events:PutEvents on the default bus",
            )
        )
        return report
    put_at = time.monotonic()
    report.hops.append(Hop("event put on the default bus", True, put_at - started))

    item = _poll(lambda: _get(dynamodb, table, event_id), timeout, wait)
    if item is None:
        report.hops.append(
            Hop(
                "audit record written",
                False,
                time.monotonic() - put_at,
                f"no record after {timeout:.0f} s: check that the stack has its SelfTestRule "
                "(ENABLED; `sam deploy` this version), the EventBridge function's errors and "
                "logs (/aws/lambda/<the stack output EventBridgeFunctionName>), and the "
                "EventsDeadLetterQueue",
            )
        )
        return report
    recorded_at = time.monotonic()
    report.hops.append(
        Hop("audit record written", True, recorded_at - put_at, f"table {table}, event {event_id}")
    )

    def alert_state() -> str | None:
        current = _get(dynamodb, table, event_id) or {}
        state = (current.get("alerts") or {}).get(SELFTEST_RULE_ID, {}).get("state")
        return str(state) if state == SENT else None

    sent = _poll(alert_state, timeout, wait) if _state(item) != SENT else SENT
    if sent is None:
        report.hops.append(
            Hop(
                "alert published",
                False,
                time.monotonic() - recorded_at,
                f"the alert is {_state(item) or 'not claimed'} after {timeout:.0f} s: check the "
                "function's sns:Publish and KMS grants (AlertPublishPolicy) and its logs",
            )
        )
        return report
    report.hops.append(
        Hop(
            "alert published",
            True,
            time.monotonic() - recorded_at,
            "kind=selftest: e-mail subscribers get it, SMS never",
        )
    )
    return report


def _state(item: dict[str, Any]) -> str | None:
    state = (item.get("alerts") or {}).get(SELFTEST_RULE_ID, {}).get("state")
    return str(state) if state else None


def _get(dynamodb: Any, table: str, event_id: str) -> dict[str, Any] | None:
    from shared.audit.codec import from_item  # noqa: PLC0415 — boto3 types only when run

    answer = dynamodb.get_item(
        TableName=table, Key={"event_id": {"S": event_key(event_id)}}, ConsistentRead=True
    )
    item = answer.get("Item")
    return dict(from_item(item)) if item else None


def _poll[T](probe: Callable[[], T | None], timeout: float, wait: Wait) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            return None
        wait(POLL_SECONDS)


def print_report(report: Report, fmt: str) -> None:
    if fmt == "json":
        print(dumps(report.to_json()))
        return
    print(
        f"selftest of stack {safe(report.stack)} in {safe(report.region)} (event {report.event_id})"
    )
    for hop in report.hops:
        mark = "ok  " if hop.ok else "FAIL"
        detail = f"  {safe(hop.detail)}" if hop.detail else ""
        print(f"  {mark} {hop.name:<30} {hop.seconds:6.2f} s{detail}")
    total = sum(h.seconds for h in report.hops)
    print(("passed" if report.passed else "FAILED") + f" in {total:.2f} s")
