"""Local mode builds what a deployment would, for each way of routing alerts: it refuses the
parameters the template's Rules refuse (as CloudFormation does before creating anything), and
with AlertTopicArn it creates no topic or key and publishes to the given one."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from cli.local_stack import create_stack
from shared.errors import ConfigError

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_local_mode_refuses_a_stack_that_alerts_nobody(aws: None) -> None:
    # GIVEN the template's defaults, without local mode's own AllowNoSubscriber
    # WHEN the local stack is built
    with pytest.raises(ConfigError) as refused:
        create_stack(None, region=REGION, parameters={"AllowNoSubscriber": "false"})

    # THEN it is refused with the template's own description of what to set
    assert "Nobody would receive the alerts" in str(refused.value)
    assert "AllowNoSubscriber=true" in str(refused.value)


def test_local_mode_refuses_half_a_chat_channel(aws: None) -> None:
    # GIVEN a Slack workspace without a channel
    # WHEN / THEN the local stack is refused as a deployment would be
    with pytest.raises(ConfigError, match="needs both SlackWorkspaceId and SlackChannelId"):
        create_stack(None, region=REGION, parameters={"SlackWorkspaceId": "T0123ABCD"})


def test_a_subscriber_satisfies_the_rules(aws: None) -> None:
    # GIVEN an e-mail subscriber and no AllowNoSubscriber
    parameters = {"AllowNoSubscriber": "false", "AlertEmail": "secops@example.com"}

    # WHEN / THEN the stack is built, with its own topic
    stack = create_stack(None, region=REGION, parameters=parameters)
    assert stack.topic_arn.endswith(":secretwatch-local-AlertTopic")


def test_an_existing_topic_is_used_and_nothing_is_created_for_it(aws: None) -> None:
    # GIVEN an existing topic (say, the organisation's) and its key
    sns, kms = boto3.client("sns", region_name=REGION), boto3.client("kms", region_name=REGION)
    topic = sns.create_topic(Name="org-alerts")["TopicArn"]

    # WHEN the local stack is built on it
    stack = create_stack(None, region=REGION, parameters={"AlertTopicArn": topic})

    # THEN the functions publish to it, and no alert topic or key of the stack's own exists
    # (the alarm topic does: the alarms never go to the alert topic, whichever it is)
    assert stack.topic_arn == topic
    assert stack.environment["ALERT_TOPIC_ARN"] == topic
    topics = sorted(t["TopicArn"] for t in sns.list_topics()["Topics"])
    assert topics == sorted([topic, stack.environment["ALARM_TOPIC_ARN"]])
    assert stack.environment["ALARM_TOPIC_ARN"].endswith(":secretwatch-local-AlarmTopic")
    descriptions = [
        kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"].get("Description", "")
        for key in kms.list_keys()["Keys"]
    ]
    assert "secretwatch local AlertKey" not in descriptions  # (moto adds aws/dynamodb's key)


def test_an_existing_topic_that_does_not_exist_is_an_error(aws: None) -> None:
    # GIVEN an AlertTopicArn nobody created
    missing = "arn:aws:sns:eu-west-1:123456789012:nobody-made-this"

    # WHEN / THEN local mode says so rather than publish into nothing
    with pytest.raises(ConfigError, match="no such topic"):
        create_stack(None, region=REGION, parameters={"AlertTopicArn": missing})
