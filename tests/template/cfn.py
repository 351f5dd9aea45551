"""Helpers for reading template.yaml in tests: loading, resource lookup, conditions, IAM.

The template is read with cfn-lint's YAML loader (it understands the short intrinsic forms such as
``!Ref``) and turned into plain dicts/lists, so ``!Ref X`` is ``{"Ref": "X"}``,
``!GetAtt X.Arn`` is ``{"Fn::GetAtt": ["X", "Arn"]}`` and so on.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

Template = dict[str, Any]

FUNCTIONS = ("EventBridgeFunction", "LogSubscriptionFunction", "DigestFunction")
# The replay state machine's function: no alerts, no events of its own (test_template_replay.py).
REPLAY_FUNCTION = "ReplayFileFunction"
BUILT_FUNCTIONS = (*FUNCTIONS, REPLAY_FUNCTION)  # every function src/Makefile builds
RULES = ("WriteCallsRule", "ServiceEventsRule", "FailedReadsRule")  # Secrets Manager's events
SELFTEST_RULE = "SelfTestRule"  # `secretwatch selftest`'s synthetic event
TAMPER_RULE = "TamperRule"  # calls of other services that tamper with secretwatch itself
NO_VALUE = {"Ref": "AWS::NoValue"}


@cache
def _load() -> str:
    return json.dumps(cfn_yaml.load(str(TEMPLATE_PATH)))


def load_template() -> Template:
    """A fresh, plain-dict copy of template.yaml (callers may modify it)."""
    loaded: Template = json.loads(_load())
    return loaded


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def props(template: Template, logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def evaluate_condition(template: Template, name: str, parameters: Mapping[str, str]) -> bool:
    """Evaluate a named condition for the given parameter values (defaults fill the rest)."""
    values = {
        key: str(parameter.get("Default", "")) for key, parameter in template["Parameters"].items()
    }
    values.update(parameters)

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return values[node["Ref"]]
        return node

    def evaluate(node: Any) -> bool:
        ((function, args),) = node.items()
        if function == "Fn::Equals":
            return bool(value(args[0]) == value(args[1]))
        if function == "Fn::Not":
            return not evaluate(args[0])
        if function == "Fn::And":
            return all(evaluate(arg) for arg in args)
        if function == "Fn::Or":
            return any(evaluate(arg) for arg in args)
        if function == "Condition":
            return evaluate(template["Conditions"][args])
        raise AssertionError(f"unsupported condition function {function}")

    return evaluate(template["Conditions"][name])


@dataclass(frozen=True)
class Grant:
    """One IAM statement that a function role gets, with the condition it depends on (if any)."""

    policy: str  # where it comes from: "<role>/<policy name>" or the AWS::IAM::Policy logical id
    condition: str | None
    statement: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        action = self.statement["Action"]
        return [action] if isinstance(action, str) else list(action)

    @property
    def resources(self) -> list[Any]:
        resource = self.statement["Resource"]
        return list(resource) if isinstance(resource, list) else [resource]


def _statements(document: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    statements = document["Statement"]
    for entry in statements if isinstance(statements, list) else [statements]:
        if set(entry) == {"Fn::If"}:
            condition, when_true, when_false = entry["Fn::If"]
            assert when_false == NO_VALUE, f"unexpected else-branch {when_false!r}"
            yield condition, when_true
        else:
            yield None, entry


def function_role(template: Template, function: str) -> str:
    """Logical id of the IAM role a function uses (must be a role from this template)."""
    role = props(template, function)["Role"]
    assert isinstance(role, dict), f"{function}.Role must be !GetAtt <role>.Arn, got {role!r}"
    assert role.get("Fn::GetAtt", [None, None])[1] == "Arn", role
    logical_id: str = role["Fn::GetAtt"][0]
    return logical_id


def role_grants(template: Template, role: str) -> list[Grant]:
    """Every statement granted to a role: its inline policies and AWS::IAM::Policy attachments."""
    grants: list[Grant] = []
    for policy in props(template, role).get("Policies", []):
        for condition, statement in _statements(policy["PolicyDocument"]):
            grants.append(Grant(f"{role}/{policy['PolicyName']}", condition, statement))
    for name, policy in resources(template, "AWS::IAM::Policy").items():
        if {"Ref": role} in policy["Properties"].get("Roles", []):
            for condition, statement in _statements(policy["Properties"]["PolicyDocument"]):
                grants.append(Grant(name, condition, statement))
    return grants


def policy_documents(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM-style policy document anywhere in a template (walks the whole tree)."""
    if isinstance(node, dict):
        if "Statement" in node and ("Version" in node or path.endswith("Document")):
            yield path, node
        for key, child in node.items():
            yield from policy_documents(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from policy_documents(child, f"{path}/{index}")


def all_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, statement) for every statement in every policy document of the template."""
    for path, document in policy_documents(template["Resources"]):
        for _, statement in _statements(document):
            yield path, statement


def translate(template: Template) -> Template:
    """Run the SAM transform offline (bundled managed-policy map, no AWS calls)."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.translator.transform import transform

    class _Loader:
        def load(self) -> dict[str, str]:
            loaded: dict[str, str] = get_bundled_managed_policy_map("aws")
            return loaded

    source = copy.deepcopy(template)
    # The transform only accepts packaged code (what `sam package` uploads).
    source["Globals"]["Function"]["CodeUri"] = "s3://secretwatch-test-artifacts/src.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = previous or "us-east-1"
    try:
        translated: Template = transform(source, {}, _Loader())
    finally:
        if previous is None:
            del os.environ["AWS_DEFAULT_REGION"]
    return translated


