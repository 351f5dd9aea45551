"""`secretwatch evaluate`: the JSON-lines contract, errors per file/record, exit statuses."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cli.evaluate
from cli.main import main
from cli.output import colour_severity, cut, render_table, safe
from shared.errors import InputError
from tests.conftest import ACCOUNT, build_raw

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
CONTRACT_KEYS = [
    "file",
    "index",
    "event_id",
    "event_name",
    "secret",
    "principal",
    "findings",
    "error",
]
ALL_RULES = {
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
    "rotation-succeeded",  # audit-only: recorded, and it resolves an open rotation-failed
}
# secretwatch-tampered needs the stack's identity (which rules, key and topics are its own),
# which `evaluate` does not have: offline its samples are read and audited, never fired.

Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """Run the command in-process; return (exit status, stdout, stderr)."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def eventbridge(detail: dict[str, Any], event_id: str = "eb-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "time": detail.get("eventTime"),
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


# ---------------------------------------------------------------------------------------------
# The JSON contract


def test_one_json_line_per_record_with_exactly_the_contract_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a real EventBridge DeleteSecret event
    path = EVENTS / "eventbridge" / "secret-deleted.json"

    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(path))

    # THEN one line comes out with exactly the contract's keys, in order, and exit 0
    (line,) = lines(out)
    assert list(line) == CONTRACT_KEYS
    assert line == {
        "file": str(path),
        "index": 0,
        "event_id": "45ac16b9-c20d-4c21-8f8a-7abff2e91ac7",
        "event_name": "DeleteSecret",
        "secret": "prod/payments/db-password",
        "principal": (
            "arn:aws:sts::111122223333:assumed-role/"
            "AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
        ),
        "findings": [{"rule": "secret-deleted", "severity": "high"}],
        "error": None,
    }
    assert status == 0
    assert err == ""


def test_events_directory_is_read_recursively_and_fires_every_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the events/ directory (EventBridge and CloudWatch Logs samples in subfolders)
    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(EVENTS))

    # THEN every record of both subfolders is a line, none is rejected, and every rule fires
    results = lines(out)
    files = {Path(r["file"]).parent.name for r in results}
    # (a threshold rule's match is only "counted" without a burst: those fire in their own test)
    fired = {f["rule"] for r in results for f in r["findings"] if f.get("state") != "counted"}
    assert files == {"eventbridge", "cloudwatch-logs"}
    assert all(r["error"] is None for r in results)
    assert all(list(r) == CONTRACT_KEYS for r in results)
    assert fired == ALL_RULES
    samples = len(list((EVENTS / "eventbridge").glob("*.json")))
    tamper = len(list((EVENTS / "eventbridge").glob("*tamper-*.json")))
    # every Secrets Manager sample also as CloudWatch Logs (the tamper samples of other services
    # never pass the subscription filter); the mixed batch has 4, the control 0
    assert tamper == 13
    assert len(results) == 2 * (samples - tamper) + tamper + 4
    assert status == 0
    assert err == ""


def test_bad_file_and_good_file_both_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file of truncated JSON and a good event file
    bad = tmp_path / "bad.json"
    bad.write_text('{"Records": [{"eventName": ', encoding="utf-8")
    good = write_json(tmp_path / "good.json", eventbridge(build_raw(eventID="good-1")))

    # WHEN both are evaluated
    status, out, err = run(capsys, "evaluate", str(bad), str(good))

    # THEN both have a line: the bad one names the file with a null index, the good one is fine
    first, second = lines(out)
    assert first["file"] == str(bad)
    assert first["index"] is None
    assert first["findings"] == []
    assert first["error"].startswith(f"{bad}: not valid JSON")
    assert second["event_id"] == "good-1"
    assert second["error"] is None
    # AND exit 1, one stderr line naming the file, no traceback
    assert status == 1
    assert err.splitlines() == [f"secretwatch: {first['error']}"]
    assert "Traceback" not in err


