"""``make bench``: measured figures, printed on one run. Speed lives here, never in timed tests.

Sections:
- parse: CPU cost per record of read + normalise + rules on a 20,000-record CloudTrail log file,
  against ``json.loads`` of the same bytes (target ≤ 2×), and records per second on one core.
- evaluate: ``secretwatch evaluate`` of that file end to end, in fresh processes, against a
  fresh ``json.load`` of it (target ≤ 3×).
- calls: AWS calls for one 1,000-record CloudWatch Logs batch with 1% alerts, through the real
  handler against a moto server built from template.yaml (targets: ≤ 1 write call per 25
  non-alert records, 1 conditional write + 1 publish per alert, ≤ 1 DescribeSecret per secret).
- cold start: fresh interpreters importing each handler (and building its pipeline) against the
  floor of this design, a script that imports boto3 and creates the DynamoDB and SNS clients
  (target ≤ 1.25×).
- artefact: what ``sam build`` left in .aws-sam/build per function, unzipped and zipped as
  ``sam package`` uploads it (run ``make build`` first).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from scripts.make_events import subscription_event  # noqa: E402
from shared.envelopes import read_bytes  # noqa: E402
from shared.rules import load_rules  # noqa: E402


def sample_records(count: int, *, seed_dir: Path | None = None) -> list[dict[str, Any]]:
    """``count`` realistic CloudTrail records: the events/ scenarios, with fresh ids and times.

    The mix is weighted like a real account: mostly successful reads, some writes, few alerts.
    """
    directory = seed_dir or ROOT / "events" / "eventbridge"
    templates = {
        p.stem: json.loads(p.read_text())["detail"] for p in sorted(directory.glob("*.json"))
    }
    weights = {
        name: (60 if name == "control-get-secret-value" else 4 if name.startswith("control") else 1)
        for name in templates
    }
    cycle = [name for name, weight in weights.items() for _ in range(weight)]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    records = []
    for i in range(count):
        record = copy.deepcopy(templates[cycle[i % len(cycle)]])
        record["eventID"] = str(uuid.UUID(int=i + 1))
        record["eventTime"] = (start + timedelta(seconds=i * 7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append(record)
    return records


def best_cpu(function: Callable[[], object], repeat: int) -> float:
    """The least CPU time (process_time) of ``repeat`` runs: the cost with the least noise."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best


def bench_parse(records: int, repeat: int) -> dict[str, float]:
    data = json.dumps({"Records": sample_records(records)}).encode()
    ruleset = load_rules()

    def baseline() -> object:
        return json.loads(data)

    findings = 0

    def ours() -> object:
        nonlocal findings
        findings = 0
        for item in read_bytes(data):
            if item.record is not None:
                findings += len(ruleset.evaluate(item.record).findings)
        return findings

    base = best_cpu(baseline, repeat)
    full = best_cpu(ours, repeat)
    return {
        "records": records,
        "bytes": len(data),
        "findings": findings,
        "json_loads_us_per_record": base / records * 1e6,
        "secretwatch_us_per_record": full / records * 1e6,
        "ratio": full / base,
        "records_per_second": records / full,
    }


