"""A deletion's readers and auto-restore through the real handlers, on a moto server over HTTP.

The stack and the functions' environment come from template.yaml (AutoRestore passed as a stack
parameter, as ``sam deploy --parameter-overrides`` would). moto does not enforce IAM, so the
RestoreSecret grant's tag condition is checked in tests/template, not here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from scripts.make_events import subscription_event

from cli.local_stack import create_stack
from handlers import eventbridge, log_subscription
from shared.remediate import AUTO_RESTORE_TAG
from tests.integration.conftest import (
    REGION,
    Server,
    _reset_container_caches,
    reset_server,
    use_stack,
)
from tests.integration.test_handlers_over_http import Context
from tests.unit.test_auto_restore import pending_read
from tests.unit.test_deletion_impact import (
    DELETED_AT,
    SECRET,
    deletion,
    eventbridge_event,
    read,
    user_arn,
)

StackFactory = Callable[[dict[str, str]], Server]
pytestmark = pytest.mark.integration


@pytest.fixture
def stack_with(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackFactory]:
    """A fresh stack on the shared server, created with the given template parameters."""

    def make(parameters: dict[str, str]) -> Server:
        reset_server(moto_endpoint, monkeypatch)
        stack = create_stack(moto_endpoint, region=REGION, parameters=parameters)
        use_stack(stack, moto_endpoint, monkeypatch)
        return Server(stack, Server(stack, "").subscribe("inbox"))

    yield make
    _reset_container_caches()


def alerts(server: Server) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {json.loads(m["Message"])["rule"]: (m, json.loads(m["Message"])) for m in server.drain()}


def test_the_deletion_alert_names_the_readers_the_logs_route_audited(
    stack_with: StackFactory,
) -> None:
    # GIVEN the default stack, the secret, and reads audited by the log subscription function
    server = stack_with({})
    server.client("secretsmanager").create_secret(Name=SECRET, SecretString="x")
    reads = [read(1, DELETED_AT.replace(hour=16), "app"), read(2, DELETED_AT.replace(hour=9))]
    log_subscription.lambda_handler(subscription_event([json.dumps(r) for r in reads]), Context())

    # WHEN the deletion arrives by EventBridge
    eventbridge.lambda_handler(eventbridge_event(deletion()), Context())

    # THEN the alert is critical (read within 24 hours) and names the reader, twice
    envelope, machine = alerts(server)["secret-deleted"]
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"
    readers = machine["enrichment"]["readers"]
    assert (readers["reads"], readers["principal_count"]) == (2, 1)
    assert readers["last_reader"] == user_arn("app")


def test_a_failing_look_up_over_http_still_alerts(stack_with: StackFactory) -> None:
    # GIVEN a read audited an hour before, and the audit table refusing every Query
    server = stack_with({})
    log_subscription.lambda_handler(
        subscription_event([json.dumps(read(1, DELETED_AT.replace(hour=16)))]), Context()
    )
    from shared.runtime import get_pipeline

    store = get_pipeline().store
    assert store is not None
    denied = AWSResponse("https://dynamodb", 400, HTTPHeaders(), None)

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "AccessDeniedException", "Message": "not authorized"}
        return denied, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    # A before-call handler's answer replaces the HTTP call (botocore's short-circuit).
    hooks: Any = store._db.meta.events
    hooks.register("before-call.dynamodb.Query", refuse)

    # WHEN the deletion arrives
    result = eventbridge.lambda_handler(eventbridge_event(deletion()), Context())

    # THEN the alert went out, high (nothing known raises it), saying readers are unknown
    assert result["alerts_published"] == 1
    assert result["enrichment_failures"] >= 1
    envelope, machine = alerts(server)["secret-deleted"]
    assert envelope["MessageAttributes"]["severity"]["Value"] == "high"
    assert machine["enrichment"]["readers"]["error"] == "audit query: AccessDeniedException"


@pytest.mark.parametrize(
    ("mode", "tag", "restored", "subject"),
    [
        (
            "enabled",
            "true",
            True,
            "[HIGH] deletion cancelled: prod/db/orders is still read by alice",
        ),
        ("dry-run", "true", False, "[HIGH] dry run, deletion not cancelled: prod/db/orders is"),
        ("disabled", "true", False, "[HIGH] access-while-pending-deletion: prod/db/orders"),
        ("enabled", "false", False, "[HIGH] access-while-pending-deletion: prod/db/orders"),
    ],
)
def test_auto_restore_through_the_handler(
    stack_with: StackFactory, mode: str, tag: str, restored: bool, subject: str
) -> None:
    # GIVEN a stack with AutoRestore=<mode>, and a tagged secret pending deletion
    server = stack_with({"AutoRestore": mode})
    assert server.stack.environment["AUTO_RESTORE"] == mode
    secrets = server.client("secretsmanager")
    secrets.create_secret(
        Name=SECRET, SecretString="x", Tags=[{"Key": AUTO_RESTORE_TAG, "Value": tag}]
    )
    secrets.delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)

    # WHEN a read of it fails and the EventBridge function handles it
    eventbridge.lambda_handler(pending_read(), Context())

    # THEN the secret is restored only when enabled and tagged, and the alert says what happened
    assert ("DeletedDate" not in secrets.describe_secret(SecretId=SECRET)) is restored
    envelope, machine = alerts(server)["access-while-pending-deletion"]
    assert envelope["Subject"].startswith(subject)
    item = server.client("dynamodb").get_item(
        TableName=server.stack.table_name,
        Key={"event_id": {"S": pending_read()["detail"]["eventID"]}},
    )["Item"]
    acted = mode != "disabled" and tag == "true"
    assert ("remediation" in item) is acted
    assert ("remediation" in machine) is acted
