"""Delivering alerts: one Publish per alert to the alert topic, one attempt each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

    from shared.compose import AlertMessage


class Notifier:
    """Publishes alerts to one SNS topic; delivery errors propagate so the platform retries.

    The SNS client must make exactly one attempt per Publish (``shared.clients``): an SDK retry
    after a lost answer would send the alert twice, with the retry invisible to the pipeline.
    """

    def __init__(self, sns: SNSClient, topic_arn: str, *, https_format: str = "json") -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        # "chat": the https variant is the chat channel's custom notification (shared.chat).
        self._https_format = https_format

    def publish(self, alert: AlertMessage) -> str:
        from shared.compose import to_sns_message  # noqa: PLC0415 — loaded with the first alert

        attributes: dict[str, MessageAttributeValueTypeDef] = {
            key: {"DataType": "String", "StringValue": value}
            for key, value in alert.attributes.items()
        }
        try:
            response = self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=alert.subject,
                Message=to_sns_message(alert, https_format=self._https_format),
                MessageStructure="json",
                MessageAttributes=attributes,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "UnknownError"
            raise DeliveryError(
                f"SNS Publish failed: {code}", event_id=alert.event_id, rule_id=alert.rule_id
            ) from exc
        except BotoCoreError as exc:
            raise DeliveryError(
                f"SNS Publish failed: {type(exc).__name__}",
                event_id=alert.event_id,
                rule_id=alert.rule_id,
            ) from exc
        return response["MessageId"]
