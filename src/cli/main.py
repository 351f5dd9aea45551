"""The ``secretwatch`` command: one entry point, subcommands in their own modules.

Exit status everywhere: 0 success, 1 something was rejected or failed, 2 usage error.
No traceback ever reaches the user (set SECRETWATCH_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cli.output import safe
from shared.errors import ConfigError, RuleConfigError, SecretwatchError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(SecretwatchError):
    """A bad option or argument: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from cli import audit_cmd, demo, evaluate, replay, rules_cmd  # noqa: PLC0415 — subcommands load on demand

    parser = _Parser(
        prog="secretwatch",
        description="Alerting and audit for AWS Secrets Manager: who did what to which secret.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    evaluate.register(commands)
    rules_cmd.register(commands)
    demo.register(commands)
    audit_cmd.register(commands)
    replay.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        status: int = args.handler(args)
        return status
    except UsageError as exc:
        print(f"secretwatch: error: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (RuleConfigError, ConfigError) as exc:
        print(f"secretwatch: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SecretwatchError as exc:
        print(f"secretwatch: {safe(exc)}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        print("secretwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 — the last line of defence against tracebacks
        if os.environ.get("SECRETWATCH_DEBUG"):
            traceback.print_exc()
        print(
            f"secretwatch: internal error: {type(exc).__name__}: {safe(exc)} "
            "(set SECRETWATCH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_REJECTED


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
