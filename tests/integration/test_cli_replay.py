"""`secretwatch replay` end to end against a moto server: local folders, S3, idempotency, alerts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from tests.conftest import ACCOUNT, build_raw
from tests.integration.conftest import REGION, Server

Run = tuple[int, str, str]
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db/orders-Ab12Cd"
TRAIL = f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/11"
DIGEST = f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/2026/11/01"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def quiet(n: int, when: str = "2026-11-01T10:00:00Z") -> dict[str, Any]:
    """A GetSecretValue: recorded, no finding."""
    return build_raw(eventID=f"00000000-0000-4000-8000-{n:012d}", eventTime=when)


def deleted(n: int, when: str = "2026-11-01T11:00:00Z") -> dict[str, Any]:
    """A DeleteSecret: one high finding (secret-deleted)."""
    return build_raw(
        eventID=f"00000000-0000-4000-9000-{n:012d}",
        eventTime=when,
        eventName="DeleteSecret",
        readOnly=False,
        requestParameters={"secretId": "prod/db/orders", "recoveryWindowInDays": 7},
        responseElements={
            "name": "prod/db/orders",
            "arn": SECRET_ARN,
            "deletionDate": "Nov 8, 2026 11:00:00 AM",
        },
    )


def other(n: int) -> dict[str, Any]:
    """An S3 record: not Secrets Manager, skipped."""
    return build_raw(
        eventID=f"00000000-0000-4000-a000-{n:012d}",
        eventSource="s3.amazonaws.com",
        eventName="GetObject",
    )


def log_file(path: Path, records: list[dict[str, Any]], *, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"Records": records}).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def trail_tree(root: Path) -> Path:
    """Two days of gzipped log files in the S3 layout, a digest folder and a stray file.

    7 Secrets Manager records (2 with a finding) and 2 records of another source.
    """
    name = f"{ACCOUNT}_CloudTrail_{REGION}_20261101T1000Z_abc.json.gz"
    log_file(
        root / TRAIL / "01" / name, [quiet(1), quiet(2), other(1), deleted(1), quiet(3), other(2)]
    )
    log_file(root / TRAIL / "02" / name.replace("1101", "1102"), [quiet(4), deleted(2), quiet(5)])
    digest = root / DIGEST / f"{ACCOUNT}_CloudTrail-Digest_{REGION}_20261101T1000Z.json.gz"
    digest.parent.mkdir(parents=True)
    digest.write_bytes(gzip.compress(b'{"digestStartTime": "x"}'))  # a failure if it were read
    (root / TRAIL / "01" / "notes.txt").write_text("not a log file")
    return root


def summary(out: str) -> dict[str, str]:
    """The summary's `label  value` lines as a dict."""
    rows = {}
    for line in out.splitlines()[1:]:
        label, _, value = line.strip().partition("  ")
        rows[label] = value.strip()
    return rows


def event_items(server: Server) -> list[dict[str, Any]]:
    return [i for i in server.items() if i["kind"]["S"] == "event"]


