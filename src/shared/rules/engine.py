"""Rules are data: loaded from a file, validated whole before any event, compiled to closures.

A rule file (JSON, or YAML for the command line) looks like::

    {"version": 1, "rules": [{
        "id": "secret-deleted",                 # kebab-case, unique
        "description": "...", "runbook": "...",
        "severity": "high",                     # info | low | medium | high | critical
        "events": ["DeleteSecret"],             # event names, or ["*"] for every event
        "outcome": "success",                   # success (default) | failure | any
        "when": {"all": [{"key": "request.force_delete_without_recovery", "op": "ne", "value": true}]},
        "severity_when": [{"severity": "critical", "when": {"predicate": "..."}}]
    }]}

Conditions: ``{"key", "op", "value"}`` with an operator from ``operators.OPERATORS`` over a key
from ``fields.FIELDS``; ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``; and
``{"predicate": "name"}`` for a Python predicate from ``predicates.PREDICATES``.
``outcome: success`` (the default) means a failed call (errorCode or errorMessage) never fires
the rule. ``severity_when`` is an ordered list; the first that matches sets the severity.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import RuleConfigError
from shared.models import (
    SEVERITIES,
    SEVERITY_RANK,
    CloudTrailRecord,
    Enrichment,
    Evaluation,
    Finding,
    RuleError,
    RuleOutcome,
    Severity,
)
from shared.rules.fields import getter_for, known_keys
from shared.rules.operators import OPERATORS
from shared.rules.predicates import PREDICATES

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.json")
_RULE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "severity",
        "runbook",
        "events",
        "outcome",
        "when",
        "severity_when",
        "enabled",
    }
)
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

_NOTHING = Evaluation()

Condition = Callable[[CloudTrailRecord, Enrichment | None], bool]


def _always(record: CloudTrailRecord, enrichment: Enrichment | None) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: Severity
    runbook: str
    events: frozenset[str]  # empty: every event
    outcome: RuleOutcome
    condition: Condition
    severity_when: tuple[tuple[Severity, Condition], ...]
    source: dict[str, Any]  # the rule as written, for `secretwatch rules list`

    def applies_to_outcome(self, record: CloudTrailRecord) -> bool:
        if self.outcome == "any":
            return True
        return record.failed is (self.outcome == "failure")

    def evaluate(
        self, record: CloudTrailRecord, enrichment: Enrichment | None = None
    ) -> Finding | None:
        if not self.applies_to_outcome(record) or not self.condition(record, enrichment):
            return None
        severity = self.severity
        for candidate, condition in self.severity_when:
            if condition(record, enrichment):
                severity = candidate
                break
        return Finding(self.id, severity, self.description, self.runbook)


class RuleSet:
    """A validated, compiled set of rules, indexed by event name."""

    def __init__(self, rules: Sequence[Rule], origin: str = "<rules>") -> None:
        self.rules = tuple(rules)
        self.origin = origin
        wildcard = tuple(rule for rule in self.rules if not rule.events)
        by_event: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for name in rule.events:
                by_event.setdefault(name, []).append(rule)
        # Keep file order within each event's list: findings come out in catalogue order.
        order = {rule.id: position for position, rule in enumerate(self.rules)}
        self._by_event = {
            name: tuple(sorted([*listed, *wildcard], key=lambda r: order[r.id]))
            for name, listed in by_event.items()
        }
        self._wildcard = wildcard

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def rules_for(self, event_name: str) -> tuple[Rule, ...]:
        return self._by_event.get(event_name, self._wildcard)

    def evaluate(
        self, record: CloudTrailRecord, enrichment: Enrichment | None = None
    ) -> Evaluation:
        findings: list[Finding] = []
        errors: list[RuleError] = []
        for rule in self.rules_for(record.event_name):
            try:
                finding = rule.evaluate(record, enrichment)
            except Exception as exc:  # noqa: BLE001 — one rule raising never stops the others
                errors.append(RuleError(rule.id, f"{type(exc).__name__}: {exc}"))
                continue
            if finding is not None:
                findings.append(finding)
        if len(findings) > 1:
            findings.sort(key=lambda f: -SEVERITY_RANK[f.severity])
        if not findings and not errors:
            return _NOTHING  # most records: one shared (immutable) answer
        return Evaluation(tuple(findings), tuple(errors))


# ---------------------------------------------------------------------------------------------
# Loading


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate a rule file (the bundled defaults when ``path`` is None)."""
    source = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleConfigError(
            f"{source}: cannot read the rule file ({exc.strerror or exc})"
        ) from exc
    if source.suffix.lower() in {".yaml", ".yml"}:
        document = _load_yaml(text, source)
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleConfigError(
                f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
    return compile_rules(document, str(source))


def _load_yaml(text: str, source: Path) -> Any:
    import yaml  # noqa: PLC0415 — only the command line reads YAML; Lambdas load the JSON defaults

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleConfigError(f"{source}: not valid YAML: {exc}") from exc


def compile_rules(document: Any, origin: str = "<rules>") -> RuleSet:
    """Validate a whole rule document and compile it; every problem names where it is."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleConfigError(f'{origin}: expected an object with a "rules" list')
    unknown_top = set(document) - {"version", "rules"}
    if unknown_top:
        raise RuleConfigError(f"{origin}: unknown top-level keys: {', '.join(sorted(unknown_top))}")
    if document.get("version", 1) != 1:
        raise RuleConfigError(
            f"{origin}: unsupported version {document.get('version')!r} (expected 1)"
        )
    rules: list[Rule] = []
    seen: set[str] = set()
    for position, entry in enumerate(document["rules"]):
        rule = _compile_rule(entry, f"{origin}: rules[{position}]")
        rule_id = entry["id"]  # validated by _compile_rule, disabled rules included
        if rule_id in seen:
            raise RuleConfigError(f"{origin}: rules[{position}]: duplicate rule id {rule_id!r}")
        seen.add(rule_id)
        if rule is not None:
            rules.append(rule)
    return RuleSet(rules, origin)


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
    outcome = entry.get("outcome", "success")
    if outcome not in _OUTCOMES:
        raise RuleConfigError(
            f"{where}: outcome must be one of {', '.join(_OUTCOMES)}, got {outcome!r}"
        )
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleConfigError(f"{where}: enabled must be true or false")
    condition = _compile_condition(entry["when"], f"{where}: when") if "when" in entry else _always
    severity_when = _compile_severity_when(
        entry.get("severity_when", []), f"{where}: severity_when"
    )
    if not enabled:
        return None  # validated like the others, then left out
    return Rule(
        id=rule_id,
        description=entry["description"].strip(),
        severity=severity,
        runbook=entry["runbook"].strip(),
        events=frozenset() if "*" in events else frozenset(events),
        outcome=outcome,
        condition=condition,
        severity_when=severity_when,
        source=entry,
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
