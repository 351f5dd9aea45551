"""Tables drawn with rich: they fit the terminal, cut values where they say the least, print
caller text literally, and stay plain and whole off a terminal."""

from __future__ import annotations

import io
import re

import pytest

from cli.output import SEVERITY_COLOURS, SEVERITY_STYLES, colour_severity, render_table
from cli.terminal import keep_end

SSO = (
    "arn:aws:sts::111122223333:assumed-role/"
    "AWSReservedSSO_AdministratorAccess_0123456789abcdef/carol@example.com"
)
PATH = "events/eventbridge/secret-deleted.json#0"


def visible(text: str) -> list[str]:
    """The lines as a terminal shows them: without the colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()


class Tty(io.StringIO):
    """A terminal, as far as the table can tell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def rows_of(rows: int = 5) -> list[list[str]]:
    return [
        ["high", f"prod/payments/db-password-{n}", SSO, "x" * 150, PATH, "DeleteSecret"]
        for n in range(rows)
    ]


HEADERS = ["SEVERITY", "SECRET", "PRINCIPAL", "DETAIL", "FILE#REC", "EVENT"]
LIMITS = [8, 40, 60, 120, 60, 28]


@pytest.mark.parametrize("width", [60, 80, 120, 200, 250])
def test_a_table_on_a_terminal_fits_its_width(width: int) -> None:
    # GIVEN a colour terminal of a given width
    stream = Tty()
    # WHEN a wide table is drawn
    render_table(
        HEADERS,
        rows_of(),
        max_widths=LIMITS,
        stream=stream,
        keep_end=(2, 4),
        width=width,
        colour_column=0,
    )
    # THEN every line fits, and the header and each row keep one line each
    lines = visible(stream.getvalue())
    assert len(lines) == 6
    assert max(len(line) for line in lines) <= width
    assert lines[0].startswith("SEVERITY")


def test_a_narrow_terminal_shrinks_the_widest_columns_first() -> None:
    # GIVEN a terminal 160 columns wide
    stream = Tty()
    # WHEN the table is drawn
    render_table(HEADERS, rows_of(1), max_widths=LIMITS, stream=stream, keep_end=(2, 4), width=160)
    row = visible(stream.getvalue())[1]
    # THEN the short columns are whole and the long DETAIL column gave way
    assert row.startswith("high      prod/payments/db-password-0  ")
    assert row.endswith("  DeleteSecret")
    assert "x" * 20 in row
    assert "x" * 120 not in row


def test_an_sso_principal_keeps_the_user_and_a_path_its_file_name() -> None:
    # GIVEN a principal column and a file column too narrow for their values
    stream = Tty()
    # WHEN drawn
    render_table(
        ["PRINCIPAL", "FILE#REC", "SECRET"],
        [[SSO, PATH, "prod/payments/a-very-long-secret-name-indeed"]],
        max_widths=[30, 35, 20],
        stream=stream,
        keep_end=(0, 1),
        width=200,
    )
    row = visible(stream.getvalue())[1]
    # THEN the principal shows the user, the path its last folders and file name, and another
    # column is cut at its end
    assert row.split() == [
        "…/carol@example.com",
        "…/eventbridge/secret-deleted.json#0",
        "prod/payments/a-ver…",
    ]
    assert "AWSReserve" not in row


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        (SSO, 30, "…/carol@example.com"),
        (SSO, 80, "…/AWSReservedSSO_AdministratorAccess_0123456789abcdef/carol@example.com"),
        (PATH, 25, "…/secret-deleted.json#0"),
        (PATH, 40, PATH),
        (PATH, 34, "…eventbridge/secret-deleted.json#0"),  # the cut falls on a separator
        ("arn:aws:iam::111122223333:user/alice", 20, "…:user/alice"),
        ("arn:aws:iam::111122223333:root", 10, "…:root"),
        ("no-separators-in-this-value", 10, "…his-value"),
        ("a/extremely-long-file-name.json", 12, "…e-name.json"),
        ("short", 10, "short"),
        ("abc", 1, "…"),
        ("abc", 0, ""),
        ("ends-with-a-slash/", 8, "…-slash/"),
    ],
)
def test_keep_end(text: str, width: int, expected: str) -> None:
    # GIVEN a value and a width / WHEN it is cut keeping its end / THEN whole trailing segments
    # when one fits, else the last characters; never wider than the width
    cut = keep_end(text, width)
    assert cut == expected
    assert len(cut) <= max(width, 0)


