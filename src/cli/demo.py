"""``secretwatch demo`` (``make demo``): the whole pipeline on this machine, no AWS account.

1. starts a moto server on 127.0.0.1 and creates the stack's resources from template.yaml;
2. puts every EventBridge payload in events/ on the bus, so the template's own rules decide
   what reaches the EventBridge handler, and sends every CloudWatch Logs payload to the log
   subscription handler (the real handlers, in this process, over HTTP to moto);
3. prints the events and findings, the e-mail and SMS the subscribers get, the JSON for machines,
   a look-up and a timeline through the real `secretwatch audit` command, and proof of
   idempotency (sending everything again adds nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import textwrap
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import UsageError
from cli.local_stack import (
    BUNDLED,
    LocalStack,
    attribute_value,
    create_stack,
    local_account,
    sent_notifications,
    start_moto_server,
)
from cli.main import main as secretwatch
from cli.output import describe, examples, render_table, safe
from shared.observability import quiet_service_telemetry

EVENTS = BUNDLED / "events"  # the repository's events/, also inside an installed wheel


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole pipeline locally against a moto server (no AWS account)",
        description=describe(__doc__ or ""),
        epilog=examples("secretwatch demo", "secretwatch demo --keep"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events", default=str(EVENTS), metavar="DIR", help="payloads to send (default: events/)"
    )
    parser.add_argument("--region", default="eu-west-1", help="the local stack's Region")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the local stack running and print audit and replay commands to try "
        "against it, until Ctrl-C",
    )
    parser.add_argument(
        "--auto-restore",
        choices=("disabled", "dry-run", "enabled"),  # template.yaml AutoRestore AllowedValues
        type=str.lower,
        default=os.environ.get("SECRETWATCH_AUTO_RESTORE", "disabled"),
        help="the stack's AutoRestore parameter (default: $SECRETWATCH_AUTO_RESTORE or disabled)",
    )
    parser.set_defaults(handler=run)


@dataclass
class FakeContext:
    """What the handlers read from the Lambda context (Powertools' inject_lambda_context)."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = "local-demo"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{local_account()}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Delivery:
    route: str
    source: str
    event: dict[str, Any]


def run(args: argparse.Namespace) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # The payloads in events/ were recorded in account 111122223333: the local account matches,
    # so the ARNs in the events point at the demo's secrets.
    events_dir = Path(args.events)
    _check_events(events_dir)  # before the server starts: a wrong folder is a usage error
    os.environ.setdefault("MOTO_ACCOUNT_ID", "111122223333")
    server, endpoint = start_moto_server()
    try:
        with quiet_service_telemetry():
            return _demo(
                endpoint,
                events_dir,
                args.region,
                keep=args.keep,
                parameters={"AutoRestore": getattr(args, "auto_restore", "disabled")},
            )
    finally:
        server.stop()


def _check_events(events_dir: Path) -> None:
    if not events_dir.is_dir():
        raise UsageError(f"--events {events_dir}: no such folder")
    if not any(events_dir.glob("eventbridge/*.json")) and not any(
        events_dir.glob("cloudwatch-logs/*.json")
    ):
        raise UsageError(
            f"--events {events_dir}: no payloads (expected eventbridge/*.json or "
            "cloudwatch-logs/*.json, as in the repository's events/)"
        )


def _demo(
    endpoint: str,
    events_dir: Path,
    region: str,
    *,
    keep: bool = False,
    parameters: dict[str, str] | None = None,
) -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    stack = create_stack(endpoint, region=region, parameters=parameters)
    _configure_environment(stack, endpoint)
    from handlers import eventbridge, log_subscription  # noqa: PLC0415 — after the environment is set

    _seed_secrets(stack, events_dir)
    sms_queue = _subscribe(stack, "sms-subscriber", _sms_filter(stack))
    json_queue = _subscribe(stack, "json-subscriber", None)

    _heading("1. The stack, created from template.yaml on a local moto server")
    print(f"   moto server        {endpoint}")
    print(
        f"   audit table        {stack.table_name}  (hash key event_id; indexes {', '.join(_indexes(stack))})"
    )
    print(
        f"   state table        {stack.state_table_name}  (dedup windows, threshold counts, "
        "open alerts; TTL)"
    )
    print(f"   alert topic        {stack.topic_arn}  (KMS-encrypted)")
    print(f"   SMS subscriber     filter {json.dumps(_sms_filter(stack))}")
    for rule in stack.rules:
        print(f"   EventBridge rule   {rule.logical_id:<18} state {rule.state}")

    handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
        "eventbridge": eventbridge.lambda_handler,
        "cloudwatch-logs": log_subscription.lambda_handler,
    }
    deliveries, filtered = _deliveries(stack, events_dir)
    rows = _send(deliveries, handlers)

    _heading(f"2. Events: {len(deliveries)} deliveries through the real handlers")
    render_table(
        ["ROUTE", "PAYLOAD", "EVENT", "SECRET", "WHO", "FINDINGS"],
        rows,
        max_widths=[11, 44, 28, 34, 32, 70],
        keep_end=(1, 4),
    )
    print(
        f"\n   EventBridge: {len(filtered)} payloads matched no rule and were never delivered "
        "(routine successful reads cost nothing):"
    )
    for name in filtered:
        print(f"     - {name}")

    alerts = sent_notifications(stack)
    kinds = Counter(_kind(attributes) for *_, attributes in alerts)
    _heading(
        f"3. Alerts: {kinds['alert']} published (one SNS message per event and rule), and "
        f"{kinds['resolved']} resolution (RotationSucceeded closed the RotationFailed alert)"
    )
    _show_alerts(alerts, stack, sms_queue, json_queue)

    secret_name = "prod/rds/orders-primary"  # noqa: S105 — a secret's name, not a password
    connection = ["--table", stack.table_name, "--region", stack.region, "--endpoint-url", endpoint]
    _heading(f"4. Audit look-up: secretwatch audit --secret {secret_name} --format table")
    _run_cli(["audit", "--secret", secret_name, "--format", "table", *connection])
    _heading(f"   and its life story: secretwatch audit timeline {secret_name}")
    _run_cli(["audit", "timeline", secret_name, "--format", "table", *connection])

    _heading("5. Idempotency: every payload sent again, by both routes")
    items_before, alerts_before = _count_items(stack), len(alerts)
    again, _ = _deliveries(stack, events_dir)
    _send(again, handlers)
    items_after, alerts_after = _count_items(stack), len(sent_notifications(stack))
    print(f"   audit items  {items_before} → {items_after}")
    print(f"   alerts       {alerts_before} → {alerts_after}")
    same = items_before == items_after and alerts_before == alerts_after
    print(
        "   "
        + ("nothing new: no second audit record, no second alert" if same else "DUPLICATES WRITTEN")
    )
    from cli import demo_tuning  # noqa: PLC0415

    demo_tuning.show(
        stack,
        events_dir,
        handler=eventbridge.lambda_handler,
        context=FakeContext("secretwatch-eventbridge"),
        run=_run_cli,
        heading=_heading,
    )
    from cli import demo_selftest  # noqa: PLC0415

    proven = demo_selftest.show(
        stack,
        handler=eventbridge.lambda_handler,
        context=FakeContext("secretwatch-eventbridge"),
        drain=_drain,
        sms_queue=sms_queue,
        heading=_heading,
    )
    from cli import demo_state  # noqa: PLC0415

    demo_state.show(
        stack,
        events_dir,
        eventbridge=eventbridge.lambda_handler,
        logs=log_subscription.lambda_handler,
        context=FakeContext("secretwatch-eventbridge"),
        heading=_heading,
    )
    if keep:
        demo_selftest.keep(stack, endpoint, events_dir)
    else:
        print("\nDone. Nothing left this machine; the moto server stops now.")
    return 0 if same and proven else 1


