"""Terminal output helpers shared by the commands: aligned tables, safe text, colour."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from shared.text import escape

SEVERITY_COLOURS = {
    "critical": "\033[1;31m",
    "high": "\033[31m",
    "medium": "\033[33m",
    "low": "\033[36m",
    "info": "\033[2m",
}
RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


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
) -> None:
    """Print an aligned table; long cells are cut with an ellipsis; one column may be coloured."""
    stream = stream or sys.stdout
    colour = use_colour(stream)
    limits = list(max_widths or [60] * len(headers))
    cells = [[cut(safe(cell), limits[i]) for i, cell in enumerate(row)] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip(), file=stream)
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            padded = cell.ljust(widths[i])
            if i == colour_column and colour and cell in SEVERITY_COLOURS:
                padded = padded.replace(cell, colour_severity(cell, True), 1)
            parts.append(padded)
        print("  ".join(parts).rstrip(), file=stream)
