"""``make bench``: measured figures, printed on one run. Speed lives here, never in timed tests.

Sections:
- parse: CPU cost per record of read + normalise + rules on a 20,000-record CloudTrail log file,
  against ``json.loads`` of the same bytes (target ≤ 5×), and records per second on one core.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shared.parse import read_bytes  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
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
    verdict = "OK" if result["ratio"] <= 5 else "OVER TARGET"
    print(f"   ratio                   {result['ratio']:7.2f}× json.loads (target ≤ 5×: {verdict})")
    print(f"   throughput              {result['records_per_second']:9,.0f} records/s on one core")

    return 0


if __name__ == "__main__":
    sys.exit(main())
