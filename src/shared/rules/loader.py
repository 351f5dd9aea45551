"""Rule documents: validated whole before any event, overlays resolved, compiled to closures.

A rule document (JSON; YAML too on the command line) either replaces the bundled defaults::

    {"version": 1, "rules": [{
        "id": "secret-deleted",                 # kebab-case, unique
        "description": "...", "runbook": "...",
        "severity": "high",                     # info | low | medium | high | critical
        "events": ["DeleteSecret"],             # event names, or ["*"] for every event
        "outcome": "success",                   # success (default) | failure | any
        "mode": "alert",                        # alert (default) | audit-only: record, never alert
        "when": {"all": [{"key": "request.force_delete_without_recovery", "op": "ne", "value": true}]},
        "severity_when": [{"severity": "critical", "when": {"predicate": "..."}}]
    }]}

or, with ``"extends": "default"``, changes them: ``disable`` (rule ids), ``override``
(rule id → the keys to change), its own ``rules`` added. ``exceptions`` (top level, either way)
suppress findings without silencing rules::

    {"id": "ci-cleanup", "rules": ["secret-deleted"], "reason": "...", "expires": "2027-06-30",
     "when": {"key": "caller.name", "op": "glob", "value": "ci-*"}}

A document that replaces the defaults must hold rules: one with none would turn every alert off,
so it is refused unless it says ``"extends": "none"`` (no rules, on purpose).

Conditions: ``{"key", "op", "value"}`` with an operator from ``operators.OPERATORS`` over a key
from ``fields.FIELDS``; ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``; and
``{"predicate": "name"}`` for a Python predicate from ``predicates.PREDICATES``.
``outcome: success`` (the default) means a failed call (errorCode or errorMessage) never fires
the rule. ``severity_when`` is an ordered list; the first that matches sets the severity.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.errors import RuleConfigError
from shared.models import SECRETSMANAGER_SOURCE, SEVERITIES, Severity
from shared.rules.engine import (
    DEFAULT_RULES_PATH,
    Condition,
    Dedup,
    Getter,
    Rule,
    RuleException,
    RuleSet,
    Threshold,
    utc_today,
)
from shared.rules.fields import getter_for, known_keys
from shared.rules.operators import OPERATORS
from shared.rules.predicates import PREDICATES

DOCUMENT_KEYS = frozenset({"version", "extends", "disable", "override", "rules", "exceptions"})
EXTENDS = ("default", "none")
RULE_MODES = ("alert", "audit-only")
_EXCEPTION_KEYS = frozenset({"id", "rules", "when", "reason", "expires"})

_RULE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "severity",
        "runbook",
        "events",
        "sources",
        "outcome",
        "when",
        "severity_when",
        "enabled",
        "mode",
        "dedup",
        "threshold",
        "resolves",
    }
)
_DURATION = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEDUP_MAX_S = 7 * 86400  # a window's state lives in DynamoDB with a TTL past its end
THRESHOLD_MAX_S = 86400
THRESHOLD_MAX_COUNT = 1000
_OUTCOMES = ("success", "failure", "any")
# Spellings from other rule languages, to suggest the operator meant.
_ALIASES = {
    "equals": "eq",
    "equal": "eq",
    "==": "eq",
    "is": "eq",
    "!=": "ne",
    "not_equals": "ne",
    "matches": "regex",
    "match": "regex",
    "like": "glob",
    "startswith": "prefix",
    "endswith": "suffix",
    ">": "gt",
    ">=": "ge",
    "<": "lt",
    "<=": "le",
    "one_of": "in",
}


def _always(record: Any, enrichment: Any) -> bool:
    return True


# ---------------------------------------------------------------------------------------------
# Loading


def load_rules(path: str | Path | None = None, *, today: Callable[[], date] = utc_today) -> RuleSet:
    """Load and validate a rule document from a file (the bundled defaults when ``path`` is
    None)."""
    if path is None:
        return default_rules()
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RuleConfigError(f"{source}: cannot read the rule file ({reason})") from exc
    yaml = source.suffix.lower() in {".yaml", ".yml"}
    return compile_rules(parse_document(text, str(source), yaml=yaml), str(source), today=today)


def parse_document(text: str, origin: str, *, yaml: bool = False) -> Any:
    """A rule document's text → its value (JSON; YAML when ``yaml``, for the command line)."""
    if yaml:
        return _load_yaml(text, origin)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleConfigError(
            f"{origin}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _load_yaml(text: str, origin: str) -> Any:
    import yaml  # noqa: PLC0415 — only the command line reads YAML; Lambdas read JSON

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise RuleConfigError(f"{origin}: not valid YAML: {problem}{where}") from exc


def default_document() -> dict[str, Any]:
    """The bundled default rule document (a fresh copy)."""
    return copy.deepcopy(_default_document())


@lru_cache(maxsize=1)
def _default_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    return document


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The bundled defaults, compiled once per process."""
    return compile_rules(default_document(), str(DEFAULT_RULES_PATH))


# ---------------------------------------------------------------------------------------------
# Documents


def compile_rules(
    document: Any, origin: str = "<rules>", *, today: Callable[[], date] = utc_today
) -> RuleSet:
    """Validate a whole rule document, resolve its overlay and compile it; every problem names
    where it is."""
    if not isinstance(document, dict):
        raise RuleConfigError(f'{origin}: expected an object with a "rules" list')
    unknown_top = set(document) - DOCUMENT_KEYS
    if unknown_top:
        raise RuleConfigError(f"{origin}: unknown top-level keys: {', '.join(sorted(unknown_top))}")
    if document.get("version", 1) != 1:
        raise RuleConfigError(
            f"{origin}: unsupported version {document.get('version')!r} (expected 1)"
        )
    extends = document.get("extends")
    if extends is not None and extends not in EXTENDS:
        raise RuleConfigError(
            f"{origin}: extends must be one of {', '.join(EXTENDS)}, got {extends!r}"
        )
    if extends is None and not isinstance(document.get("rules"), list):
        raise RuleConfigError(f'{origin}: expected an object with a "rules" list')
    own = document.get("rules", [])
    if not isinstance(own, list):
        raise RuleConfigError(f"{origin}: rules must be a list of rules")
    if extends != "default":
        for key in ("disable", "override"):
            if key in document:
                raise RuleConfigError(
                    f'{origin}: {key} changes the defaults: it needs "extends: default"'
                )
    if extends is None and not own:
        raise RuleConfigError(
            f"{origin}: no rules: a document without extends replaces the defaults, so this one "
            'would turn every alert off. Add rules, say "extends: default" to change the '
            'defaults, or "extends: none" to run with no rules on purpose'
        )
    entries: list[tuple[str, Any]] = []
    if extends == "default":
        entries = _overlay(document, origin)
    entries += [(f"{origin}: rules[{position}]", entry) for position, entry in enumerate(own)]
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for where, entry in entries:
        rule = _compile_rule(entry, where)
        rule_id = entry["id"]  # validated by _compile_rule, disabled rules included
        if rule_id in seen:
            hint = " (a default rule: change it with override)" if extends == "default" else ""
            raise RuleConfigError(f"{where}: duplicate rule id {rule_id!r}{hint}")
        seen[rule_id] = where
        if rule is not None:
            rules.append(rule)
    disabled = set(document.get("disable", [])) if extends == "default" else set()
    compiled = {rule.id for rule in rules}
    for position, rule in enumerate(rules):
        for target in rule.resolves:
            if target not in seen and target not in disabled:
                raise RuleConfigError(
                    f"{seen[rule.id]} ({rule.id}): resolves: {target!r} is not a rule of this "
                    f"document{_suggest(target, list(seen))}"
                )
            if target == rule.id:
                raise RuleConfigError(f"{seen[rule.id]} ({rule.id}): a rule cannot resolve itself")
        if any(target not in compiled for target in rule.resolves):
            # A resolved rule that is disabled (or itself enabled: false) has no alerts to close.
            kept = tuple(target for target in rule.resolves if target in compiled)
            rules[position] = replace(rule, resolves=kept)
    exceptions = _compile_exceptions(document.get("exceptions", []), origin, seen)
    return RuleSet(rules, origin, exceptions=exceptions, document=document, today=today)


def _overlay(document: dict[str, Any], origin: str) -> list[tuple[str, Any]]:
    """The default rules with ``disable`` and ``override`` applied, each named for errors."""
    base = default_document()["rules"]
    known = [entry["id"] for entry in base]
    disable = document.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(i, str) for i in disable):
        raise RuleConfigError(f"{origin}: disable must be a list of rule ids")
    for rule_id in disable:
        if rule_id not in known:
            raise RuleConfigError(
                f"{origin}: disable: {rule_id!r} is not a default rule{_suggest(rule_id, known)}"
            )
    override = document.get("override", {})
    if not isinstance(override, dict):
        raise RuleConfigError(f"{origin}: override must map rule ids to the keys to change")
    for rule_id, changes in override.items():
        where = f"{origin}: override.{rule_id}"
        if rule_id not in known:
            raise RuleConfigError(f"{where}: not a default rule{_suggest(rule_id, known)}")
        if rule_id in disable:
            raise RuleConfigError(f"{where}: the rule is also disabled")
        if not isinstance(changes, dict) or not changes:
            raise RuleConfigError(f"{where}: must be an object of the rule keys to change")
        if "id" in changes:
            raise RuleConfigError(f"{where}: the id of a rule cannot be overridden")
    entries: list[tuple[str, Any]] = []
    for entry in base:
        rule_id = entry["id"]
        if rule_id in disable:
            continue
        if rule_id in override:
            entries.append((f"{origin}: override.{rule_id}", {**entry, **override[rule_id]}))
        else:
            entries.append((f"{DEFAULT_RULES_PATH.name}: {rule_id}", entry))
    return entries


def _compile_exceptions(
    entries: Any, origin: str, rules: dict[str, str]
) -> tuple[RuleException, ...]:
    if not isinstance(entries, list):
        raise RuleConfigError(f"{origin}: exceptions must be a list")
    compiled: list[RuleException] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        where = f"{origin}: exceptions[{position}]"
        if not isinstance(entry, dict):
            raise RuleConfigError(f"{where}: an exception must be an object")
        exception_id = entry.get("id")
        if not isinstance(exception_id, str) or not _RULE_ID.fullmatch(exception_id):
            raise RuleConfigError(
                f"{where}: id must be kebab-case (like ci-cleanup), got {exception_id!r}"
            )
        where = f"{where} ({exception_id})"
        if exception_id in seen:
            raise RuleConfigError(f"{where}: duplicate exception id")
        seen.add(exception_id)
        unknown = set(entry) - _EXCEPTION_KEYS
        if unknown:
            raise RuleConfigError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
        missing = _EXCEPTION_KEYS - set(entry)
        if missing:
            raise RuleConfigError(f"{where}: missing {', '.join(sorted(missing))}")
        covered = entry["rules"]
        if (
            not isinstance(covered, list)
            or not covered
            or not all(isinstance(rule_id, str) and rule_id for rule_id in covered)
        ):
            raise RuleConfigError(f'{where}: rules must be a non-empty list of rule ids (or ["*"])')
        for rule_id in covered:
            if rule_id != "*" and rule_id not in rules:
                raise RuleConfigError(
                    f"{where}: rules: {rule_id!r} is not a rule of this document"
                    f"{_suggest(rule_id, list(rules))}"
                )
        reason = entry["reason"]
        if not isinstance(reason, str) or not reason.strip():
            raise RuleConfigError(f"{where}: reason must say why (a non-empty string)")
        compiled.append(
            RuleException(
                id=exception_id,
                rules=frozenset() if "*" in covered else frozenset(covered),
                condition=_compile_condition(entry["when"], f"{where}: when"),
                reason=reason.strip(),
                expires=_expiry(entry["expires"], f"{where}: expires"),
                source=entry,
            )
        )
    return tuple(compiled)


def _expiry(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RuleConfigError(f"{where} must be a date such as 2027-06-30, got {value!r}")


# ---------------------------------------------------------------------------------------------
# One rule


def _compile_rule(entry: Any, where: str) -> Rule | None:
    if not isinstance(entry, dict):
        raise RuleConfigError(f"{where}: a rule must be an object")
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        raise RuleConfigError(
            f"{where}: id must be kebab-case (like secret-deleted), got {rule_id!r}"
        )
    where = f"{where} ({rule_id})"
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise RuleConfigError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
    for key in ("description", "runbook"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise RuleConfigError(f"{where}: {key} must be a non-empty string")
    severity = _severity(entry.get("severity"), f"{where}: severity")
    events = entry.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(name, str) and name for name in events)
    ):
        raise RuleConfigError(f'{where}: events must be a non-empty list of event names (or ["*"])')
    sources = entry.get("sources", [SECRETSMANAGER_SOURCE])
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(name, str) and name for name in sources)
    ):
        raise RuleConfigError(
            f"{where}: sources must be a non-empty list of event sources "
            "(such as secretsmanager.amazonaws.com)"
        )
    outcome = entry.get("outcome", "success")
    if outcome not in _OUTCOMES:
        raise RuleConfigError(
            f"{where}: outcome must be one of {', '.join(_OUTCOMES)}, got {outcome!r}"
        )
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleConfigError(f"{where}: enabled must be true or false")
    mode = entry.get("mode", "alert")
    if mode not in RULE_MODES:
        raise RuleConfigError(f"{where}: mode must be one of {', '.join(RULE_MODES)}, got {mode!r}")
    condition = _compile_condition(entry["when"], f"{where}: when") if "when" in entry else _always
    severity_when = _compile_severity_when(
        entry.get("severity_when", []), f"{where}: severity_when"
    )
    dedup = _compile_dedup(entry["dedup"], f"{where}: dedup") if "dedup" in entry else None
    threshold = (
        _compile_threshold(entry["threshold"], f"{where}: threshold")
        if "threshold" in entry
        else None
    )
    if dedup is not None and threshold is not None:
        raise RuleConfigError(
            f"{where}: dedup and threshold together: a threshold already alerts once per window"
        )
    resolves = entry.get("resolves", [])
    if not isinstance(resolves, list) or not all(
        isinstance(target, str) and target for target in resolves
    ):
        raise RuleConfigError(f"{where}: resolves must be a list of rule ids")
    if not enabled:
        return None  # validated like the others, then left out
    return Rule(
        id=rule_id,
        description=entry["description"].strip(),
        severity=severity,
        runbook=entry["runbook"].strip(),
        events=frozenset() if "*" in events else frozenset(events),
        sources=frozenset(sources),
        outcome=outcome,
        condition=condition,
        severity_when=severity_when,
        source=entry,
        mode=mode,
        dedup=dedup,
        threshold=threshold,
        resolves=tuple(dict.fromkeys(resolves)),
    )


def duration_seconds(value: Any, where: str, *, most: int) -> int:
    """``30s``, ``15m``, ``1h``, ``1d`` → seconds, at most ``most``."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise RuleConfigError(
            f"{where} must be a duration such as 30s, 15m, 1h or 1d, got {value!r}"
        )
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > most:
        raise RuleConfigError(f"{where} is {value}: at most {most // 86400 or 1}d")
    return seconds


