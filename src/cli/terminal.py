"""What the command line draws with rich: table cells that fit their column, the consoles, the
replay progress display.

Only ``cli.output.render_table`` and ``cli.replay`` load this module, when something is drawn:
rich takes about a tenth of a second to import, and JSON output never needs it. Every value
arrives already escaped (``shared.text.escape``) and goes into rich as :class:`~rich.text.Text`,
never as markup, so ``[red]x[/red]`` in a secret name prints as it is.
"""

from __future__ import annotations

from typing import TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

ELLIPSIS = "…"
# Where an ARN or a path may be cut so that whole trailing segments remain.
SEGMENT_SEPARATORS = frozenset("/:")
PROGRESS_BAR_WIDTH = 12


def keep_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, keeping its end: ARNs and paths say the most there.

    Whole trailing segments are kept when one fits (``…/carol@example.com``,
    ``…/eventbridge/secret-deleted.json``); else the last characters that fit.
    """
    if cell_len(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return ELLIPSIS[:width]
    budget = width - len(ELLIPSIS)
    used = 0
    start = len(text)
    while start > 0:
        size = cell_len(text[start - 1])
        if used + size > budget:
            break
        start -= 1
        used += size
    tail = text[start:]
    if text[start - 1] in SEGMENT_SEPARATORS:
        return ELLIPSIS + tail  # already whole segments
    # The longest tail that starts at a separator, if it keeps more than the separator itself.
    for index, character in enumerate(tail[:-1]):
        if character in SEGMENT_SEPARATORS:
            return ELLIPSIS + tail[index:]
    return ELLIPSIS + tail


class Cell:
    """One table cell: one line of escaped text that fits the width rich gives its column,
    cut at its end (with an ellipsis) or, for ARNs and paths, at its start."""

    def __init__(self, text: str, *, keep_end: bool = False, style: str | None = None) -> None:
        self.text = text
        self.keep_end = keep_end
        self.style = style
        self.width = cell_len(text)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        # Never wider than the text; as narrow as one cell when the table must shrink.
        return Measurement(min(self.width, 1), self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if self.keep_end:
            text = Text(keep_end(self.text, width), no_wrap=True, end="")
        else:
            text = Text(self.text, no_wrap=True, end="")
            text.truncate(width, overflow="ellipsis")
        if self.style:
            text.stylize(self.style)  # a span over the text only: the column's padding stays plain
        yield text


def console_for(
    stream: TextIO, *, colour: bool, width: int, terminal: bool | None = None
) -> Console:
    """A rich console on ``stream`` that follows our colour policy, not rich's own guesses from
    the environment (FORCE_COLOR, COLUMNS, ...): the caller decides colour and width."""
    return Console(
        file=stream,
        width=width,
        force_terminal=colour if terminal is None else terminal,
        force_interactive=terminal,
        color_system="standard" if colour else None,
        no_color=not colour,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
        legacy_windows=False,
        _environ={},
    )


def table(column_limits: list[int]) -> Table:
    """A borderless table: two spaces between columns, no padding at the edges, one line per
    row; each column at most its limit, the widest shrinking first when the console is
    narrower."""
    grid = Table(
        box=None,
        padding=(0, 1),
        pad_edge=False,
        show_edge=False,
        collapse_padding=False,
        header_style="",  # headers are styled as Cells: the padding between them stays plain
        expand=False,
    )
    for limit in column_limits:
        grid.add_column(max_width=limit, no_wrap=False, overflow="ellipsis")
    return grid


class _DescriptionColumn(ProgressColumn):
    """The caller's text, last on the line and cut at its end when the terminal is narrow:
    the spinner, the bar and the elapsed time keep their place."""

    def render(self, task: Task) -> Cell:
        return Cell(task.description)


class ProgressDisplay:
    """A live progress display on a terminal (spinner, bar, elapsed time, the caller's text),
    erased when it stops; lines printed meanwhile scroll above it."""

    def __init__(self, stream: TextIO, *, colour: bool, width: int, per_second: float) -> None:
        self._stream = stream
        self._progress = Progress(
            SpinnerColumn(),
            BarColumn(bar_width=PROGRESS_BAR_WIDTH),
            TimeElapsedColumn(),
            _DescriptionColumn(),
            console=console_for(stream, colour=colour, width=width, terminal=True),
            transient=True,
            refresh_per_second=per_second,
            redirect_stdout=False,  # the commands write to the streams they were given
            redirect_stderr=False,
        )
        self._task: TaskID | None = None

    def update(self, description: str, *, completed: int, total: int | None) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(description, total=total)
        self._progress.update(self._task, description=description, completed=completed, total=total)

    def line(self, text: str) -> None:
        """One line above the display (or plainly, when it is not shown)."""
        if self._task is None:
            print(text, file=self._stream)
            return
        self._progress.console.print(Text(text, end="\n"), soft_wrap=True)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None
