"""Alert routing: the stack's own topic or an existing one (AlertTopicArn), the refusal of a
stack whose alerts would reach nobody (the template's Rules), and the chat channels.

The Rules are evaluated by ``cli.template_rules`` (what local mode runs before it builds a stack)
over the template as cfn-lint loads it, and the conditions by this package's own evaluator.
"""

from __future__ import annotations

from typing import Any

import pytest

from cli.template_rules import failed_assertions
from tests.template.cfn import (
    FUNCTIONS,
    Template,
    evaluate_condition,
    function_role,
    props,
    render,
    resources,
    role_grants,
)

EXISTING_TOPIC = "arn:aws:sns:eu-west-1:111122223333:org-alerts"
EXISTING_KEY = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OWN_TOPIC = {"AlertTopic", "AlertTopicPolicy", "AlertKey", "AlertKeyAlias"}
SLACK = {"SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123ABCDEF"}
TEAMS = {
    "TeamsTenantId": "00000000-0000-4000-8000-000000000001",
    "TeamsTeamId": "00000000-0000-4000-8000-000000000002",
    "TeamsChannelId": "19%3aexample%40thread.tacv2",
}
NO_SUBSCRIBER = "Nobody would receive the alerts"


def _values(template: Template, parameters: dict[str, str]) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    return {**values, **parameters}


def _present(template: Template, parameters: dict[str, str]) -> set[str]:
    return {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if evaluate_condition(template, resource["Condition"], parameters)
    }


def _refusals(template: Template, parameters: dict[str, str]) -> list[str]:
    return failed_assertions(template, _values(template, parameters))


# --- created vs existing topic ------------------------------------------------------------------


def test_by_default_the_stack_creates_its_topic_and_key(template: Template) -> None:
    # GIVEN the default parameters (with a subscriber)
    present = _present(template, {"AlertEmail": "a@example.com"})

    # WHEN / THEN the topic, its policy, key and alias exist, and everything publishes to it
    assert present >= OWN_TOPIC | {"AlertPublishPolicy", "AlertEmailSubscription"}
    parameters = {"AlertEmail": "a@example.com"}
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert render(template, env["ALERT_TOPIC_ARN"], parameters=parameters) == "<AlertTopic>"
    topic = render(template, template["Outputs"]["AlertTopicArn"]["Value"], parameters=parameters)
    assert topic == "<AlertTopic>"


def test_an_existing_topic_replaces_the_topic_and_key(template: Template) -> None:
    # GIVEN AlertTopicArn
    parameters = {"AlertTopicArn": EXISTING_TOPIC, "AlertEmail": "a@example.com"}
    present = _present(template, parameters)

    # WHEN / THEN no topic, topic policy, key or alias is created; the functions, the publish
    # policy and the e-mail subscription still are, and the subscription is on the given topic
    assert not present & OWN_TOPIC
    assert {*FUNCTIONS, "AlertPublishPolicy", "AlertEmailSubscription"} <= present
    subscription = props(template, "AlertEmailSubscription")["TopicArn"]
    assert render(template, subscription, parameters=parameters) == EXISTING_TOPIC
    # AND the functions are told that topic, and the output names it (`--stack` reads it)
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert render(template, env["ALERT_TOPIC_ARN"], parameters=parameters) == EXISTING_TOPIC
    topic = render(template, template["Outputs"]["AlertTopicArn"]["Value"], parameters=parameters)
    assert topic == EXISTING_TOPIC


def test_a_parameter_and_an_output_share_the_name_alert_topic_arn(template: Template) -> None:
    # GIVEN / WHEN / THEN CloudFormation keeps parameters and outputs apart (an output is never
    # the target of a Ref), so the output keeps its name and meaning: the topic in use
    assert "AlertTopicArn" in template["Parameters"]
    assert "AlertTopicArn" in template["Outputs"]
    assert "AlertTopicArn" not in template["Resources"]


