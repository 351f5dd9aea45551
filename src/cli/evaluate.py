"""``secretwatch evaluate [--rules FILE] [--format json|text] PATH...``

Reads each path (any input shape; directories recursively) and prints one line per CloudTrail
record or log event found: the findings, or the error that rejected it. Files and records that
cannot be read are reported (stdout line + one stderr line) and the rest is still evaluated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.output import describe, examples, is_terminal, output_option, render_table, safe, write_csv
from shared.envelopes import ReadItem, read_bytes
from shared.errors import InputError
from shared.models import SEVERITY_RANK, Finding
from shared.rules import RuleSet, load_rules
from shared.stateful import StatefulRules, in_memory
from shared.text import dumps

INPUT_SUFFIXES = (".json", ".gz", ".jsonl", ".ndjson")
FORMATS = ("json", "text", "table", "csv")
CSV_FIELDS = ("file", "index", "event_id", "event_name", "secret", "principal", "findings", "error")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="evaluate event files against the rules, offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=describe(
            "Evaluate Secrets Manager CloudTrail events in files against the rules. Accepts "
            "EventBridge events, CloudWatch Logs subscription events, CloudTrail log files "
            "(plain or .gz) and bare records; directories are read recursively; - reads "
            "standard input. Exit status 0 all read, 1 something rejected, 2 usage error."
        ),
        epilog=examples(
            "secretwatch evaluate events/eventbridge/secret-deleted.json",
            "secretwatch evaluate --output table trail/2026/11/23/",
            "aws cloudtrail lookup-events --max-results 50 | secretwatch evaluate -",
            "secretwatch evaluate --rules my-rules.yaml --output csv trail/ > findings.csv",
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="event file or directory; - for standard input"
    )
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help='rule document (YAML or JSON): its own rules, or "extends: default" to change the defaults',
    )
    output_option(
        parser,
        FORMATS,
        default="json",
        help_text="one JSON object per line (default), a table (text or table) or csv",
    )
    parser.set_defaults(handler=run)


@dataclass
class Result:
    """One output line of ``evaluate``: the contract's fields, in the contract's order."""

    file: str
    index: int | None
    event_id: str | None = None
    event_name: str | None = None
    secret: str | None = None
    principal: str | None = None
    findings: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None  # shown in the text table only; not part of the JSON contract
    rule_errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "index": self.index,
            "event_id": self.event_id,
            "event_name": self.event_name,
            "secret": self.secret,
            "principal": self.principal,
            "findings": self.findings,
            "error": self.error,
        }


def run(args: argparse.Namespace) -> int:
    ruleset = load_rules(args.rules)  # a bad rule file fails here, before any event
    results = evaluate_paths(args.paths, ruleset)
    rejected = False
    text_rows: list[Result] = []
    # Each error once: when stdout is the terminal, its own line already shows the error (a
    # JSON "error" or an ERROR row), so stderr stays quiet; piped away, stderr tells the user.
    tell = not (is_terminal(sys.stdout) and is_terminal(sys.stderr))
    for result in results:
        if result.error is not None:
            rejected = True
            if tell:
                print(f"secretwatch: {safe(result.error)}", file=sys.stderr)
        for message in result.rule_errors:
            print(f"secretwatch: {safe(message)}", file=sys.stderr)
        if args.format == "json":
            print(dumps(result.to_json()), flush=False)
        else:
            text_rows.append(result)
    if args.format in {"text", "table"}:
        print_table(text_rows)
    elif args.format == "csv":
        write_csv(CSV_FIELDS, [_csv_row(r) for r in text_rows])
    sys.stdout.flush()
    return 1 if rejected else 0


STDIN = "-"
STDIN_NAME = "<stdin>"


def evaluate_paths(
    paths: list[str], ruleset: RuleSet, *, state: StatefulRules | None = None
) -> Iterator[Result]:
    """Each record of each path; one rule state (in memory) across all of them."""
    state = state if state is not None else in_memory()
    for path_text in paths:
        if path_text == STDIN:
            # `aws cloudtrail lookup-events ... | secretwatch evaluate -`: read once, whole
            # (every accepted shape is one JSON document or JSON Lines).
            yield from evaluate_data(STDIN_NAME, sys.stdin.buffer.read(), ruleset, state=state)
            continue
        for path in _expand(Path(path_text)):
            yield from evaluate_file(path, ruleset, state=state)


def _expand(path: Path) -> Iterator[Path]:
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.name.lower().endswith(INPUT_SUFFIXES)
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        yield from found
    else:
        yield path


def evaluate_file(
    path: Path, ruleset: RuleSet, *, state: StatefulRules | None = None
) -> Iterator[Result]:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Result(name, None, error=f"{name}: cannot read the file: {exc.strerror or exc}")
        return
    yield from evaluate_data(name, data, ruleset, state=state)


def evaluate_data(
    name: str, data: bytes, ruleset: RuleSet, *, state: StatefulRules | None = None
) -> Iterator[Result]:
    """The records of one input's bytes (a file's, or standard input's), named ``name``."""
    try:
        for item in read_bytes(data):
            yield _result(name, item, ruleset, state)
    except InputError as exc:
        yield Result(name, None, error=f"{name}: {exc}")


