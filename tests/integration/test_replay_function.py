"""The replay function (handlers.replay_file) on real gzip log files in moto S3, over HTTP.

The batches are what the replay state machine's ItemBatcher hands the function: the objects of
a ListObjectsV2 page (Key, Size, ...) and the bucket from BatchInput. moto cannot run the Lambda
code nor the Distributed Map that invokes it (no Docker; see tests/integration/
test_replay_state_machine.py for what moto's Step Functions does model), so the handler is
called here in-process, with the environment template.yaml gives it, against the moto server's
S3 and the audit table created from the template.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import replay_file
from shared.replay_batch import MAX_INFLATED_BYTES, MAX_OBJECT_BYTES, get_replay
from tests.integration.conftest import REGION, Server
from tests.integration.test_cli_replay import DIGEST, TRAIL, deleted, event_items, other, quiet
from tests.integration.test_handlers_over_http import Context

BUCKET = "org-trail"
NAME = "111122223333_CloudTrail_eu-west-1_20261101T1000Z_abc.json.gz"


@pytest.fixture
def bucket(server: Server) -> Iterator[Any]:
    """A trail bucket on the moto server; the replay container is rebuilt for each test."""
    get_replay.cache_clear()
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield s3
    get_replay.cache_clear()


def put_log(s3: Any, key: str, records: list[dict[str, Any]]) -> None:
    s3.put_object(
        Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode())
    )


def batch(s3: Any, prefix: str = "AWSLogs/") -> dict[str, Any]:
    """The ItemBatcher's input for every object under the prefix (the ItemReader's listing)."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    items = [
        {
            "Key": o["Key"],
            "Size": o["Size"],
            "Etag": o["ETag"],
            "LastModified": o["LastModified"].isoformat(),
            "StorageClass": o.get("StorageClass", "STANDARD"),
        }
        for o in listed
    ]
    return {"Items": items, "BatchInput": {"bucket": BUCKET}}


def two_days(s3: Any) -> None:
    """Two gzip log files (7 Secrets Manager records, 2 findings, 2 of another source) and a
    digest file, which is listed but never a log file."""
    put_log(
        s3, f"{TRAIL}/01/{NAME}", [quiet(1), quiet(2), other(1), deleted(1), quiet(3), other(2)]
    )
    put_log(s3, f"{TRAIL}/02/{NAME.replace('1101', '1102')}", [quiet(4), deleted(2), quiet(5)])
    s3.put_object(Bucket=BUCKET, Key=f"{DIGEST}/x.json.gz", Body=gzip.compress(b"{}"))


@pytest.mark.integration
def test_a_batch_is_written_once_and_its_replay_adds_nothing(server: Server, bucket: Any) -> None:
    # GIVEN two gzip log files and a digest file in the bucket, listed as the ItemReader lists
    two_days(bucket)
    event = batch(bucket)

    # WHEN the function replays the batch, twice (a rerun, or Step Functions retrying it)
    first = replay_file.lambda_handler(event, Context())
    second = replay_file.lambda_handler(event, Context())

    # THEN the first writes each Secrets Manager record once and records the two findings
    # quietly, skipping the digest; the second writes nothing
    assert {k: first[k] for k in ("files_read", "files_failed", "files_skipped")} == {
        "files_read": 2,
        "files_failed": 0,
        "files_skipped": 1,
    }
    assert (first["records"], first["sm_records"], first["other_sources"]) == (9, 7, 2)
    assert (first["written"], first["duplicates"], first["rejected"]) == (7, 0, 0)
    assert first["by_severity"] == {"high": 2}
    assert first["alerts_published"] == 0
    assert first["problems"] == []
    assert (second["written"], second["duplicates"]) == (0, 7)
    items = event_items(server)
    assert len(items) == 7
    assert {i["route"]["S"] for i in items} == {"replay"}
    # AND the alerts are suppressed, as local replay records them without --notify
    states = [
        {rule: entry["M"]["state"]["S"] for rule, entry in i["alerts"]["M"].items()}
        for i in items
        if "alerts" in i
    ]
    assert states == [{"secret-deleted": "suppressed"}] * 2
    assert server.drain() == []
    # AND the result is JSON that Step Functions can carry
    assert json.loads(json.dumps(first)) == first


