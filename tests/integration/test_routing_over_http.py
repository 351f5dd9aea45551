"""Alerts routed through an existing topic (AlertTopicArn) and, for a chat stack, the per-protocol
variants, end to end: the real EventBridge handler against a moto server over HTTP, the stack
built from template.yaml with the parameters a deployment would take.

What moto models and what it does not (moto 5.2.5, read in ``moto/sns/models.py``): it delivers
a ``MessageStructure="json"`` message per protocol for every subscription (an sqs subscriber gets
the ``sqs`` key, an http/https one the ``http``/``https`` key, ``default`` otherwise), applies
filter policies, and POSTs to an http/https endpoint synchronously, in the Publish call. It does
not check that an ``https`` endpoint is https, nor ask for a subscription confirmation, nor sign
anything that a receiver would verify: so the "chat channel" here is a plain-HTTP listener on
127.0.0.1 subscribed as ``https``. Amazon Q Developer in chat applications itself (its rendering,
its threading) is not modelled at all: the test proves the shape it is sent, not what it shows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli.local_stack import create_stack, free_port
from handlers import eventbridge
from tests.integration.conftest import (
    REGION,
    Server,
    _reset_container_caches,
    reset_server,
    use_stack,
)
from tests.integration.test_cli_replay import run, summary, trail_tree
from tests.integration.test_handlers_over_http import Context

EVENT = Path(__file__).resolve().parents[2] / "events" / "eventbridge" / "secret-deleted.json"
SLACK = {"SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123ABCDEF"}


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP endpoint on 127.0.0.1 that keeps every SNS notification POSTed to it."""
    received: list[dict[str, Any]] = []

    class Listener(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass  # quiet

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Listener)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/chat", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def _stack_on(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, str],
    topic_region: str = REGION,
) -> Server:
    reset_server(moto_endpoint, monkeypatch)
    sns = boto3.client("sns", region_name=topic_region, endpoint_url=moto_endpoint)
    # The organisation's topic, created before the stack, as its owner would.
    topic = sns.create_topic(Name="org-alerts")["TopicArn"]
    stack = create_stack(
        moto_endpoint, region=REGION, parameters={"AlertTopicArn": topic, **parameters}
    )
    use_stack(stack, moto_endpoint, monkeypatch)
    return Server(stack, _subscribe_inbox(stack, moto_endpoint, topic_region))


def _subscribe_inbox(stack: Any, moto_endpoint: str, region: str) -> str:
    """The topic owner's queue, in the topic's Region, subscribed raw-less (SNS envelopes)."""
    sqs = boto3.client("sqs", region_name=region, endpoint_url=moto_endpoint)
    url = sqs.create_queue(QueueName="org-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    boto3.client("sns", region_name=region, endpoint_url=moto_endpoint).subscribe(
        TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn["QueueArn"]
    )
    return url


def _drain(moto_endpoint: str, region: str, url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=region, endpoint_url=moto_endpoint)
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in found]


@pytest.fixture
def cleanup() -> Iterator[None]:
    yield
    _reset_container_caches()


@pytest.mark.integration
def test_an_alert_reaches_a_subscriber_of_the_existing_topic(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, cleanup: None
) -> None:
    # GIVEN a stack deployed with AlertTopicArn = an existing topic, and a queue subscribed to
    # that topic by its owner
    server = _stack_on(moto_endpoint, monkeypatch, {})
    assert server.stack.topic_arn.endswith(":org-alerts")
    # (and the stack's alarm topic, which the alerts never use)
    topics = sorted(t["TopicArn"] for t in server.client("sns").list_topics()["Topics"])
    assert topics == sorted([server.stack.topic_arn, server.stack.environment["ALARM_TOPIC_ARN"]])

    # WHEN a secret deletion arrives from EventBridge
    eventbridge.lambda_handler(json.loads(EVENT.read_text()), Context())

    # THEN the subscriber gets the alert, with the attributes its filter policies rely on
    (envelope,) = _drain(moto_endpoint, REGION, server.inbox)
    assert envelope["TopicArn"] == server.stack.topic_arn
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes["kind"] == "alert"
    assert attributes["rule"] == "secret-deleted"
    assert attributes["severity"] in {"high", "critical"}
    assert attributes["event_name"] == "DeleteSecret"
    # AND the queue gets the machine document (not the chat one: this stack has no channel)
    document = json.loads(envelope["Message"])
    assert document["rule"] == "secret-deleted"
    assert document["alert_id"] == attributes["alert_id"]