def test_rejected_record_names_file_index_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a CloudTrail log file whose second record has forceDeleteWithoutRecovery "true"
    good = build_raw(eventID="r-0", eventName="DeleteSecret", requestParameters={"secretId": "a"})
    bad = build_raw(
        eventID="r-1",
        eventName="DeleteSecret",
        requestParameters={"secretId": "a", "forceDeleteWithoutRecovery": "true"},
    )
    path = write_json(tmp_path / "trail.json", {"Records": [good, bad, good]})

    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(path))

    # THEN the bad record's line names the file, its index, its event and the field;
    # the records around it are still evaluated
    results = lines(out)
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0]["findings"] == [{"rule": "secret-deleted", "severity": "high"}]
    assert results[2]["findings"] == [{"rule": "secret-deleted", "severity": "high"}]
    error = results[1]["error"]
    assert error.startswith(f"{path}: record 1 (event r-1): ")
    assert "forceDeleteWithoutRecovery" in error
    assert results[1]["event_id"] == "r-1"
    assert results[1]["event_name"] == "DeleteSecret"
    assert results[1]["findings"] == []
    assert status == 1
    assert err.splitlines() == [f"secretwatch: {error}"]


def test_rejected_log_event_is_named_by_its_log_event_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a decoded CloudWatch Logs payload whose log event is not JSON
    payload = {
        "messageType": "DATA_MESSAGE",
        "logEvents": [{"id": "3" * 56, "timestamp": 0, "message": "{nope"}],
    }
    path = write_json(tmp_path / "logs.json", payload)

    # WHEN it is evaluated
    status, out, _ = run(capsys, "evaluate", str(path))

    # THEN the error names the log event
    (line,) = lines(out)
    assert line["error"].startswith(
        f"{path}: record 0 (log event {'3' * 56}): logEvents[0].message"
    )
    assert status == 1


def test_rejected_record_without_any_id_is_named_by_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a log file whose record is not even an object
    path = write_json(tmp_path / "trail.json", {"Records": [5]})

    # WHEN it is evaluated
    status, out, _ = run(capsys, "evaluate", str(path))

    # THEN the error names the file and the index only
    (line,) = lines(out)
    assert line["error"] == f"{path}: record 0: record must be an object, got number"
    assert line["event_id"] is None
    assert status == 1


def test_nonexistent_path_is_an_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a path that does not exist
    missing = tmp_path / "missing.json"

    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(missing))

    # THEN one error line with a null index, one stderr line, exit 1
    (line,) = lines(out)
    assert list(line) == CONTRACT_KEYS
    assert line["index"] is None
    assert line["error"] == f"{missing}: cannot read the file: No such file or directory"
    assert status == 1
    assert len(err.splitlines()) == 1


def test_out_of_scope_record_is_a_quiet_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an S3 record
    path = write_json(
        tmp_path / "s3.json", build_raw(eventSource="s3.amazonaws.com", eventID="s3-1")
    )

    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(path))

    # THEN it is a line with no findings and no error, and exit 0
    (line,) = lines(out)
    assert line["event_id"] == "s3-1"
    assert line["findings"] == []
    assert line["error"] is None
    assert status == 0
    assert err == ""


def test_control_message_gives_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the CONTROL_MESSAGE sample
    # WHEN it is evaluated
    status, out, err = run(
        capsys, "evaluate", str(EVENTS / "cloudwatch-logs" / "control-message.json")
    )

    # THEN nothing is printed and all is well
    assert (status, out, err) == (0, "", "")