def test_wide_characters_are_cut_by_the_cells_they_take() -> None:
    # GIVEN a name of double-width characters WHEN cut keeping its end THEN it fits in cells
    cut = keep_end("prod/" + "秘密" * 10, 9)
    assert cut == "…秘密秘密"


def test_markup_in_a_value_prints_literally_and_controls_are_escaped() -> None:
    # GIVEN values that look like rich markup, and one with a terminal escape
    for stream in (io.StringIO(), Tty()):
        # WHEN drawn, off a terminal and on one
        render_table(
            ["SECRET", "WHO"],
            [
                ["[red]x[/red]", "[bold]eve[/]\x1b[2J"],
                ["[link=http://e.invalid]y[/link]", ":smile:"],
            ],
            stream=stream,
        )
        out = stream.getvalue()
        # THEN the text is printed as it is, with the control character shown, not sent
        assert "[red]x[/red]" in out
        assert "[bold]eve[/]\\x1b[2J" in out
        assert "[link=http://e.invalid]y[/link]" in out
        assert ":smile:" in out
        assert "\x1b" not in out.replace("\x1b[1m", "").replace("\x1b[0m", "")


def test_off_a_terminal_the_table_is_plain_and_not_cut_to_80_columns() -> None:
    # GIVEN a pipe (not a terminal) and a table wider than 80 columns
    first, second = io.StringIO(), io.StringIO()
    # WHEN drawn twice
    for stream in (first, second):
        render_table(
            HEADERS, rows_of(2), max_widths=LIMITS, stream=stream, colour_column=0, keep_end=(2, 4)
        )
    lines = first.getvalue().splitlines()
    # THEN the same text both times, no colour, no line ending in spaces, values whole up to
    # their column's limit
    assert first.getvalue() == second.getvalue()
    assert "\x1b" not in first.getvalue()
    assert all(line == line.rstrip() for line in lines)
    assert max(len(line) for line in lines) > 80
    assert lines[1].split() == [
        "high",
        "prod/payments/db-password-0",
        "…/carol@example.com",
        "x" * 119 + "…",
        PATH,
        "DeleteSecret",
    ]


def test_off_a_terminal_columns_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN COLUMNS=40 in the environment and a pipe
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()
    # WHEN a wide table is drawn
    render_table(HEADERS, rows_of(1), max_widths=LIMITS, stream=stream)
    # THEN it is not squeezed to the terminal's width: there is no terminal
    assert max(len(line) for line in stream.getvalue().splitlines()) > 200


def test_columns_sets_the_width_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN COLUMNS=70 and a terminal whose size cannot be read
    monkeypatch.setenv("COLUMNS", "70")
    stream = Tty()
    # WHEN a wide table is drawn THEN it fits 70 columns
    render_table(HEADERS, rows_of(1), max_widths=LIMITS, stream=stream)
    assert max(len(line) for line in visible(stream.getvalue())) <= 70


@pytest.mark.parametrize("severity", sorted(SEVERITY_STYLES))
def test_table_severities_have_the_colours_of_the_lines(severity: str) -> None:
    # GIVEN a colour terminal
    stream = Tty()
    # WHEN a severity is drawn in the colour column
    render_table(["SEV", "X"], [[severity, "a"]], stream=stream, colour_column=0)
    # THEN it has the same escape codes as a severity in a printed line
    assert colour_severity(severity, True) in stream.getvalue()
    assert SEVERITY_COLOURS.keys() == SEVERITY_STYLES.keys()


def test_no_colour_on_a_terminal_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN NO_COLOR on a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Tty()
    # WHEN a severity and a header are drawn THEN nothing is coloured or bold
    render_table(["SEV", "X"], [["critical", "a"]], stream=stream, colour_column=0)
    assert "\x1b" not in stream.getvalue()
    assert stream.getvalue().splitlines() == ["SEV       X", "critical  a"]


def test_an_empty_table_is_its_header() -> None:
    stream = io.StringIO()
    render_table(["A", "B"], [], stream=stream)
    assert stream.getvalue() == "A  B\n"
