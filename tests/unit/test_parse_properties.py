"""Property tests on the parsers: no input, however odd, escapes as anything but InputError.

Every ReadItem is exactly one of: a record, an error, a skip.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.envelopes import ReadItem, read_any, read_bytes
from shared.errors import InputError
from shared.normalise import secret_from_id

EVENTS = Path(__file__).resolve().parents[2] / "events"
EVENTBRIDGE_FILES = sorted((EVENTS / "eventbridge").glob("*.json"))
DETAILS: list[dict[str, Any]] = [
    json.loads(path.read_text(encoding="utf-8"))["detail"] for path in EVENTBRIDGE_FILES
]

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys that steer the parser into each of its branches, so generated values reach deep code.
SHAPE_KEYS = [
    "awslogs",
    "data",
    "logEvents",
    "messageType",
    "message",
    "id",
    "detail-type",
    "detail",
    "source",
    "Records",
    "Events",
    "CloudTrailEvent",
    "eventSource",
    "eventName",
    "eventID",
    "eventTime",
    "eventType",
    "eventVersion",
    "userIdentity",
    "type",
    "arn",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "secretId",
    "resourcePolicy",
    "forceDeleteWithoutRecovery",
    "recoveryWindowInDays",
    "sessionContext",
    "resources",
]
SHAPE_VALUES = [
    "DATA_MESSAGE",
    "CONTROL_MESSAGE",
    "aws.secretsmanager",
    "AWS API Call via CloudTrail",
    "AWS Service Event via CloudTrail",
    "secretsmanager.amazonaws.com",
    "AwsApiCall",
    "2026-10-21T17:09:13Z",
    "AssumedRole",
    "Root",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:a-Ab12Cd",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(SHAPE_VALUES)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(SHAPE_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def classify(item: ReadItem) -> None:
    """Each item is exactly one of record / error / skipped, with a non-negative index."""
    outcomes = [item.record is not None, item.error is not None, item.skipped is not None]
    assert outcomes.count(True) == 1, item
    assert item.index >= 0
    if item.error is not None:
        assert item.error.strip()


def read_all(value: Any) -> list[ReadItem] | None:
    """Read a value; None when the whole input was (legitimately) an InputError."""
    try:
        items = list(read_any(value))
    except InputError:
        return None
    for item in items:
        classify(item)
    assert [item.index for item in items] == list(range(len(items)))
    return items


@PROPERTY_SETTINGS
@given(json_values)
def test_any_json_value_yields_items_or_input_error(value: Any) -> None:
    # GIVEN any JSON value
    # WHEN it is read (and every item is iterated)
    # THEN only InputError can escape, and every item is one of record/error/skipped
    read_all(value)


@PROPERTY_SETTINGS
@given(json_values)
def test_any_json_value_inside_a_wrapper_never_raises(value: Any) -> None:
    # GIVEN any JSON value placed where a record, a detail or a log message would be
    wrappers: list[Any] = [
        {"Records": [value]},
        [value],
        {
            "version": "0",
            "id": "x",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager",
            "detail": value,
        },
        {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": json.dumps(value)}]},
        {"Events": [{"CloudTrailEvent": json.dumps(value)}]},
    ]

    # WHEN each is read
    results = [read_all(wrapper) for wrapper in wrappers]

    # THEN none of them is a whole-input failure: the bad value is one item's error
    assert all(result is not None for result in results)


# ---------------------------------------------------------------------------------------------
# Mutations of real records


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) inside a JSON value, the root excluded."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for position, child in enumerate(value):
            found.append((*prefix, position))
            found.extend(paths(child, (*prefix, position)))
    return found


def apply(record: dict[str, Any], path: tuple[Any, ...], action: str, new: Any) -> None:
    """Delete or replace the value at ``path`` (if the path still exists)."""
    parent: Any = record
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    in_dict = isinstance(parent, dict) and last in parent
    in_list = isinstance(parent, list) and isinstance(last, int) and last < len(parent)
    if not (in_dict or in_list):
        return
    if action == "delete":
        del parent[last]
    else:
        parent[last] = new


@st.composite
def mutated_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(DETAILS)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(record)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["delete", "replace"]))
        apply(record, path, action, draw(json_values))
    return record


@PROPERTY_SETTINGS
@given(mutated_records())
def test_mutated_real_record_is_exactly_one_outcome_in_every_shape(record: dict[str, Any]) -> None:
    # GIVEN a real record with random keys deleted or replaced at random depths
    shapes: list[Any] = [
        {"Records": [record]},
        {
            "version": "0",
            "id": "eb",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager",
            "detail": record,
        },
        {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": json.dumps(record)}]},
    ]

    # WHEN it is read in each shape
    results = [read_all(shape) for shape in shapes]

    # THEN each shape yields exactly one item, which is exactly one of record/error/skipped,
    # and the verdict does not depend on the wrapper
    verdicts = []
    for items in results:
        assert items is not None
        assert len(items) == 1
        item = items[0]
        verdicts.append("record" if item.record else "error" if item.error else "skipped")
    assert len(set(verdicts)) == 1, verdicts


@PROPERTY_SETTINGS
@given(st.sampled_from(DETAILS))
def test_same_record_in_every_shape_normalises_identically(detail: dict[str, Any]) -> None:
    # GIVEN a real record, as a log file entry and as a CloudWatch Logs log event
    log_file = {"Records": [detail]}
    data = gzip.compress(
        json.dumps(
            {
                "messageType": "DATA_MESSAGE",
                "logEvents": [{"id": "1", "timestamp": 0, "message": json.dumps(detail)}],
            }
        ).encode()
    )
    lambda_event = {"awslogs": {"data": base64.b64encode(data).decode()}}

    # WHEN both are read
    from_file = read_all(log_file)
    from_logs = read_all(lambda_event)

    # THEN the normalised records are equal
    assert from_file is not None
    assert from_logs is not None
    assert from_file[0].record == from_logs[0].record
    assert from_file[0].record is not None


# ---------------------------------------------------------------------------------------------
# Bytes


def read_bytes_all(data: bytes) -> None:
    try:
        items = list(read_bytes(data))
    except InputError:
        return
    for item in items:
        classify(item)


@PROPERTY_SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_input_error(data: bytes) -> None:
    # GIVEN any bytes
    # WHEN / THEN read_bytes and iterating its items raise nothing but InputError
    read_bytes_all(data)


@PROPERTY_SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["raw", "gzip", "gzip-prefix", "lines"]))
def test_arbitrary_bytes_in_file_like_wrappers_raise_only_input_error(
    data: bytes, how: str
) -> None:
    # GIVEN bytes made to look like a gzip file, or JSON Lines around a good line
    if how == "gzip":
        data = gzip.compress(data)
    elif how == "gzip-prefix":
        data = b"\x1f\x8b" + data
    elif how == "lines":
        data = json.dumps({"Records": DETAILS[:1]}).encode() + b"\n" + data

    # WHEN / THEN only InputError can escape
    read_bytes_all(data)


@PROPERTY_SETTINGS
@given(json_values.map(lambda v: json.dumps(v).encode()))
def test_serialised_json_reads_like_the_value(data: bytes) -> None:
    # GIVEN any JSON value serialised to bytes
    # WHEN / THEN reading the bytes raises only InputError
    read_bytes_all(data)


# ---------------------------------------------------------------------------------------------
# secret_from_id

names = st.text(alphabet=string.ascii_letters + string.digits + "/_+=.@-", min_size=1, max_size=40)
suffixes = st.text(alphabet=string.ascii_letters + string.digits, min_size=6, max_size=6)


@PROPERTY_SETTINGS
@given(names, suffixes)
def test_full_arn_gives_back_the_name(name: str, suffix: str) -> None:
    # GIVEN a full secret ARN built from a name and a random six-character suffix
    arn = f"arn:aws:secretsmanager:eu-west-1:111122223333:secret:{name}-{suffix}"

    # WHEN it is parsed
    ref = secret_from_id(arn)

    # THEN the name comes back without the suffix, and the ARN is kept
    assert ref.name == name
    assert ref.arn == arn
    assert ref.account_id == "111122223333"


@PROPERTY_SETTINGS
@given(st.text(min_size=1, max_size=60).filter(lambda s: not s.startswith("arn:")))
def test_plain_name_is_returned_unchanged(name: str) -> None:
    # GIVEN any secret id that is not an ARN
    # WHEN it is parsed
    ref = secret_from_id(name)

    # THEN it is the name, untouched, with no ARN
    assert ref.name == name
    assert ref.arn is None
