"""A real moto server on 127.0.0.1 (boto3 goes over HTTP) with the stack built from template.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from cli.local_stack import LocalStack, create_stack, free_port

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class Server:
    stack: LocalStack
    inbox: str

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def drain(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message in a queue subscribed to the topic: the SNS envelopes."""
        sqs = self.client("sqs")
        url = queue_url or self.inbox
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def subscribe(self, name: str, filter_policy: dict[str, Any] | None = None) -> str:
        sqs = self.client("sqs")
        url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
        self.client("sns").subscribe(
            TopicArn=self.stack.topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes
        )
        return url

    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=self.stack.table_name):
            items.extend(page["Items"])
        return items


@pytest.fixture
def server(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A fresh stack on the shared server; the handlers' environment comes from the template."""
    reset_server(moto_endpoint, monkeypatch)
    stack = create_stack(moto_endpoint, region=REGION)
    use_stack(stack, moto_endpoint, monkeypatch)
    inbox = Server(stack, "").subscribe("inbox")
    yield Server(stack, inbox)
    _reset_container_caches()


def reset_server(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty moto server, and the test credentials every client signs with."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


def use_stack(stack: LocalStack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handlers' environment as the template gives it to the stack's functions, against the
    server, in a container that has cached nothing yet."""
    for key, value in stack.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    _reset_container_caches()
    boto3.setup_default_session()


def _reset_container_caches() -> None:
    """What a new Lambda container would start with: no settings, no pipeline cached."""
    from shared.runtime import get_pipeline
    from shared.settings import get_settings

    get_settings.cache_clear()
    get_pipeline.cache_clear()