def _publish_grants(template: Template, function: str, parameters: dict[str, str]) -> set[Any]:
    """(action, rendered resource) of every SNS and KMS grant in force for these parameters."""
    found = set()
    for grant in role_grants(template, function_role(template, function)):
        if grant.condition and not evaluate_condition(template, grant.condition, parameters):
            continue
        for action in grant.actions:
            if action.startswith(("sns:", "kms:")):
                for resource in grant.resources:
                    found.add((action, render(template, resource, parameters=parameters)))
    return found


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (
            {},
            {
                ("sns:Publish", "<AlertTopic>"),
                ("kms:GenerateDataKey", "<AlertKey.Arn>"),
                ("kms:Decrypt", "<AlertKey.Arn>"),
            },
        ),
        ({"AlertTopicArn": EXISTING_TOPIC}, {("sns:Publish", EXISTING_TOPIC)}),
        (
            {"AlertTopicArn": EXISTING_TOPIC, "AlertTopicKeyArn": EXISTING_KEY},
            {
                ("sns:Publish", EXISTING_TOPIC),
                ("kms:GenerateDataKey", EXISTING_KEY),
                ("kms:Decrypt", EXISTING_KEY),
            },
        ),
    ],
    ids=["own-topic", "existing-topic", "existing-topic-and-key"],
)
def test_publish_grants_name_exactly_the_topic_in_use(
    template: Template, function: str, parameters: dict[str, str], expected: set[Any]
) -> None:
    # GIVEN one way of routing alerts
    # WHEN the function's SNS and KMS grants are rendered for it
    # THEN they name exactly that topic (and its key, when there is one): nothing broader
    assert _publish_grants(template, function, parameters) == expected


def test_alarms_exist_exactly_when_their_topic_does(template: Template) -> None:
    # GIVEN every pipeline alarm and each way of routing alerts, with the options that add
    # alarms of their own (the central bus's rules, either log group route)
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) > 20
    options: list[dict[str, str]] = [
        {},
        {"DeploymentMode": "central", "OrganizationId": "o-a1b2c3d4e5", "CreateTrail": "true"},
        {"CloudTrailLogGroupName": "trail-logs"},
    ]
    cases = [
        {**o, **routing} for o in options for routing in ({}, {"AlertTopicArn": EXISTING_TOPIC})
    ]
    cases += [{"DeploymentMode": "member", "CentralEventBusArn": "x"}]
    seen: set[str] = set()
    for parameters in cases:
        present = _present(template, parameters)
        seen |= present
        for name, alarm in alarms.items():
            # WHEN / THEN no alarm is left pointing at a topic that does not exist, and the
            # pipeline's own alarms (condition NotMember) exist whatever the alert routing: they
            # publish to the alarm topic, which an existing AlertTopicArn does not replace
            topics = {action["Ref"] for action in alarm["Properties"]["AlarmActions"]}
            if name in present:
                assert topics <= present, (name, parameters)
            if alarm["Condition"] == "NotMember":
                member = parameters.get("DeploymentMode") == "member"
                assert (name in present) is not member, (name, parameters)
    # AND every alarm was created by at least one of the cases
    assert set(alarms) <= seen


# --- refusing a stack that alerts nobody ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["standalone", "central"])
def test_a_stack_without_any_subscriber_is_refused(template: Template, mode: str) -> None:
    # GIVEN a standalone or central stack with no e-mail, phone, existing topic or chat channel
    parameters = {"DeploymentMode": mode, "OrganizationId": "o-a1b2c3d4e5"}

    # WHEN / THEN CloudFormation refuses it, saying what to set
    (refusal,) = _refusals(template, parameters)
    assert refusal.startswith(NO_SUBSCRIBER)
    for name in ("AlertEmail", "AlertPhoneNumber", "AlertTopicArn", "SlackWorkspaceId"):
        assert name in refusal
    assert "AllowNoSubscriber=true" in refusal


@pytest.mark.parametrize(
    "subscriber",
    [
        {"AlertEmail": "a@example.com"},
        {"AlertPhoneNumber": "+14155550100"},
        {"AlertTopicArn": EXISTING_TOPIC},
        SLACK,
        TEAMS,
        {"AllowNoSubscriber": "true"},
    ],
    ids=["email", "sms", "existing-topic", "slack", "teams", "allowed"],
)
@pytest.mark.parametrize("mode", ["standalone", "central"])
def test_any_one_subscriber_or_the_users_say_so_is_enough(
    template: Template, mode: str, subscriber: dict[str, str]
) -> None:
    # GIVEN one subscriber of any kind, or AllowNoSubscriber
    parameters = {"DeploymentMode": mode, "OrganizationId": "o-a1b2c3d4e5", **subscriber}

    # WHEN / THEN nothing is refused
    assert _refusals(template, parameters) == []


