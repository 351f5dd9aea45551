"""The template's ``Rules`` section, checked as CloudFormation checks it before creating a stack.

CloudFormation evaluates every rule whose ``RuleCondition`` holds (a rule without one always
applies) and refuses the stack with the ``AssertDescription`` of each assertion that is false.
Local mode does the same with its parameter values, so a local stack cannot be built from values
a deployment would refuse (an alerting stack that alerts nobody, half a chat channel). Only the
functions the template's rules use are known (``Fn::And``, ``Fn::Or``, ``Fn::Not``,
``Fn::Equals``, ``Ref`` to a parameter); any other one is an error, not a silent pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import ConfigError

_FUNCTIONS = frozenset({"Fn::And", "Fn::Or", "Fn::Not", "Fn::Equals", "Ref"})


def _value(node: Any, parameters: Mapping[str, str]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((function, args),) = node.items()
        if function not in _FUNCTIONS:
            raise ConfigError(f"template.yaml Rules: local mode cannot evaluate {function}")
        if function == "Ref":
            if args not in parameters:
                raise ConfigError(f"template.yaml Rules: Ref to {args}, which is no parameter")
            return parameters[args]
        if function == "Fn::Equals":
            return _value(args[0], parameters) == _value(args[1], parameters)
        if function == "Fn::Not":
            return not _value(args[0], parameters)
        if function == "Fn::And":
            return all(_value(arg, parameters) for arg in args)
        return any(_value(arg, parameters) for arg in args)
    return node


def failed_assertions(template: Mapping[str, Any], parameters: Mapping[str, str]) -> list[str]:
    """The AssertDescription of every assertion CloudFormation would refuse, in template order."""
    failed: list[str] = []
    for name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _value(condition, parameters):
            continue
        for assertion in rule.get("Assertions", []):
            if not _value(assertion["Assert"], parameters):
                failed.append(str(assertion.get("AssertDescription") or f"rule {name} failed"))
    return failed


def check(template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
    """Raise ConfigError as ``sam deploy`` would fail: with every refused assertion's text."""
    failed = failed_assertions(template, parameters)
    if failed:
        raise ConfigError("template.yaml Rules refuse these parameters: " + " ".join(failed))
