"""Generate the CloudWatch Logs Lambda payloads in ``events/cloudwatch-logs/``.

The hand-written EventBridge events in ``events/eventbridge/`` are the source of truth. For each
Secrets Manager one this writes a file of the same name holding the Lambda event that a CloudWatch Logs
subscription filter on the CloudTrail log group would deliver for the same CloudTrail record::

    {"awslogs": {"data": base64(gzip(DATA_MESSAGE JSON))}}

plus ``control-message.json`` (the CONTROL_MESSAGE health check CloudWatch Logs sends) and
``batch-mixed.json`` (several records from one log stream in one delivery).

Output is deterministic: sorted inputs, ``gzip`` with ``mtime=0``, ids and timestamps derived
from the records. ``--check`` writes nothing and exits 1 listing stale or orphaned files.

Usage: ``python scripts/make_events.py [--check]`` (``make events``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

EVENTBRIDGE_DIR = Path("events") / "eventbridge"
CLOUDWATCH_DIR = Path("events") / "cloudwatch-logs"

SUBSCRIPTION_FILTER = "secretwatch-secretsmanager"
# The template's subscription filter passes Secrets Manager records only; the tamper samples of
# other services (events, cloudtrail, kms, ...) arrive by EventBridge alone and get no copy here.
SUBSCRIBED_SOURCE = "secretsmanager.amazonaws.com"
CONTROL_MESSAGE_FILE = "control-message.json"
BATCH_FILE = "batch-mixed.json"
# One delivery holds one log group and one log stream, so every record in
# the batch must come from the same account and region. Three quiet records and one alert.
BATCH_SOURCES = (
    "control-rotation-put-pending.json",
    "control-rotation-succeeded.json",
    "kms-key-changed.json",
    "control-get-secret-value.json",
)
# The CONTROL_MESSAGE shape CloudWatch Logs sends to check that a destination is reachable.
CONTROL_MESSAGE: dict[str, Any] = {
    "messageType": "CONTROL_MESSAGE",
    "owner": "CloudwatchLogs",
    "logGroup": "",
    "logStream": "",
    "subscriptionFilters": [],
    "logEvents": [
        {
            "id": "",
            "timestamp": 1795392000000,  # 2026-11-23T00:00:00Z
            "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
        }
    ],
}


class EventFileError(ValueError):
    """An EventBridge event file that cannot be turned into a log event."""


def log_group(account: str) -> str:
    return f"aws-cloudtrail-logs-{account}-secretwatch"


def log_stream(account: str, region: str) -> str:
    return f"{account}_CloudTrail_{region}"


def _text_field(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise EventFileError(f"{where}: {key!r} is missing or not a non-empty string")
    return value


def load_detail(path: Path) -> dict[str, Any]:
    """The CloudTrail record (``detail``) of one EventBridge event file."""
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise EventFileError(f"{path}: top level is not an object")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise EventFileError(f"{path}: 'detail' is not an object")
    for key in ("eventID", "eventTime", "awsRegion", "recipientAccountId"):
        _text_field(detail, key, str(path))
    return detail


def _digest(detail: dict[str, Any]) -> bytes:
    seed = f"{detail['eventID']}|{detail['eventTime']}|{detail['awsRegion']}"
    return hashlib.sha256(seed.encode("utf-8")).digest()


def log_event_id(detail: dict[str, Any]) -> str:
    """A 56-digit decimal string, as CloudWatch Logs writes event ids, stable per record."""
    number = int.from_bytes(_digest(detail), "big") % (9 * 10**55) + 10**55
    return str(number)


def log_event_timestamp(detail: dict[str, Any]) -> int:
    """Epoch milliseconds: the record's eventTime plus a 1-6 s ingestion delay."""
    event_time = datetime.fromisoformat(_text_field(detail, "eventTime", "detail"))
    if event_time.tzinfo is None:
        raise EventFileError(f"eventTime {detail['eventTime']!r} has no time zone")
    delay_ms = 1000 + int.from_bytes(_digest(detail)[:4], "big") % 5000
    return int(event_time.timestamp()) * 1000 + delay_ms


def log_event(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": log_event_id(detail),
        "timestamp": log_event_timestamp(detail),
        # CloudTrail writes each record as one line of compact JSON, UTF-8 unescaped.
        "message": json.dumps(detail, separators=(",", ":"), ensure_ascii=False),
    }


