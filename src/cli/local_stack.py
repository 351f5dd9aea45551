"""Local mode: the stack's resources created from template.yaml itself, on a moto server.

Reading the template (not a copy of it) means the demo and the integration tests cannot drift
from what ``sam deploy`` creates: the table's keys and indexes, the topic, the queues, the
EventBridge rules and their patterns, and the functions' environment all come from the file.
moto cannot run the Lambda code or the Serverless transform, so the handlers are called in this
process with the environment the template gives them. Only the types below are created: the
replay state machine, its buckets and the trail are left out (moto cannot run a Distributed
Map; a local replay needs none of them).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from cli import template_rules
from shared.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The package's copy: in the repository a symbolic link to the top-level template.yaml, in a wheel
# the file itself, so an installed `secretwatch demo` reads the same template from any folder.
BUNDLED = Path(__file__).resolve().parent / "bundled"
TEMPLATE = BUNDLED / "template.yaml"
DEFAULT_ACCOUNT = "123456789012"  # moto's default; MOTO_ACCOUNT_ID changes it
# A local stack always has a subscriber: moto records every message published to the topic (the
# demo reads that record, and subscribes an inbox queue). So local mode says AllowNoSubscriber,
# as a deployer would; a caller can still pass "false" to see the template refuse a stack.
LOCAL_PARAMETERS = {"AllowNoSubscriber": "true"}


def local_account() -> str:
    return os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT)


# ---------------------------------------------------------------------------------------------
# Reading the template


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as plain data: ``!Ref X`` → ``{"Ref": "X"}``, ``!Sub s`` → ``{"Fn::Sub": s}``."""
    import yaml  # noqa: PLC0415 — the command line only

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            return {"Fn::GetAtt": value.split(".", 1)}
        if suffix == "Condition":
            return {"Condition": value}
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", construct)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 — SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the template: {exc}") from exc
    if not isinstance(document, dict) or "Resources" not in document:
        raise ConfigError(f"{path}: not a CloudFormation/SAM template")
    return document


class Resolver:
    """Resolves the intrinsic functions the local resources need (Ref, GetAtt, If, Sub, …)."""

    def __init__(
        self, template: Mapping[str, Any], physical: Mapping[str, str], region: str
    ) -> None:
        self.template = template
        self.physical = physical
        self.region = region
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in template.get("Parameters", {}).items()
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = getattr(self, "_" + key.replace("Fn::", "fn_").replace("::", "_"), None)
            if handler is not None:
                return handler(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _Ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": local_account(),
            "AWS::Partition": "aws",
            "AWS::StackName": "secretwatch-local",
            # A stack id's last part is a UUID: names built from its first 8 hex digits resolve.
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{local_account()}:"
            "stack/secretwatch-local/0badc0de-0000-4000-8000-000000000000",
            "AWS::NoValue": None,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical.get(name, name)

    def _Condition(self, name: str) -> bool:
        return self.condition(name)

    def _fn_If(self, args: list[Any]) -> Any:
        return self.resolve(args[1] if self.condition(args[0]) else args[2])

    def _fn_Equals(self, args: list[Any]) -> bool:
        return bool(self.resolve(args[0]) == self.resolve(args[1]))

    def _fn_Not(self, args: list[Any]) -> bool:
        return not self.resolve(args[0])

    def _fn_And(self, args: list[Any]) -> bool:
        return all(self.resolve(a) for a in args)

    def _fn_Or(self, args: list[Any]) -> bool:
        return any(self.resolve(a) for a in args)

    def _fn_GetAtt(self, args: list[str]) -> Any:
        return self.physical.get(f"{args[0]}.{args[1]}", self.physical.get(args[0], args[0]))

    def _fn_Select(self, args: list[Any]) -> Any:
        return self.resolve(args[1])[int(self.resolve(args[0]))]

    def _fn_Split(self, args: list[Any]) -> list[str]:
        return str(self.resolve(args[1])).split(str(args[0]))

    def _fn_FindInMap(self, args: list[Any]) -> Any:
        keys = [self.resolve(a) for a in args]
        return self.template["Mappings"][keys[0]][keys[1]][keys[2]]

    def _fn_Join(self, args: list[Any]) -> str:
        return str(args[0]).join(str(self.resolve(v)) for v in self.resolve(args[1]))

    def _fn_Sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            end = text.index("}", start)
            out.append(text[i:start])
            name = text[start + 2 : end]
            if name in extra:
                out.append(str(self.resolve(extra[name])))
            elif "." in name:
                out.append(str(self._fn_GetAtt(name.split(".", 1))))
            else:
                out.append(str(self._Ref(name)))
            i = end + 1
        return "".join(out)


# ---------------------------------------------------------------------------------------------
# Creating the resources


@dataclass
class RouteRule:
    """An EventBridge rule of the template, wired to a local queue that stands for its target."""

    logical_id: str
    name: str
    state: str
    pattern: dict[str, Any]
    queue_url: str


@dataclass
class LocalStack:
    region: str
    endpoint_url: str | None  # None: in-process moto (mock_aws)
    table_name: str
    topic_arn: str
    environment: dict[str, str]
    rules: list[RouteRule] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)
    rules_parameter: str | None = None  # the SSM parameter holding the rule document in force
    state_table_name: str | None = None  # dedup windows, thresholds and open alerts

    def client(self, service: Any) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)