def test_directory_walk_picks_event_suffixes_and_skips_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a tree with .json, .json.gz, .jsonl, .ndjson, a .txt and a hidden folder
    record = json.dumps(build_raw(eventID="x"))
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (tmp_path / "one.json").write_text(record, encoding="utf-8")
    (nested / "two.json.gz").write_bytes(gzip.compress(record.encode()))
    (nested / "three.jsonl").write_text(record + "\n" + record + "\n", encoding="utf-8")
    (nested / "four.NDJSON").write_text(record, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not an event", encoding="utf-8")
    hidden = tmp_path / ".cache"
    hidden.mkdir()
    (hidden / "five.json").write_text("{broken", encoding="utf-8")

    # WHEN the directory is evaluated
    status, out, _ = run(capsys, "evaluate", str(tmp_path))

    # THEN exactly the event files are read, in sorted order
    names = [Path(r["file"]).name for r in lines(out)]
    assert names == ["four.NDJSON", "three.jsonl", "three.jsonl", "two.json.gz", "one.json"]
    assert status == 0


# ---------------------------------------------------------------------------------------------
# Options and usage errors


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--bogus", "x.json"],
        ["evaluate"],
        ["evaluate", "--format", "xml", "x.json"],
        ["frobnicate"],
        [],
    ],
    ids=["unknown-option", "no-path", "bad-format", "unknown-command", "no-command"],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a malformed command line
    # WHEN it is run
    status, out, err = run(capsys, *argv)

    # THEN exit 2, a usage message on stderr, nothing on stdout, no traceback
    assert status == 2
    assert out == ""
    assert "usage: secretwatch" in err
    assert "secretwatch: error: " in err
    assert "Traceback" not in err


def test_bad_rules_file_exits_2_before_any_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rules file with an unknown operator
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {id: x, description: d, runbook: r, severity: low, events: ['*'],\n"
        "     when: {key: event.name, op: equals, value: x}}\n",
        encoding="utf-8",
    )

    # WHEN evaluate is run with it
    status, out, err = run(capsys, "evaluate", "--rules", str(rules), str(EVENTS))

    # THEN exit 2 with a one-line message naming the file and the operator; nothing evaluated
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        f"secretwatch: {rules}: rules[0] (x): when.op: unknown operator 'equals' (did you mean 'eq'?); "
        "known: eq, ne, in, not_in, glob, regex, contains, exists, prefix, suffix, gt, ge, lt, le"
    ]


def test_missing_rules_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a --rules path that does not exist
    # WHEN evaluate is run
    status, _, err = run(capsys, "evaluate", "--rules", str(tmp_path / "none.yaml"), str(EVENTS))

    # THEN exit 2 with a clear message
    assert status == 2
    assert "cannot read the rule file" in err


def test_custom_rules_file_replaces_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rules file with one rule on GetSecretValue by alice
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n"
        "  - id: alice-reads\n"
        "    description: Alice read a secret.\n"
        "    runbook: Ask Alice.\n"
        "    severity: info\n"
        "    events: [GetSecretValue]\n"
        "    when: {key: caller.user_name, op: eq, value: alice}\n",
        encoding="utf-8",
    )
    path = write_json(tmp_path / "e.json", build_raw())

    # WHEN evaluate runs with it
    status, out, _ = run(capsys, "evaluate", "--rules", str(rules), str(path))

    # THEN only the custom rule fires
    (line,) = lines(out)
    assert line["findings"] == [{"rule": "alice-reads", "severity": "info"}]
    assert status == 0