@pytest.mark.integration
def test_a_corrupt_file_is_reported_and_the_others_written(server: Server, bucket: Any) -> None:
    # GIVEN a good file, a truncated gzip, a gzip of something that is not CloudTrail's, a file
    # listed larger than the function reads, and a key deleted after it was listed
    put_log(bucket, f"{TRAIL}/01/a-{NAME}", [quiet(1), deleted(1)])
    bucket.put_object(
        Bucket=BUCKET, Key=f"{TRAIL}/01/b-{NAME}", Body=gzip.compress(b'{"Records": []}')[:12]
    )
    bucket.put_object(
        Bucket=BUCKET, Key=f"{TRAIL}/01/c-{NAME}", Body=gzip.compress(b'{"hello": "world"}')
    )
    event = batch(bucket)
    event["Items"].append({"Key": f"{TRAIL}/01/d-{NAME}", "Size": MAX_OBJECT_BYTES + 1})
    event["Items"].append({"Key": f"{TRAIL}/01/e-{NAME}", "Size": 10})

    # WHEN the batch is replayed
    result = replay_file.lambda_handler(event, Context())

    # THEN each bad file is one problem naming it, and the good file's records are written
    problems = {p["file"].rsplit("/", 1)[1][:1]: p["message"] for p in result["problems"]}
    assert set(problems) == {"b", "c", "d", "e"}
    assert "not gzip-compressed" in problems["b"]
    assert "not a recognised shape" in problems["c"]
    assert "refused unread" in problems["d"]
    assert problems["e"] == "cannot read the object: the object does not exist (NoSuchKey)"
    assert all(p["file"].startswith(f"s3://{BUCKET}/{TRAIL}/") for p in result["problems"])
    assert (result["files_read"], result["files_failed"], result["written"]) == (1, 4, 2)
    assert len(event_items(server)) == 2


@pytest.mark.integration
def test_a_file_inflating_past_the_bound_is_refused_unread(server: Server, bucket: Any) -> None:
    # GIVEN a small gzip object that inflates to one byte more than the function's bound
    bomb = gzip.compress(b" " * (MAX_INFLATED_BYTES + 1))
    assert len(bomb) < 1024 * 1024
    bucket.put_object(Bucket=BUCKET, Key=f"{TRAIL}/01/{NAME}", Body=bomb)

    # WHEN it is replayed
    result = replay_file.lambda_handler(batch(bucket), Context())

    # THEN it is one failed file, refused with the bound named, and nothing is written
    ((problem),) = result["problems"]
    assert f"inflates to more than {MAX_INFLATED_BYTES:,} bytes" in problem["message"]
    assert "secretwatch replay FILE" in problem["message"]
    assert (result["files_failed"], result["files_read"], result["written"]) == (1, 0, 0)
    assert server.items() == []


@pytest.mark.integration
def test_a_rejected_record_is_kept_and_reported_once(server: Server, bucket: Any) -> None:
    # GIVEN a file whose Secrets Manager record has no eventID, beside a good one
    no_id = quiet(9)
    del no_id["eventID"]
    put_log(bucket, f"{TRAIL}/01/{NAME}", [no_id, quiet(1)])
    event = batch(bucket)

    # WHEN it is replayed twice
    first = replay_file.lambda_handler(event, Context())
    second = replay_file.lambda_handler(event, Context())

    # THEN the record is kept as a failure record once, and reported each time
    assert (first["rejected"], first["written"]) == (1, 2)
    assert (second["written"], second["duplicates"]) == (0, 2)
    assert "eventID" in first["problems"][0]["message"]
    assert [i["kind"]["S"] for i in server.items()].count("rejected") == 1


@pytest.mark.integration
@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Items": [], "BatchInput": {"bucket": "Not_A_Bucket"}},
        {"Items": [{"Key": ""}], "BatchInput": {"bucket": BUCKET}},
        {"Items": [{"Key": "k"}] * 101, "BatchInput": {"bucket": BUCKET}},
    ],
)
def test_an_event_that_is_not_a_batch_fails_the_invocation(
    server: Server, bucket: Any, event: dict[str, Any]
) -> None:
    # GIVEN an event the state machine never sends
    # WHEN / THEN the invocation fails (Step Functions records the error), nothing is read
    from shared.errors import InputError

    with pytest.raises(InputError):
        replay_file.lambda_handler(event, Context())
    assert server.items() == []


@pytest.mark.integration
def test_replayed_routine_reads_expire_as_the_stacks_do(server: Server, bucket: Any) -> None:
    # GIVEN one routine read and one deletion in a log file, and the stack's two retentions
    assert server.stack.environment["ROUTINE_READ_RETENTION_DAYS"] == "90"
    assert server.stack.environment["RETENTION_DAYS"] == "400"
    put_log(bucket, f"{TRAIL}/01/{NAME}", [quiet(1), deleted(1)])

    # WHEN the function replays it
    replay_file.lambda_handler(batch(bucket), Context())

    # THEN the read expires 90 days after its event, the finding 400 days after its own, as the
    # log subscription function would have kept them
    by_name = {i["event_name"]["S"]: i for i in event_items(server)}
    read_time = datetime(2026, 11, 1, 10, tzinfo=UTC)
    deletion_time = datetime(2026, 11, 1, 11, tzinfo=UTC)
    assert int(by_name["GetSecretValue"]["expires_at"]["N"]) == int(
        (read_time + timedelta(days=90)).timestamp()
    )
    assert int(by_name["DeleteSecret"]["expires_at"]["N"]) == int(
        (deletion_time + timedelta(days=400)).timestamp()
    )