def _fields(
    value: Any, where: str, *, empty: bool = False
) -> tuple[tuple[str, ...], tuple[Getter, ...]]:
    if not isinstance(value, list) or (not value and not empty):
        raise RuleConfigError(f"{where} must be a {'' if empty else 'non-empty '}list of fields")
    getters: list[Getter] = []
    for position, key in enumerate(value):
        getter = getter_for(key) if isinstance(key, str) else None
        if getter is None:
            raise RuleConfigError(
                f"{where}[{position}]: unknown field {key!r}{_suggest(key, known_keys())}"
            )
        getters.append(getter)
    return tuple(value), tuple(getters)


def _compile_dedup(node: Any, where: str) -> Dedup:
    if not isinstance(node, dict):
        raise RuleConfigError(f"{where} must be an object with window and key")
    _only(node, {"window", "key"}, where, required={"window", "key"})
    keys, getters = _fields(node["key"], f"{where}.key")
    return Dedup(
        duration_seconds(node["window"], f"{where}.window", most=DEDUP_MAX_S), keys, getters
    )


def _compile_threshold(node: Any, where: str) -> Threshold:
    if not isinstance(node, dict):
        raise RuleConfigError(f"{where} must be an object with count and window")
    _only(node, {"count", "window", "group_by", "distinct"}, where, required={"count", "window"})
    count = node["count"]
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 2 <= count <= THRESHOLD_MAX_COUNT
    ):
        raise RuleConfigError(
            f"{where}.count must be a whole number from 2 to {THRESHOLD_MAX_COUNT}, got {count!r}"
        )
    group, getters = _fields(node.get("group_by", []), f"{where}.group_by", empty=True)
    distinct = node.get("distinct")
    distinct_getter = None
    if distinct is not None:
        distinct_getter = getter_for(distinct) if isinstance(distinct, str) else None
        if distinct_getter is None:
            raise RuleConfigError(
                f"{where}.distinct: unknown field {distinct!r}{_suggest(distinct, known_keys())}"
            )
    return Threshold(
        count=count,
        window_s=duration_seconds(node["window"], f"{where}.window", most=THRESHOLD_MAX_S),
        group_by=group,
        group_getters=getters,
        distinct=distinct,
        distinct_getter=distinct_getter,
    )