def _result(
    name: str, item: ReadItem, ruleset: RuleSet, state: StatefulRules | None = None
) -> Result:
    result = Result(name, item.index, event_id=item.event_id, event_name=item.event_name)
    if item.error is not None:
        result.error = f"{name}: record {item.index}{_id_note(item)}: {item.error}"
        return result
    if item.skipped is not None or item.record is None:
        result.skipped = item.skipped
        return result
    record = item.record
    result.secret = record.secret.name if record.secret else None
    result.principal = record.caller.principal
    evaluation = ruleset.evaluate(record)
    if state is not None:
        evaluation, _ = state.apply(record, None, evaluation, ruleset)
    result.findings = [_finding(f) for f in evaluation.findings]
    result.rule_errors = [
        f"{name}: record {item.index}: rule {error.rule_id} failed: {error.message}"
        for error in evaluation.rule_errors
    ]
    return result


def _finding(finding: Finding) -> dict[str, str]:
    """A finding's line entry; ``state`` when the rule's state decided it (folded, counted,
    fired): a folded or counted finding is recorded by a deployed stack but not alerted."""
    entry = {"rule": finding.rule_id, "severity": finding.severity}
    if finding.state is not None:
        entry["state"] = finding.state
    if finding.mode != "alert":
        entry["mode"] = finding.mode
    return entry


def _alerting(finding: dict[str, str]) -> bool:
    return finding.get("state") not in QUIET_STATES and "mode" not in finding


QUIET_STATES = ("counted", "folded")


def _id_note(item: ReadItem) -> str:
    if item.event_id:
        return f" (event {item.event_id})"
    if item.origin_id:
        return f" (log event {item.origin_id})"
    return ""


def print_table(results: list[Result]) -> None:
    rows = []
    findings_total = rejected = skipped = 0
    for result in results:
        if result.error is not None:
            rejected += 1
            rows.append(["ERROR", _index(result), "", "", "", result.error])
            continue
        if result.skipped is not None:
            skipped += 1
            rows.append(
                ["skipped", _index(result), result.event_name or "", "", "", result.skipped]
            )
            continue
        # Severity and count from the findings that would alert; the others are shown, marked.
        alerting = [f for f in result.findings if _alerting(f)]
        findings_total += len(alerting)
        top = max((f["severity"] for f in alerting), key=SEVERITY_RANK.__getitem__, default="-")
        rule_text = (
            ", ".join(
                f"{f['rule']} ({f['severity'] if _alerting(f) else f.get('state') or f['mode']})"
                for f in result.findings
            )
            or "-"
        )
        rows.append(
            [
                top,
                _index(result),
                result.event_name or "",
                result.secret or "",
                result.principal or "",
                rule_text,
            ]
        )
    headers = ["SEVERITY", "FILE#REC", "EVENT", "SECRET", "PRINCIPAL", "FINDINGS"]
    render_table(
        headers, rows, max_widths=[8, 60, 28, 40, 60, 120], colour_column=0, keep_end=(1, 4)
    )
    print(
        f"\n{len(results)} records: {findings_total} findings, {rejected} rejected, {skipped} skipped "
        "(out of scope)"
    )


def _csv_row(result: Result) -> dict[str, object]:
    row = result.to_json()
    row["index"] = "" if result.index is None else result.index
    row["findings"] = ";".join(f"{f['rule']}:{f['severity']}" for f in result.findings)
    return {k: "" if v is None else v for k, v in row.items()}


def _index(result: Result) -> str:
    return safe(result.file) + ("" if result.index is None else f"#{result.index}")
