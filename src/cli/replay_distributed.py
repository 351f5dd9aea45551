"""``secretwatch replay --distributed s3://bucket/prefix``: the replay on the stack's Step Functions
state machine (template.yaml ``ReplayStateMachine``), followed from here.

It starts one execution of the state machine the stack's output ``ReplayStateMachineArn`` names
(or ``--state-machine-arn``), with the input ``{"bucket", "prefix"}`` and a printed name
``replay-<UTC time>-<hash of the URL>``; follows it (DescribeExecution, and the map run's item
counts through ListMapRuns/DescribeMapRun) with a progress line on a terminal; and when it has
ended reads each batch's result from the results bucket (the Distributed Map's ResultWriter
manifest) and prints the summary a local replay prints. Files of a batch that failed (after
Step Functions' retries) count as failed files, one stderr line each.

Ctrl-C stops following, never the replay: the execution goes on and a line says how to follow it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import ClientError

from cli import aws
from cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, UsageError
from cli.output import is_quiet, safe
from shared.replay import Totals, add_counts, is_log_file
from shared.text import clean

STATE_MACHINE_OUTPUT = "ReplayStateMachineArn"
BUCKETS_OUTPUT = "ReplayBuckets"
POLL_SECONDS = 2.0
CAUSE_CHARS = 300
ENDED_BADLY = {"FAILED": "failed", "TIMED_OUT": "timed out", "ABORTED": "was aborted"}
# Options of a local replay, and why a distributed one refuses them.
LOCAL_ONLY = {
    "table": "the state machine writes to its stack's audit table: pass --stack",
    "rules": "the state machine applies the stack's rule document (secretwatch rules push)",
    "dry_run": "a distributed replay always writes: use a local replay with --dry-run",
    "notify": "a distributed replay never publishes alerts (they are recorded as suppressed)",
    "topic_arn": "a distributed replay never publishes alerts",
    "since": "a distributed replay reads whole prefixes: narrow the prefix (…/2026/11/01/)",
    "until": "a distributed replay reads whole prefixes: narrow the prefix (…/2026/11/01/)",
    "enrich": "a distributed replay makes no enrichment look-ups",
}

# Replaced in tests: the pause between two looks at the execution.
sleep: Callable[[float], None] = time.sleep


class ReplayFailed(aws.AwsFailure):
    """The execution ended without its results (failed, timed out, aborted): exit status 1."""


@dataclass(frozen=True, slots=True)
class Started:
    execution_arn: str
    name: str


def check_options(args: argparse.Namespace) -> tuple[str, str]:
    """The (bucket, prefix) to replay; a UsageError for anything a distributed replay refuses."""
    for dest, why in LOCAL_ONLY.items():
        if getattr(args, dest, None):
            option = "--" + dest.replace("_", "-")
            raise UsageError(f"--distributed cannot be combined with {option}: {why}")
    if len(args.sources) != 1 or not args.sources[0].startswith("s3://"):
        raise UsageError(
            "--distributed takes exactly one s3://bucket/prefix (local files: leave out "
            "--distributed)"
        )
    if not getattr(args, "stack", None) and not args.state_machine_arn:
        raise UsageError("--distributed needs --stack NAME (or --state-machine-arn ARN)")
    from cli.replay import parse_s3_url  # noqa: PLC0415 — the one URL rule, shared with local

    return parse_s3_url(args.sources[0])


def execution_name(url: str, now: datetime) -> str:
    """``replay-20261203T170000Z-<12 hex>``: unique per second and URL, within Step Functions'
    80 characters of [A-Za-z0-9_-]."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return f"replay-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def run(args: argparse.Namespace) -> int:
    bucket, prefix = check_options(args)
    layer = aws.Aws.from_args(args)
    with aws.aws_errors(_explain):
        machine = args.state_machine_arn or _machine_of(layer, args.stack, bucket)
        sfn = layer.client("stepfunctions")
        started = start(sfn, machine, bucket, prefix, datetime.now(UTC))
        if not is_quiet():
            print(
                f"secretwatch: started {safe(started.execution_arn)} "
                "(Ctrl-C stops following it, not the replay)",
                file=sys.stderr,
            )
        try:
            totals = follow(layer, started.execution_arn, progress=sys.stderr.isatty())
        except KeyboardInterrupt:
            print(
                "secretwatch: stopped following; the replay goes on in Step Functions: "
                f"aws stepfunctions describe-execution --execution-arn {safe(started.execution_arn)}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    from cli.replay import format_summary  # noqa: PLC0415 — the one summary

    print(format_summary(totals, dry_run=False, notify=False))
    return EXIT_FAILURE if totals.failed else 0


def _machine_of(layer: aws.Aws, stack: str, bucket: str) -> str:
    """The stack's state machine, once the bucket is known to be one it may read."""
    outputs = layer.stack_outputs(stack)
    machine = outputs.get(STATE_MACHINE_OUTPUT)
    if machine is None:
        raise aws.AwsFailure(
            f"stack {stack} in {layer.region} has no {STATE_MACHINE_OUTPUT} output "
            "(update it to a version with replay on Step Functions)"
        )
    allowed = [b for b in outputs.get(BUCKETS_OUTPUT, "").split(",") if b and b != "-"]
    if BUCKETS_OUTPUT in outputs and bucket not in allowed:
        where = ", ".join(allowed) if allowed else "no bucket"
        raise UsageError(
            f"stack {stack} may replay from {where}, not {bucket}: set its ReplayBucketName "
            "parameter to that bucket"
        )
    return machine


def _explain(exc: ClientError) -> str | None:
    code = aws.error_code(exc)
    if code == "StateMachineDoesNotExist":
        return "the replay state machine does not exist (check --state-machine-arn/--stack and --region)"
    if code == "ExecutionLimitExceeded":
        return "too many executions running in this account: retry when one has ended"
    return None


def start(sfn: Any, machine: str, bucket: str, prefix: str, now: datetime) -> Started:
    url = f"s3://{bucket}/{prefix}"
    name = execution_name(url, now)
    response = sfn.start_execution(
        stateMachineArn=machine,
        name=name,
        input=json.dumps({"bucket": bucket, "prefix": prefix}),
    )
    return Started(str(response["executionArn"]), name)


def follow(
    layer: aws.Aws, execution_arn: str, *, progress: bool, err: TextIO | None = None
) -> Totals:
    """Wait for the execution to end, then sum its batches' results."""
    from cli.replay import Console  # noqa: PLC0415 — the one progress display

    err = err or sys.stderr
    sfn = layer.client("stepfunctions")
    console = Console(err, progress=progress, started=time.monotonic())
    try:
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            status = str(described["status"])
            if status not in {"RUNNING", "PENDING_REDRIVE"}:  # PENDING_REDRIVE: resuming
                break
            console.status(_progress_line(sfn, execution_arn))
            sleep(POLL_SECONDS)
    finally:
        console.clear()
    if status in ENDED_BADLY:
        cause = described.get("cause") or described.get("error") or ""
        detail = f": {clean(str(cause), CAUSE_CHARS)}" if cause else ""
        raise ReplayFailed(
            f"the replay {ENDED_BADLY[status]} ({described.get('error') or status}){detail}; "
            f"execution {execution_arn}"
        )
    totals = results(layer, described, console)
    started, stopped = described.get("startDate"), described.get("stopDate")
    if isinstance(started, datetime) and isinstance(stopped, datetime):
        totals.elapsed = max((stopped - started).total_seconds(), 0.0)
    return totals


def _progress_line(sfn: Any, execution_arn: str) -> tuple[str, int | None, int | None]:
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    if not runs:
        return "replay on Step Functions: listing the log files…", None, None
    counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    total, done = int(counts.get("total", 0)), int(counts.get("succeeded", 0))
    failed, running = int(counts.get("failed", 0)), int(counts.get("running", 0))
    text = (
        f"replay on Step Functions: {done + failed:,}/{total:,} batches, {failed:,} failed, "
        f"{running:,} running"
    )
    return text, done + failed, total or None


def results(layer: aws.Aws, described: dict[str, Any], console: Any) -> Totals:
    """The summed results of every batch, from the ResultWriter's manifest."""
    try:
        output = json.loads(described.get("output") or "{}")
        location = output["ResultWriterDetails"]
        bucket, key = str(location["Bucket"]), str(location["Key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplayFailed(
            f"the replay ended without a results manifest ({type(exc).__name__}); execution "
            f"{described.get('executionArn')}"
        ) from exc
    s3 = layer.client("s3")
    manifest = _json_object(s3, bucket, key)
    totals = Totals()
    files = manifest.get("ResultFiles", {}) if isinstance(manifest, dict) else {}
    for kind in ("SUCCEEDED", "FAILED", "PENDING"):
        for entry in files.get(kind, []) or []:
            for result in _json_object(s3, bucket, str(entry["Key"])) or []:
                _add(totals, kind, result, console)
    return totals


def _add(totals: Totals, kind: str, result: Any, console: Any) -> None:
    if not isinstance(result, dict):
        return
    if kind == "SUCCEEDED":
        try:
            counts = json.loads(result.get("Output") or "{}")
        except ValueError:
            counts = None
        if isinstance(counts, dict):
            add_counts(totals, counts)
            for problem in counts.get("problems", []) or []:
                if isinstance(problem, dict):
                    console.problem(str(problem.get("file", "?")), str(problem.get("message", "")))
            left_out = counts.get("problems_left_out")
            if isinstance(left_out, int) and left_out > 0:
                console.problem("replay", f"{left_out:,} more problem lines in one batch left out")
            return
    reason = (
        f"batch failed ({result.get('Error') or kind}: {clean(str(result.get('Cause') or ''), CAUSE_CHARS)})"
        if kind == "FAILED"
        else "batch not replayed (the map run stopped first)"
    )
    for name in _batch_files(result):
        totals.files_failed += 1
        console.problem(name, f"{reason} (replay again to complete it)")


def _batch_files(result: dict[str, Any]) -> Iterator[str]:
    """The log files of a batch, from the child execution's input (the ItemBatcher's)."""
    try:
        batch = json.loads(result.get("Input") or "{}")
        bucket = batch["BatchInput"]["bucket"]
        keys = [item["Key"] for item in batch["Items"]]
    except (ValueError, KeyError, TypeError):
        yield "a batch"
        return
    for key in keys:
        if isinstance(key, str) and is_log_file(key.split("/")):
            yield f"s3://{bucket}/{key}"


def _json_object(s3: Any, bucket: str, key: str) -> Any:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except aws.AWS_ERRORS as exc:
        raise ReplayFailed(
            f"cannot read the replay's results s3://{bucket}/{key}: {aws.describe(exc)}"
        ) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ReplayFailed(f"the replay's results s3://{bucket}/{key} are not JSON") from exc
