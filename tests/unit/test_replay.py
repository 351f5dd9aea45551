"""`secretwatch replay` pure parts: path walking, the time filter, errors, progress and summary."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from cli.aws import describe as aws_error
from cli.main import main
from cli.replay import (
    Console,
    LogFile,
    format_findings,
    format_progress,
    format_summary,
    iter_sources,
    parse_s3_url,
    read_file,
    walk_local,
)
from cli.timewindow import in_window, parse_time
from shared.pipeline import Summary
from shared.replay import Totals, is_log_file

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def touch(path: Path, data: bytes = b"{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def client_error(code: str, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, operation)


# --- path walking --------------------------------------------------------------------------------


def test_walk_keeps_log_files_sorted_and_skips_digests_hidden_and_other_files(
    tmp_path: Path,
) -> None:
    # GIVEN the S3 delivery layout with a digest folder, a hidden folder and stray files
    trail = tmp_path / "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11"
    wanted = [
        touch(trail / "01/a.json.gz"),
        touch(trail / "01/b.json"),
        touch(trail / "02/a.JSON.GZ"),
    ]
    touch(tmp_path / "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/11/01/d.json.gz")
    touch(trail / "01/notes.txt")
    touch(trail / "01/a.json.gz.sig")
    touch(tmp_path / ".cache/c.json")
    # WHEN the folder is walked
    found = walk_local(tmp_path)
    # THEN only the log files, in path order
    assert found == wanted


def test_a_file_named_explicitly_is_read_whatever_its_name(tmp_path: Path) -> None:
    # GIVEN a file that a folder walk would skip
    path = touch(tmp_path / "export.txt")
    # WHEN it is named
    # THEN it is taken as given
    assert walk_local(path) == [path]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("AWSLogs/1/CloudTrail/eu-west-1/2026/11/01/f.json.gz", True),
        ("AWSLogs/1/CloudTrail/eu-west-1/2026/11/01/f.json", True),
        ("AWSLogs/1/CloudTrail-Digest/eu-west-1/2026/11/01/f.json.gz", False),
        ("AWSLogs/1/CloudTrail/eu-west-1/2026/11/01/f.csv", False),
        ("AWSLogs/1/CloudTrail/eu-west-1/2026/11/01/", False),
        ("", False),
    ],
)
def test_is_log_file_by_s3_key(key: str, expected: bool) -> None:
    # GIVEN an S3 key / WHEN it is split into parts / THEN it is a log file or not
    assert is_log_file(key.split("/") if key else []) is expected


def test_local_sources_are_counted_up_front_and_a_missing_path_is_one_error(tmp_path: Path) -> None:
    # GIVEN a folder with two log files and a path that does not exist
    touch(tmp_path / "a/1.json")
    touch(tmp_path / "a/2.json.gz")
    # WHEN the sources are expanded
    files, known = iter_sources([str(tmp_path / "a"), str(tmp_path / "missing")], s3=_no_s3)
    entries = list(files)
    # THEN the total is known (2 files + the missing one) and the missing path is reported
    assert known == 3
    assert [getattr(e, "name", None) for e in entries][:2] == [
        str(tmp_path / "a/1.json"),
        str(tmp_path / "a/2.json.gz"),
    ]
    assert getattr(entries[2], "message", None) == "no such file or directory"


def test_an_s3_source_makes_the_total_unknown() -> None:
    # GIVEN an S3 source (listed lazily)
    # WHEN the sources are expanded without consuming them
    _, known = iter_sources(["s3://bucket/AWSLogs/"], s3=_no_s3)
    # THEN the total is unknown: the progress line shows "?"
    assert known is None


def _no_s3() -> Any:
    raise AssertionError("no S3 client is needed")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://trail/AWSLogs/", ("trail", "AWSLogs/")),
        ("s3://trail", ("trail", "")),
        ("s3://trail/", ("trail", "")),
    ],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


def test_an_s3_url_without_bucket_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN a replay of "s3://" / THEN exit 2 naming the URL
    assert main(["replay", "s3://", "--dry-run"]) == 2
    assert "not an S3 URL" in capsys.readouterr().err


# --- time filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T09:30:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T10:30:00+01:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_relative_dates_and_iso(text: str, expected: datetime) -> None:
    # GIVEN a time as typed / WHEN it is parsed / THEN it is that instant, in UTC
    parsed = parse_time(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["yesterday", "", "7 days", "2026-13-01", "-1d"])
def test_parse_time_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read time"):
        parse_time(text, NOW)


def test_window_edges_are_inclusive_at_both_ends() -> None:
    # GIVEN the window of 1 November as the commands read "--since 2026-11-01 --until 2026-11-01"
    since = parse_time("2026-11-01", NOW)
    until = parse_time("2026-11-01", NOW, end_of_day=True)
    second = timedelta(seconds=1)
    # WHEN events at and around the edges are tested
    # THEN both edges are in, one second outside either is out
    assert in_window(since, since, until)
    assert in_window(until, since, until)
    assert not in_window(since - second, since, until)
    assert not in_window(until + second, since, until)
    assert in_window(since, None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no audit table"),
        (["--table", "t", "--since", "yesterday"], "cannot read time"),
        (
            ["--table", "t", "--since", "2026-11-02", "--until", "2026-11-01"],
            "--since must not be later than --until",
        ),
        (
            ["--table", "t", "--topic-arn", "arn:aws:sns:eu-west-1:1:t"],
            "--topic-arn needs --notify",
        ),
        (["--table", "t", "--notify"], "--notify needs --topic-arn"),
        (["--table", "t", "--stack", "s"], "not allowed with argument"),
        (
            ["--dry-run", "--notify", "--topic-arn", "arn:aws:sns:eu-west-1:1:t"],
            "cannot be combined",
        ),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    # GIVEN no SECRETWATCH_TABLE in the environment
    monkeypatch.delenv("SECRETWATCH_TABLE", raising=False)
    # WHEN the options are wrong
    status = main(["replay", str(tmp_path), "--region", "eu-west-1", *extra])
    err = capsys.readouterr().err
    # THEN exit 2 with the reason, no traceback
    assert status == 2
    assert message in err
    assert "Traceback" not in err


# --- per-file errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("AccessDenied"), "cannot read the object: access denied (AccessDenied)"),
        (
            client_error("NoSuchKey"),
            "cannot read the object: the object does not exist (NoSuchKey)",
        ),
        (NoCredentialsError(), "cannot read the object: no AWS credentials: "),
        (PermissionError(13, "Permission denied"), "cannot read the file: Permission denied"),
    ],
)
def test_an_unreadable_file_is_one_line_and_counted(error: Exception, expected: str) -> None:
    # GIVEN a file whose read fails
    def fail() -> bytes:
        raise error

    err = io.StringIO()
    totals = Totals()
    # WHEN it is read
    items = read_file(
        LogFile("s3://trail/k.json.gz", fail), totals, Console(err, progress=False, started=0.0)
    )
    # THEN nothing comes back, one line names the file and the reason, the failure is counted
    assert items is None
    assert err.getvalue().startswith(f"secretwatch: s3://trail/k.json.gz: {expected}")
    assert err.getvalue().count("\n") == 1
    assert (totals.files_failed, totals.files_read, totals.failed) == (1, 0, True)


def test_aws_errors_by_code() -> None:
    # GIVEN AWS errors / WHEN they are described / THEN by their code, never their message
    not_found = aws_error(client_error("ResourceNotFoundException"))
    assert not_found == "not found (ResourceNotFoundException)"
    no_bucket = aws_error(client_error("NoSuchBucket"))
    assert no_bucket == "the bucket does not exist (NoSuchBucket)"
    assert (
        aws_error(client_error("AccessDeniedException")) == "access denied (AccessDeniedException)"
    )
    assert (
        aws_error(client_error("ExpiredToken"))
        == "the AWS credentials are not valid (ExpiredToken)"
    )
    assert aws_error(client_error("Throttling")) == "Throttling"


# --- progress and summary ------------------------------------------------------------------------


def test_summary_lists_every_count_and_the_findings_by_severity() -> None:
    # GIVEN the totals of a run
    totals = Totals(
        files_total=50,
        files_read=49,
        files_failed=1,
        records=100_000,
        sm_records=99_000,
        other_sources=900,
        outside_window=100,
        summary=Summary(
            by_severity=Counter({"medium": 3, "critical": 1, "high": 20}),
            written=99_001,
            duplicates=0,
            rejected=1,
        ),
        elapsed=40.0,
    )
    # WHEN it is formatted
    text = format_summary(totals, dry_run=False, notify=False)
    # THEN one aligned line per figure, severities from the most severe
    assert text.splitlines() == [
        "replay summary",
        "  files read               49",
        "  files failed             1",
        "  records                  100,000",
        "  Secrets Manager          99,000",
        "  other sources            900 (skipped)",
        "  outside --since/--until  100 (skipped)",
        "  findings                 24 (critical 1, high 20, medium 3)",
        "  written                  99,001",
        "  duplicates               0 (already in the table)",
        "  alerts published         0 (without --notify alerts are recorded as suppressed)",
        "  rejected                 1",
        "  elapsed                  40.0 s (2,500 records/s)",
    ]
    assert totals.failed


def test_dry_run_summary_says_nothing_was_written() -> None:
    # GIVEN a clean dry run
    totals = Totals(files_read=1, records=2, sm_records=2, elapsed=0.0)
    # WHEN it is formatted
    text = format_summary(totals, dry_run=True, notify=False)
    # THEN it says so, has no duplicates or alerts lines, and a zero rate rather than a crash
    assert text.splitlines()[0] == "replay summary (dry run: nothing written)"
    assert "  written          0 (--dry-run)" in text
    assert "duplicates" not in text
    assert "alerts" not in text
    assert "(0 records/s)" in text
    assert not totals.failed


def test_findings_with_none_is_zero() -> None:
    assert format_findings(Counter()) == "0"


def test_progress_line_shows_unknown_totals_as_a_question_mark() -> None:
    # GIVEN an S3 replay partway through
    totals = Totals(
        files_total=None,
        files_read=3,
        files_failed=1,
        records=6_000,
        summary=Summary(by_severity=Counter({"high": 2}), rejected=1),
    )
    # WHEN the progress line is formatted after 2 seconds
    # THEN files done/?, records, findings, rejected and the rate
    assert format_progress(totals, 2.0) == (
        "replay: 4/? files, 6,000 records, 2 findings, 1 rejected, 3,000 records/s"
    )


def test_progress_is_a_live_display_that_problem_lines_scroll_above(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a console on a terminal 100 columns wide
    monkeypatch.setenv("COLUMNS", "100")
    err = io.StringIO()
    console = Console(err, progress=True, started=0.0)
    # WHEN progress is drawn, updated, a problem is reported, and the run ends
    console.update(Totals(files_total=2, files_read=1, records=10))
    console.update(Totals(files_total=2, files_read=2, records=20))
    console.problem("f.json", "not valid JSON")
    console.clear()
    text = err.getvalue()
    # THEN the display shows the figures, the problem is one whole line of its own (the display
    # erased before it and drawn again below it), and the display is erased at the end
    assert "replay: 1/2 files, 10 records" in text
    assert "replay: 2/2 files, 20 records" in text
    assert text.count("secretwatch: f.json: not valid JSON\n") == 1
    assert "\x1b[2Ksecretwatch: f.json: not valid JSON\n" in text
    assert text.startswith("\x1b[?25l")  # the cursor hidden while the display is live ...
    assert text.endswith("\x1b[?25h\r\x1b[1A\x1b[2K")  # ... shown again, the display erased
    frames = re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", text)
    assert max(len(frame) for frame in frames) <= 100


def test_progress_fits_a_narrow_terminal_cutting_the_text_not_the_elapsed_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a terminal 60 columns wide and an S3 replay (total unknown)
    monkeypatch.setenv("COLUMNS", "60")
    err = io.StringIO()
    console = Console(err, progress=True, started=0.0)
    # WHEN progress is drawn
    console.update(Totals(files_total=None, files_read=1, records=10))
    console.clear()
    # THEN each frame fits, the elapsed time is whole and the text is cut at its end
    frames = [
        f for f in re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", err.getvalue()) if "replay:" in f
    ]
    assert frames
    for frame in frames:
        assert len(frame) <= 60
        assert "0:00:00 replay: 1/? files" in frame
        assert frame.endswith("…")


def test_no_progress_off_a_terminal() -> None:
    err = io.StringIO()
    console = Console(err, progress=False, started=0.0)
    console.update(Totals(records=1))
    console.clear()
    assert err.getvalue() == ""
