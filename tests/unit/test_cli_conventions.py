"""One set of command-line conventions, as the AWS CLI has them: --version, --output on every
command that prints records (any case; --format stays an alias), - for standard input, each
error once, --quiet and --no-color, and an example in every command's help."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import build_parser, main
from tests.conftest import build_raw

Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def deletion(tmp_path: Path) -> Path:
    path = tmp_path / "deletion.json"
    path.write_text(json.dumps(build_raw(eventName="DeleteSecret", readOnly=False)))
    return path


@pytest.fixture
def colour_env() -> Iterator[None]:
    saved = os.environ.get("NO_COLOR")
    os.environ.pop("NO_COLOR", None)
    yield
    if saved is None:
        os.environ.pop("NO_COLOR", None)
    else:
        os.environ["NO_COLOR"] = saved


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN --version is asked THEN the version line, exit 0, nothing on stderr
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0
    assert out.startswith("secretwatch 0.1.0 (Python 3.")
    assert err == ""


@pytest.mark.parametrize("spelling", ["--output", "--format"])
@pytest.mark.parametrize("value", ["json", "JSON", "Json"])
def test_output_is_the_option_and_its_value_any_case(
    capsys: pytest.CaptureFixture[str], deletion: Path, spelling: str, value: str
) -> None:
    status, out, _ = run(capsys, "evaluate", spelling, value, str(deletion))
    assert status == 0
    assert json.loads(out)["event_name"] == "DeleteSecret"


def test_evaluate_writes_csv_with_a_header(
    capsys: pytest.CaptureFixture[str], deletion: Path
) -> None:
    status, out, _ = run(capsys, "evaluate", "--output", "csv", str(deletion))
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    assert rows[0]["event_name"] == "DeleteSecret"
    assert rows[0]["findings"] == "secret-deleted:high"


def test_evaluate_dash_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two records as JSON Lines on standard input
    data = "\n".join(json.dumps(build_raw(eventName=n)) for n in ("DeleteSecret", "RestoreSecret"))

    class Stdin:
        buffer = io.BytesIO(data.encode())

    monkeypatch.setattr("sys.stdin", Stdin)
    # WHEN `evaluate -` runs
    status, out, _ = run(capsys, "evaluate", "-")
    # THEN each record is named after standard input
    results = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [(r["file"], r["event_name"]) for r in results] == [
        ("<stdin>", "DeleteSecret"),
        ("<stdin>", "RestoreSecret"),
    ]


def test_an_error_is_printed_once_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN stdout and stderr on the same terminal, and an unreadable file
    monkeypatch.setattr("cli.evaluate.is_terminal", lambda stream: True)
    missing = tmp_path / "missing.json"
    # WHEN evaluated
    status, out, err = run(capsys, "evaluate", str(missing))
    # THEN the error is on its stdout line only, not a second time on stderr
    assert status == 1
    assert "cannot read the file" in out
    assert err == ""


def test_an_error_goes_to_stderr_too_when_stdout_is_piped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "evaluate", str(tmp_path / "missing.json"))
    assert status == 1
    assert "cannot read the file" in out
    assert err.count("cannot read the file") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_no_color_turns_colour_off_for_the_run(
    capsys: pytest.CaptureFixture[str], deletion: Path, where: str
) -> None:
    from cli.output import use_colour

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    saved = os.environ.pop("NO_COLOR", None)
    try:
        assert use_colour(Tty())  # a terminal is coloured by default
        argv = ["evaluate", str(deletion)]
        argv = ["--no-color", *argv] if where == "before" else [*argv, "--no-color"]
        assert main(argv) == 0
        assert not use_colour(Tty())
    finally:
        os.environ.pop("NO_COLOR", None)
        if saved is not None:
            os.environ["NO_COLOR"] = saved
    capsys.readouterr()


def test_quiet_leaves_out_notes_never_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from cli import output

    try:
        assert main(["--quiet", "evaluate", "/nonexistent/x.json"]) == 1
        output.note("a note")
        _, err = capsys.readouterr()
        assert "cannot read the file" in err
        assert "a note" not in err
    finally:
        output.set_quiet(False)


def test_a_yaml_error_in_a_rule_case_is_one_readable_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "cases.yaml").write_text("cases:\n  - name: x\n   event: [\n")
    status, out, err = run(capsys, "rules", "test", str(tmp_path))
    assert status != 0
    text = out + err
    assert "not valid YAML" in text
    assert "\\x0a" not in text
    assert "line 3 column" in text


def _parsers(
    parser: argparse.ArgumentParser, path: str = "secretwatch"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_command_has_an_example_and_no_markup_in_its_help() -> None:
    for path, parser in _parsers(build_parser()):
        if (
            path in {"secretwatch rules", "secretwatch audit"}
            or parser.format_help().count("\n") < 3
        ):
            continue  # groups of actions: their actions carry the examples
        text = parser.format_help()
        assert "example" in text, path
        assert "``" not in text, path


RECORD_COMMANDS = [
    ["evaluate", "x.json"],
    ["audit"],
    ["audit", "show", "ID"],
    ["audit", "timeline", "S"],
    ["rules", "list"],
    ["rules", "history"],
    ["selftest", "--stack", "s"],
]


@pytest.mark.parametrize("argv", RECORD_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_command_that_prints_records_takes_output_json(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--output", "JSON"])
    assert args.format == "json"
