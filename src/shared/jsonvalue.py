"""JSON from callers: decoded so that no input escapes as anything but a JSON decoding error.

Python's parser raises ValueError, not JSONDecodeError, for an integer of thousands of digits,
and RecursionError for deeply nested input: :func:`loads` turns both into a JSONDecodeError, so
one hostile record is one rejected record. It also accepts NaN and Infinity and turns ``1e999``
into an infinite float; those are left as they are, on purpose (no per-number hook slows the
parser down): every output writes them as text (``shared.text.json_ready``) and DynamoDB gets
them as text (``shared.bounds.number``), as it gets integers beyond 38 digits.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes) -> Any:
    """json.loads for caller-controlled input: every failure is a JSONDecodeError.

    JSON nested too deeply for the parser and integers too long to convert never escape as
    other errors.
    """
    try:
        return json.loads(data)
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
