"""``secretwatch audit``: look-ups in the audit table, one record, or the life of one secret.

    secretwatch audit [--secret S] [--principal P] [--rule R] [--severity L] [--event-name N]
                      [--since T] [--until T] [--limit N]
    secretwatch audit show EVENT_ID
    secretwatch audit timeline SECRET [--since T] [--until T]

The table comes from --table, --stack (its AuditTableName output) or SECRETWATCH_TABLE. The query
logic lives in ``shared.audit.query`` and the sentences in ``shared.narrate``; this module parses
options, connects and prints (rows laid out by ``cli.audit_view``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cli import audit_view as view
from cli import aws
from cli.errors import UsageError
from cli.output import (
    colour_severity,
    describe,
    examples,
    note,
    output_option,
    render_table,
    safe,
    use_colour,
)
from cli.timewindow import window
from shared.audit import query as q
from shared.errors import DeliveryError, SecretwatchError
from shared.models import SEVERITIES
from shared.narrate import sentence
from shared.state.keys import RESOLUTION_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Refusals that mean "this caller may not read the table" for the audit command's message; an
# unrecognised client (a token no account knows) gets the same hint, as it always has here.
ACCESS_CODES = aws.ACCESS_DENIED_CODES | {"UnrecognizedClientException"}
FORMATS = ("table", "json", "csv")
LIST_WIDTHS = (20, 28, 40, 32, 16, 8, 40, 24, 40)
TAIL_FIELDS = frozenset({"principal"})  # an ARN says the most at its end

ClientFactory = Callable[[argparse.Namespace], "DynamoDBClient"]


class AuditError(SecretwatchError):
    """A look-up in the audit table failed: missing table, access denied, unknown id, ..."""


# ---------------------------------------------------------------------------------------------
# Options


def register(commands: Any) -> None:
    common = _common_options()
    parser = commands.add_parser(
        "audit",
        parents=[common],
        help="search the audit table: by secret, principal, rule, severity, event, time",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            "secretwatch audit --stack secretwatch --secret prod/payments/db-password",
            "secretwatch audit --table TABLE --principal alice@example.com --since 7d",
            "secretwatch audit --stack secretwatch --severity high --output csv > high.csv",
            "secretwatch audit --stack secretwatch --event-name DeleteSecret --since 180d --max-days 180",
        ),
        description=describe(
            "Search the audit table, newest first, always through its keys and indexes (never a "
            "Scan). Filters combine. Without --secret, --principal or --rule the by-day index is "
            f"searched day by day from --until (default: now) back to --since (default: "
            f"{q.DEFAULT_WINDOW_DAYS} days back). Routine reads (successful reads on which no rule "
            "fired) are not in the by-day index, to keep its daily key cool: list them with "
            "--secret or --principal."
        ),
    )
    _filter_options(parser)
    parser.set_defaults(handler=run_search)
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", parser_class=type(parser))

    show = sub.add_parser(
        "show",
        parents=[common],
        help="one whole record by its event id",
        epilog=examples(
            "secretwatch audit show 45ac16b9-c20d-4c21-8f8a-7abff2e91ac7 --stack secretwatch"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument(
        "--state-table",
        metavar="NAME",
        help="the state table, for each alert's life (default: the stack's StateTableName "
        "output, or $SECRETWATCH_STATE_TABLE)",
    )
    show.set_defaults(handler=run_show)

    timeline = sub.add_parser(
        "timeline",
        parents=[common],
        help="the life of one secret as a story, oldest first",
        epilog=examples("secretwatch audit timeline prod/rds/orders-primary --stack secretwatch"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    timeline.add_argument("secret", metavar="SECRET", help="secret name or ARN")
    _window_options(timeline)
    timeline.set_defaults(handler=run_timeline)


def _common_options() -> argparse.ArgumentParser:
    """Options every audit action takes, before or after the action (hence SUPPRESS)."""
    common = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS, parents=[aws.options()]
    )
    output_option(
        common,
        (*FORMATS, "text"),
        suppress=True,
        help_text="table (default on a terminal; text is the same), json lines (default "
        "otherwise) or csv",
    )
    return common


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", metavar="WHEN", help="from (inclusive): 24h, 7d, 2026-11-01 or an ISO time"
    )
    parser.add_argument(
        "--until", metavar="WHEN", help="to (inclusive): 24h, 7d, a date (its end) or an ISO time"
    )


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", metavar="NAME_OR_ARN", help="one secret")
    parser.add_argument(
        "--principal", metavar="ARN_OR_NAME", help="caller: IAM user/role/assumed-role ARN or name"
    )
    parser.add_argument("--rule", metavar="ID", help="records on which this rule fired")
    parser.add_argument(
        "--severity",
        type=str.lower,  # HIGH as well as high
        choices=SEVERITIES,
        metavar="LEVEL",
        help=f"this severity or higher ({', '.join(SEVERITIES)})",
    )
    parser.add_argument("--event-name", metavar="NAME", help="e.g. DeleteSecret")
    parser.add_argument(
        "--account", type=_account_id, metavar="ID", help="records from this account (central mode)"
    )
    _window_options(parser)
    parser.add_argument(
        "--limit", type=_positive, default=q.DEFAULT_LIMIT, help="at most N records (default 50)"
    )
    parser.add_argument(
        "--max-days",
        type=_positive,
        default=q.DEFAULT_MAX_DAYS,
        metavar="N",
        help="when no index serves the look-up, search at most the last N days day by day "
        f"(one query per day; default {q.DEFAULT_MAX_DAYS})",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="list the alerts still open (those a rule resolves, such as secret-deleted until "
        "secret-restored), from the state table",
    )
    parser.add_argument(
        "--state-table",
        metavar="NAME",
        help="the state table for --open (default: the stack's StateTableName output, or "
        "$SECRETWATCH_STATE_TABLE)",
    )
    parser.add_argument("--page-size", type=_positive, help=argparse.SUPPRESS)


def _account_id(text: str) -> str:
    if len(text) != 12 or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a 12-digit account ID, got {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _window(args: argparse.Namespace, now: datetime) -> tuple[datetime | None, datetime | None]:
    try:
        return window(args.since, args.until, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _filters(args: argparse.Namespace, now: datetime) -> q.Filters:
    since, until = _window(args, now)
    try:
        principal = q.principal_lookup(args.principal) if args.principal else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return q.Filters(
        secret=q.secret_name(args.secret) if args.secret else None,
        principal=principal,
        rule=args.rule,
        severity=args.severity,
        event_name=args.event_name,
        account=args.account,
        since=since,
        until=until,
        limit=args.limit,
        max_days=args.max_days,
    )


# ---------------------------------------------------------------------------------------------
# Connecting


@dataclass
class Connection:
    client: DynamoDBClient
    table: str
    region: str


def connect(args: argparse.Namespace, layer: aws.Aws) -> Connection:
    """The DynamoDB client and the table name, from the options and the environment.

    ``args.client_factory`` (tests) replaces the layer's DynamoDB client, e.g. with a recorder.
    """
    table = aws.require_table(args, layer)
    factory: ClientFactory | None = getattr(args, "client_factory", None)
    client = factory(args) if factory is not None else layer.client("dynamodb")
    return Connection(client, table, str(client.meta.region_name))


def _explain(exc: ClientError, conn: Connection | None) -> str | None:
    """The audit command's own words for a refused call on its table; None: the layer's."""
    code = aws.error_code(exc)
    if conn is None:
        return None
    if code in aws.NOT_FOUND_CODES:
        return (
            f"audit table {conn.table} not found in {conn.region} (check --table/--stack/--region)"
        )
    if code in ACCESS_CODES:
        return (
            f"access denied ({code}): the caller needs dynamodb:Query/GetItem on the table "
            f"{conn.table} and its indexes"
        )
    return None


def _connected(args: argparse.Namespace, work: Callable[[Connection], int]) -> int:
    holder: list[Connection] = []
    with aws.aws_errors(lambda exc: _explain(exc, holder[0] if holder else None)):
        holder.append(connect(args, aws.Aws.from_args(args)))
        return work(holder[0])


# ---------------------------------------------------------------------------------------------
# Actions


def _format(args: argparse.Namespace) -> str:
    chosen = getattr(args, "format", None)
    if chosen == "text":
        return "table"
    if chosen:
        return str(chosen)
    return "table" if sys.stdout.isatty() else "json"


OPEN_FIELDS = ("opened_at", "severity", "rule", "secret", "principal", "alert_id", "event_id")


def run_open(args: argparse.Namespace) -> int:
    """The alerts still open, oldest first (the state table's due index, never a Scan)."""
    layer = aws.Aws.from_args(args)

    def work() -> int:
        table = _state_table(args, layer)
        from shared.state.keys import DUE_OPEN  # noqa: PLC0415
        from shared.state.store import StateStore  # noqa: PLC0415

        store = StateStore(layer.client("dynamodb"), table)
        try:
            rows = [_open_row(item) for item in store.due(DUE_OPEN, limit=args.limit)]
        except DeliveryError as exc:
            reason = str(exc).partition(": ")[2]  # "could not read the due index: <why>"
            raise AuditError(
                f"could not list the open alerts in state table {table}: {reason}"
            ) from exc
        fmt = _format(args)
        if fmt == "json":
            for row in rows:
                print(view.to_json(row))
        else:
            print_rows(
                fmt, rows, lambda row: {k: str(row.get(k) or "") for k in OPEN_FIELDS}, OPEN_FIELDS
            )
        return 0

    with aws.aws_errors(lambda exc: None):
        return work()


def _state_table(args: argparse.Namespace, layer: aws.Aws) -> str:
    if getattr(args, "state_table", None):
        return str(args.state_table)
    if getattr(args, "stack", None):
        return layer.stack_output(str(args.stack), "StateTableName")
    found = os.environ.get("SECRETWATCH_STATE_TABLE")
    if not found:
        raise UsageError(
            "--open needs the state table: pass --stack NAME, --state-table NAME or set "
            "SECRETWATCH_STATE_TABLE"
        )
    return found


def _open_row(item: Mapping[str, Any]) -> dict[str, Any]:
    from shared.compose import format_time_ms  # noqa: PLC0415

    opened = item.get("opened_ms")
    return {
        "opened_at": format_time_ms(int(opened)) if isinstance(opened, int) else None,
        "severity": item.get("severity"),
        "rule": item.get("rule_id"),
        "secret": item.get("secret"),
        "principal": item.get("principal"),
        "alert_id": item.get("alert_id"),
        "event_id": item.get("event_id"),
    }


def run_search(args: argparse.Namespace) -> int:
    if getattr(args, "open", False):
        return run_open(args)
    filters = _filters(args, datetime.now(UTC))

    def work(conn: Connection) -> int:
        result = q.search(conn.client, conn.table, filters, page_size=args.page_size)
        if result.note:
            note(result.note)
        print_rows(
            _format(args),
            result.items,
            view.summary_row,
            view.ROW_FIELDS,
            widths=LIST_WIDTHS,
        )
        return 0

    return _connected(args, work)


def run_show(args: argparse.Namespace) -> int:
    def work(conn: Connection) -> int:
        item = q.get_record(conn.client, conn.table, args.event_id)
        if item is None:
            raise AuditError(f"no audit record with event id {args.event_id} in {conn.table}")
        fmt = _format(args)
        if fmt == "json":
            print(view.to_json(item))
        elif fmt == "csv":  # the record's summary row, as `audit --output csv` prints it
            print_rows(fmt, [item], view.summary_row, view.ROW_FIELDS)
        else:
            print_record(item)
            print_life(item, _life_state(args, conn))
        return 0

    return _connected(args, work)


def run_timeline(args: argparse.Namespace) -> int:
    since, until = _window(args, datetime.now(UTC))
    secret = q.secret_name(args.secret)

    def work(conn: Connection) -> int:
        items = q.secret_history(conn.client, conn.table, secret, since=since, until=until)
        fmt = _format(args)
        if fmt == "table":
            print_story(secret, items)
        else:
            fields = ("time", "sentence", "severity", "findings", "event_name", "event_id")
            print_rows(fmt, items, view.timeline_row, fields)
        return 0

    return _connected(args, work)


# ---------------------------------------------------------------------------------------------
# Printing


def print_rows(
    fmt: str,
    items: Sequence[Mapping[str, Any]],
    to_row: Callable[[Mapping[str, Any]], dict[str, str]],
    fields: Sequence[str],
    *,
    widths: Sequence[int] | None = None,
) -> None:
    if fmt == "json":
        for item in items:
            print(view.to_json(item if to_row is view.summary_row else to_row(item)))
        return
    rows = [to_row(item) for item in items]
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    headers = [f.replace("_", " ").upper() for f in fields]
    colour_at = list(fields).index("severity") if "severity" in fields else None
    render_table(
        headers,
        [[row[f] for f in fields] for row in rows],
        max_widths=widths,
        colour_column=colour_at,
        keep_end=[i for i, f in enumerate(fields) if f in TAIL_FIELDS],
    )
    if not rows:
        print("(no records)")


def print_story(secret: str, items: Sequence[Mapping[str, Any]]) -> None:
    colour = use_colour(sys.stdout)
    print(f"{safe(secret)}: {len(items)} event(s), oldest first")
    for item in items:
        row = view.timeline_row(item)
        line = f"{row['time']}  {safe(row['sentence'])}"
        findings = [
            f"{colour_severity(str(f.get('severity')), colour)}: {safe(view.rule_label(f))}"
            for f in item.get("findings") or []
        ]
        if findings:
            line += "  [" + ", ".join(findings) + "]"
        print(line)


_SUMMARY = (
    ("event", "event_name"),
    ("time", "event_time"),
    ("event id", "event_id"),
    ("kind", "kind"),
    ("secret", "secret_name"),
    ("secret arn", "secret_arn"),
    ("principal", "principal"),
    ("region", "region"),
    ("account", "account_id"),
    ("error", "error_code"),
    ("error message", "error_message"),
    ("severity", "severity"),
)
_SECTIONS = ("caller", "source", "request", "enrichment", "alerts")


def print_record(item: Mapping[str, Any]) -> None:
    """The whole record as labelled sections; every caller-controlled value through safe()."""
    colour = use_colour(sys.stdout)
    print(safe(sentence(item)))
    for label, key in _SUMMARY:
        if item.get(key) not in (None, ""):
            value = safe(item[key])
            if key == "severity":
                value = colour_severity(value, colour)
            print(f"  {label:<14} {value}")
    if item.get("findings"):
        print("findings")
        for finding in item["findings"]:
            severity = colour_severity(safe(finding.get("severity")), colour)
            print(
                f"  {severity}  {safe(finding.get('rule'))}: {safe(finding.get('description'))}"
                f"{safe(view.not_alerted(finding))}"
            )
    for section in _SECTIONS:
        if item.get(section):
            print(section)
            for key, value in _flatten(item[section]):
                print(f"  {safe(key):<28} {safe(value)}")
    rest = sorted(k for k in item if k not in {*(k for _, k in _SUMMARY), *_SECTIONS, "findings"})
    print("record")
    for key in rest:
        print(f"  {safe(key):<28} {safe(item[key])}")


def _life_state(args: argparse.Namespace, conn: Connection) -> Any:
    """The state table, when the command was told where it is (else the life is the record's)."""
    name = getattr(args, "state_table", None) or os.environ.get("SECRETWATCH_STATE_TABLE")
    if not name and getattr(args, "stack", None):
        try:
            name = aws.Aws.from_args(args).stack_output(str(args.stack), "StateTableName")
        except UsageError:
            name = None
    if not name:
        return None
    from shared.state.store import StateStore  # noqa: PLC0415

    return StateStore(conn.client, str(name))


def print_life(item: Mapping[str, Any], state: Any) -> None:
    """Each alert's life: opened (sent), repeats folded into it and its digest, resolved."""
    from shared.compose import format_time_ms  # noqa: PLC0415

    alerts = item.get("alerts") or {}
    lines: list[str] = []
    for finding in item.get("findings") or []:
        rule = str(finding.get("rule"))
        entry = alerts.get(rule) or {}
        detail = finding.get("detail") or {}
        if finding.get("state") == "folded":
            lines.append(f"{rule}: a repeat, folded into alert {detail.get('folded_into')}")
            continue
        if entry.get("state") == "sent":
            lines.append(
                f"{rule}: alert {entry.get('alert_id')} opened, sent {entry.get('sent_at')}"
            )
        window = (
            state.get(str(detail["window"])) if state is not None and detail.get("window") else None
        )
        if window is not None and window.get("first_alert") == entry.get("alert_id"):
            from shared.state.keys import repeats  # noqa: PLC0415

            told = window.get("digest_state") == "sent"
            lines.append(
                f"{rule}: {repeats(window)} repeat(s) folded in so far; digest "
                + ("sent" if told else f"due {format_time_ms(int(window.get('window_end') or 0))}")
            )
        opened = (
            state.get(str(detail["open"])) if state is not None and detail.get("open") else None
        )
        if opened is not None and opened.get("alert_id") == entry.get("alert_id"):
            if opened.get("resolved_event"):
                lines.append(
                    f"{rule}: resolved by {opened.get('resolved_by')} at "
                    f"{format_time_ms(int(opened.get('resolved_ms') or 0))} "
                    f"(event {opened.get('resolved_event')})"
                )
            else:
                lines.append(f"{rule}: still open (secretwatch audit --open)")
    for key, entry in alerts.items():
        if str(key).startswith(RESOLUTION_PREFIX):
            lines.append(f"{key}: closes alert {entry.get('resolves')} ({entry.get('state')})")
    if lines:
        print("life")
        for line in lines:
            print(f"  {safe(line)}")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        yield prefix, ", ".join(str(v) for v in value)
    else:
        yield prefix, str(value)
