"""AWS clients, built once per container with one shared botocore Config.

The DynamoDB and SNS clients every invocation needs are built eagerly; the enrichment clients
(Secrets Manager, IAM, Organizations) lazily, at the first look-up that needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

    from shared.member_access import Credentials, MemberClients

BOTO_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 4},
    user_agent_extra="secretwatch/0.1",
)
# SNS Publish gets exactly one attempt: when an answer is lost, an SDK retry would deliver the
# alert a second time without the pipeline knowing. The pipeline hands the alert back instead
# and the platform's retry sends it (with the same alert_id). Short timeouts keep that window,
# and the time a claim needs, small.
PUBLISH_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 1},
    user_agent_extra="secretwatch/0.1",
)

T = TypeVar("T")

# The services built beyond DynamoDB and SNS, and the only operations the functions call on
# them. The Lambda artefact carries models trimmed to these (src/trim_models.py), in this folder
# beside this module: building the SSM client for the rule document then loads 15 KB, not 790.
# Where the folder is absent (tests, local mode, the command line) botocore's full models apply.
TRIMMED_OPERATIONS: dict[str, tuple[str, ...]] = {
    "ssm": ("GetParameter",),
    "secretsmanager": ("DescribeSecret", "RestoreSecret"),  # RestoreSecret: AutoRestore
    "iam": ("ListAccountAliases",),
    "organizations": ("DescribeAccount",),
    "sts": ("AssumeRole",),  # central mode: a member account's read-only role
    "s3": ("GetObject",),  # the replay function: one CloudTrail log file at a time
}
MODELS_DIR_NAME = "botocore_data"


class Lazy[T]:
    """Builds the wrapped client at its first use: cold start pays only for what it uses."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def __getattr__(self, name: str) -> Any:
        if self._value is None:
            self._value = self._factory()
        return getattr(self._value, name)


class Clients:
    """The service's clients. boto3 itself honours AWS_ENDPOINT_URL (local mode: a moto server)."""

    def __init__(self, region: str | None = None) -> None:
        self._session = boto3.session.Session(region_name=region)
        models = Path(__file__).with_name(MODELS_DIR_NAME)
        if models.is_dir():
            # Searched before botocore's own data; only the trimmed service models live there.
            loader = self._session._session.get_component("data_loader")
            loader.search_paths.insert(0, str(models))
        self.dynamodb: DynamoDBClient = self._client("dynamodb")
        self.sns: SNSClient = self._session.client("sns", config=PUBLISH_CONFIG)
        self.secretsmanager = cast(
            "SecretsManagerClient", Lazy(lambda: self._client("secretsmanager"))
        )
        self.iam = cast("IAMClient", Lazy(lambda: self._client("iam")))
        self.ssm = cast("SSMClient", Lazy(lambda: self._client("ssm")))
        self.organizations = cast(
            "OrganizationsClient", Lazy(lambda: self._client("organizations"))
        )
        self.sts = cast("STSClient", Lazy(lambda: self._client("sts")))
        self.s3 = cast("S3Client", Lazy(lambda: self._client("s3")))

    def sns_for(self, topic_arn: str) -> SNSClient:
        """The SNS client that can publish to ``topic_arn``: SNS accepts a topic only at its own
        Region's endpoint, and an existing topic (AlertTopicArn) may be another Region's, e.g.
        one topic for the stacks of every Region. The common case is the eager client itself."""
        parts = topic_arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
        if region is None or region == self._session.region_name:
            return self.sns
        return self._session.client("sns", region_name=region, config=PUBLISH_CONFIG)

    def for_credentials(self, credentials: Credentials, region: str | None) -> MemberClients:
        """Secrets Manager and IAM clients with a member role's credentials (central mode).

        Built on this session's botocore session, so the trimmed models apply to them too.
        """
        from shared.member_access import MemberClients  # noqa: PLC0415 — central mode only

        session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region or self._session.region_name,
        )
        models = Path(__file__).with_name(MODELS_DIR_NAME)
        if models.is_dir():
            session._session.get_component("data_loader").search_paths.insert(0, str(models))
        return MemberClients(
            secretsmanager=session.client("secretsmanager", config=BOTO_CONFIG),
            iam=session.client("iam", config=BOTO_CONFIG),
        )

    def _client(self, service: Any) -> Any:
        return self._session.client(service, config=BOTO_CONFIG)
