"""`secretwatch replay --distributed`: options, starting, following and summing an execution.

What is real and what is not. moto (5.2.x) cannot run this: its default Step Functions backend
keeps every execution RUNNING and has no map runs (describe_map_run returns {}), and its
executing backend (config stepfunctions.execute_state_machine) parses no ItemBatcher and
writes a ResultWriter manifest that lists no result files — and no moto backend runs Lambda
code without Docker. So the Step Functions answers here (StartExecution, DescribeExecution,
ListMapRuns, DescribeMapRun, DescribeStacks) come from a botocore Stubber, checked against the
service models, while the results the command reads are real objects in moto's S3 (in-process),
in the layout the ResultWriter documents: manifest.json naming SUCCEEDED_n / FAILED_n files,
each a JSON array of child executions with their Input and Output as JSON strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from cli import aws, replay_distributed
from cli.main import main
from shared.replay import Totals, add_counts

REGION = "eu-west-1"
MACHINE = f"arn:aws:states:{REGION}:111122223333:stateMachine:secretwatch-f81d4fae-replay"
EXECUTION = f"arn:aws:states:{REGION}:111122223333:execution:secretwatch-f81d4fae-replay:run-1"
MAP_RUN = f"arn:aws:states:{REGION}:111122223333:mapRun:secretwatch-f81d4fae-replay/run-1:abc"
RESULTS = "replay-results"
TRAIL = "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/01"
STARTED = datetime(2026, 12, 3, 17, 0, 0, tzinfo=UTC)
STOPPED = datetime(2026, 12, 3, 17, 0, 40, tzinfo=UTC)


def counts(**overrides: Any) -> dict[str, Any]:
    """A batch's result as the replay function returns it (shared.replay_batch)."""
    base: dict[str, Any] = {
        "files_read": 10,
        "files_failed": 0,
        "records": 120,
        "sm_records": 30,
        "other_sources": 90,
        "written": 30,
        "duplicates": 0,
        "rejected": 0,
        "alerts_published": 0,
        "rule_errors": 0,
        "by_severity": {"high": 2},
        "files_skipped": 0,
        "problems": [],
        "problems_left_out": 0,
    }
    return {**base, **overrides}


def batch_input(*keys: str) -> str:
    return json.dumps(
        {"Items": [{"Key": k, "Size": 10} for k in keys], "BatchInput": {"bucket": "org-trail"}}
    )


