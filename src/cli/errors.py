"""The command line's exit statuses and the one rule that maps an error to a status and a line.

    0  success
    1  a failure at run time: a record was rejected, AWS refused or found nothing, no
       credentials, an endpoint could not be reached
    2  a usage or configuration problem the user fixes with options or the environment: a bad
       option or argument, an invalid rule file, no Region, an unknown profile, no table or stack

This module imports nothing from the subcommands (they import it), so there is no cycle.
"""

from __future__ import annotations

from shared.errors import ConfigError, RuleConfigError, SecretwatchError
from shared.text import escape

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(SecretwatchError):
    """A bad option or argument, or a setting the user must supply: exit status 2."""


def exit_status(exc: SecretwatchError) -> int:
    """The status an error ends the command with, by the policy above."""
    if isinstance(exc, UsageError | RuleConfigError | ConfigError):
        return EXIT_USAGE
    return EXIT_FAILURE


def error_line(exc: SecretwatchError) -> str:
    """The one stderr line for an error (without its newline); caller text escaped."""
    if isinstance(exc, UsageError):
        return f"secretwatch: error: {escape(exc)}"
    return f"secretwatch: {escape(exc)}"