def test_a_member_stack_needs_no_subscriber(template: Template) -> None:
    # GIVEN a member stack (it sends nothing: its events are alerted on by the central stack)
    parameters = {"DeploymentMode": "member", "CentralEventBusArn": "arn:aws:events:x"}

    # WHEN / THEN it is not refused for want of a subscriber
    assert _refusals(template, parameters) == []


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"SlackWorkspaceId": "T0123ABCD", "AlertEmail": "a@example.com"}, "Slack channel needs"),
        ({"SlackChannelId": "C0123", "AlertEmail": "a@example.com"}, "Slack channel needs"),
        (
            {"TeamsTenantId": TEAMS["TeamsTenantId"], "TeamsTeamId": TEAMS["TeamsTeamId"]},
            "Microsoft Teams channel needs",
        ),
        ({"AlertTopicKeyArn": EXISTING_KEY, "AlertEmail": "a@example.com"}, "AlertTopicKeyArn"),
    ],
    ids=["slack-without-channel", "slack-without-workspace", "teams-without-channel", "key-only"],
)
def test_half_a_setting_is_refused(
    template: Template, parameters: dict[str, str], expected: str
) -> None:
    # GIVEN a chat channel or a topic key given only in part
    refusals = _refusals(template, parameters)

    # WHEN / THEN the deployment is refused with a message naming what is missing
    assert any(expected in refusal for refusal in refusals), refusals


# --- chat channels ---------------------------------------------------------------------------------

CHAT = {"SlackChannel", "TeamsChannel", "ChatChannelRole"}


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"AlertEmail": "a@example.com"}, set()),
        (SLACK, {"SlackChannel", "ChatChannelRole"}),
        (TEAMS, {"TeamsChannel", "ChatChannelRole"}),
        ({**SLACK, **TEAMS}, CHAT),
        ({**SLACK, "DeploymentMode": "member", "CentralEventBusArn": "x"}, set()),
    ],
    ids=["none", "slack", "teams", "both", "member"],
)
def test_chat_resources_exist_only_for_their_channels(
    template: Template, parameters: dict[str, str], expected: set[str]
) -> None:
    # GIVEN chat parameters
    # WHEN / THEN exactly the configured channels and their role exist
    assert _present(template, parameters) & CHAT == expected


@pytest.mark.parametrize("topic", [None, EXISTING_TOPIC], ids=["own-topic", "existing-topic"])
@pytest.mark.parametrize("channel", ["SlackChannel", "TeamsChannel"])
def test_a_chat_channel_listens_to_the_topic_in_use_with_no_power(
    template: Template, channel: str, topic: str | None
) -> None:
    # GIVEN a channel configuration, for the stack's own topic or an existing one
    parameters = {**SLACK, **TEAMS, **({"AlertTopicArn": topic} if topic else {})}
    properties = props(template, channel)

    # WHEN / THEN it receives the topic in use, assumes the chat role, requires no user role,
    # and its guardrail denies every action: members can run no AWS command through it
    topics = render(template, properties["SnsTopicArns"], parameters=parameters)
    assert topics == [topic or "<AlertTopic>"]
    assert properties["IamRoleArn"] == {"Fn::GetAtt": ["ChatChannelRole", "Arn"]}
    assert properties["UserRoleRequired"] is False
    guardrails = render(template, properties["GuardrailPolicies"], parameters=parameters)
    assert guardrails == ["arn:aws:iam::aws:policy/AWSDenyAll"]


def test_the_chat_role_has_no_permission_at_all(template: Template) -> None:
    # GIVEN the channels' role
    role = props(template, "ChatChannelRole")

    # WHEN / THEN only the chat service may assume it, and it carries no policy of any kind:
    # custom notifications arrive through SNS, not through calls made with this role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert not {"Policies", "ManagedPolicyArns", "PermissionsBoundary"} & set(role)
    attached = [
        name
        for name, policy in resources(template, "AWS::IAM::Policy").items()
        if {"Ref": "ChatChannelRole"} in policy["Properties"].get("Roles", [])
    ]
    assert attached == []


@pytest.mark.parametrize(
    ("parameters", "expected"), [({}, "json"), (SLACK, "chat"), (TEAMS, "chat")]
)
def test_the_https_variant_is_chat_only_with_a_channel(
    template: Template, parameters: dict[str, str], expected: str
) -> None:
    # GIVEN the functions' environment
    env = template["Globals"]["Function"]["Environment"]["Variables"]

    # WHEN / THEN https subscribers get the chat format only when this stack has a chat channel
    assert render(template, env["HTTPS_MESSAGE_FORMAT"], parameters=parameters) == expected
