"""The demo's tuning section: a rule document pushed to the running local stack, then rolled back.

It goes through the real commands (``rules push``, ``rules history``, ``rules rollback``,
``audit show``) and the real EventBridge handler; the functions read the document from the
stack's parameter as a deployed stack does (a fresh container stands in for "within a minute").
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.local_stack import LocalStack, attribute_value, sent_notifications

TUNING = """\
# A team's tuning: the defaults, one rule of its own, and one accepted case.
version: 1
extends: default
rules:
  - id: ledger-secret-created
    description: A secret was created under prod/ledger/ - the ledger team reviews every one.
    runbook: Ask the ledger team whether they expected it.
    severity: medium
    events: [CreateSecret]
    when: {key: secret.name, op: prefix, value: prod/ledger/}
exceptions:
  - id: ci-cleanup
    rules: [secret-deleted]
    when: {key: caller.name, op: glob, value: "ci-*"}
    reason: the CI pipeline deletes its own test secrets
    expires: 2099-06-30
"""
CI_CALLER = {
    "type": "IAMUser",
    "principalId": "AIDACIRUNNER0EXAMPLE",
    "arn": "arn:aws:iam::111122223333:user/ci-runner",
    "accountId": "111122223333",
    "userName": "ci-runner",
}

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Run = Callable[[list[str]], None]


def show(
    stack: LocalStack,
    events_dir: Path,
    *,
    handler: Handler,
    context: Any,
    run: Run,
    heading: Callable[[str], None],
) -> None:
    from shared.runtime import get_pipeline  # noqa: PLC0415 — after the environment is set

    target = [
        "--parameter",
        str(stack.rules_parameter),
        "--region",
        stack.region,
        "--endpoint-url",
        str(stack.endpoint_url),
    ]
    heading("6. Tuning the running stack: secretwatch rules push")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tuning.yaml"
        path.write_text(TUNING)
        print("   tuning.yaml:")
        for line in TUNING.splitlines():
            print(f"   │ {line}")
        with contextlib.chdir(folder):  # the command as a user types it, next to the file
            run(["rules", "push", "tuning.yaml", *target])

    created = _fresh(events_dir / "eventbridge" / "control-create-secret.json")
    by_ci = _fresh(events_dir / "eventbridge" / "secret-deleted.json", userIdentity=CI_CALLER)
    get_pipeline.cache_clear()  # a new container: the functions read the document anew
    before = _published(stack)
    for payload in (created, by_ci):
        handler(payload, context)
    sent = _published(stack)[len(before) :]
    print("\n   Sent through the EventBridge function: a CreateSecret under prod/ledger/ and a")
    print("   DeleteSecret by ci-runner. Alerts published:")
    for rule in sent:
        print(f"   │ {rule}")
    print("   The deletion by CI was recorded, not alerted:")
    run(
        [
            "audit",
            "show",
            by_ci["detail"]["eventID"],
            "--format",
            "table",
            "--table",
            stack.table_name,
            "--region",
            stack.region,
            "--endpoint-url",
            str(stack.endpoint_url),
        ]
    )
    heading("   and undone: secretwatch rules history, then rules rollback --to 1")
    run(["rules", "history", *target])
    run(["rules", "rollback", "--to", "1", *target])


def _fresh(path: Path, **detail: Any) -> dict[str, Any]:
    """A recorded payload as a new event (its own ids), with some detail changed."""
    payload: dict[str, Any] = copy.deepcopy(json.loads(path.read_text()))
    payload["id"] = str(uuid.uuid4())
    payload["detail"]["eventID"] = str(uuid.uuid4())
    payload["detail"].update(detail)
    return payload


def _published(stack: LocalStack) -> list[str]:
    """The rule of every message published to the topic, in order (moto's record of them)."""
    return [attribute_value(attrs, "rule") or "?" for *_, attrs in sent_notifications(stack)]
