"""No secret value is kept, logged or sent: value-bearing fields are redacted at any depth.

CloudTrail writes ``HIDDEN_DUE_TO_SECURITY_REASONS`` (or leaves the member out) for every
sensitive member — ``SecretString``, ``SecretBinary``, ``RandomPassword``... — but a forged
record, a record written into the trail's log group by hand, or a future change of CloudTrail
may carry one. Nothing here trusts that: before a raw record is stored, the members that carry
values are replaced whatever their depth, and the three members that echo a request or a
response (``requestParameters``, ``responseElements``, ``additionalEventData``) are kept only as
objects; anything else in their place is replaced by its type and length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "REDACTED_BY_SECRETWATCH"
MAX_DEPTH = 32
# Members whose content is copied from a request or a response.
ECHO_MEMBERS = frozenset({"requestParameters", "responseElements", "additionalEventData"})
# Member names (lower case, without separators) that carry a secret value, or may.
_VALUE_MEMBERS = frozenset(
    {
        "secretstring",
        "secretbinary",
        "secretvalue",
        "secretvalues",
        "randompassword",
        "password",
        "rotationtoken",
        "plaintext",
    }
)
_VALUE_SUFFIXES = ("password", "secretstring", "secretbinary", "plaintext")
_SEPARATORS = re.compile(r"[^a-z0-9]")
# The same members inside text that is not valid JSON (a kept unreadable log line).
_TEXT_MEMBER = re.compile(
    r'("(?:[A-Za-z0-9_\-]*(?:[Pp]assword|[Ss]ecret_?[Ss]tring|[Ss]ecret_?[Bb]inary|'
    r'[Ss]ecret_?[Vv]alues?|[Rr]otation_?[Tt]oken|[Pp]laintext))"\s*:\s*)'
    r'("(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|\{[^}]*\}?|[^,}\]\s]*)',
)


def is_value_member(name: str) -> bool:
    key = _SEPARATORS.sub("", name.lower())
    return key in _VALUE_MEMBERS or key.endswith(_VALUE_SUFFIXES)


def describe(value: Any) -> str:
    """A value by its JSON type and size only: what error messages may say of echoed content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, Mapping):
        return f"an object of {len(value)} members"
    return type(value).__name__


def placeholder(value: Any) -> str:
    return f"<{describe(value)}, removed>"


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of a decoded JSON value with every value-bearing member replaced, at any depth."""
    if isinstance(value, Mapping):
        if _depth >= MAX_DEPTH:
            return f"<nested deeper than {MAX_DEPTH} levels, removed>"
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if is_value_member(name):
                out[name] = REDACTED
            elif name in ECHO_MEMBERS and item is not None and not isinstance(item, Mapping):
                out[name] = placeholder(item)
            else:
                out[name] = redact(item, _depth + 1)
        return out
    if isinstance(value, list):
        if _depth >= MAX_DEPTH:
            return f"<nested deeper than {MAX_DEPTH} levels, removed>"
        return [redact(item, _depth + 1) for item in value]
    if isinstance(value, str):
        return redact_text(value) if '"' in value else value
    return value


def redact_text(text: str) -> str:
    """Best effort for text that is not (valid) JSON: value-bearing members are replaced."""
    return _TEXT_MEMBER.sub(lambda match: f'{match.group(1)}"{REDACTED}"', text)