@pytest.mark.integration
def test_a_chat_stack_sends_https_subscribers_the_chat_shape_and_queues_the_document(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    cleanup: None,
    listener: tuple[str, list[dict[str, Any]]],
) -> None:
    # GIVEN a stack with a Slack channel on the existing topic: the chat service subscribes over
    # https, which a local listener stands in for, next to the owner's queue
    server = _stack_on(moto_endpoint, monkeypatch, SLACK)
    assert server.stack.environment["HTTPS_MESSAGE_FORMAT"] == "chat"
    endpoint, received = listener
    server.client("sns").subscribe(
        TopicArn=server.stack.topic_arn, Protocol="https", Endpoint=endpoint
    )

    # WHEN a secret deletion arrives
    eventbridge.lambda_handler(json.loads(EVENT.read_text()), Context())

    # THEN the https subscriber gets a custom notification, for the same alert
    (notification,) = received
    chat = json.loads(notification["Message"])
    assert chat["version"] == "1.0"
    assert chat["source"] == "custom"
    assert chat["content"]["textType"] == "client-markdown"
    assert "`secret-deleted`" in chat["content"]["title"]
    assert any("console.aws.amazon.com/secretsmanager" in s for s in chat["content"]["nextSteps"])
    # AND the queue still gets the machine document, with the same alert id
    (envelope,) = _drain(moto_endpoint, REGION, server.inbox)
    document = json.loads(envelope["Message"])
    assert document["schema_version"] == 1
    assert chat["id"] == document["alert_id"]


@pytest.mark.integration
def test_an_existing_topic_in_another_region_is_published_to_at_its_endpoint(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, cleanup: None
) -> None:
    # GIVEN a stack in eu-west-1 whose AlertTopicArn is a us-east-1 topic (one topic for the
    # stacks of every Region)
    server = _stack_on(moto_endpoint, monkeypatch, {}, topic_region="us-east-1")
    assert server.stack.topic_arn.startswith("arn:aws:sns:us-east-1:")

    # WHEN a secret deletion arrives in eu-west-1
    eventbridge.lambda_handler(json.loads(EVENT.read_text()), Context())

    # THEN the topic's subscriber gets it (SNS knows a topic only at its own Region's endpoint)
    (envelope,) = _drain(moto_endpoint, "us-east-1", server.inbox)
    assert envelope["TopicArn"] == server.stack.topic_arn
    assert json.loads(envelope["Message"])["rule"] == "secret-deleted"


@pytest.mark.integration
def test_replay_notify_writes_the_https_variant_as_the_stack_does(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    listener: tuple[str, list[dict[str, Any]]],
) -> None:
    # GIVEN a stack whose outputs say its https variant is the chat format, and an https
    # subscriber (the chat service's stand-in) on its topic
    outputs = {
        "AuditTableName": {"Value": server.stack.table_name},
        "AlertTopicArn": {"Value": server.stack.topic_arn},
        "AlertHttpsFormat": {"Value": "chat"},
    }
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": outputs}
    server.client("cloudformation").create_stack(
        StackName="secretwatch", TemplateBody=json.dumps(template)
    )
    endpoint, received = listener
    server.client("sns").subscribe(
        TopicArn=server.stack.topic_arn, Protocol="https", Endpoint=endpoint
    )

    # WHEN a replay sends its alerts for that stack
    status, out, _ = run(
        capsys,
        "replay",
        str(trail_tree(tmp_path)),
        "--stack",
        "secretwatch",
        "--notify",
        "--endpoint-url",
        server.stack.endpoint_url or "",
    )

    # THEN the https subscriber gets custom notifications, as from the functions
    assert status == 0
    assert summary(out)["written"] == "7"
    assert len(received) == 2
    documents = [json.loads(notification["Message"]) for notification in received]
    assert [(d.get("version"), d.get("source")) for d in documents] == [("1.0", "custom")] * 2
