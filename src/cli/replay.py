"""``secretwatch replay SOURCE...``: backfill the audit table from CloudTrail log files.

Reads CloudTrail log files (``.json`` / ``.json.gz``, the S3 delivery layout
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<file>``) from local files and folders or from
``s3://bucket/prefix``, one file at a time (``--distributed``: on the stack's Step Functions
state machine instead, many files at a time, see ``cli.replay_distributed``), and feeds each file's Secrets Manager records to the
same Pipeline the Lambda functions use (route "replay"): the same rules, the same idempotent
writer, so replaying the same files twice adds nothing.

Replay is quiet by default: no alert is published (``--notify`` turns alerts on; without it the
alerts are recorded as "suppressed") and no enrichment look-up is made (``--enrich`` turns it on;
today's tags would otherwise be attributed to old events). ``--dry-run`` prints the findings and
writes nothing.

Output: the summary on stdout (with ``--dry-run`` the findings go to stdout and the summary to
stderr, so ``| jq`` works); one stderr line per file that cannot be read and per rejected record;
on a terminal, a progress display on stderr. Exit status: 0; 1 when a file failed, a record was
rejected or AWS refused; 2 for a usage or configuration problem (a bad option, no Region, an
unknown profile, no table).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import ClientError

from cli import aws
from cli.errors import UsageError
from cli.output import describe, examples, is_quiet, render_table, safe, terminal_width, use_colour
from cli.terminal import ProgressDisplay
from cli.timewindow import in_window, window
from shared.audit.store import AuditStore
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.envelopes import ReadItem
from shared.errors import ConfigError, SecretwatchError
from shared.models import SEVERITY_RANK, CloudTrailRecord
from shared.observability import quiet_service_telemetry
from shared.pipeline import EnricherPort, Pipeline, Summary
from shared.replay import NullEnricher, Totals, is_log_file, read_items
from shared.replay import select as select_items
from shared.replay import write as write_items
from shared.rules import RuleSet, load_rules
from shared.settings import Settings
from shared.stateful import in_memory
from shared.text import dumps

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PROGRESS_PER_SECOND = 10  # redraws of the progress display, at most
# The stack's default retention (Settings and template.yaml agree); expiry counts from eventTime.
RETENTION_DAYS = Settings(table_name="-", topic_arn="-").retention_days
ROUTINE_RETENTION_DAYS = Settings(table_name="-", topic_arn="-").routine_read_retention_days


class ReplayError(SecretwatchError):
    """The replay cannot start: the audit table cannot be used (exit status 1)."""


# ---------------------------------------------------------------------------------------------
# The command line


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        parents=[aws.options()],
        help="backfill the audit table from CloudTrail log files (local or S3)",
        description=describe(__doc__ or ""),
        epilog=examples(
            "secretwatch replay ./trail --dry-run",
            "secretwatch replay s3://my-trail-bucket/AWSLogs/111122223333/CloudTrail/ --stack secretwatch --since 2025-11-01",
            "secretwatch replay ./trail --table secretwatch-AuditTable-ABC123 --notify",
            "secretwatch replay --distributed s3://my-trail-bucket/AWSLogs/111122223333/CloudTrail/ --stack secretwatch",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="CloudTrail log file, folder (read recursively) or s3://bucket/prefix",
    )
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help='rule document (YAML or JSON): its own rules, or "extends: default" to change the defaults',
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the findings only; write nothing"
    )
    parser.add_argument(
        "--notify",
        action="store_true",
        help="also publish alerts (off by default: a backfill records them as suppressed)",
    )
    parser.add_argument("--topic-arn", metavar="ARN", help="SNS topic for --notify")
    parser.add_argument(
        "--since",
        metavar="T",
        help="only events at or after T (24h, 7d, 2026-11-01, ISO 8601; UTC)",
    )
    parser.add_argument(
        "--until",
        metavar="T",
        help="only events at or before T (same forms; a date means through its last second)",
    )
    parser.add_argument(
        "--enrich",
        action="store_true",
        help="look up secret tags and account names (off by default: they are today's)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="replay one s3://bucket/prefix on the --stack's Step Functions state machine, "
        "files in parallel, and print the same summary (a local replay stays for a laptop)",
    )
    parser.add_argument(
        "--state-machine-arn",
        metavar="ARN",
        default=None,
        help="with --distributed: the replay state machine (else the --stack's "
        "ReplayStateMachineArn output)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.distributed:
        from cli import replay_distributed  # noqa: PLC0415 — only the distributed replay

        return replay_distributed.run(args)
    if args.state_machine_arn:
        raise UsageError("--state-machine-arn needs --distributed")
    since, until = _window(args)
    if args.topic_arn and not args.notify:
        raise UsageError("--topic-arn needs --notify")
    if args.dry_run and args.notify:
        raise UsageError("--dry-run and --notify cannot be combined")
    for source in args.sources:
        if source.startswith("s3://"):
            parse_s3_url(source)  # a malformed URL is a usage error, before any AWS call
    ruleset = load_rules(args.rules)  # a bad rule file fails here, before any file is read
    layer = aws.Aws.from_args(args)
    with aws.aws_errors():
        layer.session  # noqa: B018 — an unknown --profile is a usage error before any file is read
        table, topic_arn = None, None
        if not args.dry_run:
            table, topic_arn = resolve_targets(args, layer)
            if table is None:
                raise UsageError(aws.NO_TABLE)
            if args.notify and topic_arn is None:
                raise UsageError("--notify needs --topic-arn ARN (or --stack NAME)")
        options = ReplayOptions(
            sources=tuple(args.sources),
            table=table,
            topic_arn=topic_arn if args.notify else None,
            https_format=https_format(args, layer) if args.notify else "json",
            dry_run=args.dry_run,
            since=since,
            until=until,
            enrich=args.enrich,
        )
        with quiet_service_telemetry():
            totals = replay(
                options, layer, ruleset, progress=sys.stderr.isatty() and not is_quiet()
            )
    summary_stream = sys.stderr if args.dry_run else sys.stdout
    print(format_summary(totals, dry_run=args.dry_run, notify=args.notify), file=summary_stream)
    return 1 if totals.failed else 0


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """--since and --until, read once with the meaning every command shares."""
    try:
        return window(args.since, args.until, datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Sources: local files and folders, S3 prefixes


@dataclass(frozen=True, slots=True)
class LogFile:
    """One log file to read; ``read`` fetches its bytes only when it is its turn."""

    name: str
    read: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class SourceError:
    """A source or file that could not be read: one stderr line, the run goes on."""

    name: str
    message: str


def walk_local(path: Path) -> list[Path]:
    """A file as given (whatever its name); a folder's log files, recursively, sorted."""
    if not path.is_dir():
        return [path]
    return sorted(
        candidate
        for candidate in path.rglob("*")
        if candidate.is_file()
        and is_log_file(candidate.relative_to(path).parts)
        and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise UsageError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    return bucket, prefix


def iter_s3(s3: S3Client, url: str) -> Iterator[LogFile | SourceError]:
    """The log files under an S3 prefix, listed page by page (keys come back sorted)."""
    bucket, prefix = parse_s3_url(url)
    paginator = s3.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if is_log_file(key.split("/")):
                    yield LogFile(f"s3://{bucket}/{key}", _s3_reader(s3, bucket, key))
    except aws.AWS_ERRORS as exc:
        yield SourceError(url, f"cannot list the objects: {aws.describe(exc)}")


def _s3_reader(s3: S3Client, bucket: str, key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    return read


def _local_reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def iter_sources(
    sources: Sequence[str], s3: Callable[[], S3Client]
) -> tuple[Iterator[LogFile | SourceError], int | None]:
    """Every source's log files in order, and how many there are (None when S3 is listed lazily)."""
    local: dict[str, list[Path]] = {}
    for source in sources:
        if not source.startswith("s3://"):
            local[source] = walk_local(Path(source))
    known = None if any(s.startswith("s3://") for s in sources) else sum(map(len, local.values()))

    def files() -> Iterator[LogFile | SourceError]:
        for source in sources:
            if source.startswith("s3://"):
                yield from iter_s3(s3(), source)
                continue
            if not Path(source).exists():
                yield SourceError(source, "no such file or directory")
                continue
            for path in local[source]:
                yield LogFile(str(path), _local_reader(path))

    return files(), known


# ---------------------------------------------------------------------------------------------
# Targets


def resolve_targets(args: argparse.Namespace, layer: aws.Aws) -> tuple[str | None, str | None]:
    """(table, topic ARN) from --table/--topic-arn, the stack's outputs, or $SECRETWATCH_TABLE."""
    table = aws.table_name(args, layer)
    topic = args.topic_arn
    stack = getattr(args, "stack", None)
    if stack and topic is None:
        topic = layer.stack_outputs(stack).get(aws.TOPIC_OUTPUT)
    return table, topic


def https_format(args: argparse.Namespace, layer: aws.Aws) -> str:
    """The stack's https variant (``chat`` with a chat channel), so replayed alerts reach the
    channel; ``json`` for a bare --topic-arn or a stack from before chat channels."""
    stack = getattr(args, "stack", None)
    if not stack:
        return "json"
    found = layer.stack_outputs(stack).get(aws.HTTPS_FORMAT_OUTPUT)
    return "chat" if found == "chat" else "json"


def check_table(dynamodb: Any, table: str) -> None:
    """Fail early, with one line, if the table cannot be used: with the permission replay needs
    anyway (BatchGetItem), not DescribeTable. Missing credentials or an unreachable endpoint are
    not about the table: they reach ``aws_errors`` and get its line."""
    try:
        dynamodb.batch_get_item(
            RequestItems={
                table: {
                    "Keys": [{"event_id": {"S": "secretwatch-replay-probe"}}],
                    "ProjectionExpression": "event_id",
                }
            }
        )
    except ClientError as exc:
        hint = (
            " (check --table/--stack and --region)"
            if aws.error_code(exc) in aws.NOT_FOUND_CODES
            else ""
        )
        region = dynamodb.meta.region_name
        raise ReplayError(f"audit table {table!r} in {region}: {aws.describe(exc)}{hint}") from exc


# ---------------------------------------------------------------------------------------------
# The replay


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    sources: tuple[str, ...]
    table: str | None = None
    topic_arn: str | None = None  # set: publish alerts (--notify)
    https_format: str = "json"  # the stack's AlertHttpsFormat output
    dry_run: bool = False
    since: datetime | None = None
    until: datetime | None = None
    enrich: bool = False


def replay(
    options: ReplayOptions,
    layer: aws.Aws,
    ruleset: RuleSet,
    *,
    progress: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> Totals:
    """Replay every source's files, one at a time; per-file failures are reported, not raised."""
    out, err = out or sys.stdout, err or sys.stderr
    started = time.monotonic()
    pipeline = build_pipeline(options, layer, ruleset, make_enricher(options, layer))

    def s3() -> S3Client:
        s3_client: S3Client = layer.client("s3")
        return s3_client

    files, known = iter_sources(options.sources, s3)
    totals = Totals(files_total=known)
    console = Console(err, progress=progress, started=started)
    table_rows: list[list[str]] = []
    table_out = options.dry_run and out.isatty()
    try:
        for entry in files:
            if isinstance(entry, SourceError):
                totals.files_failed += 1
                console.problem(entry.name, entry.message)
                continue
            items = read_file(entry, totals, console)
            if items is None:
                continue
            summary = write(entry.name, select(items, options, totals), pipeline, totals, console)
            if summary is not None and options.dry_run:
                for line in finding_lines(entry.name, summary):
                    if table_out:
                        table_rows.append(_table_row(line))
                    else:
                        print(dumps(line), file=out)
            console.update(totals)
    finally:
        console.clear()  # also on Ctrl-C: the terminal is left clean
    if table_rows:
        headers = ["SEVERITY", "EVENT TIME", "EVENT", "SECRET", "PRINCIPAL", "RULE", "FILE#REC"]
        widths = [8, 20, 28, 40, 50, 32, 80]
        render_table(
            headers, table_rows, max_widths=widths, stream=out, colour_column=0, keep_end=(4, 6)
        )
    totals.elapsed = time.monotonic() - started
    return totals


def make_enricher(options: ReplayOptions, layer: aws.Aws) -> EnricherPort:
    """No look-ups unless --enrich: today's tags must not be attributed to old events."""
    if not options.enrich:
        return NullEnricher()
    return Enricher(
        layer.client("secretsmanager"),
        layer.client("iam"),
        None,
    )


def build_pipeline(
    options: ReplayOptions, layer: aws.Aws, ruleset: RuleSet, enricher: EnricherPort
) -> Pipeline:
    """The Lambda functions' pipeline over the table; without a store (--dry-run) it only
    decides."""
    store, notifier = None, None
    if not options.dry_run:
        if options.table is None:
            raise ConfigError("no audit table")
        dynamodb = layer.client("dynamodb")
        check_table(dynamodb, options.table)
        store = AuditStore(dynamodb, options.table)
        if options.topic_arn is not None:
            notifier = Notifier(
                layer.client("sns"), options.topic_arn, https_format=options.https_format
            )
    return Pipeline(
        ruleset=ruleset,
        enricher=enricher,
        store=store,
        notifier=notifier,
        retention_days=RETENTION_DAYS,
        routine_retention_days=ROUTINE_RETENTION_DAYS,
        # The replayed records are decided among themselves (thresholds on their event time,
        # repeats folded), in memory: a replay never touches a deployed stack's live state.
        state=in_memory(),
    )


def read_file(entry: LogFile, totals: Totals, console: Console) -> list[ReadItem] | None:
    """All the records of one file (one file in memory at a time), or None after one error line."""
    return read_items(entry.name, entry.read, totals, console.problem, describe=aws.describe)


def select(items: Iterable[ReadItem], options: ReplayOptions, totals: Totals) -> list[ReadItem]:
    """Secrets Manager records in the time window, and rejected records (kept and reported)."""

    def keep(record: CloudTrailRecord) -> bool:
        return in_window(record.event_time, options.since, options.until)

    return select_items(items, totals, keep)


def write(
    name: str,
    items: list[ReadItem],
    pipeline: Pipeline,
    totals: Totals,
    console: Console,
) -> Summary | None:
    """One file through the Pipeline (quiet records batch-written 25 a call); its summary."""
    return write_items(name, items, pipeline, totals, console.problem)


def finding_lines(name: str, summary: Summary) -> Iterator[dict[str, Any]]:
    """One JSON-ready line per finding the pipeline decided, with evaluate's field names."""
    for decision in summary.decisions:
        for finding in decision.findings:
            yield {
                "file": name,
                "index": decision.index,
                "event_id": decision.event_id,
                "event_time": decision.event_time,
                "event_name": decision.event_name,
                "secret": decision.secret,
                "principal": decision.principal,
                "rule": finding.rule_id,
                "severity": finding.severity,
            }


def _table_row(line: dict[str, Any]) -> list[str]:
    return [
        line["severity"],
        line["event_time"],
        line["event_name"],
        line["secret"] or "",
        line["principal"] or "",
        line["rule"],
        f"{line['file']}#{line['index']}",
    ]


# ---------------------------------------------------------------------------------------------
# Progress and summary


class Console:
    """stderr: one line per problem, and on a terminal a live progress display (files, records,
    findings, rejected, rate, elapsed) redrawn at most ten times a second, which problem lines
    scroll above. Off a terminal: the problem lines only."""

    def __init__(self, stream: TextIO, *, progress: bool, started: float) -> None:
        self._stream = stream
        self._started = started
        self._display: ProgressDisplay | None = None
        if progress:
            self._display = ProgressDisplay(
                stream,
                colour=use_colour(stream),
                width=terminal_width(stream),
                per_second=PROGRESS_PER_SECOND,
            )

    def problem(self, name: str, message: str) -> None:
        line = f"secretwatch: {safe(name)}: {safe(message)}"
        if self._display is None:
            print(line, file=self._stream)
        else:
            self._display.line(line)

    def update(self, totals: Totals) -> None:
        if self._display is None:
            return
        self._display.update(
            format_progress(totals, time.monotonic() - self._started),
            completed=totals.files_read + totals.files_failed,
            total=totals.files_total,
        )

    def status(self, line: tuple[str, int | None, int | None]) -> None:
        """A progress line of someone else's making (text, done, total): the distributed replay."""
        if self._display is None:
            return
        text, completed, total = line
        self._display.update(text, completed=completed or 0, total=total)

    def clear(self) -> None:
        if self._display is not None:
            self._display.stop()


def format_progress(totals: Totals, elapsed: float) -> str:
    done = totals.files_read + totals.files_failed
    total = "?" if totals.files_total is None else f"{totals.files_total:,}"
    rate = totals.records / elapsed if elapsed > 0 else 0.0
    return (
        f"replay: {done:,}/{total} files, {totals.records:,} records, "
        f"{sum(totals.findings.values()):,} findings, {totals.rejected:,} rejected, "
        f"{rate:,.0f} records/s"
    )


def format_findings(findings: Counter[str]) -> str:
    total = sum(findings.values())
    if not total:
        return "0"
    parts = [
        f"{severity} {findings[severity]:,}"
        for severity in sorted(findings, key=lambda s: -SEVERITY_RANK.get(s, -1))
        if findings[severity]
    ]
    return f"{total:,} ({', '.join(parts)})"


def format_summary(totals: Totals, *, dry_run: bool, notify: bool) -> str:
    """The end-of-run report: what was read, found and written."""
    rows: list[tuple[str, str]] = [
        ("files read", f"{totals.files_read:,}"),
        ("files failed", f"{totals.files_failed:,}"),
        ("records", f"{totals.records:,}"),
        ("Secrets Manager", f"{totals.sm_records:,}"),
        ("other sources", f"{totals.other_sources:,} (skipped)"),
    ]
    if totals.outside_window:
        rows.append(("outside --since/--until", f"{totals.outside_window:,} (skipped)"))
    rows.append(("findings", format_findings(totals.findings)))
    if dry_run:
        rows.append(("written", "0 (--dry-run)"))
    else:
        rows.append(("written", f"{totals.written:,}"))
        rows.append(("duplicates", f"{totals.duplicates:,} (already in the table)"))
        alerts = (
            f"{totals.alerts_published:,}"
            if notify
            else "0 (without --notify alerts are recorded as suppressed)"
        )
        rows.append(("alerts published", alerts))
    rows.append(("rejected", f"{totals.rejected:,}"))
    if totals.rule_errors:
        rows.append(("rule errors", f"{totals.rule_errors:,}"))
    rows.append(("elapsed", f"{totals.elapsed:.1f} s ({totals.rate:,.0f} records/s)"))
    width = max(len(label) for label, _ in rows)
    title = "replay summary (dry run: nothing written)" if dry_run else "replay summary"
    return "\n".join([title, *(f"  {label.ljust(width)}  {value}" for label, value in rows)])
