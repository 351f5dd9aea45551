"""JSON from callers: decoded so that no input escapes as anything but a JSON decoding error.

Python's parser accepts NaN and Infinity (not JSON), turns ``1e999`` into an infinite float and
raises ValueError, not JSONDecodeError, for an integer of thousands of digits; deeply nested
input raises RecursionError. :func:`loads` turns each of these into a value JSON can write back
(a string marker) or into a JSONDecodeError, so one hostile record is one rejected record.
"""

from __future__ import annotations

import json
from typing import Any


class LongNumber(str):
    """A JSON integer of more than 38 digits, kept as its digits: DynamoDB stores no longer
    number, and Python refuses to convert ones of thousands of digits."""


class NonFiniteNumber(str):
    """NaN, Infinity or an overflowing float, kept as its text: JSON has no such numbers."""


_MAX_INT_DIGITS = 38
_INF = float("inf")


def _parse_int(text: str) -> int | str:
    digits = len(text) - (text[0] == "-")
    return int(text) if digits <= _MAX_INT_DIGITS else LongNumber(text)


def _parse_float(text: str) -> float | str:
    value = float(text)
    return value if value not in (_INF, -_INF) else NonFiniteNumber(text)


def loads(data: str | bytes) -> Any:
    """json.loads for caller-controlled input: every failure is a JSONDecodeError.

    JSON nested too deeply for the parser, integers too long to convert and NaN/Infinity (which
    Python's parser would accept) never escape as other errors or as floats that JSON cannot
    write back.
    """
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=NonFiniteNumber
        )
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except RecursionError:
        text = preview(data)
        raise json.JSONDecodeError("nested too deeply to be a CloudTrail record", text, 0) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise json.JSONDecodeError(
            f"unreadable value ({type(exc).__name__})", preview(data), 0
        ) from None


def preview(data: str | bytes) -> str:
    return data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, LongNumber | NonFiniteNumber):
        return "number"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