def data_message(details: list[dict[str, Any]]) -> dict[str, Any]:
    """The decoded DATA_MESSAGE for records that share one log stream."""
    if not details:
        raise EventFileError("a DATA_MESSAGE needs at least one record")
    account = _text_field(details[0], "recipientAccountId", "detail")
    region = _text_field(details[0], "awsRegion", "detail")
    for detail in details[1:]:
        if (detail["recipientAccountId"], detail["awsRegion"]) != (account, region):
            raise EventFileError(
                f"record {detail['eventID']} is from another log stream than {account}/{region}"
            )
    events = sorted((log_event(d) for d in details), key=lambda e: (e["timestamp"], e["id"]))
    return {
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": log_group(account),
        "logStream": log_stream(account, region),
        "subscriptionFilters": [SUBSCRIPTION_FILTER],
        "logEvents": events,
    }


def encode_payload(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def subscription_event(
    messages: list[str], *, account: str = "111122223333", region: str = "eu-west-1"
) -> dict[str, Any]:
    """A CloudWatch Logs subscription Lambda event carrying these raw log messages, with log
    event ids 10**55 + position (for tests and benchmarks that build batches in memory)."""
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": log_group(account),
        "logStream": log_stream(account, region),
        "subscriptionFilters": [SUBSCRIPTION_FILTER],
        "logEvents": [
            {"id": str(10**55 + i), "timestamp": 0, "message": m} for i, m in enumerate(messages)
        ],
    }
    return {"awslogs": {"data": encode_payload(payload)}}


def render(payload: dict[str, Any]) -> str:
    """The Lambda event file text for one decoded subscription payload."""
    return json.dumps({"awslogs": {"data": encode_payload(payload)}}, indent=2) + "\n"


def decode_file(text: str) -> bytes | None:
    """The gunzipped payload bytes of a rendered file, or None if it is not one."""
    try:
        outer = json.loads(text)
        data = outer["awslogs"]["data"]
        return gzip.decompress(base64.b64decode(data, validate=True))
    except (ValueError, KeyError, TypeError, OSError, EOFError, binascii.Error):
        return None


def same_content(expected: str, actual: str) -> bool:
    """True when ``actual`` is ``expected``, or differs only in how zlib compressed it.

    The output is byte-for-byte stable for one zlib build, but another implementation
    (zlib-ng, for instance) may compress the same bytes differently; that is not staleness.
    """
    if expected == actual:
        return True
    decoded = decode_file(expected)
    return decoded is not None and decoded == decode_file(actual)


def build_all(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` (the repository root) mapped to its text."""
    sources = sorted((root / EVENTBRIDGE_DIR).glob("*.json"))
    if not sources:
        raise EventFileError(f"no EventBridge events in {root / EVENTBRIDGE_DIR}")
    details = {path.name: load_detail(path) for path in sources}
    out_dir = root / CLOUDWATCH_DIR
    files: dict[Path, str] = {}
    for name, detail in details.items():
        if name in (CONTROL_MESSAGE_FILE, BATCH_FILE):
            raise EventFileError(f"{name} is a reserved output name")
        if detail.get("eventSource") != SUBSCRIBED_SOURCE:
            continue  # a tamper call of another service: the subscription filter never passes it
        files[out_dir / name] = render(data_message([detail]))
    files[out_dir / CONTROL_MESSAGE_FILE] = render(CONTROL_MESSAGE)
    missing = [name for name in BATCH_SOURCES if name not in details]
    if missing:
        raise EventFileError(f"{BATCH_FILE} needs missing sources: {', '.join(missing)}")
    files[out_dir / BATCH_FILE] = render(data_message([details[n] for n in BATCH_SOURCES]))
    return dict(sorted(files.items()))


def stale_files(root: Path, files: dict[Path, str]) -> list[Path]:
    """Files that differ from ``files``, are missing, or are in the output folder unasked."""
    stale = [
        path
        for path, text in files.items()
        if not path.is_file() or not same_content(text, path.read_text(encoding="utf-8"))
    ]
    orphans = [p for p in (root / CLOUDWATCH_DIR).glob("*.json") if p not in files]
    return sorted(stale + orphans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing stale files"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root (default: the one holding this script)",
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        files = build_all(root)
    except EventFileError as exc:
        print(f"make_events: {exc}", file=sys.stderr)
        return 2
    stale = stale_files(root, files)
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(root)}", file=sys.stderr)
        if stale:
            print("run `make events` to regenerate", file=sys.stderr)
        return 1 if stale else 0
    (root / CLOUDWATCH_DIR).mkdir(parents=True, exist_ok=True)
    for path in stale:
        if path in files:
            path.write_bytes(files[path].encode("utf-8"))
            print(f"wrote {path.relative_to(root)}")
        else:
            path.unlink()
            print(f"removed {path.relative_to(root)}")
    print(f"{len(files)} files, {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