def create_stack(
    endpoint_url: str | None,
    *,
    region: str = "us-east-1",
    path: Path = TEMPLATE,
    parameters: Mapping[str, str] | None = None,
) -> LocalStack:
    """Create the template's table, topic, key, queues and rules on a moto server.

    ``parameters`` overrides the template's parameter defaults, as ``sam deploy
    --parameter-overrides`` would (``{"AutoRestore": "enabled"}``); each is checked against the
    parameter's AllowedValues, and the whole set against the template's Rules
    (``cli.template_rules``), so a local stack cannot take values a deployment would refuse.
    With ``AlertTopicArn`` set, that topic must already exist on the server: local mode creates
    no topic then, as the stack would not.
    """
    template = load_template(path)
    resources: dict[str, Any] = template["Resources"]
    physical: dict[str, str] = {}
    resolver = Resolver(template, physical, region)
    resolver.parameters.update(
        _checked_parameters(template, {**LOCAL_PARAMETERS, **(parameters or {})})
    )
    template_rules.check(template, resolver.parameters)

    def make(service: Any) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url)

    kms, sqs, sns, events = make("kms"), make("sqs"), make("sns"), make("events")
    dynamodb: DynamoDBClient = make("dynamodb")

    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::KMS::Key" and _wanted(resource, resolver):
            key = kms.create_key(Description=f"secretwatch local {logical_id}")["KeyMetadata"]
            physical[logical_id] = key["KeyId"]
            physical[f"{logical_id}.Arn"] = key["Arn"]
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::SQS::Queue" and _wanted(resource, resolver):
            name = f"secretwatch-local-{logical_id}"
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            physical[logical_id] = url
            physical[f"{logical_id}.Arn"] = arn
            physical[f"{logical_id}.QueueName"] = name

    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::DynamoDB::Table" and _wanted(resource, resolver):
            _create_table(dynamodb, logical_id, resource, resolver, physical)
    table_name = physical["AuditTable"]
    topic_arn = _create_topics(sns, template, resolver, physical, endpoint_url)
    rules_parameter = _create_parameters(make("ssm"), resources, resolver, physical)
    environment = _function_environment(template, resolver)
    rules = _create_rules(events, sqs, resources, resolver)
    queues = {
        k: v
        for k, v in physical.items()
        if k in resources and resources[k]["Type"] == "AWS::SQS::Queue"
    }
    return LocalStack(
        region,
        endpoint_url,
        table_name,
        topic_arn,
        environment,
        rules,
        queues,
        template,
        rules_parameter=rules_parameter,
        state_table_name=physical.get("StateTable"),
    )


def _checked_parameters(
    template: Mapping[str, Any], overrides: Mapping[str, str]
) -> dict[str, str]:
    declared: Mapping[str, Any] = template.get("Parameters", {})
    for name, value in overrides.items():
        if name not in declared:
            raise ConfigError(f"template.yaml has no parameter {name}")
        allowed = declared[name].get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            raise ConfigError(
                f"parameter {name} must be one of {', '.join(map(str, allowed))}, got {value!r}"
            )
    return dict(overrides)


def _wanted(resource: Mapping[str, Any], resolver: Resolver) -> bool:
    condition = resource.get("Condition")
    return condition is None or resolver.condition(condition)