def _heading(text: str) -> None:
    print(f"\n{text}\n{'─' * len(text)}")


def _configure_environment(stack: LocalStack, endpoint: str) -> None:
    os.environ.update(stack.environment)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": stack.region,
            "AWS_REGION": stack.region,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )


def _seed_secrets(stack: LocalStack, events_dir: Path) -> None:
    """Create the secrets the events name (metadata and tags only), so enrichment has answers.

    The forcibly deleted secret is left out on purpose: the demo shows enrichment degrading.
    """
    from shared.envelopes import read_bytes  # noqa: PLC0415

    client = stack.client("secretsmanager")
    seen: set[str] = set()
    for path in sorted((events_dir / "eventbridge").glob("*.json")):
        for item in read_bytes(path.read_bytes()):
            record = item.record
            if record is None or record.secret is None or record.secret.name in seen:
                continue
            seen.add(record.secret.name)
            if record.request.force_delete_without_recovery:
                continue
            team = record.secret.name.split("/")[1] if "/" in record.secret.name else "platform"
            client.create_secret(
                Name=record.secret.name,
                Description=f"{team} credentials (demo)",
                Tags=[
                    {"Key": "owner", "Value": f"team-{team}"},
                    {"Key": "env", "Value": record.secret.name.split("/")[0]},
                ],
            )
            if record.secret.arn:
                _pin_arn(stack, record.secret.name, record.secret.arn)


def _pin_arn(stack: LocalStack, name: str, arn: str) -> None:
    """Give the demo secret the ARN the recorded events carry (moto draws a random suffix).

    This reaches into moto's in-process backend: the demo plays the account the events came
    from; the service itself only ever calls DescribeSecret with the ARN from the event.
    """
    from moto.secretsmanager.models import secretsmanager_backends  # noqa: PLC0415

    secret = secretsmanager_backends[local_account()][stack.region].secrets.get(name)
    if secret is not None:
        secret.arn = arn


def _indexes(stack: LocalStack) -> list[str]:
    table = stack.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    return [index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])]


