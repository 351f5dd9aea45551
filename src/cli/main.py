"""The ``secretwatch`` command: one entry point, subcommands in their own modules.

Only the module of the subcommand being run is imported: ``secretwatch evaluate`` and
``secretwatch rules`` never load boto3. The top-level ``--help`` lists the commands from the
static table below. Exit statuses follow ``cli.errors``: 0 success, 1 something was rejected or
failed, 2 a usage or configuration problem. No traceback ever reaches the user (set
SECRETWATCH_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, UsageError, error_line, exit_status
from shared.errors import SecretwatchError
from shared.text import escape

# name → (module, one line of help). Each module's register() adds its parser with the same
# help (a test holds them together).
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("cli.evaluate", "evaluate event files against the rules, offline"),
    "rules": ("cli.rules_cmd", "list, test, push, pull, roll back the rules"),
    "demo": ("cli.demo", "run the whole pipeline locally against a moto server (no AWS account)"),
    "audit": (
        "cli.audit_cmd",
        "search the audit table: by secret, principal, rule, severity, event, time",
    ),
    "replay": (
        "cli.replay",
        "backfill the audit table from CloudTrail log files (local or S3)",
    ),
    "selftest": (
        "cli.selftest",
        "prove a deployment end to end: event in, audit record, alert published",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand argv names: its first word that is not an option (the top level takes no
    option with a value, so that word is the command)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def version() -> str:
    """The installed distribution's version (an uninstalled source tree says so)."""
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415 — only for --version
    from importlib.metadata import version as installed  # noqa: PLC0415

    try:
        return installed("secretwatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``: reads the package metadata only when asked (it costs ~20 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        print(f"secretwatch {version()} (Python {sys.version.split()[0]})")
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the chosen subcommand in full, the others by name and help only.

    Without ``argv`` every subcommand is loaded (for tests and tools that inspect the parser).
    """
    parser = _Parser(
        prog="secretwatch",
        description="Alerting and audit for AWS Secrets Manager: who did what to which secret.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  secretwatch demo --keep                    the whole pipeline on this machine\n"
            "  secretwatch evaluate events/eventbridge/   rules over event files, offline\n"
            "  secretwatch selftest --stack secretwatch   prove a deployment end to end\n"
            "  secretwatch audit --stack secretwatch --secret prod/db   who touched it\n"
            "\nsecretwatch COMMAND --help: a command's options and examples."
        ),
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands: Any = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    wanted = set(COMMANDS) if argv is None else {selected_command(argv)}
    for name, (module_name, help_text) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(module_name).register(commands)
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    _add_run_options(parser, top=True)
    return parser


def _add_run_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--quiet`` and ``--no-color`` on every command and action, before or after the command
    word (SUPPRESS: a later parser's copy never undoes an earlier one)."""
    default = False if top else argparse.SUPPRESS
    if any(action.dest == "help" for action in parser._actions):  # the placeholders have none
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=default,
            help="leave out notes and progress (errors and results are always printed)",
        )
        parser.add_argument(
            "--no-color",
            action="store_true",
            default=default,
            help="no colour (as NO_COLOR=1 does)",
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_run_options(child)


def _apply_run_options(args: argparse.Namespace) -> None:
    from cli.output import set_quiet  # noqa: PLC0415 — output loads nothing heavy, but only here

    set_quiet(bool(getattr(args, "quiet", False)))
    if getattr(args, "no_color", False):
        os.environ["NO_COLOR"] = "1"  # the one colour switch every printer reads


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(arguments).parse_args(arguments)
        _apply_run_options(args)
        status: int = args.handler(args)
        return status
    except SecretwatchError as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print("secretwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 — the last line of defence against tracebacks
        if type(exc).__module__.startswith("botocore."):
            # An AWS error no command translated: botocore is loaded already, so the layer
            # costs nothing here, and the one exit policy holds even so.
            from cli.aws import translate  # noqa: PLC0415 — never load boto3 for other commands

            failure = translate(exc)
            print(error_line(failure), file=sys.stderr)
            return exit_status(failure)
        if os.environ.get("SECRETWATCH_DEBUG"):
            traceback.print_exc()
        print(
            f"secretwatch: internal error: {type(exc).__name__}: {escape(exc)} "
            "(set SECRETWATCH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
