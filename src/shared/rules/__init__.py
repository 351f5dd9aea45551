"""The rule engine: rules as data, validated at load, evaluated per record in isolation."""

from shared.rules.engine import DEFAULT_RULES_PATH, Rule, RuleSet, compile_rules, load_rules

__all__ = ["DEFAULT_RULES_PATH", "Rule", "RuleSet", "compile_rules", "load_rules"]