@pytest.mark.integration
def test_replay_of_gzipped_nested_folders_writes_each_sm_record_once(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN gzipped log files in nested day folders, mixed with S3 records, a digest folder
    root = trail_tree(tmp_path)
    # WHEN they are replayed into the stack's table
    status, out, err = run(
        capsys,
        "replay",
        str(root),
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
        "--region",
        REGION,
    )
    # THEN the 7 Secrets Manager records are written, the others skipped, nothing published
    assert (status, err) == (0, "")
    rows = summary(out)
    assert rows["files read"] == "2"
    assert rows["files failed"] == "0"
    assert rows["records"] == "9"
    assert rows["Secrets Manager"] == "7"
    assert rows["other sources"] == "2 (skipped)"
    assert rows["findings"] == "2 (high 2)"
    assert rows["written"] == "7"
    assert rows["rejected"] == "0"
    items = event_items(server)
    assert len(items) == 7
    assert {i["route"]["S"] for i in items} == {"replay"}
    alerting = [i for i in items if "alerts" in i]
    states = [
        {rule: entry["M"]["state"]["S"] for rule, entry in i["alerts"]["M"].items()}
        for i in alerting
    ]
    assert states == [{"secret-deleted": "suppressed"}] * 2
    assert server.drain() == []


@pytest.mark.integration
def test_replaying_the_same_files_twice_adds_nothing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a tree already replayed once
    root = trail_tree(tmp_path)
    argv = [
        "replay",
        str(root),
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
        "--region",
        REGION,
    ]
    assert run(capsys, *argv)[0] == 0
    before = len(server.items())
    # WHEN it is replayed again
    status, out, _ = run(capsys, *argv)
    # THEN nothing is written: every record is a duplicate, the table is unchanged
    assert status == 0
    rows = summary(out)
    assert rows["written"] == "0"
    assert rows["duplicates"] == "7 (already in the table)"
    assert len(server.items()) == before == 7


@pytest.mark.integration
def test_replay_from_s3_lists_and_reads_each_object(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same tree uploaded to a bucket, the layout CloudTrail delivers
    root = trail_tree(tmp_path)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="trail", CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.put_object(Bucket="trail", Key=path.relative_to(root).as_posix(), Body=path.read_bytes())
    # WHEN the prefix is replayed
    status, out, err = run(
        capsys,
        "replay",
        "s3://trail/AWSLogs/",
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
        "--region",
        REGION,
    )
    # THEN the log files (not the digest, not the .txt) are replayed
    assert (status, err) == (0, "")
    rows = summary(out)
    assert (rows["files read"], rows["Secrets Manager"], rows["written"]) == ("2", "7", "7")
    assert len(event_items(server)) == 7


@pytest.mark.integration
def test_dry_run_prints_findings_and_writes_nothing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a tree with two DeleteSecret records
    root = trail_tree(tmp_path)
    # WHEN it is replayed with --dry-run (no table needed)
    status, out, err = run(capsys, "replay", str(root), "--dry-run", "--region", REGION)
    # THEN one JSON line per finding on stdout, the summary on stderr, and no item in the table
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["rule"], line["severity"], line["event_name"]) for line in lines] == [
        ("secret-deleted", "high", "DeleteSecret")
    ] * 2
    assert lines[0]["event_id"] == deleted(1)["eventID"]
    assert lines[0]["file"].endswith(".json.gz")
    assert "replay summary (dry run: nothing written)" in err
    assert server.items() == []