# A stack name of the length StackSets give: StackSet-<set name>-<uuid>, here for a set called
# secretwatch (9 + 11 + 1 + 36 = 57 characters).
STACKSET_STACK_NAME = "StackSet-secretwatch-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
STACKSET_STACK_ID = (
    "arn:aws:cloudformation:ap-southeast-2:111122223333:stack/"
    f"{STACKSET_STACK_NAME}/f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
)


def render(
    template: Template,
    node: Any,
    *,
    stack_name: str = STACKSET_STACK_NAME,
    stack_id: str = STACKSET_STACK_ID,
    parameters: Mapping[str, str] | None = None,
) -> Any:
    """Resolve the intrinsics a resource name uses, as CloudFormation would for one stack.

    Ref/GetAtt to another resource become ``<LogicalId>`` placeholders (their physical names are
    CloudFormation's, not ours); pseudo parameters take the given stack's values.
    """
    values = {key: str(spec.get("Default", "")) for key, spec in template["Parameters"].items()}
    values.update(parameters or {})
    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::StackId": stack_id,
        "AWS::Region": stack_id.split(":")[3],
        "AWS::AccountId": stack_id.split(":")[4],
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def ref(name: str) -> str:
        return pseudo.get(name) or values.get(name) or f"<{name}>"

    def sub(text: str, extra: Mapping[str, Any]) -> str:
        out, index = [], 0
        while (start := text.find("${", index)) >= 0:
            end = text.index("}", start)
            name = text[start + 2 : end]
            out.append(text[index:start])
            out.append(str(walk(extra[name])) if name in extra else ref(name.split(".")[0]))
            index = end + 1
        out.append(text[index:])
        return "".join(out)

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if not isinstance(value, dict) or len(value) != 1:
            return value
        ((function, args),) = value.items()
        if function == "Ref":
            return ref(args)
        if function == "Fn::GetAtt":
            return f"<{args[0]}.{args[1]}>"
        if function == "Fn::Sub":
            text, extra = (args, {}) if isinstance(args, str) else (args[0], args[1])
            return sub(text, extra)
        if function == "Fn::Select":
            return walk(args[1])[int(walk(args[0]))]
        if function == "Fn::Split":
            return str(walk(args[1])).split(args[0])
        if function == "Fn::Join":
            return str(args[0]).join(str(part) for part in walk(args[1]))
        if function == "Fn::If":
            chosen = args[1] if evaluate_condition(template, args[0], values) else args[2]
            return walk(chosen)
        return value

    return walk(node)