class Stack:
    """One command run's AWS: Step Functions and CloudFormation stubbed, S3 in moto."""

    def __init__(self) -> None:
        self.layer = aws.Aws(session=boto3.Session(region_name=REGION))
        self.sfn = Stubber(self.layer.client("stepfunctions"))
        self.cfn = Stubber(self.layer.client("cloudformation"))
        self.s3 = self.layer.client("s3")
        self.s3.create_bucket(
            Bucket=RESULTS, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    def results(self, succeeded: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
        """Result files and their manifest, as the ResultWriter leaves them; the manifest key."""
        prefix = "results/abc"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for kind, entries in (("SUCCEEDED", succeeded), ("FAILED", failed)):
            if entries:
                key = f"{prefix}/{kind}_0.json"
                self.s3.put_object(Bucket=RESULTS, Key=key, Body=json.dumps(entries).encode())
                files[kind].append({"Key": key, "Size": 1})
        manifest = f"{prefix}/manifest.json"
        body = {"DestinationBucket": RESULTS, "MapRunArn": MAP_RUN, "ResultFiles": files}
        self.s3.put_object(Bucket=RESULTS, Key=manifest, Body=json.dumps(body).encode())
        return manifest

    def started(self, prefix: str = f"{TRAIL}/") -> None:
        self.sfn.add_response(
            "start_execution",
            {"executionArn": EXECUTION, "startDate": STARTED},
            {
                "stateMachineArn": MACHINE,
                "name": ANY,
                "input": json.dumps({"bucket": "org-trail", "prefix": prefix}),
            },
        )

    def running(self, done: int, total: int) -> None:
        self.sfn.add_response(
            "describe_execution", self._execution("RUNNING"), {"executionArn": EXECUTION}
        )
        self.sfn.add_response(
            "list_map_runs",
            {
                "mapRuns": [
                    {
                        "executionArn": EXECUTION,
                        "mapRunArn": MAP_RUN,
                        "stateMachineArn": MACHINE,
                        "startDate": STARTED,
                    }
                ]
            },
            {"executionArn": EXECUTION},
        )
        item_counts = {
            "pending": total - done,
            "running": 1,
            "succeeded": done,
            "failed": 0,
            "timedOut": 0,
            "aborted": 0,
            "total": total,
            "resultsWritten": done,
        }
        self.sfn.add_response(
            "describe_map_run",
            {
                "mapRunArn": MAP_RUN,
                "executionArn": EXECUTION,
                "status": "RUNNING",
                "startDate": STARTED,
                "maxConcurrency": 20,
                "toleratedFailurePercentage": 100,
                "toleratedFailureCount": 0,
                "itemCounts": item_counts,
                "executionCounts": item_counts,
            },
            {"mapRunArn": MAP_RUN},
        )

    def ended(self, status: str, **extra: Any) -> None:
        self.sfn.add_response(
            "describe_execution",
            {**self._execution(status), "stopDate": STOPPED, **extra},
            {"executionArn": EXECUTION},
        )

    def _execution(self, status: str) -> dict[str, Any]:
        return {
            "executionArn": EXECUTION,
            "stateMachineArn": MACHINE,
            "status": status,
            "startDate": STARTED,
        }


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        built = Stack()
        monkeypatch.setattr(aws.Aws, "from_args", classmethod(lambda cls, args: built.layer))
        monkeypatch.setattr(replay_distributed, "sleep", lambda seconds: None)
        with built.sfn, built.cfn:
            yield built
            built.sfn.assert_no_pending_responses()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["replay", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def rows(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines()[1:]:
        label, _, value = line.strip().partition("  ")
        found[label] = value.strip()
    return found


DISTRIBUTED = ("--distributed", f"s3://org-trail/{TRAIL}/", "--state-machine-arn", MACHINE)


def test_a_finished_replay_prints_the_local_summary_of_every_batch(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an execution that runs for two looks, then succeeds with two batches' results
    manifest = stack.results(
        [
            {"Status": "SUCCEEDED", "Input": batch_input("a"), "Output": json.dumps(counts())},
            {
                "Status": "SUCCEEDED",
                "Input": batch_input("b"),
                "Output": json.dumps(
                    counts(written=20, duplicates=10, by_severity={"high": 1, "critical": 1})
                ),
            },
        ],
        [],
    )
    stack.started()
    stack.running(0, 2)
    stack.running(1, 2)
    output = {"MapRunArn": MAP_RUN, "ResultWriterDetails": {"Bucket": RESULTS, "Key": manifest}}
    stack.ended("SUCCEEDED", output=json.dumps(output))

    # WHEN the distributed replay runs
    status, out, err = run(capsys, *DISTRIBUTED)

    # THEN it names the execution it started and prints the same summary a local replay does
    assert status == 0
    assert err.splitlines() == [
        f"secretwatch: started {EXECUTION} (Ctrl-C stops following it, not the replay)"
    ]
    summary = rows(out)
    assert out.splitlines()[0] == "replay summary"
    assert summary["files read"] == "20"
    assert summary["files failed"] == "0"
    assert summary["records"] == "240"
    assert summary["Secrets Manager"] == "60"
    assert summary["other sources"] == "180 (skipped)"
    assert summary["findings"] == "4 (critical 1, high 3)"
    assert summary["written"] == "50"
    assert summary["duplicates"] == "10 (already in the table)"
    assert summary["alerts published"] == "0 (without --notify alerts are recorded as suppressed)"
    assert summary["elapsed"].startswith("40.0 s")


def test_problems_and_failed_batches_are_one_line_per_file_and_exit_1(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch that reported a corrupt file and a batch that failed after its retries
    # (two log files and a digest file in its input)
    problem = {"file": "s3://org-trail/k\u001b[2J.json.gz", "message": "not valid JSON"}
    manifest = stack.results(
        [
            {
                "Status": "SUCCEEDED",
                "Input": batch_input("a"),
                "Output": json.dumps(counts(files_read=9, files_failed=1, problems=[problem])),
            }
        ],
        [
            {
                "Status": "FAILED",
                "Error": "Lambda.Unknown",
                "Cause": "The function timed out\nafter 300 s",
                "Input": batch_input(
                    f"{TRAIL}/x.json.gz",
                    f"{TRAIL}/y.json.gz",
                    "AWSLogs/1/CloudTrail-Digest/d.json.gz",
                ),
            }
        ],
    )
    stack.started()
    output = {"MapRunArn": MAP_RUN, "ResultWriterDetails": {"Bucket": RESULTS, "Key": manifest}}
    stack.ended("SUCCEEDED", output=json.dumps(output))

    # WHEN the distributed replay runs
    status, out, err = run(capsys, *DISTRIBUTED, "--quiet")

    # THEN each problem is one escaped line, each file of the failed batch one line, exit 1
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == "secretwatch: s3://org-trail/k\\x1b[2J.json.gz: not valid JSON"
    assert lines[1:] == [
        f"secretwatch: s3://org-trail/{TRAIL}/{name}.json.gz: batch failed (Lambda.Unknown: "
        "The function timed out\\nafter 300 s) (replay again to complete it)"
        for name in ("x", "y")
    ]
    assert "\x1b" not in err
    assert (rows(out)["files read"], rows(out)["files failed"]) == ("9", "3")


@pytest.mark.parametrize(
    ("status", "words"),
    [("FAILED", "failed"), ("ABORTED", "was aborted"), ("TIMED_OUT", "timed out")],
)
def test_an_execution_that_ends_badly_is_one_line_and_exit_1(
    stack: Stack, capsys: pytest.CaptureFixture[str], status: str, words: str
) -> None:
    # GIVEN an execution that fails (the bucket could not be listed), is aborted or times out
    stack.started()
    stack.ended(status, error="States.ItemReaderFailed", cause="Access Denied\n(s3:ListBucket)")
    # WHEN the distributed replay follows it
    code, out, err = run(capsys, *DISTRIBUTED, "--quiet")
    # THEN one line says how it ended, with the escaped cause and the execution; no summary
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"secretwatch: the replay {words} (States.ItemReaderFailed): Access Denied\\n"
        f"(s3:ListBucket); execution {EXECUTION}"
    ]


def test_ctrl_c_leaves_the_replay_running_and_says_how_to_follow_it(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a running execution, and Ctrl-C while the command waits
    stack.started()
    stack.running(0, 5)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(replay_distributed, "sleep", interrupted)
    # WHEN / THEN nothing stops the execution (no StopExecution is stubbed: a call would fail),
    # one line says how to follow it, and the status is the interrupted one
    code, out, err = run(capsys, *DISTRIBUTED)
    assert code == 130
    assert out == ""
    assert err.splitlines()[-1] == (
        "secretwatch: stopped following; the replay goes on in Step Functions: "
        f"aws stepfunctions describe-execution --execution-arn {EXECUTION}"
    )


def test_the_stack_names_the_state_machine_and_the_buckets_it_may_read(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack whose outputs name the state machine and one replay bucket
    outputs = [
        {"OutputKey": "ReplayStateMachineArn", "OutputValue": MACHINE},
        {"OutputKey": "ReplayBuckets", "OutputValue": "org-trail"},
    ]
    described = {
        "Stacks": [
            {
                "StackName": "secretwatch",
                "CreationTime": STARTED,
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": outputs,
            }
        ]
    }
    stack.cfn.add_response("describe_stacks", described, {"StackName": "secretwatch"})
    # WHEN a bucket the stack may not read is asked for
    code, out, err = run(
        capsys, "--distributed", "s3://elsewhere/AWSLogs/", "--stack", "secretwatch"
    )
    # THEN it is refused before anything starts, saying which bucket it may read
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "secretwatch: error: stack secretwatch may replay from org-trail, not elsewhere: set its "
        "ReplayBucketName parameter to that bucket"
    ]


def test_a_missing_stack_or_state_machine_is_one_line(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no such stack, then no such state machine
    stack.cfn.add_client_error(
        "describe_stacks", "ValidationError", "Stack with id nope does not exist"
    )
    stack.sfn.add_client_error("start_execution", "StateMachineDoesNotExist", "gone")
    # WHEN / THEN each is one line and exit 1, never a traceback
    code, _, err = run(capsys, "--distributed", "s3://org-trail/", "--stack", "nope")
    assert (code, err.splitlines()) == (
        1,
        [f"secretwatch: stack nope not found in {REGION} (check --stack/--region)"],
    )
    code, _, err = run(capsys, *DISTRIBUTED)
    assert code == 1
    assert err.splitlines() == [
        "secretwatch: the replay state machine does not exist (check "
        "--state-machine-arn/--stack and --region)"
    ]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--dry-run",), "--distributed cannot be combined with --dry-run"),
        (("--notify",), "--distributed cannot be combined with --notify"),
        (("--since", "7d"), "--distributed cannot be combined with --since"),
        (("--until", "1d"), "--distributed cannot be combined with --until"),
        (("--enrich",), "--distributed cannot be combined with --enrich"),
        (("--rules", "r.yaml"), "--distributed cannot be combined with --rules"),
        (("--table", "t"), "--distributed cannot be combined with --table"),
    ],
)
def test_local_only_options_are_refused(
    capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], words: str
) -> None:
    # GIVEN an option only a local replay has / WHEN combined with --distributed / THEN usage
    code, out, err = run(capsys, *DISTRIBUTED, *extra)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()[-1:]
    assert line.startswith(f"secretwatch: error: {words}: ")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--distributed", "./trail", "--stack", "s"), "exactly one s3://bucket/prefix"),
        (("--distributed", "s3://a/x", "s3://b/y", "--stack", "s"), "exactly one"),
        (("--distributed", "s3://a/x"), "needs --stack NAME (or --state-machine-arn ARN)"),
        (("--distributed", "s3:///x", "--stack", "s"), "not an S3 URL"),
        (("s3://a/x", "--state-machine-arn", MACHINE), "--state-machine-arn needs --distributed"),
    ],
)
def test_sources_and_targets_are_checked_before_any_call(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert words in err.splitlines()[-1]


def test_execution_names_are_unique_per_url_and_second_and_valid() -> None:
    # GIVEN two URLs and two seconds
    first = replay_distributed.execution_name("s3://a/x", STARTED)
    # WHEN / THEN the name is printable, short enough, and differs when either differs
    assert first.startswith("replay-20261203T170000Z-")
    assert len(first) <= 80
    assert all(c.isalnum() or c in "-_" for c in first)
    assert replay_distributed.execution_name("s3://a/y", STARTED) != first
    assert replay_distributed.execution_name("s3://a/x", STOPPED) != first
    assert replay_distributed.execution_name("s3://a/x", STARTED) == first


def test_batch_counts_add_up_and_nonsense_is_ignored() -> None:
    # GIVEN a batch result with negative, boolean and unknown-severity values
    totals = Totals()
    add_counts(totals, counts())
    add_counts(totals, {"files_read": -5, "written": True, "by_severity": {"evil\n": 9, "low": 1}})
    # WHEN / THEN only whole non-negative numbers and known severities count
    assert (totals.files_read, totals.written) == (10, 30)
    assert dict(totals.findings) == {"high": 2, "low": 1}
