"""`secretwatch rules list` and `secretwatch rules test DIR` (rule cases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from shared.rules import DEFAULT_RULES_PATH
from tests.conftest import build_raw

ROOT = Path(__file__).resolve().parents[2]
RULE_CASES = ROOT / "tests" / "rule_cases"
EVENTS = ROOT / "events"
CATALOGUE = [
    "secret-deleted",
    "deletion-forced-no-recovery",
    "access-while-pending-deletion",
    "rotation-failed",
    "resource-policy-changed",
    "rotation-disabled",
    "secret-restored",
    "secret-value-changed",
    "replication-removed",
    "kms-key-changed",
    "root-activity",
    "access-denied-burst",
    "read-burst",
    "rotation-succeeded",
    "secretwatch-tampered",
]

Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def count_cases() -> int:
    import yaml

    total = 0
    for path in RULE_CASES.glob("*.yaml"):
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        total += len(document["cases"]) if "cases" in document else 1
    return total


# ---------------------------------------------------------------------------------------------
# rules list


def test_rules_list_text_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN the default catalogue is listed as text
    status, out, err = run(capsys, "rules", "list")

    # THEN a table with every rule, its severity range and events, and a count line
    rows = out.splitlines()
    assert rows[0].split() == ["RULE", "SEVERITY", "EVENTS", "DESCRIPTION"]
    assert [row.split()[0] for row in rows[1:16]] == CATALOGUE
    by_id = {row.split()[0]: row for row in rows[1:16]}
    assert by_id["resource-policy-changed"].split()[1] == "medium..critical"
    assert by_id["rotation-failed"].split()[1] == "medium..high"
    assert by_id["secret-deleted"].split()[1] == "high..critical"  # raised when still read
    assert "DeleteResourcePolicy, PutResourcePolicy" in by_id["resource-policy-changed"]
    assert "* (every event)" in by_id["root-activity"]
    assert rows[-1] == f"15 rules from {DEFAULT_RULES_PATH}"
    assert status == 0
    assert err == ""


def test_rules_list_json_prints_each_rule_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN the catalogue is listed as JSON
    status, out, _ = run(capsys, "rules", "list", "--format", "json")

    # THEN one JSON object per line, equal to the rule in the bundled file
    listed = [json.loads(line) for line in out.splitlines()]
    bundled = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))["rules"]
    assert [rule["id"] for rule in listed] == CATALOGUE
    assert listed == bundled
    assert status == 0


def test_rules_list_with_a_custom_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a custom YAML rules file with one rule
    rules = write(
        tmp_path / "rules.yaml",
        "rules:\n  - {id: only-one, description: One rule., runbook: r, severity: info, events: [A, B]}\n",
    )

    # WHEN it is listed
    status, out, _ = run(capsys, "rules", "list", "--rules", str(rules))

    # THEN only that rule is shown, with its origin
    assert "only-one" in out
    assert "A, B" in out
    assert out.splitlines()[-1] == f"1 rules from {rules}"
    assert status == 0


def test_rules_list_with_a_bad_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rules file with a duplicate id
    rule = {"id": "dup", "description": "d", "runbook": "r", "severity": "low", "events": ["*"]}
    rules = write(tmp_path / "rules.json", json.dumps({"rules": [rule, rule]}))

    # WHEN it is listed
    status, out, err = run(capsys, "rules", "list", "--rules", str(rules))

    # THEN exit 2 with the reason
    assert status == 2
    assert out == ""
    assert err.splitlines() == [f"secretwatch: {rules}: rules[1]: duplicate rule id 'dup'"]


@pytest.mark.parametrize(
    "argv", [["rules"], ["rules", "run"], ["rules", "list", "--format", "yaml"]]
)
def test_rules_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN a malformed rules command
    status, _, err = run(capsys, *argv)

    # THEN exit 2 with usage
    assert status == 2
    assert "usage: secretwatch rules" in err


# ---------------------------------------------------------------------------------------------
# rules test: the shipped cases


def test_shipped_rule_cases_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the rule cases in tests/rule_cases
    expected = count_cases()

    # WHEN they are run against the default rules
    status, out, err = run(capsys, "rules", "test", str(RULE_CASES))

    # THEN every case passes and the summary counts them
    rows = out.splitlines()
    assert rows[-1] == f"{expected} passed, 0 failed"
    assert sum(row.startswith("ok   ") for row in rows) == expected
    assert not any(row.startswith("FAIL") for row in rows)
    assert status == 0
    assert err == ""


def test_shipped_rule_cases_cover_every_rule_both_ways() -> None:
    # GIVEN the shipped cases
    import yaml

    must: set[str] = set()
    must_not: set[str] = set()
    for path in RULE_CASES.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            must.update(case.get("must_fire", []))
            must_not.update(case.get("must_not_fire", []))

    # WHEN / THEN every default rule must fire somewhere, and some cases say what must not fire
    assert must == set(CATALOGUE)
    assert {
        "secret-deleted",
        "deletion-forced-no-recovery",
        "access-while-pending-deletion",
    } <= must_not


# ---------------------------------------------------------------------------------------------
# rules test: failures and malformed cases


def test_failing_case_is_reported_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a case that expects the wrong rules, next to a passing case
    event = EVENTS / "eventbridge" / "deletion-forced-no-recovery.json"
    write(
        tmp_path / "wrong.yaml",
        "cases:\n"
        "  - name: forced deletion (wrongly expected as a plain deletion)\n"
        f"    event: {event}\n"
        "    must_fire: [secret-deleted]\n"
        "    must_not_fire: [deletion-forced-no-recovery]\n"
        "  - name: forced deletion\n"
        f"    event: {event}\n"
        "    must_fire: [deletion-forced-no-recovery]\n",
    )

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path))

    # THEN the failure is reported with what did and did not fire, and exit 1
    rows = out.splitlines()
    assert (
        rows[0]
        == f"FAIL {tmp_path / 'wrong.yaml'}[0]: forced deletion (wrongly expected as a plain deletion)"
    )
    assert rows[1].strip() == "did not fire: secret-deleted (fired: deletion-forced-no-recovery)"
    assert rows[2].strip() == "fired but must not: deletion-forced-no-recovery"
    assert rows[3] == f"ok   {tmp_path / 'wrong.yaml'}[1]: forced deletion"
    assert rows[-1] == "1 passed, 1 failed"
    assert status == 1


def test_event_path_is_relative_to_the_case_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a case file in a subfolder naming its event relative to itself, as a JSON case file
    (tmp_path / "events").mkdir()
    (tmp_path / "cases" / "deep").mkdir(parents=True)
    write(tmp_path / "events" / "e.json", json.dumps(build_raw(eventName="RestoreSecret")))
    case = {"event": "../../events/e.json", "must_fire": ["secret-restored"]}
    write(tmp_path / "cases" / "deep" / "restore.json", json.dumps(case))

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path / "cases"))

    # THEN the event is found, the case (named after its event) passes
    assert out.splitlines()[0].endswith("restore.json[0]: ../../events/e.json")
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert status == 0


@pytest.mark.parametrize(
    ("case_text", "problem"),
    [
        ("cases:\n  - name: n\n    event: x.json\n", "a case needs must_fire and/or must_not_fire"),
        ("cases:\n  - name: n\n    must_fire: [no-such-rule]\n    input: {}\n", "must_fire names unknown rules: no-such-rule"),
        ("cases:\n  - name: n\n    must_fire: secret-deleted\n    input: {}\n", "must_fire must be a list of rule ids"),
        ("cases:\n  - name: n\n    must_fire: [secret-deleted]\n", "a case needs event (a file path) or input"),
        ("cases:\n  - name: n\n    must_fire: [secret-deleted]\n    event: nowhere.json\n", "cannot read the event"),
        ("cases:\n  - name: n\n    must_fire: [secret-deleted]\n    input: [1]\n", "record 0 rejected: [0]: expected a JSON object"),
        ("cases:\n  - name: n\n    must_fire: [secret-deleted]\n    input: 5\n", "cannot read the event: expected a JSON object"),
        (
            "cases:\n  - name: n\n    must_fire: [secret-deleted]\n    input: {messageType: CONTROL_MESSAGE, logEvents: []}\n",
            "the event holds no CloudTrail record",
        ),
        ("cases:\n  - just a string\n", "a case must be an object"),
        ("cases: {not: a list}\n", "cases must be a list"),
        ("cases: [\n", "not valid YAML"),
    ],
    ids=[
        "no-expectations",
        "unknown-rule",
        "must-fire-not-list",
        "no-event",
        "event-missing",
        "record-rejected",
        "input-not-object",
        "no-records",
        "case-not-object",
        "cases-not-list",
        "bad-yaml",
    ],
)  # fmt: skip
def test_malformed_case_is_a_failure_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case_text: str, problem: str
) -> None:
    # GIVEN a case file with one problem
    write(tmp_path / "case.yaml", case_text)

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path))

    # THEN the case fails with the reason and the run exits 1
    rows = out.splitlines()
    assert rows[0].startswith("FAIL ")
    assert any(problem in row for row in rows[1:]), rows
    assert rows[-1] == "0 passed, 1 failed"
    assert status == 1


def test_rejected_record_in_an_inline_case_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an inline case whose record has forceDeleteWithoutRecovery "true" (a string)
    record = build_raw(
        eventName="DeleteSecret",
        requestParameters={"secretId": "s", "forceDeleteWithoutRecovery": "true"},
    )
    write(
        tmp_path / "case.json",
        json.dumps({"cases": [{"input": record, "must_fire": ["secret-deleted"]}]}),
    )

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path))

    # THEN the failure names the field
    assert "record 0 rejected: requestParameters.forceDeleteWithoutRecovery" in out
    assert status == 1


def test_invalid_json_case_file_is_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a .json case file that is not JSON, next to a good case file
    write(tmp_path / "a.json", "{nope")
    write(
        tmp_path / "b.yaml",
        f"event: {EVENTS / 'eventbridge' / 'secret-restored.json'}\nmust_fire: [secret-restored]\n",
    )

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path))

    # THEN the bad file fails as "(file)" and the good one still passes
    rows = out.splitlines()
    assert rows[0] == f"FAIL {tmp_path / 'a.json'}: (file)"
    assert rows[1].strip().startswith("not valid JSON: Expecting property name")
    assert rows[2].startswith("ok   ")
    assert rows[-1] == "1 passed, 1 failed"
    assert status == 1


def test_case_file_that_is_not_utf8_is_a_failure_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a case file that is not UTF-8 text, next to a good case file
    (tmp_path / "a.yaml").write_bytes(b"cases:\n  - name: \xff\xfe\n")
    write(
        tmp_path / "b.yaml",
        f"event: {EVENTS / 'eventbridge' / 'secret-restored.json'}\nmust_fire: [secret-restored]\n",
    )

    # WHEN the cases run
    status, out, err = run(capsys, "rules", "test", str(tmp_path))

    # THEN the bad file is reported as a failing case and the good one still runs
    assert "internal error" not in err
    rows = out.splitlines()
    assert rows[0].startswith(f"FAIL {tmp_path / 'a.yaml'}")
    assert rows[-1] == "1 passed, 1 failed"
    assert status == 1


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_rules_test_needs_a_directory_of_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # GIVEN a path that is missing, a file, or a folder with no case files
    target = tmp_path / "cases"
    if kind == "file":
        write(target, "x")
    elif kind == "empty":
        target.mkdir()
        write(target / "notes.txt", "no cases here")

    # WHEN the cases run
    status, out, err = run(capsys, "rules", "test", str(target))

    # THEN exit 1 with one clear line, and no report
    assert status == 1
    assert out == ""
    expected = "no rule case files" if kind == "empty" else "not a directory of rule cases"
    assert err.splitlines() == [
        f"secretwatch: {target}: {expected}" + (" (.yaml, .yml, .json)" if kind == "empty" else "")
    ]


def test_rules_test_with_a_custom_rules_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a custom rule and a case expecting it
    rules = write(
        tmp_path / "rules.yaml",
        "rules:\n  - {id: any-read, description: d, runbook: r, severity: info, events: [GetSecretValue]}\n",
    )
    cases = tmp_path / "cases"
    cases.mkdir()
    write(cases / "c.yaml", "input: " + json.dumps(build_raw()) + "\nmust_fire: [any-read]\n")

    # WHEN the cases run with --rules
    status, out, _ = run(capsys, "rules", "test", "--rules", str(rules), str(cases))

    # THEN the case passes
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert status == 0


def test_out_of_scope_record_in_a_case_fires_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an inline case holding an S3 record and a Secrets Manager record by root
    root = build_raw(userIdentity={"type": "Root", "arn": "arn:aws:iam::111122223333:root"})
    s3 = build_raw(eventSource="s3.amazonaws.com", userIdentity=root["userIdentity"])
    case = {
        "input": {"Records": [s3, root]},
        "must_fire": ["root-activity"],
        "must_not_fire": ["secret-deleted"],
    }
    write(tmp_path / "case.json", json.dumps(case))

    # WHEN the cases run
    status, out, _ = run(capsys, "rules", "test", str(tmp_path))

    # THEN the S3 record is skipped and the case passes on the other record
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert status == 0