def _sms_filter(stack: LocalStack) -> dict[str, Any]:
    resources = stack.template["Resources"]
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::SNS::Subscription" and props.get("Protocol") == "sms":
            from cli.local_stack import Resolver  # noqa: PLC0415

            policy = Resolver(stack.template, {}, stack.region).resolve(
                props.get("FilterPolicy", {})
            )
            return dict(policy) if isinstance(policy, dict) else {}
    return {}


def _subscribe(stack: LocalStack, name: str, filter_policy: dict[str, Any] | None) -> str:
    sqs, sns = stack.client("sqs"), stack.client("sns")
    url: str = sqs.create_queue(QueueName=f"secretwatch-local-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    sns.subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def _deliveries(stack: LocalStack, events_dir: Path) -> tuple[list[Delivery], list[str]]:
    """EventBridge payloads go through the bus and the template's rules; CWL payloads go direct."""
    events, sqs = stack.client("events"), stack.client("sqs")
    deliveries: list[Delivery] = []
    filtered: list[str] = []
    for path in sorted((events_dir / "eventbridge").glob("*.json")):
        event = json.loads(path.read_text())
        events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event.get("resources", []),
                }
            ]
        )
        delivered = False
        for rule in stack.rules:
            for message in _drain(sqs, rule.queue_url):
                routed = json.loads(message)
                # A plain ENABLED rule never receives read-only management events (EventBridge);
                # moto does not know that, so the local router applies it.
                if rule.state == "ENABLED" and routed.get("detail", {}).get("readOnly") is True:
                    continue
                deliveries.append(Delivery("eventbridge", path.name, routed))
                delivered = True
        if not delivered:
            filtered.append(path.name)
    for path in sorted((events_dir / "cloudwatch-logs").glob("*.json")):
        deliveries.append(Delivery("cloudwatch-logs", path.name, json.loads(path.read_text())))
    return deliveries, filtered


def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _send(
    deliveries: list[Delivery], handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]]
) -> list[list[str]]:
    """Each delivery through its route's real handler; one row per record it decided."""
    rows = []
    for delivery in deliveries:
        result = handlers[delivery.route](
            delivery.event, FakeContext(f"secretwatch-{delivery.route}")
        )
        for decision in result["decisions"]:
            if decision["outcome"] == "skipped":
                continue
            findings = decision["findings"]
            rows.append(
                [
                    delivery.route,
                    delivery.source,
                    decision["event_name"] or "-",
                    decision["secret"] or "-",
                    _who(decision["caller"], decision["caller_type"]),
                    ", ".join(f"{f['rule']} ({f['severity']})" for f in findings) or "-",
                ]
            )
    return rows


def _who(name: str | None, kind: str | None) -> str:
    return f"{name or 'unknown'}" + (f" [{kind}]" if kind else "")


def _kind(attributes: dict[str, Any]) -> str:
    """A published message's ``kind`` attribute (an alert when it has none)."""
    return attribute_value(attributes, "kind") or "alert"


def _show_alerts(
    alerts: list[tuple[str, str, str | None, dict[str, Any]]],
    stack: LocalStack,
    sms_queue: str,
    json_queue: str,
) -> None:
    if not alerts:
        print("   (none)")
        return
    structured = [(subject, json.loads(message)) for _, message, subject, _ in alerts]
    critical = next(
        (
            s
            for s in structured
            if '"critical"' in s[1].get("sqs", "") and "unavailable" not in s[1]["email"]
        ),
        structured[0],
    )
    print("   The e-mail subscriber receives (a critical alert, enriched):\n")
    print(textwrap.indent(f"Subject: {critical[0]}\n\n{critical[1]['email']}", "   │ "))
    sqs = stack.client("sqs")
    sms_bodies = _drain(sqs, sms_queue)
    print(
        f"\n   The SMS subscriber (filter policy from the template) receives {len(sms_bodies)} of {len(alerts)}, one segment each:"
    )
    for _, message in structured:
        machine = json.loads(message["sqs"])
        if machine.get("severity") in {"high", "critical"}:
            print(f"   │ {safe(message['sms'])}  ({len(message['sms'])} chars)")
    json_bodies = _drain(sqs, json_queue)
    print(
        f"\n   The JSON subscriber (an SQS queue) receives all {len(json_bodies)}; the first, abbreviated:"
    )
    first = json.loads(json.loads(json_bodies[0])["Message"]) if json_bodies else {}
    summary = {
        k: first[k]
        for k in ("schema_version", "rule", "severity", "event", "secret", "caller")
        if k in first
    }
    print(textwrap.indent(json.dumps(summary, indent=2)[:1500], "   │ "))


def _run_cli(argv: list[str]) -> None:
    """Run a real `secretwatch` command in this process, as a user would type it."""
    print("   $ secretwatch " + " ".join(shlex.quote(a) for a in argv))
    status = secretwatch(argv)
    if status != 0:
        print(f"   (exit status {status})")


def _count_items(stack: LocalStack) -> int:
    # A scan is fine here: it counts a demo table of a few dozen items, not a look-up.
    return int(stack.client("dynamodb").scan(TableName=stack.table_name, Select="COUNT")["Count"])