def bench_evaluate_end_to_end(records: int, runs: int) -> dict[str, float]:
    """``secretwatch evaluate FILE`` as a user runs it (a fresh process, JSON lines to a pipe)
    against a fresh process doing ``json.load`` of the same file: best of ``runs`` each."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trail.json"
        path.write_text(json.dumps({"Records": sample_records(records)}))
        command = [str(Path(sys.executable).with_name("secretwatch")), "evaluate", str(path)]
        baseline = [sys.executable, "-c", f"import json; json.load(open({str(path)!r}))"]

        def best(argv: list[str]) -> float:
            fastest = float("inf")
            for _ in range(runs):
                started = time.perf_counter()
                subprocess.run(argv, check=False, stdout=subprocess.DEVNULL)
                fastest = min(fastest, time.perf_counter() - started)
            return fastest

        ours, plain = best(command), best(baseline)
    return {"records": records, "evaluate_s": ours, "json_load_s": plain, "ratio": ours / plain}


def bench_calls(records: int = 1000, alert_every: int = 100, secrets: int = 20) -> dict[str, Any]:
    """Send one CloudWatch Logs batch through the log subscription handler; count AWS calls."""
    import logging
    import os
    import warnings

    from cli.local_stack import create_stack, start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    server, endpoint = start_moto_server()
    try:
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        stack = create_stack(endpoint, region="eu-west-1")
        os.environ.update(stack.environment)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_REGION": "eu-west-1",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        quiet = json.loads((ROOT / "events/eventbridge/control-get-secret-value.json").read_text())[
            "detail"
        ]
        alert = json.loads((ROOT / "events/eventbridge/secret-value-changed-put.json").read_text())[
            "detail"
        ]
        batch = []
        for i in range(records):
            record = copy.deepcopy(alert if i % alert_every == 0 else quiet)
            record["eventID"] = str(uuid.UUID(int=10**9 + i))
            name = f"prod/app-{i % secrets}/db"
            record["requestParameters"]["secretId"] = name
            batch.append(record)
        event = subscription_event([json.dumps(r) for r in batch])

        from handlers import log_subscription
        from shared.runtime import get_pipeline

        pipeline = get_pipeline()
        assert pipeline.store is not None
        calls: dict[str, int] = {}

        state_table = stack.state_table_name

        def count(event_name: str, params: dict[str, Any] | None = None, **_: Any) -> None:
            # before-parameter-build: once per call, with the call's own parameters
            operation = event_name.split(".", 2)[2]
            if params and params.get("TableName") == state_table:
                operation = f"state {operation}"  # the rule state, apart from the audit table
            calls[operation] = calls.get(operation, 0) + 1

        inner: Any = getattr(
            pipeline.enricher, "_inner", pipeline.enricher
        )  # behind ImpactEnricher
        for client in (
            pipeline.store._db,
            pipeline.notifier._sns,  # type: ignore[union-attr]
            inner._secretsmanager,
            inner._iam,
        ):
            client.meta.events.register("before-parameter-build.*.*", count)

        class Context:
            function_name = "bench"
            memory_limit_in_mb = 256
            invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:bench"
            aws_request_id = "bench"

        summary = log_subscription.lambda_handler(event, Context())
        return {
            "summary": summary,
            "calls": calls,
            "records": records,
            "secrets": secrets,
            "alert_every": alert_every,
        }
    finally:
        server.stop()


STATE_WRITES = ("state UpdateItem", "state PutItem", "state DeleteItem")
FLOOR = 'import boto3; boto3.client("dynamodb"); boto3.client("sns")'
HANDLER = "import handlers.{module}{init}"
# The pipeline built, and the rule document read from its parameter (through Powertools
# Parameters, from a local moto server), as the first invocation of a container does.
INIT = "; from shared.runtime import get_pipeline; get_pipeline().rules.current()"
RULES_PARAMETER = "/secretwatch/bench/rules"


def bench_cold_start(runs: int) -> dict[str, float]:
    """Median wall time of fresh interpreters: the floor, and each handler (import, import+init)."""

    import boto3

    from cli.local_stack import start_moto_server

    server, endpoint = start_moto_server()
    try:
        boto3.client(
            "ssm",
            region_name="eu-west-1",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 — a local moto server
        ).put_parameter(
            Name=RULES_PARAMETER,
            Value=json.dumps({"version": 1, "extends": "default"}),
            Type="String",
            Overwrite=True,
        )
        return _cold_runs(runs, endpoint)
    finally:
        server.stop()


def _cold_runs(runs: int, endpoint: str) -> dict[str, float]:
    import os
    import statistics
    import subprocess

    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "RULES_PARAMETER_NAME": RULES_PARAMETER,
        "PYTHONPATH": str(ROOT / "src"),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AUDIT_TABLE_NAME": "audit",
        "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "secretwatch",
    }
    scripts = {
        "floor": FLOOR,
        "eventbridge (import)": HANDLER.format(module="eventbridge", init=""),
        "eventbridge (import + pipeline)": HANDLER.format(module="eventbridge", init=INIT),
        "log_subscription (import)": HANDLER.format(module="log_subscription", init=""),
        "log_subscription (import + pipeline)": HANDLER.format(
            module="log_subscription", init=INIT
        ),
    }
    envs = {name: {**env, "PYTHONPATH": str(_code_dir(name))} for name in scripts}
    for name, script in scripts.items():  # warm the .pyc files once
        subprocess.run([sys.executable, "-c", script], env=envs[name], check=True)
    times: dict[str, list[float]] = {name: [] for name in scripts}
    for _ in range(runs):  # interleaved, so load on the machine hits every script alike
        for name, script in scripts.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", script], env=envs[name], check=True)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


ARTEFACTS = {"eventbridge": "EventBridgeFunction", "log_subscription": "LogSubscriptionFunction"}


def _code_dir(name: str) -> Path:
    """Where a handler is imported from: its built artefact (byte-code and trimmed service
    models, as Lambda runs it) when `make build` made one, else src/."""
    function = ARTEFACTS.get(name.split(" ", maxsplit=1)[0])
    built = ROOT / ".aws-sam" / "build" / function if function else None
    return built if built is not None and (built / "handlers").is_dir() else ROOT / "src"


def print_artefact_sizes(build_dir: Path = ROOT / ".aws-sam" / "build") -> None:
    """Size of each function's built artefact: bytes of its files, and of the zip that
    ``sam package`` would upload (made in memory the way SAM CLI makes it: ZIP_DEFLATED,
    every file under the directory)."""
    where = build_dir.relative_to(ROOT) if build_dir.is_relative_to(ROOT) else build_dir
    functions = sorted(p for p in build_dir.glob("*") if p.is_dir()) if build_dir.is_dir() else []
    if not functions:
        print(f"\n== artefact: nothing built in {where}: run make build first")
        return
    print(f"\n== artefact: {where}/<function>, zipped as sam package uploads it")
    for function in functions:
        files = [p for p in sorted(function.rglob("*")) if p.is_file()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                info = zipfile.ZipInfo(str(path.relative_to(function)))
                archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
        unzipped = sum(path.stat().st_size for path in files)
        print(
            f"   {function.name:<28} {unzipped:>11,} bytes unzipped  "
            f"{len(buffer.getvalue()):>11,} bytes zipped  {len(files):5d} files"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=15)
    args = parser.parse_args()

    result = bench_parse(args.records, args.repeat)
    print(
        f"== parse + normalise + rules: {result['records']:,} records, {result['bytes'] / 1e6:.1f} MB CloudTrail log file"
    )
    print(
        f"   json.loads alone        {result['json_loads_us_per_record']:7.1f} µs/record (CPU, best of {args.repeat})"
    )
    print(
        f"   read+normalise+rules    {result['secretwatch_us_per_record']:7.1f} µs/record ({result['findings']} findings)"
    )
    verdict = "OK" if result["ratio"] <= 2 else "OVER TARGET"
    print(f"   ratio                   {result['ratio']:7.2f}× json.loads (target ≤ 2×: {verdict})")
    print(f"   throughput              {result['records_per_second']:9,.0f} records/s on one core")

    e2e = bench_evaluate_end_to_end(args.records, runs=3)
    print(
        f"\n== secretwatch evaluate end to end: {e2e['records']:,}-record file, fresh processes, best of 3"
    )
    print(f"   python -c json.load        {e2e['json_load_s']:6.2f} s")
    print(f"   secretwatch evaluate       {e2e['evaluate_s']:6.2f} s")
    verdict = "OK" if e2e["ratio"] <= 3 else "OVER TARGET"
    print(f"   ratio                   {e2e['ratio']:7.2f}× json.load (target ≤ 3×: {verdict})")

    calls = bench_calls()
    ops = calls["calls"]
    summary = calls["summary"]
    alerts = summary["alerts_published"]
    quiet = summary["records"] - summary["findings"]
    print(
        f"\n== AWS calls for one {calls['records']:,}-record CloudWatch Logs batch, 1% alerts, {calls['secrets']} secrets (moto server)"
    )
    for operation, n in sorted(ops.items()):
        print(f"   {operation:<22} {n:5d}")
    writes = ops.get("BatchWriteItem", 0)
    allowed = -(-quiet // 25)
    print(
        f"   write calls for {quiet} non-alert records  {writes:4d}  (target ≤ ⌈{quiet}/25⌉ = {allowed})"
    )
    print(
        f"   conditional writes per alert        {ops.get('PutItem', 0) / max(alerts, 1):6.2f}  (target 1)"
    )
    print(
        f"   publishes per alert                 {ops.get('Publish', 0) / max(alerts, 1):6.2f}  (target 1)"
    )
    print(
        f"   DescribeSecret per distinct secret  {ops.get('DescribeSecret', 0) / calls['secrets']:6.2f}  (target ≤ 1)"
    )
    # Every record but the 1% PutSecretValue ones is a successful read: read-burst (a threshold)
    # counts each. PutSecretValue matches no rule with state: it must cost no state call.
    reads = calls["records"] - calls["records"] // calls["alert_every"]
    others = calls["records"] - reads
    state_writes = sum(n for op, n in ops.items() if op in STATE_WRITES)
    state_calls = sum(n for op, n in ops.items() if op.startswith("state "))
    print(
        f"   state writes per stateful finding   {state_writes / max(reads, 1):6.2f}  "
        f"(target ≤ 1; {reads} reads counted by read-burst)"
    )
    print(
        f"   state calls for {others} records without  {state_calls - 2 * reads:4d}  "
        "(target 0; each read: 1 GetItem + 1 UpdateItem)"
    )
    print(
        f"   read-burst fired                    {summary['by_severity'].get('medium', 0):6d}  "
        f"(one principal read {calls['secrets']} distinct secrets: a bulk read, alerted once)"
    )

    cold = bench_cold_start(args.cold_runs)
    floor = cold.pop("floor")
    print(
        f"\n== cold start: fresh python3.12, median of {args.cold_runs} runs (wall clock, this machine)"
    )
    print(f"   floor (import boto3 + DynamoDB and SNS clients)   {floor * 1000:6.0f} ms")
    for name, value in cold.items():
        print(f"   {name:<48} {value * 1000:6.0f} ms  {value / floor:5.2f}× floor")
    print("   target ≤ 1.25× (X-Ray off: Tracer is imported only when EnableTracing=true;")
    print("   the pipeline column includes reading the rule document from its parameter;")
    where = sorted({str(_code_dir(name).relative_to(ROOT)) for name in cold if name != "floor"})
    print(f"   handlers imported from {', '.join(where)})")

    print_artefact_sizes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
