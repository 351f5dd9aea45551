"""A deployed stack tuned live: documents pushed to the stack's parameter on a moto server, then
events delivered through the real handlers. moto records no LastModifiedUser ("N/A"), so the
"who" of `rules history` is only checked to be printed."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main
from handlers import eventbridge
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "eventbridge"
CI = {
    "type": "IAMUser",
    "principalId": "AIDACIRUNNER",
    "arn": "arn:aws:iam::111122223333:user/ci-runner",
    "accountId": "111122223333",
    "userName": "ci-runner",
}
CUSTOM = {
    "id": "ledger-secret-created",
    "description": "A secret was created under prod/ledger/.",
    "runbook": "Check that the ledger team expected it.",
    "severity": "medium",
    "events": ["CreateSecret"],
    "when": {"key": "secret.name", "op": "prefix", "value": "prod/ledger/"},
}


class Context:
    function_name = "secretwatch-eventbridge"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:secretwatch-eventbridge"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def event(name: str, **detail: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    loaded = copy.deepcopy(loaded)
    loaded["detail"].update(detail)
    return loaded


def deliver(server: Server, payload: dict[str, Any]) -> None:
    from shared.runtime import get_pipeline

    get_pipeline.cache_clear()  # a fresh container: the document is read anew
    eventbridge.lambda_handler(payload, Context())


def cli(server: Server, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(
        [
            *argv,
            "--parameter",
            str(server.stack.rules_parameter),
            "--endpoint-url",
            str(server.stack.endpoint_url),
            "--region",
            server.stack.region,
        ]
    )
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, document: dict[str, Any], name: str = "tuning.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return str(path)


def alerted_rules(server: Server) -> list[str]:
    return [m["MessageAttributes"]["rule"]["Value"] for m in server.drain()]


def item_of(server: Server, event_id: str) -> dict[str, Any]:
    (found,) = [i for i in server.items() if i["event_id"]["S"] == event_id]
    return found


def test_a_pushed_custom_rule_fires(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a document adding a rule to the defaults, pushed to the stack
    status, out, _ = cli(
        server, capsys, "rules", "push", write(tmp_path, {"extends": "default", "rules": [CUSTOM]})
    )
    assert status == 0
    assert "rules added:" in out
    assert "ledger-secret-created" in out
    assert "published version 2" in out
    # WHEN a matching event arrives
    deliver(server, event("control-create-secret"))
    # THEN the custom rule alerts
    assert alerted_rules(server) == ["ledger-secret-created"]


def test_an_exception_suppresses_a_deletion_by_ci_and_the_audit_shows_it(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an exception for deletions by CI
    exception = {
        "id": "ci-cleanup",
        "rules": ["secret-deleted"],
        "when": {"key": "caller.name", "op": "glob", "value": "ci-*"},
        "reason": "the CI pipeline deletes its own test secrets",
        "expires": "2099-06-30",
    }
    document = {"extends": "default", "exceptions": [exception]}
    assert cli(server, capsys, "rules", "push", write(tmp_path, document))[0] == 0
    # WHEN CI deletes a secret, and so does someone else
    by_ci = event("secret-deleted", userIdentity=CI, eventID="00000000-0000-4000-8000-00000000c1c1")
    deliver(server, by_ci)
    deliver(server, event("secret-deleted"))
    # THEN only the other deletion alerts; CI's is recorded with the exception's id
    assert alerted_rules(server) == ["secret-deleted"]
    item = item_of(server, by_ci["detail"]["eventID"])
    (finding,) = item["findings"]["L"]
    assert finding["M"]["exception"]["S"] == "ci-cleanup"
    assert item["alerts"]["M"]["secret-deleted"]["M"]["state"]["S"] == "suppressed"
    # AND `secretwatch audit show` says so
    capsys.readouterr()
    shown = main(
        [
            "audit",
            "show",
            by_ci["detail"]["eventID"],
            "--table",
            server.stack.table_name,
            "--endpoint-url",
            str(server.stack.endpoint_url),
            "--region",
            server.stack.region,
            "--format",
            "table",
        ]
    )
    out = capsys.readouterr().out
    assert shown == 0
    assert "ci-cleanup" in out


def test_an_expired_exception_is_ignored_with_a_warning(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exception = {
        "id": "old-cleanup",
        "rules": ["*"],
        "when": {"key": "caller.name", "op": "glob", "value": "ci-*"},
        "reason": "a migration that is over",
        "expires": "2020-01-31",
    }
    status, _, err = cli(
        server,
        capsys,
        "rules",
        "push",
        write(tmp_path, {"extends": "default", "exceptions": [exception]}),
    )
    assert status == 0
    assert "exception old-cleanup expired on 2020-01-31 and is ignored" in err
    deliver(server, event("secret-deleted", userIdentity=CI))
    assert alerted_rules(server) == ["secret-deleted"]


def test_an_audit_only_rule_records_and_never_alerts(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"extends": "default", "override": {"secret-deleted": {"mode": "audit-only"}}}
    status, out, _ = cli(server, capsys, "rules", "push", write(tmp_path, document))
    assert status == 0
    assert "secret-deleted (mode)" in out
    payload = event("secret-deleted")
    deliver(server, payload)
    assert alerted_rules(server) == []
    (finding,) = item_of(server, payload["detail"]["eventID"])["findings"]["L"]
    assert finding["M"]["mode"]["S"] == "audit-only"


def test_an_invalid_document_is_refused_and_nothing_is_published(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a document that would turn every alert off, and one with a typo
    for document, message in (
        ({"version": 1, "rules": []}, "no rules"),
        ({"extends": "default", "disable": ["secret-delted"]}, "did you mean 'secret-deleted'?"),
    ):
        status, _, err = cli(server, capsys, "rules", "push", write(tmp_path, document))
        # THEN the loader's message, exit 2, and the parameter untouched
        assert status == 2
        assert message in err
    history = server.client("ssm").get_parameter_history(Name=server.stack.rules_parameter)
    assert len(history["Parameters"]) == 1


def test_a_broken_parameter_never_silences_the_defaults(server: Server) -> None:
    # GIVEN a document the loader refuses, written by other means than rules push
    server.client("ssm").put_parameter(
        Name=server.stack.rules_parameter, Value='{"rules": []}', Type="String", Overwrite=True
    )
    # WHEN a deletion arrives in a fresh container
    deliver(server, event("secret-deleted"))
    # THEN the bundled defaults still alert
    assert alerted_rules(server) == ["secret-deleted"]


def test_history_and_rollback(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two pushes after the stack's own first version
    first = {"extends": "default", "rules": [CUSTOM]}
    second = {"extends": "default", "disable": ["secret-deleted"]}
    assert cli(server, capsys, "rules", "push", write(tmp_path, first, "a.yaml"))[0] == 0
    assert cli(server, capsys, "rules", "push", write(tmp_path, second, "b.yaml"))[0] == 0
    # WHEN the history is listed  THEN three versions, newest first
    status, out, _ = cli(server, capsys, "rules", "history")
    assert status == 0
    assert "3 version(s)" in out
    lines = [line for line in out.splitlines() if re.match(r"\d+\s+\d{4}-\d\d-\d\d", line)]
    assert [line.split()[0] for line in lines] == ["3", "2", "1"]
    # WHEN version 2 is put back
    status, out, _ = cli(server, capsys, "rules", "rollback", "--to", "2")
    assert status == 0
    assert "version 4" in out
    assert "rules added:" in out
    # THEN the document in force is version 2's, and secret-deleted alerts again
    status, out, _ = cli(server, capsys, "rules", "pull")
    assert json.loads(out) == first
    deliver(server, event("secret-deleted"))
    assert alerted_rules(server) == ["secret-deleted"]


def test_pull_of_the_stacks_first_version(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(server, capsys, "rules", "pull")
    assert status == 0
    assert json.loads(out) == {"version": 1, "extends": "default"}


def test_rollback_to_a_version_that_does_not_exist(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cli(server, capsys, "rules", "rollback", "--to", "9")
    assert status == 1
    assert "no such version" in err or "not found" in err
