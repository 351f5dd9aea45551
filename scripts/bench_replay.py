"""Replay throughput: ``secretwatch replay`` of gzipped CloudTrail log files into a moto table.

Starts a moto server on 127.0.0.1, creates the stack from template.yaml, writes ``--records``
Secrets Manager records (``scripts/bench.py``'s realistic mix) as ~50 gzipped log files in the S3
delivery layout, replays them in-process (the command's own function), and prints records per
second and the AWS calls by operation; then replays again and shows the second pass writes nothing.

moto answers over HTTP on the same machine, so the figure is the CPU cost of replay + boto3 +
moto, not DynamoDB's latency: it bounds what one process can do, and the call counts are exact.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from cli.aws import Aws  # noqa: E402
from cli.local_stack import create_stack, start_moto_server  # noqa: E402
from cli.replay import ReplayOptions, replay  # noqa: E402
from scripts.bench import sample_records  # noqa: E402
from shared.observability import quiet_service_telemetry  # noqa: E402
from shared.replay import Totals  # noqa: E402
from shared.rules import load_rules  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
FILES = 50


def write_log_files(directory: Path, records: int, files: int = FILES) -> int:
    """``records`` records as ``files`` gzipped log files, AWSLogs/<acct>/CloudTrail/<region>/Y/M/D/."""
    sample = sample_records(records)
    per_file = max(1, -(-len(sample) // files))
    written = 0
    for number, start in enumerate(range(0, len(sample), per_file)):
        chunk = sample[start : start + per_file]
        first = chunk[0]["eventTime"]  # 2026-11-01T00:00:00Z
        day = first[:10].replace("-", "/")
        stamp = first[:16].replace("-", "").replace(":", "")
        name = f"{ACCOUNT}_CloudTrail_{REGION}_{stamp}Z_{number:04d}.json.gz"
        path = directory / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / day / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(json.dumps({"Records": chunk}).encode(), compresslevel=6))
        written += 1
    return written


class CallMeter:
    """Counts every AWS call by operation, and the wall time spent in them (botocore events)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}

    def aws(self, endpoint: str) -> Aws:
        """The command line's AWS layer over a session whose every call is counted."""
        session = boto3.Session(region_name=REGION)
        session.events.register("before-call.*.*", self._before, unique_id="bench-replay-before")
        session.events.register("after-call.*.*", self._after, unique_id="bench-replay-after")
        return Aws(session=session, endpoint_url=endpoint)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        spent = time.perf_counter() - context.pop("bench_started", time.perf_counter())
        self.seconds[model.name] = self.seconds.get(model.name, 0.0) + spent


def run(records: int = 100_000) -> dict[str, Any]:
    """Replay ``records`` records twice; the figures of both passes."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server, endpoint = start_moto_server()
    try:
        stack = create_stack(endpoint, region=REGION)
        ruleset = load_rules()
        with tempfile.TemporaryDirectory() as tmp:
            files = write_log_files(Path(tmp), records)
            options = ReplayOptions(sources=(tmp,), table=stack.table_name)
            first_calls, second_calls = CallMeter(), CallMeter()
            with quiet_service_telemetry():
                first = replay(options, first_calls.aws(endpoint), ruleset)
                second = replay(options, second_calls.aws(endpoint), ruleset)
    finally:
        server.stop()
    return {
        "records": first.records,
        "files": files,
        "first": _figures(first, first_calls),
        "second": _figures(second, second_calls),
    }


def _figures(totals: Totals, meter: CallMeter) -> dict[str, Any]:
    return {
        "elapsed": totals.elapsed,
        "records_per_second": totals.rate,
        "findings": sum(totals.findings.values()),
        "written": totals.written,
        "duplicates": totals.duplicates,
        "files_failed": totals.files_failed,
        "rejected": totals.rejected,
        "calls": dict(sorted(meter.calls.items())),
        "call_seconds": dict(sorted(meter.seconds.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.records)
    for label, key in (("first pass", "first"), ("second pass (same files)", "second")):
        figures = result[key]
        print(f"== replay, {label}: {result['records']:,} records in {result['files']} files")
        print(f"   elapsed        {figures['elapsed']:8.1f} s")
        print(f"   throughput     {figures['records_per_second']:8,.0f} records/s")
        print(f"   findings       {figures['findings']:8,}")
        print(f"   written        {figures['written']:8,}")
        print(f"   duplicates     {figures['duplicates']:8,}")
        for operation, number in figures["calls"].items():
            spent = figures["call_seconds"].get(operation, 0.0)
            print(
                f"   {operation:<14} {number:8,} calls  {spent:6.1f} s "
                f"({spent / number * 1000:.1f} ms a call)"
            )
        in_calls = sum(figures["call_seconds"].values())
        share = in_calls / figures["elapsed"] if figures["elapsed"] else 0.0
        print(f"   in AWS calls   {in_calls:8.1f} s ({share:.0%} of the elapsed time)")
    ok = result["second"]["written"] == 0 and not result["first"]["files_failed"]
    print(
        f"second pass wrote {result['second']['written']} items: {'OK' if ok else 'NOT IDEMPOTENT'}"
    )
    print(f"(bench total, including data generation: {time.perf_counter() - started:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
