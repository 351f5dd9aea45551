"""The demo's last parts: `secretwatch selftest` against the local stack, and --keep.

The self-test is the command's own code (cli.selftest); only the wait between its polls differs:
here it also does what EventBridge does in an account, delivering what the SelfTestRule
matched to the EventBridge handler.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import selftest
from cli.local_stack import LocalStack

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SELFTEST_RULE = "SelfTestRule"


def show(
    stack: LocalStack,
    *,
    handler: Handler,
    context: Any,
    drain: Callable[[Any, str], list[str]],
    sms_queue: str,
    heading: Callable[[str], None],
) -> bool:
    """Run the self-test through the template's SelfTestRule; True when every hop passed and
    the SMS subscriber got nothing of it."""
    heading("7. Self-test: secretwatch selftest, as against a deployed stack")
    sqs = stack.client("sqs")
    drain(sqs, sms_queue)  # what earlier parts sent is not the self-test's
    (rule,) = [r for r in stack.rules if r.logical_id == SELFTEST_RULE]

    def deliver(seconds: float) -> None:
        for body in drain(sqs, rule.queue_url):
            handler(json.loads(body), context)
        time.sleep(min(seconds, 0.05))

    report = selftest.selftest(
        events=stack.client("events"),
        dynamodb=stack.client("dynamodb"),
        table=stack.table_name,
        region=stack.region,
        stack="secretwatch-local",
        timeout=10,
        wait=deliver,
    )
    selftest.print_report(report, "text")
    to_sms = [
        body
        for body in drain(sqs, sms_queue)
        if json.loads(body).get("MessageAttributes", {}).get("kind", {}).get("Value") == "selftest"
    ]
    print(f"   SMS subscriber received {len(to_sms)} self-test message(s) (filter: kind = alert)")
    return report.passed and not to_sms


def keep_commands(stack: LocalStack, endpoint: str, events_dir: Path) -> list[str]:
    """Exact commands to try against the running local stack, from any shell."""
    credentials = "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
    target = (
        f"--endpoint-url {endpoint} --region {stack.region} --table {shlex.quote(stack.table_name)}"
    )
    trail = shlex.quote(str(events_dir / "eventbridge"))
    return [
        f"{credentials} secretwatch audit --secret prod/rds/orders-primary {target}",
        f"{credentials} secretwatch audit timeline prod/rds/orders-primary {target}",
        f"{credentials} secretwatch audit --severity critical --output json {target}",
        f"{credentials} secretwatch replay {trail} {target}",
    ]


def keep(stack: LocalStack, endpoint: str, events_dir: Path) -> None:
    """Print the commands and keep the server up until Ctrl-C (which ends the demo normally)."""
    print("\nThe local stack keeps running. Try, from another shell:")
    for command in keep_commands(stack, endpoint, events_dir):
        print(f"  {command}")
    print("Ctrl-C stops the moto server.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopped: the moto server is gone, nothing left this machine.")
