"""DeploymentMode decides what a stack holds: standalone, central (the organisation's alerting
account) or member (forwarding rules and a read-only role, nothing else)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.cfn import (
    RULES,
    Template,
    evaluate_condition,
    load_template,
    props,
    role_grants,
)

MEMBER_ONLY = {
    "MemberWriteCallsRule",
    "MemberServiceEventsRule",
    "MemberFailedReadsRule",
    "MemberForwardRole",
    "MemberReadRole",
}
CENTRAL_ONLY = {
    "CentralEventBus",
    "CentralEventBusPolicy",
    *(f"Central{rule}" for rule in RULES),
    *(f"Central{rule}Permission" for rule in RULES),
    *(f"Central{rule}FailedInvocationsAlarm" for rule in RULES),
    *(f"Central{rule}DlqFailuresAlarm" for rule in RULES),
}
ORGANIZATION = {"OrganizationId": "o-a1b2c3d4e5", "CentralEventBusArn": ""}
CENTRAL_BUS = "arn:aws:events:eu-west-1:111122223333:event-bus/secretwatch-central"


def _present(template: Template, parameters: dict[str, str]) -> set[str]:
    """The logical ids CloudFormation creates for these parameter values."""
    return {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource
        or evaluate_condition(template, resource["Condition"], parameters)
    }


def _mode(mode: str) -> dict[str, str]:
    bus = CENTRAL_BUS if mode == "member" else ""
    return {**ORGANIZATION, "DeploymentMode": mode, "CentralEventBusArn": bus}


def test_the_default_is_standalone(template: Template) -> None:
    # GIVEN / WHEN / THEN today's stack is what an unchanged deployment gets
    parameter = template["Parameters"]["DeploymentMode"]
    assert parameter["Default"] == "standalone"
    assert parameter["AllowedValues"] == ["standalone", "central", "member"]


def test_every_resource_is_decided_by_a_condition(template: Template) -> None:
    # GIVEN every resource
    # WHEN / THEN each has a condition, so nothing slips into a member stack by default
    for logical_id, resource in template["Resources"].items():
        assert "Condition" in resource, logical_id


def test_standalone_has_neither_the_bus_nor_the_member_side(template: Template) -> None:
    # GIVEN the standalone stack
    present = _present(template, _mode("standalone"))

    # WHEN / THEN it is today's stack: functions, tables, topic, alarms; no organisation parts
    assert {"EventBridgeFunction", "AuditTable", "StateTable", "AlertTopic"} <= present
    assert {"EventBridgeFunctionErrorsAlarm", *RULES} <= present
    assert not present & (MEMBER_ONLY | CENTRAL_ONLY)


def test_central_is_standalone_plus_the_organisations_bus(template: Template) -> None:
    # GIVEN the central and the standalone stacks
    central = _present(template, _mode("central"))
    standalone = _present(template, _mode("standalone"))

    # WHEN / THEN central holds everything standalone does, the bus with its rules, no member part
    assert central == standalone | CENTRAL_ONLY


def test_member_holds_only_its_rules_and_roles(template: Template) -> None:
    # GIVEN the member stack, even with options that add resources elsewhere switched on
    parameters = {**_mode("member"), "CreateTrail": "true", "AlertEmail": "a@example.com"}
    parameters |= {"AlertPhoneNumber": "+14155550100", "CloudTrailLogGroupName": "trail-logs"}

    # WHEN / THEN nothing else exists: no function, table, topic, queue, alarm or trail
    assert _present(template, parameters) == MEMBER_ONLY
    outputs = {
        name
        for name, output in template["Outputs"].items()
        if evaluate_condition(template, output["Condition"], parameters)
    }
    assert outputs == {"MemberReadRoleArn"}


def test_each_mode_requires_its_counterpart(template: Template) -> None:
    # GIVEN the template's deployment rules
    rules = template["Rules"]

    # WHEN / THEN central cannot be created without an organisation, member without a bus
    central, member = rules["CentralNeedsOrganization"], rules["MemberNeedsCentralBus"]
    assert central["RuleCondition"] == {"Fn::Equals": [{"Ref": "DeploymentMode"}, "central"]}
    assert central["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]
    }
    assert member["RuleCondition"] == {"Fn::Equals": [{"Ref": "DeploymentMode"}, "member"]}
    assert member["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "CentralEventBusArn"}, ""]}]
    }


def test_the_central_bus_admits_only_the_organisation(template: Template) -> None:
    # GIVEN the central bus's policy
    policy = props(template, "CentralEventBusPolicy")

    # WHEN / THEN any principal may PutEvents only if it belongs to the organisation, on this bus
    assert policy["EventBusName"] == {"Ref": "CentralEventBus"}
    assert policy["Statement"] == {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": {"Fn::GetAtt": ["CentralEventBus", "Arn"]},
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}},
    }


@pytest.mark.parametrize("rule", RULES)
def test_central_and_member_rules_repeat_the_standalone_patterns(
    template: Template, rule: str
) -> None:
    # GIVEN a default-bus rule, its central copy and its member copy
    standalone, central, member = (
        props(template, name) for name in (rule, f"Central{rule}", f"Member{rule}")
    )

    # WHEN / THEN they match the same events in the same state (read-only state included)
    assert central["EventPattern"] == standalone["EventPattern"]
    assert member["EventPattern"] == standalone["EventPattern"]
    assert central["State"] == standalone["State"] == member["State"]
    # AND the central copy listens on the organisation's bus and invokes the function
    assert central["EventBusName"] == {"Ref": "CentralEventBus"}
    assert central["Targets"] == standalone["Targets"]
    permission = props(template, f"Central{rule}Permission")
    assert permission["SourceArn"] == {"Fn::GetAtt": [f"Central{rule}", "Arn"]}
    assert permission["FunctionName"] == {"Ref": "EventBridgeFunction"}
    # AND the member copy forwards to the central bus with the forwarding role
    assert member["Targets"] == [
        {
            "Id": "CentralEventBus",
            "Arn": {"Ref": "CentralEventBusArn"},
            "RoleArn": {"Fn::GetAtt": ["MemberForwardRole", "Arn"]},
        }
    ]
    assert "EventBusName" not in member  # the member account's default bus


def _trust(template: Template, role: str) -> dict[str, Any]:
    (statement,) = props(template, role)["AssumeRolePolicyDocument"]["Statement"]
    return dict(statement)


def test_the_forwarding_role_may_only_put_events_on_the_central_bus(template: Template) -> None:
    # GIVEN the member's forwarding role
    grants = role_grants(template, "MemberForwardRole")

    # WHEN / THEN EventBridge of this account assumes it, and it may only PutEvents on the bus
    assert _trust(template, "MemberForwardRole") == {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
    }
    assert [(g.actions, g.resources) for g in grants] == [
        (["events:PutEvents"], [{"Fn::Sub": "${CentralEventBusArn}"}])
    ]


def test_the_member_read_role_describes_secrets_and_the_alias_and_nothing_else(
    template: Template,
) -> None:
    # GIVEN the role the central functions assume in a member account
    grants = role_grants(template, "MemberReadRole")
    central_account = {"Fn::Select": [4, {"Fn::Split": [":", {"Ref": "CentralEventBusArn"}]}]}

    # WHEN / THEN it reads secret metadata in its own Region and the account alias, nothing else
    assert sorted((a, repr(r)) for g in grants for a in g.actions for r in g.resources) == [
        ("iam:ListAccountAliases", repr("*")),
        (
            "secretsmanager:DescribeSecret",
            repr(
                {
                    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                    "${AWS::AccountId}:secret:*"
                }
            ),
        ),
    ]
    # AND it is named <MemberRoleName>-<Region>, what the central functions assume
    assert props(template, "MemberReadRole")["RoleName"] == {
        "Fn::Sub": "${MemberRoleName}-${AWS::Region}"
    }
    # AND only roles under /secretwatch/ of the account that owns the central bus may assume it
    trust = _trust(template, "MemberReadRole")
    assert trust["Principal"] == {
        "AWS": {
            "Fn::Sub": ["arn:${AWS::Partition}:iam::${Central}:root", {"Central": central_account}]
        }
    }
    assert trust["Condition"] == {
        "ArnLike": {
            "aws:PrincipalArn": {
                "Fn::Sub": [
                    "arn:${AWS::Partition}:iam::${Central}:role/secretwatch/*",
                    {"Central": central_account},
                ]
            }
        }
    }


@pytest.mark.parametrize("role", ["EventBridgeFunctionRole", "LogSubscriptionFunctionRole"])
def test_central_function_roles_sit_under_the_path_members_trust(
    template: Template, role: str
) -> None:
    # GIVEN a function role
    # WHEN / THEN in central mode its path is /secretwatch/, elsewhere the default
    assert props(template, role)["Path"] == {"Fn::If": ["IsCentral", "/secretwatch/", "/"]}


def test_member_role_name_fits_with_any_region() -> None:
    # GIVEN the longest base name the parameter allows and a long Region name
    template = load_template()
    longest = "r" * int(template["Parameters"]["MemberRoleName"]["AllowedPattern"][-4:-2])

    # WHEN / THEN <name>-<Region> stays within IAM's 64 characters
    assert len(f"{longest}-ap-southeast-7") <= 64
