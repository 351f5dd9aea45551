"""Terminal output helpers shared by the commands: tables, safe text, colour.

Tables are drawn by rich (``cli.terminal``, loaded only when a table is drawn). On a terminal a
table fits the terminal's width; anywhere else (a pipe, a file, a test) it is plain text, the
same on every machine, as wide as its columns' limits and no wider.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import textwrap
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TextIO

from shared.text import escape

SEVERITY_COLOURS = {
    "critical": "\033[1;31m",
    "high": "\033[31m",
    "medium": "\033[33m",
    "low": "\033[36m",
    "info": "\033[2m",
}
RESET = "\033[0m"
# The same colours as rich styles, for tables: a severity looks alike in a table and a line.
SEVERITY_STYLES = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
DEFAULT_COLUMN_LIMIT = 60
COLUMN_GAP = 2
FALLBACK_WIDTH = 80  # a terminal whose size cannot be read


# --quiet (cli.main): notes and progress displays are left out; errors and results never are.
_quiet = False


def set_quiet(value: bool) -> None:
    global _quiet  # noqa: PLW0603 — one switch for the run, set once by the entry point
    _quiet = value


def is_quiet() -> bool:
    return _quiet


def note(text: str) -> None:
    """An informational line on stderr (``secretwatch: note: ...``), unless --quiet."""
    if not _quiet:
        print(f"secretwatch: note: {text}", file=sys.stderr)


def is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def use_colour(stream: TextIO) -> bool:
    # --no-color sets NO_COLOR for the run (cli.main), so one test covers both.
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def terminal_width(stream: TextIO) -> int:
    """The terminal's columns: $COLUMNS when set (as shells and rich honour it), else the
    terminal's own size."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return FALLBACK_WIDTH


def safe(value: object) -> str:
    """A caller-controlled value for one terminal line: the one escaping policy."""
    return escape(value)


def cut(text: str, width: int) -> str:
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def colour_severity(severity: str, colour: bool) -> str:
    if not colour or severity not in SEVERITY_COLOURS:
        return severity
    return f"{SEVERITY_COLOURS[severity]}{severity}{RESET}"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    max_widths: Sequence[int] | None = None,
    stream: TextIO | None = None,
    colour_column: int | None = None,
    keep_end: Collection[int] = (),
    width: int | None = None,
) -> None:
    """Print an aligned table: one line per row, every value escaped.

    ``max_widths`` caps each column; on a terminal the table also fits the terminal's width
    (or ``width``), the widest columns giving way first. A value too long for its column is cut
    at its end with an ellipsis, except in the ``keep_end`` columns (ARNs, principals, file
    paths), which keep their last segments. The ``colour_column`` shows severities in colour
    when colour is on (a terminal, NO_COLOR unset).
    """
    from cli.terminal import Cell, console_for, table  # noqa: PLC0415 — rich only when drawing

    stream = stream or sys.stdout
    colour = use_colour(stream)
    limits = list(max_widths or [DEFAULT_COLUMN_LIMIT] * len(headers))
    header_cells = [Cell(safe(header), style="bold" if colour else None) for header in headers]
    # A header is never cut: its column is at least as wide as its name.
    limits = [max(limit, cell.width) for limit, cell in zip(limits, header_cells, strict=True)]
    if width is None:
        width = (
            terminal_width(stream)
            if is_terminal(stream)
            else sum(limits) + COLUMN_GAP * (len(limits) - 1)
        )
    grid = table(limits)
    for column, cell in zip(grid.columns, header_cells, strict=True):
        column.header = cell
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = safe(value)
            style = SEVERITY_STYLES.get(text) if colour and i == colour_column else None
            cells.append(Cell(text, keep_end=i in keep_end, style=style))
        grid.add_row(*cells)
    buffer = io.StringIO()
    console_for(buffer, colour=colour, width=max(width, 1)).print(grid)
    for line in buffer.getvalue().splitlines():
        # rich pads the last column; the lines end where their text ends, as they always have.
        print(line.rstrip(), file=stream)


def output_option(
    parser: argparse.ArgumentParser,
    choices: Sequence[str],
    *,
    default: str | None = None,
    help_text: str,
    suppress: bool = False,
) -> None:
    """``--output`` as the AWS CLI spells it, on every command that prints records.

    ``--format`` (the older spelling) stays an alias; the choice is case-insensitive
    (``--output JSON``). The value lands in ``args.format`` for every command alike.
    """
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {"default": default}
    parser.add_argument(
        "--output",
        "--format",
        dest="format",
        type=str.lower,
        choices=tuple(choices),
        metavar="FORMAT",
        help=f"{help_text} ({', '.join(choices)}; any case)",
        **kwargs,
    )


def write_csv(fields: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    """Rows as CSV on stdout, with a header; values as they are (a spreadsheet escapes nothing,
    so a caller-controlled value is escaped by the one policy first)."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({f: safe(row.get(f, "")) for f in fields})


# ---------------------------------------------------------------------------------------------
# Help texts: plain words (no reST markup from docstrings) and an example for every command.

HELP_WIDTH = 88


def describe(text: str) -> str:
    """A command's description for ``--help``: reST backticks removed, prose paragraphs wrapped
    (use with ``argparse.RawDescriptionHelpFormatter``); indented or numbered lines stay as
    they are."""
    plain = text.replace("``", "").replace("`", "").strip()
    paragraphs = []
    for paragraph in plain.split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith((" ", "-")) or line[:2].rstrip(".").isdigit() for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(textwrap.fill(" ".join(lines), HELP_WIDTH))
    return "\n\n".join(paragraphs)


def examples(*lines: str) -> str:
    """The epilog of a command's ``--help``: example command lines, one a line."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