def _severity(value: Any, where: str) -> Severity:
    for severity in SEVERITIES:
        if value == severity:
            return severity
    raise RuleConfigError(f"{where} must be one of {', '.join(SEVERITIES)}, got {value!r}")


def _compile_severity_when(entries: Any, where: str) -> tuple[tuple[Severity, Condition], ...]:
    if not isinstance(entries, list):
        raise RuleConfigError(f"{where} must be a list of {{severity, when}}")
    compiled: list[tuple[Severity, Condition]] = []
    for position, item in enumerate(entries):
        here = f"{where}[{position}]"
        if not isinstance(item, dict) or set(item) != {"severity", "when"}:
            raise RuleConfigError(f"{here} must be an object with exactly severity and when")
        compiled.append(
            (
                _severity(item["severity"], f"{here}.severity"),
                _compile_condition(item["when"], f"{here}.when"),
            )
        )
    return tuple(compiled)


def _compile_condition(node: Any, where: str) -> Condition:
    if not isinstance(node, dict) or not node:
        raise RuleConfigError(f"{where}: a condition must be an object")
    if "all" in node or "any" in node:
        kind = "all" if "all" in node else "any"
        _only(node, {kind}, where)
        children = node[kind]
        if not isinstance(children, list) or not children:
            raise RuleConfigError(f"{where}.{kind} must be a non-empty list of conditions")
        parts = tuple(
            _compile_condition(child, f"{where}.{kind}[{i}]") for i, child in enumerate(children)
        )
        return _all(parts) if kind == "all" else _any(parts)
    if "not" in node:
        _only(node, {"not"}, where)
        inner = _compile_condition(node["not"], f"{where}.not")
        return lambda record, enrichment: not inner(record, enrichment)
    if "predicate" in node:
        _only(node, {"predicate"}, where)
        name = node["predicate"]
        if not isinstance(name, str) or name not in PREDICATES:
            raise RuleConfigError(
                f"{where}.predicate: unknown predicate {name!r}{_suggest(name, PREDICATES)}; "
                f"known: {', '.join(sorted(PREDICATES))}"
            )
        return PREDICATES[name]
    return _compile_comparison(node, where)


