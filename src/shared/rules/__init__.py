"""The rule engine: rules as data, validated at load, evaluated per record in isolation."""

from shared.rules.engine import DEFAULT_RULES_PATH, Rule, RuleException, RuleSet
from shared.rules.loader import compile_rules, default_rules, load_rules, parse_document

__all__ = [
    "DEFAULT_RULES_PATH",
    "Rule",
    "RuleException",
    "RuleSet",
    "compile_rules",
    "default_rules",
    "load_rules",
    "parse_document",
]
