"""Subcommands load on demand: `evaluate` and `rules` never import boto3 or botocore.

Each case runs the real entry point in a fresh interpreter and reports which modules were
imported by the time the command finished (what `python -X importtime` would list).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.main import COMMANDS, build_parser
from tests.conftest import build_raw

ROOT = Path(__file__).resolve().parents[2]
AWS_PACKAGES = ("boto3", "botocore", "s3transfer", "moto")
COMMAND_MODULES = {module for module, _ in COMMANDS.values()} | {"cli.aws", "cli.local_stack"}

# Runs `secretwatch ARGS` and prints, on the last line of stderr, the modules loaded by then.
WRAPPER = """
import json, sys
from cli.main import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:  # --help
    status = exit.code
print(json.dumps({"status": status, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded(*argv: str) -> tuple[int, set[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    report = json.loads(completed.stderr.splitlines()[-1])
    return int(report["status"]), set(report["modules"])


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(build_raw(eventName="DeleteSecret")), encoding="utf-8")
    return path


@pytest.fixture
def case_dir(tmp_path: Path, event_file: Path) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir()
    case = {"name": "deleted", "event": str(event_file), "must_fire": ["secret-deleted"]}
    (cases / "deleted.json").write_text(json.dumps(case), encoding="utf-8")
    return cases


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["evaluate", "--help"], "cli.evaluate"),
        (["evaluate", "{event}"], "cli.evaluate"),
        (["evaluate", "--format", "text", "{event}"], "cli.evaluate"),
        (["rules", "list"], "cli.rules_cmd"),
        (["rules", "list", "--format", "json"], "cli.rules_cmd"),
        (["rules", "test", "{cases}"], "cli.rules_cmd"),
        (["--help"], None),
    ],
)
def test_offline_commands_never_import_aws_libraries(
    argv: list[str], module: str | None, event_file: Path, case_dir: Path
) -> None:
    # GIVEN an offline command line
    args = [a.format(event=event_file, cases=case_dir) for a in argv]
    # WHEN it runs in a fresh interpreter
    status, modules = loaded(*args)
    # THEN it succeeded without loading boto3, botocore or moto, and of the command modules only
    # its own
    assert status == 0
    assert top_level(modules).isdisjoint(AWS_PACKAGES)
    assert modules & COMMAND_MODULES == ({module} if module else set())


def test_json_output_does_not_load_rich(event_file: Path) -> None:
    # GIVEN / WHEN evaluate prints JSON lines (its default)
    status, modules = loaded("evaluate", str(event_file))
    # THEN rich (a tenth of a second to import) was not loaded; a table loads it
    assert status == 0
    assert "rich" not in top_level(modules)
    _, with_table = loaded("evaluate", "--format", "text", str(event_file))
    assert "rich" in top_level(with_table)


def test_an_aws_command_loads_its_module_and_the_aws_layer() -> None:
    # GIVEN / WHEN `audit --help` runs: the control for the tests above (they could fail)
    status, modules = loaded("audit", "--help")
    # THEN the AWS libraries and the layer are there, and no other command's module
    assert status == 0
    assert {"boto3", "botocore"} <= top_level(modules)
    assert modules & COMMAND_MODULES == {"cli.audit_cmd", "cli.aws"}


def test_the_static_command_table_matches_what_each_command_registers() -> None:
    # GIVEN the full parser (every command loaded)
    parser = build_parser()
    subparsers: Any = next(a for a in parser._actions if a.dest == "command")
    # WHEN / THEN the top-level help of each command is the table's
    registered = {action.dest: action.help for action in subparsers._choices_actions}
    assert registered == {name: help_text for name, (_, help_text) in COMMANDS.items()}


def test_top_level_help_lists_every_command_without_loading_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the parser for `secretwatch --help`
    parser = build_parser(["--help"])
    # WHEN its help is printed
    parser.print_help()
    words = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    # THEN every command and its one-line help is listed
    for name, (_, help_text) in COMMANDS.items():
        assert f"{name} {help_text}" in words


def test_the_lambda_functions_never_load_rich_or_the_command_line() -> None:
    # GIVEN the two handlers (rich is not in src/requirements.txt: the functions do not ship it)
    code = (
        "import json, sys, handlers.eventbridge, handlers.log_subscription; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    # WHEN they are imported in a fresh interpreter
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT / "src",
        timeout=120,
        check=True,
    )
    # THEN neither rich nor any of the command line's modules was loaded
    assert top_level(set(json.loads(completed.stdout))).isdisjoint({"rich", "cli"})
