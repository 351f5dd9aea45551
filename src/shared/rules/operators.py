"""Condition operators, in one table.

Each operator validates its ``value`` once, at load, and returns the test it compiles to.
Comparisons are type-strict: ``true`` equals only the JSON boolean true, never 1 or "true";
an unknown field (None) matches only ``exists: false``, ``ne`` and ``not_in``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from shared.errors import RuleConfigError

Test = Callable[[Any], bool]
Compiler = Callable[[Any], Test]


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return list(actual) == list(expected)
    return bool(actual == expected)


def _scalar(value: Any, op: str) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise RuleConfigError(
        f"{op} takes a string, number, boolean or null, got {type(value).__name__}"
    )


def _strings(value: Any, op: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        raise RuleConfigError(f"{op} takes a string or a non-empty list of strings")
    return tuple(items)


def _eq(value: Any) -> Test:
    expected = _scalar(value, "eq")
    return lambda actual: _same(actual, expected)


def _ne(value: Any) -> Test:
    expected = _scalar(value, "ne")
    return lambda actual: not _same(actual, expected)


def _in(value: Any) -> Test:
    if not isinstance(value, list) or not value:
        raise RuleConfigError("in takes a non-empty list")
    options = [_scalar(item, "in") for item in value]
    return lambda actual: any(_same(actual, option) for option in options)


def _not_in(value: Any) -> Test:
    test = _in(value)
    return lambda actual: not test(actual)


def _glob(value: Any) -> Test:
    # fnmatch is case-sensitive with fnmatchcase; compile once.
    pattern = re.compile("|".join(fnmatch.translate(glob) for glob in _strings(value, "glob")))
    return lambda actual: isinstance(actual, str) and pattern.match(actual) is not None


def _regex(value: Any) -> Test:
    patterns = _strings(value, "regex")
    try:
        pattern = re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        raise RuleConfigError(f"regex is not a valid regular expression: {exc}") from exc
    return lambda actual: isinstance(actual, str) and pattern.search(actual) is not None


def _contains(value: Any) -> Test:
    expected = _scalar(value, "contains")

    def test(actual: Any) -> bool:
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        if isinstance(actual, list | tuple | set | frozenset):
            return any(_same(item, expected) for item in actual)
        return False

    return test


def _exists(value: Any) -> Test:
    if not isinstance(value, bool):
        raise RuleConfigError("exists takes true or false")
    return lambda actual: (actual is not None) is value


def _prefix(value: Any) -> Test:
    prefixes = _strings(value, "prefix")
    return lambda actual: isinstance(actual, str) and actual.startswith(prefixes)


def _suffix(value: Any) -> Test:
    suffixes = _strings(value, "suffix")
    return lambda actual: isinstance(actual, str) and actual.endswith(suffixes)


def _ordered(op: str, compare: Callable[[Any, Any], bool]) -> Compiler:
    def compile_(value: Any) -> Test:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RuleConfigError(f"{op} takes a number or a string")
        numeric = not isinstance(value, str)

        def test(actual: Any) -> bool:
            if numeric:
                return (
                    isinstance(actual, int | float)
                    and not isinstance(actual, bool)
                    and compare(actual, value)
                )
            return isinstance(actual, str) and compare(actual, value)

        return test

    return compile_


OPERATORS: dict[str, Compiler] = {
    "eq": _eq,
    "ne": _ne,
    "in": _in,
    "not_in": _not_in,
    "glob": _glob,
    "regex": _regex,
    "contains": _contains,
    "exists": _exists,
    "prefix": _prefix,
    "suffix": _suffix,
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
}
