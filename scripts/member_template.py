"""Write the member stack as plain CloudFormation, for a service-managed StackSet.

StackSets with service-managed permissions (the ones that deploy to every account of an
organisational unit, and to new accounts automatically) refuse templates that use macros, the
AWS::Serverless transform included. A member stack holds no function, so nothing in it needs the
transform: this keeps template.yaml's member resources as they are (their conditions, metadata
and outputs) and drops the rest, the Transform and the Globals. The result is the same member
stack `sam deploy` would create from template.yaml with DeploymentMode=member.

Usage: python scripts/member_template.py [template.yaml] [output.json]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cli.local_stack import Resolver  # its condition evaluator decides what a member stack holds

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "build" / "secretwatch-member.json"
MODE = "member"


def load(path: Path) -> dict[str, Any]:
    """template.yaml with CloudFormation's long-form intrinsics ({"Ref": ...}, {"Fn::Sub": ...})."""
    from cfnlint.decode import cfn_yaml

    loaded: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return loaded


def _references(node: Any) -> Iterator[tuple[str, str]]:
    """("Ref"|"Condition", name) for every reference in a template fragment (GetAtt: a Ref)."""
    if isinstance(node, list):
        for item in node:
            yield from _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield "Ref", value
            elif key == "Condition" and isinstance(value, str):
                yield "Condition", value
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                yield "Ref", target
            elif key == "Fn::If" and isinstance(value, list) and value:
                yield "Condition", str(value[0])
                yield from _references(value[1:])
            elif key == "Fn::Sub":
                text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
                yield from _sub_names(text, extra)
                yield from _references(extra)
            else:
                yield from _references(value)


def _sub_names(text: str, extra: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    start = text.find("${")
    while start >= 0:
        end = text.index("}", start)
        name = text[start + 2 : end].split(".", maxsplit=1)[0]
        if not name.startswith("!") and name not in extra:
            yield "Ref", name
        start = text.find("${", end)


def member_template(template: Mapping[str, Any]) -> dict[str, Any]:
    parameters: Mapping[str, Any] = template["Parameters"]
    resolver = Resolver(template, {}, "us-east-1")  # the defaults, and DeploymentMode=member
    resolver.parameters["DeploymentMode"] = MODE

    def kept(entry: Mapping[str, Any]) -> bool:
        condition = entry.get("Condition")
        return condition is None or resolver.condition(condition)

    resources = {k: v for k, v in template["Resources"].items() if kept(v)}
    serverless = sorted(k for k, v in resources.items() if v["Type"].startswith("AWS::Serverless"))
    if serverless:
        raise ValueError(f"member resources need the SAM transform: {', '.join(serverless)}")
    outputs = {k: v for k, v in template.get("Outputs", {}).items() if kept(v)}

    # Conditions and parameters: those the kept parts refer to, transitively.
    conditions: dict[str, Any] = {}
    pending = sorted(_conditions_named(resources, outputs))
    while pending:
        name = pending.pop()
        if name in conditions:
            continue
        conditions[name] = template["Conditions"][name]
        pending += sorted(_conditions_named(conditions[name]))
    referenced = {
        name
        for kind, name in _references([resources, outputs, conditions])
        if kind == "Ref" and name in parameters
    }
    # A deployment rule travels with the member stack when it speaks of its parameters only
    # (MemberNeedsCentralBus), never of the central or standalone stack's (AlertEmail, ...).
    rules = {
        name: rule
        for name, rule in template.get("Rules", {}).items()
        if {n for kind, n in _references(rule) if kind == "Ref" and n in parameters} <= referenced
    }
    kept_parameters = {k: dict(v) for k, v in parameters.items() if k in referenced}
    mode = kept_parameters.setdefault("DeploymentMode", dict(parameters["DeploymentMode"]))
    mode.update(Default=MODE, AllowedValues=[MODE])
    mode["Description"] = "Always member: this template holds only the member stack."

    out: dict[str, Any] = {
        "AWSTemplateFormatVersion": template["AWSTemplateFormatVersion"],
        "Description": "secretwatch member stack (generated from template.yaml by "
        "scripts/member_template.py; plain CloudFormation, for service-managed StackSets): "
        "forwards this account's Secrets Manager events to the central bus and lets the "
        "central functions describe its secrets.",
        "Parameters": kept_parameters,
    }
    if rules:
        out["Rules"] = rules
    if conditions:
        out["Conditions"] = conditions
    out["Resources"] = resources
    if outputs:
        out["Outputs"] = outputs
    return out


def _conditions_named(*parts: Mapping[str, Any]) -> set[str]:
    return {name for kind, name in _references(list(parts)) if kind == "Condition"}


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else ROOT / "template.yaml"
    target = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    document = member_template(load(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"{target}: {len(document['Resources'])} resources, plain CloudFormation")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
