"""The demo's "quiet but never blind" section: the rule state of a running stack.

Through the real handlers and the stack's state table: a storm of 30 identical failures becomes
one alert and, when its window has closed, one digest (sent by the digest function's code, its
clock moved an hour on as the schedule would find it); a burst of denials crosses a threshold; a
deletion names the secret's recent readers; its restore resolves the deletion alert.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.local_stack import LocalStack, attribute_value, local_account, sent_notifications

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
APP_ROLE = "checkout-api-task-role"
WORKER_ROLE = "orders-worker-role"
STORM_SECRET = "prod/orders/legacy-db"  # noqa: S105 — a secret's name, not a password
SCRAPER_ROLE = "ci-build-runner"


def show(
    stack: LocalStack,
    events_dir: Path,
    *,
    eventbridge: Handler,
    logs: Handler,
    context: Any,
    heading: Callable[[str], None],
) -> None:
    from shared.runtime import get_pipeline  # noqa: PLC0415 — after the environment is set

    get_pipeline.cache_clear()  # a fresh container: the rule document in force now
    now = datetime.now(UTC).replace(microsecond=0)
    heading("8. Quiet but never blind: dedup, digests, thresholds, resolutions")

    # A storm: one application reads a secret pending deletion 30 times.
    base = _load(events_dir / "eventbridge" / "access-while-pending-deletion.json")
    worker = _role(base["detail"]["userIdentity"], WORKER_ROLE)
    before = len(_published(stack))
    for n in range(30):
        eventbridge(
            _fresh(
                base,
                eventTime=_at(now - timedelta(seconds=60 - n)),
                userIdentity=worker,
                requestParameters={"secretId": STORM_SECRET},
            ),
            context,
        )
    storm = _published(stack)[before:]
    print(f"   30 reads of {STORM_SECRET} (pending deletion) by {WORKER_ROLE}, in 30 seconds:")
    print(f"   │ {len(storm)} alert published ({_kinds(storm)}); the 29 repeats are folded into it")
    first = {json.loads(json.loads(m["message"])["sqs"]).get("alert_id") for m in storm}
    for message in _run_digests(stack, now + timedelta(hours=1, minutes=1)):
        machine = json.loads(json.loads(message["message"])["sqs"])
        if machine.get("digest_of") not in first:
            continue  # the windows the earlier sections opened close too
        print("   An hour later the digest function sends the window's digest:")
        print(f"   │ Subject: {message['subject']}")
        print(
            f"   │ {machine['count']} repeats of alert {machine['digest_of']}, "
            f"{machine['first_at']} to {machine['last_at']}, principals: "
            f"{', '.join(machine['principals'])}"
        )

    # A burst: six denied reads by one role in three minutes, by the CloudWatch Logs route.
    denied = _load(events_dir / "eventbridge" / "control-get-secret-value.json")["detail"]
    denials = [
        _record(
            denied,
            eventTime=_at(now - timedelta(minutes=3) + timedelta(seconds=30 * n)),
            errorCode="AccessDenied",
            errorMessage="User is not authorized to perform: secretsmanager:GetSecretValue",
            userIdentity=_role(denied["userIdentity"], SCRAPER_ROLE),
            requestParameters={"secretId": f"prod/payments/key-{n}"},
        )
        for n in range(6)
    ]
    before = len(_published(stack))
    logs(_subscription(denials), context)
    burst = _published(stack)[before:]
    print("\n   Six denied GetSecretValue calls by one role within three minutes:")
    for message in burst:
        machine = json.loads(json.loads(message["message"])["sqs"])
        state = machine.get("state") or {}
        print(f"   │ Subject: {message['subject']}")
        print(
            f"   │ crossed by event {state.get('crossed_by')} (the fifth); the others: "
            f"{len(state.get('others') or [])} events; the sixth only counted"
        )

    # A deletion of a secret that is still read: its readers, and its restore.
    secret = "prod/checkout/stripe-key"  # noqa: S105 — a secret's name
    reads = [
        _record(
            denied,
            eventTime=_at(now - timedelta(hours=5 - n)),
            userIdentity=_role(denied["userIdentity"], APP_ROLE),
            requestParameters={"secretId": secret},
        )
        for n in range(3)
    ]
    logs(_subscription(reads), context)
    deletion = _load(events_dir / "eventbridge" / "secret-deleted.json")
    deleted = _fresh(
        deletion,
        eventTime=_at(now),
        requestParameters={"secretId": secret, "recoveryWindowInDays": 7},
        responseElements={"name": secret},
    )
    before = len(_published(stack))
    eventbridge(deleted, context)
    for message in _published(stack)[before:]:
        email = json.loads(message["message"])["email"]
        print(f"\n   A deletion of {secret}, read three times in the last five hours:")
        print(f"   │ Subject: {message['subject']}")
        for line in email.splitlines():
            if line.startswith(("Readers", "          ")) and "read" in line.lower():
                print(f"   │ {line}")
    restore = _load(events_dir / "eventbridge" / "secret-restored.json")
    restored = _fresh(
        restore,
        eventTime=_at(now + timedelta(minutes=20)),
        requestParameters={"secretId": secret},
        responseElements={"name": secret},
    )
    before = len(_published(stack))
    eventbridge(restored, context)
    print("\n   Its restore, 20 minutes later, closes the deletion alert:")
    for message in _published(stack)[before:]:
        print(f"   │ [{message['kind']}] {message['subject']}")


def _load(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text())
    assert isinstance(value, dict)
    return value


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fresh(payload: dict[str, Any], **detail: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out["id"] = str(uuid.uuid4())
    out["detail"]["eventID"] = str(uuid.uuid4())
    out["detail"].update(detail)
    return out


def _record(record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    out["eventID"] = str(uuid.uuid4())
    out.update(fields)
    return out


def _role(identity: dict[str, Any], role: str) -> dict[str, Any]:
    out = copy.deepcopy(identity)
    account = out.get("accountId", local_account())
    out["arn"] = f"arn:aws:sts::{account}:assumed-role/{role}/session-1"
    issuer = out.setdefault("sessionContext", {}).setdefault("sessionIssuer", {})
    issuer.update(arn=f"arn:aws:iam::{account}:role/{role}", userName=role, type="Role")
    return out


def _subscription(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A CloudWatch Logs subscription event carrying these CloudTrail records."""
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs-111122223333",
        "logStream": "111122223333_CloudTrail_eu-west-1",
        "subscriptionFilters": ["secretwatch"],
        "logEvents": [
            {"id": str(10**55 + i), "timestamp": 0, "message": json.dumps(r)}
            for i, r in enumerate(records)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


def _run_digests(stack: LocalStack, at: datetime) -> list[dict[str, Any]]:
    """The digest function's work as its schedule would run it at ``at``; what it published."""
    from shared.deliver import Notifier  # noqa: PLC0415
    from shared.digests import DigestSender  # noqa: PLC0415
    from shared.state.store import StateStore  # noqa: PLC0415

    before = len(_published(stack))
    sender = DigestSender(
        StateStore(stack.client("dynamodb"), str(stack.state_table_name)),
        Notifier(stack.client("sns"), stack.topic_arn),
        clock_ms=lambda: int(at.timestamp() * 1000),
    )
    sender.run()
    return _published(stack)[before:]


def _kinds(messages: list[dict[str, Any]]) -> str:
    return ", ".join(f"kind {m['kind']}" for m in messages) or "none"


def _published(stack: LocalStack) -> list[dict[str, Any]]:
    """Every message published to the topic, in order (moto's record of them)."""
    return [
        {"message": message, "subject": subject, "kind": attribute_value(attrs, "kind") or "alert"}
        for _, message, subject, attrs in sent_notifications(stack)
    ]
