"""Shared by the in-process moto tests that run the pipeline on the stack from template.yaml."""

from __future__ import annotations

import boto3

from cli.local_stack import LocalStack


def subscribed_inbox(stack: LocalStack, region: str) -> str:
    """An SQS queue subscribed to the stack's alert topic (no filter): every message, its URL."""
    sqs = boto3.client("sqs", region_name=region)
    url: str = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name=region).subscribe(
        TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn
    )
    return url