@pytest.mark.integration
def test_since_and_until_keep_exactly_the_window(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN records at the first and last second of 1 November and at midnight on the 2nd
    edges = [
        "2026-10-31T23:59:59Z",
        "2026-11-01T00:00:00Z",
        "2026-11-01T23:59:59Z",
        "2026-11-02T00:00:00Z",
    ]
    log_file(tmp_path / "edges.json", [quiet(i, when) for i, when in enumerate(edges)], gz=False)
    # WHEN the day is replayed (both ends inclusive; a date as --until means its last second)
    status, out, _ = run(
        capsys,
        "replay",
        str(tmp_path),
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-01",
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN only the two records of 1 November are written
    assert status == 0
    rows = summary(out)
    assert rows["Secrets Manager"] == "2"
    assert rows["outside --since/--until"] == "2 (skipped)"
    times = sorted(i["event_time"]["S"] for i in event_items(server))
    assert times == ["2026-11-01T00:00:00Z", "2026-11-01T23:59:59Z"]


@pytest.mark.integration
def test_notify_publishes_each_alert_once(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a queue subscribed to the alert topic (the fixture's inbox)
    root = trail_tree(tmp_path)
    argv = [
        "replay",
        str(root),
        "--table",
        server.stack.table_name,
        "--notify",
        "--topic-arn",
        server.stack.topic_arn,
        "--endpoint-url",
        server.stack.endpoint_url or "",
    ]
    # WHEN the tree is replayed with --notify, twice
    status, out, _ = run(capsys, *argv)
    again, _, _ = run(capsys, *argv)
    # THEN each DeleteSecret alert reaches the topic exactly once, and is recorded as sent
    assert (status, again) == (0, 0)
    assert summary(out)["alerts published"] == "2"
    messages = [json.loads(m["Message"]) for m in server.drain()]
    assert sorted(m["event"]["id"] for m in messages) == sorted(
        [deleted(1)["eventID"], deleted(2)["eventID"]]
    )
    alerts = [i["alerts"]["M"] for i in event_items(server) if "alerts" in i]
    states = [{rule: entry["M"]["state"]["S"] for rule, entry in a.items()} for a in alerts]
    assert states == [{"secret-deleted": "sent"}] * 2


@pytest.mark.integration
def test_stack_outputs_name_the_table_and_the_topic(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a CloudFormation stack whose outputs name the table and the topic
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "AuditTableName": {"Value": server.stack.table_name},
            "AlertTopicArn": {"Value": server.stack.topic_arn},
        },
    }
    server.client("cloudformation").create_stack(
        StackName="secretwatch", TemplateBody=json.dumps(template)
    )
    root = trail_tree(tmp_path)
    # WHEN the replay names only the stack
    status, out, _ = run(
        capsys,
        "replay",
        str(root),
        "--stack",
        "secretwatch",
        "--notify",
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN it writes to the stack's table and alerts on the stack's topic
    assert status == 0
    assert summary(out)["written"] == "7"
    assert len(server.drain()) == 2


@pytest.mark.integration
def test_bad_files_are_reported_one_line_each_and_the_good_ones_replayed(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a good file, a broken gzip, truncated JSON, a JSON file that is not CloudTrail's,
    # and a Secrets Manager record with no eventID
    good = log_file(tmp_path / "a-good.json.gz", [quiet(1), deleted(1)])
    (tmp_path / "b-not-gzip.json.gz").write_bytes(gzip.compress(b'{"Records": []}')[:12])
    (tmp_path / "c-truncated.json").write_bytes(json.dumps({"Records": [quiet(2)]}).encode()[:80])
    (tmp_path / "d-not-cloudtrail.json").write_text('{"hello": "world"}')
    no_id = build_raw(eventTime="2026-11-01T12:00:00Z")
    del no_id["eventID"]
    log_file(tmp_path / "e-rejected.json", [no_id, quiet(3)], gz=False)
    # WHEN the folder is replayed
    status, out, err = run(
        capsys,
        "replay",
        str(tmp_path),
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN one stderr line per bad file and per rejected record, no traceback; exit 1
    assert status == 1
    problems = err.splitlines()
    assert len(problems) == 4
    assert "b-not-gzip.json.gz: not a valid gzip file" in problems[0]
    assert "c-truncated.json: not valid JSON" in problems[1]
    assert "d-not-cloudtrail.json: not a recognised shape" in problems[2]
    assert "e-rejected.json: record 0" in problems[3]
    assert "eventID" in problems[3]
    assert "Traceback" not in err
    # AND the good records are written, the rejected one kept as a failure record
    rows = summary(out)
    assert (rows["files read"], rows["files failed"], rows["rejected"]) == ("2", "3", "1")
    assert len(event_items(server)) == 3
    assert [i["kind"]["S"] for i in server.items()].count("rejected") == 1
    assert good.exists()


@pytest.mark.integration
def test_missing_table_is_one_line_and_exit_1(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a table name that does not exist
    root = trail_tree(tmp_path)
    # WHEN the replay starts
    status, out, err = run(
        capsys,
        "replay",
        str(root),
        "--table",
        "no-such-table",
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN one line names the table; nothing was read
    assert status == 1
    assert out == ""
    assert err.splitlines() == [
        f"secretwatch: audit table 'no-such-table' in {REGION}: not found "
        "(ResourceNotFoundException) (check --table/--stack and --region)"
    ]


@pytest.mark.integration
def test_missing_bucket_is_one_line_and_exit_1(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a bucket that does not exist
    # WHEN it is replayed
    status, out, err = run(
        capsys,
        "replay",
        "s3://no-such-bucket/AWSLogs/",
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN one line names the bucket, and the summary counts a failed source
    assert status == 1
    assert err.splitlines() == [
        "secretwatch: s3://no-such-bucket/AWSLogs/: cannot list the objects: "
        "the bucket does not exist (NoSuchBucket)"
    ]
    assert summary(out)["files failed"] == "1"


@pytest.mark.integration
def test_missing_credentials_is_one_line(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN no credentials anywhere
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # WHEN a replay starts
    status, _, err = run(
        capsys,
        "replay",
        str(tmp_path),
        "--table",
        server.stack.table_name,
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )
    # THEN one line says so, in the words every command uses
    assert status == 1
    assert err.splitlines() == [
        "secretwatch: no AWS credentials: run `aws configure` or `aws sso login`, set "
        "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or pass --profile"
    ]


@pytest.mark.integration
def test_table_from_the_environment(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN SECRETWATCH_TABLE names the table
    monkeypatch.setenv("SECRETWATCH_TABLE", server.stack.table_name)
    root = trail_tree(tmp_path)
    # WHEN no --table is given
    status, out, _ = run(
        capsys, "replay", str(root), "--endpoint-url", server.stack.endpoint_url or ""
    )
    # THEN that table is written
    assert status == 0
    assert summary(out)["written"] == "7"