def _compile_comparison(node: dict[str, Any], where: str) -> Condition:
    _only(node, {"key", "op", "value"}, where, required={"key", "op"})
    key, op = node["key"], node["op"]
    getter = getter_for(key) if isinstance(key, str) else None
    if getter is None:
        raise RuleConfigError(f"{where}.key: unknown field {key!r}{_suggest(key, known_keys())}")
    if not isinstance(op, str) or op not in OPERATORS:
        hint = f" (did you mean {_ALIASES[op]!r}?)" if op in _ALIASES else _suggest(op, OPERATORS)
        raise RuleConfigError(
            f"{where}.op: unknown operator {op!r}{hint}; known: {', '.join(OPERATORS)}"
        )
    if "value" not in node:
        raise RuleConfigError(f"{where}: {op} needs a value")
    try:
        test = OPERATORS[op](node["value"])
    except RuleConfigError as exc:
        raise RuleConfigError(f"{where}.value: {exc}") from None
    return lambda record, enrichment: test(getter(record, enrichment))


def _all(parts: tuple[Condition, ...]) -> Condition:
    return lambda record, enrichment: all(part(record, enrichment) for part in parts)


def _any(parts: tuple[Condition, ...]) -> Condition:
    return lambda record, enrichment: any(part(record, enrichment) for part in parts)


def _only(
    node: dict[str, Any], allowed: set[str], where: str, required: set[str] | None = None
) -> None:
    extra = set(node) - allowed
    if extra:
        raise RuleConfigError(
            f"{where}: unexpected keys {', '.join(sorted(extra))} (allowed: {', '.join(sorted(allowed))})"
        )
    missing = (required or set()) - set(node)
    if missing:
        raise RuleConfigError(f"{where}: missing {', '.join(sorted(missing))}")


def _suggest(value: Any, options: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
