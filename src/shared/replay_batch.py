"""The replay function's work: one batch of CloudTrail log files from S3 through the pipeline.

The Step Functions Distributed Map (template.yaml, ``ReplayStateMachine``) lists the trail's
S3 prefix and hands each invocation a batch (its ItemBatcher):
``{"Items": [{"Key": ..., "Size": ...}, ...], "BatchInput": {"bucket": ...}}``. Each file is
replayed as ``secretwatch replay`` replays it (``shared.replay``): the same selection, the same
idempotent writer, quiet (no alert is published, no enrichment look-up, rule state in memory
for the file). A file that cannot be read or written is reported in the result and counted;
it never fails the batch, so one bad file never costs its neighbours a retry.

What is read is bounded: an object over ``MAX_OBJECT_BYTES`` is refused before it is fetched,
and a gzip file is inflated to at most ``MAX_INFLATED_BYTES`` (``shared.envelopes.inflate``).
The result stays far below Step Functions' 256 KiB per state: counts, and at most
``MAX_PROBLEMS`` problem lines of bounded length.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.audit.store import AuditStore
from shared.errors import InputError
from shared.live_rules import RulesSource
from shared.pipeline import Pipeline
from shared.replay import NullEnricher, Totals, is_log_file, replay_one, totals_as_dict
from shared.text import clean

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_OBJECT_BYTES = 64 * 1024 * 1024  # compressed, as listed and as read
# CloudTrail delivers a file per account and Region about every 5 minutes; tens of MB inflated is
# a very busy account. The function has 1024 MB (template.yaml): decoded JSON takes several times
# its text in memory (measured: a 127 MiB file, 178,271 records, peaked at 669 MiB while being
# read, before the pipeline's own items), so more than this is refused and left to
# `secretwatch replay FILE`.
MAX_INFLATED_BYTES = 64 * 1024 * 1024
MAX_BATCH_FILES = 100  # the template's ItemBatcher sends 10; anything larger is not ours
MAX_PROBLEMS = 100  # problem lines returned per batch; the rest are counted
NAME_CHARS = 1100  # s3://<bucket (63)>/<key (1024 bytes)>
MESSAGE_CHARS = 1000
# S3 bucket names (general purpose): what the state machine can have listed.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass
class BatchResult:
    """What one batch did: the summary's figures and the problems to show, bounded."""

    totals: Totals = field(default_factory=Totals)
    files_skipped: int = 0  # listed objects that are not log files (digests, other names)
    problems: list[dict[str, str]] = field(default_factory=list)
    problems_left_out: int = 0

    def report(self, name: str, message: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems_left_out += 1
            return
        self.problems.append(
            {"file": clean(name, NAME_CHARS), "message": clean(message, MESSAGE_CHARS)}
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **totals_as_dict(self.totals),
            "files_skipped": self.files_skipped,
            "problems": self.problems,
            "problems_left_out": self.problems_left_out,
        }


@dataclass(frozen=True, slots=True)
class LogObject:
    bucket: str
    key: str
    size: int | None

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def read_batch(event: Any) -> list[LogObject]:
    """The ItemBatcher's input as objects to read; InputError if it is not that shape."""
    if not isinstance(event, dict):
        raise InputError("the replay function takes a batch {Items, BatchInput}")
    batch_input, items = event.get("BatchInput"), event.get("Items")
    bucket = batch_input.get("bucket") if isinstance(batch_input, dict) else None
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        raise InputError("BatchInput.bucket must be an S3 bucket name")
    if not isinstance(items, list) or len(items) > MAX_BATCH_FILES:
        raise InputError(f"Items must be an array of at most {MAX_BATCH_FILES} S3 objects")
    objects = []
    for position, item in enumerate(items):
        key = item.get("Key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key or len(key.encode("utf-8", "replace")) > 1024:
            raise InputError(f"Items[{position}].Key must be an S3 object key")
        size = item.get("Size")
        objects.append(LogObject(bucket, key, size if isinstance(size, int) else None))
    return objects


def replay_batch(objects: list[LogObject], s3: S3Client, pipeline: Pipeline) -> BatchResult:
    """Each log file of the batch through the pipeline, one at a time, each failure its own."""
    result = BatchResult()
    for entry in objects:
        if not is_log_file(entry.key.split("/")):
            result.files_skipped += 1  # as the command line's listing skips them
            continue
        if entry.size is not None and entry.size > MAX_OBJECT_BYTES:
            result.totals.files_failed += 1
            result.report(
                entry.name,
                f"{entry.size:,} bytes, over the replay function's {MAX_OBJECT_BYTES:,}: "
                "refused unread (replay it with secretwatch replay FILE)",
            )
            continue
        replay_one(
            entry.name,
            _reader(s3, entry),
            pipeline,
            result.totals,
            result.report,
            inflated_limit=MAX_INFLATED_BYTES,
        )
    return result


def _reader(s3: S3Client, entry: LogObject) -> Callable[[], bytes]:
    def read() -> bytes:
        body = s3.get_object(Bucket=entry.bucket, Key=entry.key)["Body"]
        try:
            data: bytes = body.read(MAX_OBJECT_BYTES + 1)  # never more than the bound
        finally:
            body.close()
        if len(data) > MAX_OBJECT_BYTES:
            raise InputError(
                f"the object is larger than {MAX_OBJECT_BYTES:,} bytes: refused "
                "(replay it with secretwatch replay FILE)"
            )
        return data

    return read


@dataclass(frozen=True)
class ReplayContainer:
    """What a container keeps between batches: the clients, the writer and the rule source."""

    s3: S3Client
    store: AuditStore
    rules: RulesSource
    retention_days: int
    routine_retention_days: int | None = None  # RoutineReadRetentionDays, as the stack's functions

    def pipeline(self) -> Pipeline:
        """A quiet pipeline for one batch. Its rule state is in memory and new for each batch,
        so what one batch folds or counts never depends on which batches ran before it in this
        container."""
        from shared.stateful import in_memory  # noqa: PLC0415 — built once per batch

        return Pipeline(
            ruleset=self.rules,
            enricher=NullEnricher(),
            store=self.store,
            notifier=None,  # as local replay without --notify: alerts are recorded as suppressed
            retention_days=self.retention_days,
            routine_retention_days=self.routine_retention_days,
            state=in_memory(),
        )


@lru_cache(maxsize=1)
def get_replay() -> ReplayContainer:
    """The container's clients and rule source, built at the first invocation.

    The rule document is the stack's (RULES_PARAMETER_NAME, read live as the other functions
    read it), falling back to the bundled defaults as they do.
    """
    from shared.clients import Clients  # noqa: PLC0415 — built once, at first use
    from shared.live_rules import LiveRules, StaticRules, powertools_fetch  # noqa: PLC0415
    from shared.rules import default_rules  # noqa: PLC0415
    from shared.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    clients = Clients(region=settings.region)
    rules: RulesSource = StaticRules(default_rules())
    if settings.rules_parameter is not None:
        rules = LiveRules(settings.rules_parameter, powertools_fetch(clients.ssm))
    return ReplayContainer(
        clients.s3,
        AuditStore(clients.dynamodb, settings.table_name),
        rules,
        settings.retention_days,
        settings.routine_read_retention_days,
    )
