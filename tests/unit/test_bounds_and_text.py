"""Properties of the byte bounds (shared.bounds) and the one escaping policy (shared.text)."""

from __future__ import annotations

import json
import math
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import bounds, text
from shared.audit.codec import to_item
from shared.audit.items import build_item, rejected_item
from shared.models import Evaluation, Finding
from shared.normalise import normalise
from shared.redact import REDACTED, redact, redact_text
from tests.conftest import build_raw

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=[]), max_size=3000)
UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- bounds --------------------------------------------------------------------------------------


@FAST
@given(value=ANY_TEXT, limit=st.integers(min_value=48, max_value=2048))
def test_a_key_fits_its_limit_in_bytes(value: str, limit: int) -> None:
    key = bounds.key(value, limit)
    assert len(key.encode("utf-8")) <= limit
    assert bounds.key(value, limit) == key  # deterministic: a look-up computes the same key


@FAST
@given(a=ANY_TEXT, b=ANY_TEXT)
def test_distinct_long_values_keep_distinct_keys(a: str, b: str) -> None:
    prefix = "鍵" * 400  # 1,200 bytes: both values are cut at a 1,024-byte key
    if a != b:
        assert bounds.key(prefix + a, 1024) != bounds.key(prefix + b, 1024)


@FAST
@given(value=ANY_TEXT)
def test_a_short_valid_key_is_kept_as_it_is(value: str) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return  # lone surrogates are replaced: not kept as they are
    if size <= 2048:
        assert bounds.key(value) == value


@FAST
@given(value=ANY_TEXT, limit=st.integers(min_value=4, max_value=5000))
def test_free_text_is_cut_in_bytes_at_a_character(value: str, limit: int) -> None:
    cut = bounds.text(value, limit)
    assert len(cut.encode("utf-8")) <= limit
    if cut != text.json_ready(value):
        assert cut.endswith("…")
        assert text.json_ready(value).startswith(cut[:-1])


@FAST
@given(number=st.integers() | st.floats() | st.decimals())
def test_numbers_are_stored_exactly_or_as_text(number: int | float | Decimal) -> None:
    stored = bounds.number(number)
    if isinstance(stored, str):
        return
    # what DynamoDB accepts: at most 38 significant digits, and the codec takes it
    assert to_item({"n": stored})["n"]["N"]
    if isinstance(stored, int):
        assert stored == number


def test_38_digit_boundary() -> None:
    assert bounds.number(10**38 - 1) == 10**38 - 1
    assert bounds.number(10**38) == str(10**38)
    assert bounds.number(math.nan) == "nan"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arn=st.text(min_size=0, max_size=200_000).map(lambda s: "arn:aws:iam::1:user/" + s),
    agent=st.text(max_size=300_000),
    secret=st.text(min_size=1, max_size=3000),
    name=st.text(min_size=1, max_size=5000),
)
def test_an_audit_item_always_fits_dynamodb(arn: str, agent: str, secret: str, name: str) -> None:
    raw = build_raw(
        userIdentity={"type": "IAMUser", "arn": arn, "userName": name, "accountId": "1"},
        userAgent=agent,
        requestParameters={"secretId": secret},
    )
    item = build_item(
        normalise(raw),
        Evaluation((Finding("r", "high", "d", "rb"),)),
        None,
        route="cloudwatch-logs",
        retention_days=30,
        now=normalise(raw).event_time,
    )
    assert bounds.item_size(item) < bounds.ITEM_MAX
    for key in ("event_id", "secret_name", "principal_name", "day", "rule_0"):
        if key in item:
            assert len(item[key].encode("utf-8")) <= bounds.PARTITION_KEY_MAX
    assert len(item["time_key"].encode("utf-8")) <= bounds.SORT_KEY_MAX


RAW_INPUTS = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=40, deadline=None)
@given(raw=RAW_INPUTS)
def test_a_rejected_item_always_fits_dynamodb(raw: Any) -> None:
    from datetime import UTC, datetime

    item = rejected_item("x", "bad", raw, route="r", retention_days=1, now=datetime.now(UTC))
    assert bounds.item_size(item) < bounds.ITEM_MAX
    assert len(item.get("raw", "").encode("utf-8")) <= 300_000  # an empty input keeps no raw


# --- redaction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "secretString",
        "SecretString",
        "secret_string",
        "SecretBinary",
        "RandomPassword",
        "masterUserPassword",
        "SecretValues",
        "rotationToken",
    ],
)
def test_value_members_are_redacted_at_any_depth(key: str) -> None:
    value = {"a": [{"b": {key: "hunter2"}}], key: {"nested": "hunter2"}}
    assert "hunter2" not in json.dumps(redact(value))


def test_echo_members_that_are_not_objects_are_replaced_by_type_and_length() -> None:
    redacted = redact({"requestParameters": "secretString=hunter2", "responseElements": None})
    assert redacted == {
        "requestParameters": "<a string of 20 characters, removed>",
        "responseElements": None,
    }


def test_value_members_in_broken_json_text_are_redacted() -> None:
    broken = '{"eventID": "1", "requestParameters": {"SecretString": "hun\\"ter2", "x": 1'
    assert "ter2" not in redact_text(broken)
    assert REDACTED in redact_text(broken)


def test_redaction_survives_any_nesting() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    redact(value)  # no RecursionError


# --- the escaping policy ---------------------------------------------------------------------------


@FAST
@given(value=ANY_TEXT)
def test_escaped_text_holds_nothing_unsafe(value: str) -> None:
    escaped = text.escape(value)
    assert all(unicodedata.category(ch) not in UNSAFE for ch in escaped)
    assert "\n" not in escaped
    assert "\r" not in escaped


@FAST
@given(value=ANY_TEXT, limit=st.integers(min_value=1, max_value=400))
def test_clean_respects_its_limit(value: str, limit: int) -> None:
    cleaned = text.clean(value, limit)
    assert len(cleaned) <= limit
    assert all(unicodedata.category(ch) not in UNSAFE for ch in cleaned)


@FAST
@given(value=ANY_TEXT)
def test_attributes_are_safe_and_short(value: str) -> None:
    attribute = text.attribute(value)
    assert 0 < len(attribute) <= 256
    assert all(unicodedata.category(ch) not in UNSAFE for ch in attribute)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.decimals() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(ANY_TEXT, children, max_size=5)
    ),
    max_leaves=30,
)


@FAST
@given(value=JSON_VALUES)
def test_every_json_output_is_ascii_strict_json(value: Any) -> None:
    document = text.dumps(value)
    assert document.isascii()
    json.loads(document, parse_constant=_no_constants)  # no NaN / Infinity literals
    document.encode("utf-8")  # no lone surrogates


def _no_constants(name: str) -> Any:
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("name", "lookalike"),
    [
        ("prod/db", False),
        ("ｐｒｏｄ/db", True),  # fullwidth
        ("𝐩𝐫𝐨𝐝/db", True),  # mathematical bold
        ("prod\u00a0db", True),  # no-break space
        ("パスワード", False),  # not ASCII, but not a look-alike of another name
        ("ﬁle", True),  # ligature
    ],
)
def test_lookalike_names(name: str, lookalike: bool) -> None:
    assert text.is_lookalike(name) is lookalike


def test_one_escaper_for_the_command_line_and_the_messages() -> None:
    from cli.output import safe

    hostile = "a\tb\u00a0c\x7f\u202e\u2028\x1b[31m"
    assert safe(hostile) == text.escape(hostile) == "a\\tb c\\x7f\\u202e\\u2028\\x1b[31m"
