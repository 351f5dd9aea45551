"""Every name the template builds fits its service's limit, even under a StackSet's stack name.

StackSets name each stack ``StackSet-<set name>-<uuid>``: 57 characters for a set called
secretwatch. A name built from the stack name (``${AWS::StackName}-log-subscription`` was 74) fails
only at deployment, and only in AWS: moto accepts over-long function, rule and role names, so no
test that deploys into moto could catch it. These tests render each name as CloudFormation would
for such a stack and compare it with the limit AWS documents for that property.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.cfn import STACKSET_STACK_NAME, Template, load_template, render

# (resource type, property) -> the longest value the service accepts (AWS documentation of each
# property; the SSM limit counts the parameter's whole ARN).
NAME_LIMITS: dict[tuple[str, str], int] = {
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::Logs::SubscriptionFilter", "FilterName"): 512,
    ("AWS::CloudTrail::Trail", "TrailName"): 128,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::IAM::Role", "Path"): 512,
    ("AWS::IAM::Policy", "PolicyName"): 128,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::Events::EventBus", "Name"): 256,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::SNS::Topic", "TopicName"): 256,
    ("AWS::SSM::Parameter", "Name"): 1011,
    ("AWS::KMS::Alias", "AliasName"): 256,
    ("AWS::DynamoDB::Table", "TableName"): 255,
    ("AWS::S3::Bucket", "BucketName"): 63,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    # Pattern ^[A-Za-z0-9-_]+$ as well (stack names and Region names only hold those).
    ("AWS::Chatbot::SlackChannelConfiguration", "ConfigurationName"): 128,
    ("AWS::Chatbot::MicrosoftTeamsChannelConfiguration", "ConfigurationName"): 128,
    ("AWS::StepFunctions::StateMachine", "StateMachineName"): 80,
}
INLINE_POLICY_NAME_LIMIT = 128
SCHEDULE_RULE_NAME_LIMIT = 64  # a SAM Schedule event becomes an AWS::Events::Rule


def _names(template: Template) -> list[tuple[str, str, str, int]]:
    """(logical id, property, rendered value, limit) for every name the template sets."""
    found: list[tuple[str, str, str, int]] = []
    for logical_id, resource in template["Resources"].items():
        properties: dict[str, Any] = resource.get("Properties", {})
        for (kind, prop), limit in NAME_LIMITS.items():
            if resource["Type"] == kind and prop in properties:
                value = str(render(template, properties[prop]))
                if kind == "AWS::SSM::Parameter":  # the limit is on the whole ARN
                    value = f"arn:aws:ssm:ap-southeast-2:111122223333:parameter{value}"
                found.append((logical_id, prop, value, limit))
        for policy in (
            properties.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []
        ):
            name = str(render(template, policy["PolicyName"]))
            found.append((logical_id, "Policies.PolicyName", name, INLINE_POLICY_NAME_LIMIT))
        if resource["Type"] == "AWS::Serverless::Function":
            for event_id, event in properties.get("Events", {}).items():
                if "Name" in event.get("Properties", {}):
                    name = str(render(template, event["Properties"]["Name"]))
                    found.append(
                        (f"{logical_id}{event_id}", "Name", name, SCHEDULE_RULE_NAME_LIMIT)
                    )
    return found


NAMES = _names(load_template())


def test_the_stack_name_is_as_long_as_a_stacksets() -> None:
    # GIVEN / WHEN / THEN the names below are rendered for a 57-character stack name
    assert len(STACKSET_STACK_NAME) == 57
    assert STACKSET_STACK_NAME.startswith("StackSet-secretwatch-")


@pytest.mark.parametrize(
    ("logical_id", "prop", "value", "limit"), NAMES, ids=[f"{n[0]}.{n[1]}" for n in NAMES]
)
def test_each_name_fits_its_limit_under_a_stacksets_stack_name(
    logical_id: str, prop: str, value: str, limit: int
) -> None:
    # GIVEN one name the template sets, rendered for a StackSet's stack
    # WHEN / THEN it is no longer than its service accepts
    assert len(value) <= limit, f"{logical_id}.{prop} = {value!r} ({len(value)} > {limit})"


def test_the_names_that_matter_are_checked(template: Template) -> None:
    # GIVEN the rendered names
    checked = {(logical_id, prop) for logical_id, prop, _, _ in NAMES}

    # WHEN / THEN every function, its log group, the trail and the rule parameter are among them
    # (a property renamed in the template must not silently leave this test with nothing to do)
    for function in ("EventBridgeFunction", "LogSubscriptionFunction", "DigestFunction"):
        assert (function, "FunctionName") in checked
        assert (f"{function}LogGroup", "LogGroupName") in checked
    assert ("Trail", "TrailName") in checked
    for named in ("ReplayFileFunction", "ReplayStateMachine"):  # replay on Step Functions
        assert any(logical_id == named for logical_id, _ in checked), named
    assert ("ReplayStateMachineLogGroup", "LogGroupName") in checked
    assert ("RulesParameter", "Name") in checked
    assert ("SlackChannel", "ConfigurationName") in checked
    assert ("TeamsChannel", "ConfigurationName") in checked


def test_function_names_are_short_and_match_their_log_groups(template: Template) -> None:
    # GIVEN each function's name and its log group's name, for a StackSet's stack
    for function in ("EventBridgeFunction", "LogSubscriptionFunction", "DigestFunction"):
        name = render(template, template["Resources"][function]["Properties"]["FunctionName"])
        group = render(
            template, template["Resources"][f"{function}LogGroup"]["Properties"]["LogGroupName"]
        )

        # WHEN / THEN the group is the function's default one, and the name carries the stack's
        # id (the first 8 hex digits of the UUID that ends AWS::StackId), not its name
        assert group == f"/aws/lambda/{name}"
        assert name.startswith("secretwatch-f81d4fae-")
        assert len(name) <= 37


def test_resources_without_a_name_are_named_by_cloudformation(template: Template) -> None:
    # GIVEN the resources of types that take a name but are given none (roles, rules, queues,
    # topic, tables, alarms): CloudFormation generates <stack>-<logical id>-<random> and
    # truncates it to the type's limit itself, so a long stack name cannot break them
    unnamed = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        for (kind, prop) in NAME_LIMITS
        if resource["Type"] == kind
        and prop not in resource.get("Properties", {})
        and prop not in ("Path",)
    ]

    # WHEN / THEN none of them is a resource the code or an operator must find by a fixed name:
    # those are reached through Ref/GetAtt and the stack's outputs
    # (the alert topic's output names the topic in use: the stack's own, or AlertTopicArn)
    outputs = {str(output["Value"]) for output in template["Outputs"].values()}
    outputs |= {
        str(output["Value"]["Fn::If"][2])
        for output in template["Outputs"].values()
        if isinstance(output["Value"], dict) and "Fn::If" in output["Value"]
    }
    for logical_id in ("AuditTable", "StateTable", "AlertTopic", "EventsDeadLetterQueue"):
        assert logical_id in unnamed
        assert str({"Ref": logical_id}) in outputs
