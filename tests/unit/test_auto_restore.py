"""Opt-in auto-restore on in-process moto: a secret still read while pending deletion.

moto gaps, checked here rather than assumed: moto does not evaluate IAM policies at all (so the
aws:ResourceTag condition on RestoreSecret is tested in the template, tests/template), and its
RestoreSecret succeeds on a secret that is not scheduled for deletion, where AWS answers
InvalidRequestException; that answer is injected to test the "already restored" path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from cli.local_stack import LocalStack, create_stack
from shared.audit.codec import from_item
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.errors import ConfigError
from shared.pipeline import ROUTE_EVENTBRIDGE, Pipeline
from shared.remediate import AUTO_RESTORE_TAG, AutoRestore, Restorer
from shared.rules import load_rules
from shared.settings import Settings
from tests.conftest import ACCOUNT, build_raw
from tests.unit.moto_stack import subscribed_inbox
from tests.unit.test_pipeline import Faulty

REGION = "eu-west-1"
SECRET = "prod/db/orders"
NOW = datetime(2026, 10, 21, 17, 10, tzinfo=UTC)
READER = f"arn:aws:iam::{ACCOUNT}:user/alice"


def pending_read(n: int = 1) -> dict[str, Any]:
    detail = build_raw(
        eventID=f"aaaaaaaa-0000-4000-8000-{n:012d}",
        errorCode="InvalidRequestException",
        errorMessage=(
            "You can't perform this operation on the secret because it was marked for deletion."
        ),
    )
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

    @property
    def secretsmanager(self) -> Any:
        return self.stack.client("secretsmanager")

    def secret(self, tag: str | None) -> None:
        """The secret, tagged (or not), scheduled for deletion."""
        tags = [] if tag is None else [{"Key": AUTO_RESTORE_TAG, "Value": tag}]
        self.secretsmanager.create_secret(Name=SECRET, SecretString="x", Tags=tags)
        self.secretsmanager.delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)

    def pending(self) -> bool:
        return "DeletedDate" in self.secretsmanager.describe_secret(SecretId=SECRET)

    def pipeline(self, mode: AutoRestore, secretsmanager: Any = None) -> Pipeline:
        client = secretsmanager or self.secretsmanager
        return Pipeline(
            ruleset=load_rules(),
            enricher=Enricher(client, self.stack.client("iam"), None),
            store=AuditStore(self.stack.client("dynamodb"), self.stack.table_name),
            notifier=Notifier(self.stack.client("sns"), self.stack.topic_arn),
            retention_days=30,
            clock=lambda: NOW,
            remediator=None if mode == "disabled" else Restorer(client, mode, clock=lambda: NOW),
        )

    def alert(self) -> tuple[dict[str, Any], dict[str, Any]]:
        sqs = self.stack.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10)["Messages"]
        envelope = json.loads(message["Body"])
        return envelope, json.loads(envelope["Message"])

    def item(self) -> dict[str, Any]:
        found = self.stack.client("dynamodb").get_item(
            TableName=self.stack.table_name,
            Key={"event_id": {"S": pending_read()["detail"]["eventID"]}},
        )["Item"]
        return from_item(found)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = create_stack(None, region=REGION)
        url = subscribed_inbox(stack, REGION)
        yield World(stack, url)


def compose(world: World, mode: AutoRestore, secretsmanager: Any = None) -> Any:
    """The alert the pipeline would send, composed the same way, for the e-mail and SMS."""
    from shared.compose import build_alert
    from shared.normalise import normalise

    record = normalise(pending_read()["detail"])
    client = secretsmanager or world.secretsmanager
    enrichment = Enricher(client, world.stack.client("iam"), None).enrich(record)
    evaluation = load_rules().evaluate(record, enrichment)
    (finding,) = evaluation.findings
    remediation = Restorer(client, mode, clock=lambda: NOW).act(record, evaluation, enrichment)
    return build_alert(record, finding, enrichment, remediation=remediation)


def test_enabled_restores_a_tagged_secret_and_the_alert_says_deletion_cancelled(
    world: World,
) -> None:
    # GIVEN a tagged secret pending deletion, and a pipeline with AutoRestore enabled
    world.secret("true")
    counted = Faulty(world.secretsmanager, {})

    # WHEN a read of it fails because it is pending deletion
    summary = world.pipeline("enabled", counted).process_event(pending_read(), ROUTE_EVENTBRIDGE)

    # THEN RestoreSecret was called once, never GetSecretValue, and the secret is back
    assert counted.calls["restore_secret"] == 1
    assert "get_secret_value" not in counted.calls
    assert not world.pending()
    assert summary.alerts_published == 1
    # AND the subject and JSON say so; the audit item records what was done and when
    envelope, machine = world.alert()
    assert envelope["Subject"] == "[HIGH] deletion cancelled: prod/db/orders is still read by alice"
    assert machine["headline"] == f"deletion cancelled: prod/db/orders is still read by {READER}"
    remediation = world.item()["remediation"]
    assert machine["remediation"] == remediation
    assert remediation["action"] == "RestoreSecret"
    assert remediation["result"] == "restored"
    assert remediation["mode"] == "enabled"
    assert remediation["at"] == "2026-10-21T17:10:00Z"
    assert remediation["reader"] == READER
    assert remediation["secret"].startswith(
        f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{SECRET}-"
    )


def test_enabled_email_and_sms_lead_with_the_cancellation(world: World) -> None:
    # GIVEN a tagged secret pending deletion
    world.secret("true")
    # WHEN the alert is composed with AutoRestore enabled
    alert = compose(world, "enabled")
    # THEN the e-mail's first line and the SMS say the deletion was cancelled
    first, action = alert.email.splitlines()[:2]
    assert first == f"Deletion cancelled: prod/db/orders is still read by {READER}."
    assert action.startswith("Action:   enabled: RestoreSecret on arn:aws:secretsmanager:")
    assert action.endswith("at 2026-10-21T17:10:00Z: restored")
    assert alert.sms == "secretwatch HIGH deletion cancelled: prod/db/orders is still read by alice"


def test_dry_run_reports_what_it_would_restore_and_calls_nothing(world: World) -> None:
    # GIVEN a tagged secret pending deletion, and AutoRestore dry-run
    world.secret("true")
    counted = Faulty(world.secretsmanager, {})

    # WHEN the failed read arrives
    world.pipeline("dry-run", counted).process_event(pending_read(), ROUTE_EVENTBRIDGE)

    # THEN nothing was restored, and the alert and item say what would have been
    assert "restore_secret" not in counted.calls
    assert world.pending()
    envelope, machine = world.alert()
    assert envelope["Subject"].startswith("[HIGH] dry run, deletion not cancelled: prod/db/orders")
    assert machine["remediation"]["result"] == "would-restore"
    assert world.item()["remediation"]["mode"] == "dry-run"


@pytest.mark.parametrize(
    ("mode", "tag"),
    [("disabled", "true"), ("enabled", None), ("enabled", "false"), ("enabled", "True")],
)
def test_nothing_is_done_unless_enabled_and_tagged_exactly_true(
    world: World, mode: AutoRestore, tag: str | None
) -> None:
    # GIVEN a secret pending deletion, tagged (or not) as given
    world.secret(tag)
    counted = Faulty(world.secretsmanager, {})

    # WHEN the failed read arrives
    world.pipeline(mode, counted).process_event(pending_read(), ROUTE_EVENTBRIDGE)

    # THEN no call, the secret stays pending, and the alert is the ordinary one
    assert "restore_secret" not in counted.calls
    assert world.pending()
    envelope, machine = world.alert()
    assert envelope["Subject"].startswith("[HIGH] access-while-pending-deletion: prod/db/orders")
    assert "remediation" not in machine
    assert "remediation" not in world.item()


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException"])
def test_a_failed_restore_is_reported_and_the_alert_still_goes_out(world: World, code: str) -> None:
    # GIVEN a tagged secret pending deletion, and RestoreSecret refused
    world.secret("true")
    failing = Faulty(world.secretsmanager, {"restore_secret": (10, code)})

    # WHEN the failed read arrives
    summary = world.pipeline("enabled", failing).process_event(pending_read(), ROUTE_EVENTBRIDGE)

    # THEN the alert went out, saying the deletion was NOT cancelled and why
    assert summary.alerts_published == 1
    assert world.pending()
    envelope, machine = world.alert()
    assert envelope["Subject"] == (
        f"[HIGH] deletion NOT cancelled ({code}): prod/db/orders is still read by alice"
    )
    assert machine["remediation"]["result"] == "failed"
    item = world.item()
    assert item["remediation"]["error"] == code
    assert item["alerts"]["access-while-pending-deletion"]["state"] == "sent"


def test_invalid_request_reads_as_already_restored(world: World) -> None:
    # GIVEN a tagged secret pending deletion, and AWS's answer for a secret that is not
    # (moto restores a non-deleted secret without complaint, AWS refuses)
    world.secret("true")
    refusing = Faulty(world.secretsmanager, {"restore_secret": (1, "InvalidRequestException")})

    # WHEN the alert is composed
    alert = compose(world, "enabled", refusing)

    # THEN it says the deletion is cancelled (already), without an error
    assert alert.subject.startswith("[HIGH] deletion cancelled: prod/db/orders")
    assert alert.machine["remediation"]["result"] == "already-restored"
    assert "error" not in alert.machine["remediation"]


def test_a_retry_reuses_the_first_outcome_and_does_not_restore_again(world: World) -> None:
    # GIVEN a restore done by a first delivery, then the secret deliberately deleted again
    world.secret("true")
    counted = Faulty(world.secretsmanager, {})
    pipeline = world.pipeline("enabled", counted)
    pipeline.process_event(pending_read(), ROUTE_EVENTBRIDGE)
    world.secretsmanager.delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)

    # WHEN the same event is delivered again (a retry, or the other route)
    summary = pipeline.process_event(pending_read(), ROUTE_EVENTBRIDGE)

    # THEN it is a duplicate, RestoreSecret was not called again, the new deletion stands
    assert summary.duplicates == 1
    assert counted.calls["restore_secret"] == 1
    assert world.pending()
    assert world.item()["remediation"]["result"] == "restored"


def test_an_exception_covering_the_finding_means_no_restore(world: World) -> None:
    # GIVEN the finding is suppressed by an exception (an expected read)
    from shared.models import Enrichment, Evaluation, Finding, SecretDetails
    from shared.normalise import normalise

    record = normalise(pending_read()["detail"])
    enrichment = Enrichment(secret=SecretDetails(name=SECRET, tags={AUTO_RESTORE_TAG: "true"}))
    finding = Finding("access-while-pending-deletion", "high", "", "", exception="ci-cleanup")
    # WHEN / THEN the restorer does nothing
    restorer = Restorer(world.secretsmanager, "enabled")
    assert restorer.act(record, Evaluation((finding,)), enrichment) is None


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "disabled"), ("disabled", "disabled"), ("dry-run", "dry-run")]
)
def test_settings_read_auto_restore(value: str | None, mode: str) -> None:
    env = {"AUDIT_TABLE_NAME": "t", "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t"}
    if value is not None:
        env["AUTO_RESTORE"] = value
    assert Settings.from_env(env).auto_restore == mode


def test_settings_refuse_an_unknown_auto_restore_value() -> None:
    env = {"AUDIT_TABLE_NAME": "t", "ALERT_TOPIC_ARN": "a", "AUTO_RESTORE": "Enabled"}
    with pytest.raises(ConfigError, match="AUTO_RESTORE must be one of"):
        Settings.from_env(env)


def test_local_stack_takes_the_parameter_and_refuses_a_value_the_template_refuses() -> None:
    # GIVEN / WHEN local stacks created with AutoRestore overrides
    with mock_aws():
        stack = create_stack(None, region=REGION, parameters={"AutoRestore": "enabled"})
        # THEN the functions' environment carries it
        assert stack.environment["AUTO_RESTORE"] == "enabled"
        with pytest.raises(ConfigError, match="AutoRestore must be one of"):
            create_stack(None, region=REGION, parameters={"AutoRestore": "yes"})
    with mock_aws():
        assert create_stack(None, region=REGION).environment["AUTO_RESTORE"] == "disabled"