def test_rule_error_is_reported_on_stderr_and_other_findings_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule set where one rule's predicate raises
    from shared.rules.predicates import PREDICATES

    def explode(record: Any, enrichment: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setitem(PREDICATES, "cli-explodes", explode)
    rules = write_json(
        tmp_path / "rules.json",
        {
            "rules": [
                {"id": "broken", "description": "d", "runbook": "r", "severity": "low", "events": ["*"],
                 "when": {"predicate": "cli-explodes"}},
                {"id": "fine", "description": "d", "runbook": "r", "severity": "low", "events": ["*"]},
            ]
        },
    )  # fmt: skip
    path = write_json(tmp_path / "e.json", build_raw())

    # WHEN evaluate runs
    _, out, err = run(capsys, "evaluate", "--rules", str(rules), str(path))

    # THEN the other rule's finding is printed and the broken rule is one stderr line
    (line,) = lines(out)
    assert line["findings"] == [{"rule": "fine", "severity": "low"}]
    assert line["error"] is None
    assert err.splitlines() == [
        f"secretwatch: {path}: record 0: rule broken failed: RuntimeError: boom"
    ]


# ---------------------------------------------------------------------------------------------
# Text format


def test_text_format_shows_a_table_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a log file with a deletion, an ordinary read, an S3 record and a rejected record,
    # and a missing file (short relative paths, so the FILE#REC column is not cut)
    monkeypatch.chdir(tmp_path)
    records = [
        build_raw(eventID="d", eventName="DeleteSecret", requestParameters={"secretId": "prod/db"}),
        build_raw(eventID="g"),
        build_raw(eventID="s", eventSource="s3.amazonaws.com", eventName="GetObject"),
        build_raw(eventID="r", readOnly="true"),
    ]
    path = write_json(Path("trail.json"), {"Records": records})
    missing = Path("missing.json")

    # WHEN it is evaluated as text
    status, out, err = run(capsys, "evaluate", "--format", "text", str(path), str(missing))

    # THEN a table with a header, one row per record/file and a summary line is printed
    rows = out.splitlines()
    assert rows[0].split() == ["SEVERITY", "FILE#REC", "EVENT", "SECRET", "PRINCIPAL", "FINDINGS"]
    assert rows[1].startswith("high")
    assert f"{path}#0" in rows[1]
    assert "secret-deleted (high)" in rows[1]
    assert rows[2].startswith("-")
    assert rows[3].startswith("skipped")
    assert "GetObject" in rows[3]
    assert rows[4].startswith("ERROR")
    assert "readOnly" in rows[4]
    assert rows[5].startswith("ERROR")
    assert rows[-1] == "5 records: 1 findings, 2 rejected, 1 skipped (out of scope)"
    assert status == 1
    assert len(err.splitlines()) == 2


def test_text_format_escapes_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a record whose caller ARN carries a terminal escape sequence
    identity = {"type": "IAMUser", "arn": "arn:aws:iam::1:user/\x1b[31mevil\u2028x"}
    path = write_json(tmp_path / "e.json", build_raw(userIdentity=identity))

    # WHEN it is evaluated as text
    _, out, _ = run(capsys, "evaluate", "--format", "text", str(path))

    # THEN the escape is shown, not sent to the terminal
    assert "\x1b" not in out
    assert "\\x1b[31mevil\\u2028x" in out


def test_output_helpers() -> None:
    # GIVEN text with controls, spaces and a long cell
    # WHEN / THEN safe() makes it visible, cut() shortens with an ellipsis
    assert safe(None) == ""
    assert safe("plain") == "plain"
    assert safe("a\tb\u00a0c\x7f") == "a\\tb c\\x7f"
    assert cut("abcdef", 4) == "abc…"
    assert cut("abc", 4) == "abc"
    assert cut("abc", 0) == "abc"
    assert colour_severity("high", False) == "high"
    assert colour_severity("unknown", True) == "unknown"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_table_colours_severity_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a terminal stream, with and without NO_COLOR
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    coloured, plain = _Tty(), _Tty()

    # WHEN a table is rendered to each
    render_table(["SEV", "X"], [["critical", "a"], ["-", "b"]], stream=coloured, colour_column=0)
    monkeypatch.setenv("NO_COLOR", "1")
    render_table(["SEV", "X"], [["critical", "a"]], stream=plain, colour_column=0)

    # THEN only the terminal without NO_COLOR gets the colour codes, only on severities
    assert "\033[1;31mcritical\033[0m" in coloured.getvalue()
    assert coloured.getvalue().splitlines()[2] == "-         b"
    assert "\033[" not in plain.getvalue()


# ---------------------------------------------------------------------------------------------
# Robustness: no traceback, ever


def test_internal_error_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bug somewhere inside the command
    def broken(paths: list[str], ruleset: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(cli.evaluate, "evaluate_paths", broken)
    monkeypatch.delenv("SECRETWATCH_DEBUG", raising=False)

    # WHEN evaluate runs
    status, _, err = run(capsys, "evaluate", str(EVENTS))

    # THEN one line says so, exit 1, no traceback
    assert status == 1
    assert err.splitlines() == [
        "secretwatch: internal error: RuntimeError: unexpected (set SECRETWATCH_DEBUG=1 for details)"
    ]


def test_debug_setting_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN SECRETWATCH_DEBUG and a bug inside the command
    def broken(paths: list[str], ruleset: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(cli.evaluate, "evaluate_paths", broken)
    monkeypatch.setenv("SECRETWATCH_DEBUG", "1")

    # WHEN / THEN the traceback is shown on request
    _, _, err = run(capsys, "evaluate", str(EVENTS))
    assert "Traceback" in err


@pytest.mark.parametrize(
    ("exception", "status", "message"),
    [
        (KeyboardInterrupt(), 130, "secretwatch: interrupted"),
        (InputError("cannot go on"), 1, "secretwatch: cannot go on"),
    ],
)
def test_interrupt_and_secretwatch_errors_are_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    status: int,
    message: str,
) -> None:
    # GIVEN the command interrupted, or failing with one of secretwatch's own errors
    def broken(paths: list[str], ruleset: Any) -> Any:
        raise exception

    monkeypatch.setattr(cli.evaluate, "evaluate_paths", broken)

    # WHEN / THEN it exits with its status and one line
    actual, _, err = run(capsys, "evaluate", str(EVENTS))
    assert actual == status
    assert err.splitlines() == [message]


def test_record_with_time_out_of_range_does_not_stop_the_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a record whose eventTime overflows when converted to UTC, and a good file after it
    bad = write_json(tmp_path / "a-bad.json", build_raw(eventTime="9999-12-31T23:59:59-01:00"))
    good = write_json(tmp_path / "b-good.json", build_raw(eventID="g"))

    # WHEN both are evaluated
    status, out, err = run(capsys, "evaluate", str(bad), str(good))

    # THEN the bad record is an error line naming eventTime and the good file is still evaluated
    results = lines(out)
    assert [r["file"] for r in results] == [str(bad), str(good)]
    assert "eventTime" in results[0]["error"]
    assert results[1]["error"] is None
    assert status == 1
    assert "internal error" not in err


def test_stderr_error_stays_on_one_line_for_hostile_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file whose unrecognised top-level key holds a newline and a terminal escape
    path = write_json(tmp_path / "odd.json", {"line\nbreak\x1b[2J": 1})

    # WHEN it is evaluated
    status, out, err = run(capsys, "evaluate", str(path))

    # THEN the error is one stderr line with no raw control characters
    assert status == 1
    assert len(lines(out)) == 1
    assert len(err.splitlines()) == 1
    assert "\x1b" not in err


def test_installed_command_never_prints_a_traceback(tmp_path: Path) -> None:
    # GIVEN a good file, a truncated gzip file, a non-JSON file and a missing path
    good = write_json(tmp_path / "good.json", build_raw(eventID="ok"))
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps(build_raw()).encode())[:20])
    text = tmp_path / "text.json"
    text.write_bytes(b"\x00\xff not json")
    missing = tmp_path / "missing.json"

    # WHEN the real command runs in a separate process
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "evaluate",
            str(good),
            str(truncated),
            str(text),
            str(missing),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    # THEN exit 1, one stdout line per input, one stderr line per error, no traceback
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    results = lines(completed.stdout)
    assert [r["error"] is None for r in results] == [True, False, False, False]
    assert len(completed.stderr.splitlines()) == 3


def test_closed_pipe_is_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a reader that went away (`secretwatch evaluate ... | head`), on a stdout we own
    def broken(paths: list[str], ruleset: Any) -> Any:
        raise BrokenPipeError

    monkeypatch.setattr(cli.evaluate, "evaluate_paths", broken)
    with (tmp_path / "stdout").open("w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)

        # WHEN evaluate runs
        status = main(["evaluate", str(EVENTS)])

    # THEN it exits 0 quietly
    assert status == 0
    assert capsys.readouterr().err == ""


def test_run_exits_with_the_status_of_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the console-script entry point and a command line in sys.argv
    from cli.main import run as entry_point

    monkeypatch.setattr(sys, "argv", ["secretwatch", "evaluate", "--bogus"])

    # WHEN / THEN it exits with main's status
    with pytest.raises(SystemExit) as caught:
        entry_point()
    assert caught.value.code == 2
    assert "secretwatch: error: " in capsys.readouterr().err