def _create_table(
    dynamodb: DynamoDBClient,
    logical_id: str,
    resource: Mapping[str, Any],
    resolver: Resolver,
    physical: dict[str, str],
) -> str:
    props = resolver.resolve(resource["Properties"])
    name = f"secretwatch-local-{logical_id}"
    arguments: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        arguments["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification"):
        sse = {k: v for k, v in props["SSESpecification"].items() if v is not None}
        arguments["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled", True),
            **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
        }
    if props.get("DeletionProtectionEnabled") is not None:
        arguments["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
    dynamodb.create_table(**arguments)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    physical[logical_id] = name
    physical[f"{logical_id}.Arn"] = (
        f"arn:aws:dynamodb:{resolver.region}:{local_account()}:table/{name}"
    )
    return name


def _create_topics(
    sns: Any,
    template: Mapping[str, Any],
    resolver: Resolver,
    physical: dict[str, str],
    endpoint_url: str | None,
) -> str:
    """The template's topics that these parameters create; the alert topic in use.

    The alert topic is what the stack output AlertTopicArn resolves to, as `--stack` reads it:
    the stack's own topic, or the existing one given in AlertTopicArn.
    """
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::SNS::Topic" or not _wanted(resource, resolver):
            continue
        props = resolver.resolve(resource.get("Properties", {}))
        attributes = (
            {"KmsMasterKeyId": str(props["KmsMasterKeyId"])} if props.get("KmsMasterKeyId") else {}
        )
        physical[logical_id] = sns.create_topic(
            Name=f"secretwatch-local-{logical_id}", Attributes=attributes
        )["TopicArn"]
    arn = str(resolver.resolve(template["Outputs"]["AlertTopicArn"]["Value"]))
    if arn not in physical.values():
        # An existing topic may be another Region's: it is known at its own Region's endpoint.
        owner = boto3.client("sns", region_name=_arn_region(arn), endpoint_url=endpoint_url)
        try:
            owner.get_topic_attributes(TopicArn=arn)
        except ClientError as exc:
            raise ConfigError(f"AlertTopicArn {arn}: no such topic on the local server") from exc
    return arn


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def _create_parameters(
    ssm: Any, resources: Mapping[str, Any], resolver: Resolver, physical: dict[str, str]
) -> str | None:
    """The template's SSM parameters, with their initial values; the rule document's name."""
    rules_parameter = None
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::SSM::Parameter" or not _wanted(resource, resolver):
            continue
        props = resolver.resolve(resource["Properties"])
        name = str(props["Name"])
        ssm.put_parameter(
            Name=name,
            Value=str(props["Value"]),
            Type=str(props.get("Type", "String")),
            Tier=str(props.get("Tier", "Standard")),
            Description=str(props.get("Description", "")),
            Overwrite=True,
        )
        physical[logical_id] = name
        if logical_id == "RulesParameter":
            rules_parameter = name
    return rules_parameter


def _function_environment(template: Mapping[str, Any], resolver: Resolver) -> dict[str, str]:
    variables = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    resolved = resolver.resolve(variables)
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in resolved.items()
        if v is not None
    }


def _create_rules(
    events: Any, sqs: Any, resources: Mapping[str, Any], resolver: Resolver
) -> list[RouteRule]:
    rules = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Events::Rule" or not _wanted(resource, resolver):
            continue
        props = resolver.resolve(resource["Properties"])
        pattern = props["EventPattern"]
        pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
        name = f"secretwatch-local-{logical_id}"
        url = sqs.create_queue(QueueName=f"{name}-target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # moto matches patterns like EventBridge but knows only ENABLED/DISABLED; the special
        # read-only state is kept on the RouteRule and applied by the local router.
        state = str(props.get("State", "ENABLED"))
        events.put_rule(
            Name=name,
            EventPattern=json.dumps(pattern),
            State="DISABLED" if state == "DISABLED" else "ENABLED",
        )
        events.put_targets(Rule=name, Targets=[{"Id": "local-target", "Arn": arn}])
        rules.append(RouteRule(logical_id, name, state, pattern, url))
    return rules


# ---------------------------------------------------------------------------------------------
# The moto server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_moto_server() -> tuple[Any, str]:
    """A real HTTP moto server on 127.0.0.1: boto3 goes over the wire, as in an account."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 — only local mode loads moto
    except ImportError as exc:  # installed with --no-deps, or moto removed since
        raise ConfigError(
            "local mode needs moto[server], a dependency of secretwatch: reinstall it "
            "(pipx install --force . or pip install .)"
        ) from exc
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def sent_notifications(stack: LocalStack) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """What was published to the stack's topic, in order, as moto recorded it (message id,
    message, subject, attributes): moto delivers no e-mail or SMS, so the demo reads this."""
    from moto.sns.models import sns_backends  # noqa: PLC0415 — moto's documented inspection API

    region = _arn_region(stack.topic_arn) or stack.region
    topic = sns_backends[local_account()][region].topics[stack.topic_arn]
    return [
        (mid, message, subject, attrs or {})
        for mid, message, subject, attrs, _ in topic.sent_notifications
    ]


def attribute_value(attributes: Mapping[str, Any], name: str) -> str | None:
    """One message attribute's value as moto keeps it (``Value`` or ``StringValue``)."""
    found = attributes.get(name)
    if isinstance(found, Mapping):
        found = found.get("Value", found.get("StringValue"))
    return None if found is None else str(found)
