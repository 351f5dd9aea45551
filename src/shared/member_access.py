"""Read-only clients in a member account, for enriching the events it forwards to the centre.

In central mode (template parameter DeploymentMode) member accounts forward their Secrets Manager
events to the central bus; DescribeSecret and ListAccountAliases only answer about the caller's
own account, so the central functions assume the role each member stack creates,
``arn:<partition>:iam::<account>:role/<MEMBER_ROLE_NAME>-<Region>``, and ask with its
credentials. Credentials are cached per account and Region until shortly before they expire: one
AssumeRole per member per container and hour, not one per event.

A failed AssumeRole raises :class:`MemberAccessError`; the enricher turns it into a note, so the
alert goes out without the member's metadata rather than not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import SecretwatchError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sts import STSClient

API_ASSUME = "AssumeRole"
SESSION_NAME = "secretwatch-enrich"
# Renewed this long before AWS says the credentials expire: a look-up that starts just before
# expiry must not be refused half-way (and clocks differ a little).
RENEW_BEFORE_SECONDS = 300.0
DURATION_SECONDS = 3600


class MemberAccessError(SecretwatchError):
    """The member's read-only role could not be assumed; ``note`` says why, for the alert."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


@dataclass(frozen=True, slots=True)
class MemberClients:
    """The clients the enricher uses for one member account and Region."""

    secretsmanager: SecretsManagerClient
    iam: IAMClient


class ClientFactory(Protocol):
    """Builds the two read-only clients from assumed credentials (``Clients.for_credentials``)."""

    def __call__(self, credentials: Credentials, region: str | None) -> MemberClients: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    clients: MemberClients
    renew_at: float  # wall-clock seconds


class MemberAccess:
    """Assumes ``<role_name>-<region>`` in member accounts and caches the clients it gives."""

    def __init__(
        self,
        sts: STSClient,
        role_name: str,
        build: ClientFactory,
        *,
        partition: str = "aws",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sts = sts
        self._role_name = role_name
        self._build = build
        self._partition = partition
        self._clock = clock
        self._cache: dict[tuple[str, str | None], _Cached] = {}
        self.assumed = 0  # AssumeRole calls made (tests and the benchmark count them)

    def role_arn(self, account_id: str, region: str | None) -> str:
        name = f"{self._role_name}-{region}" if region else self._role_name
        return f"arn:{self._partition}:iam::{account_id}:role/{name}"

    def clients(self, account_id: str, region: str | None) -> MemberClients:
        """The member's clients; raises MemberAccessError when its role cannot be assumed."""
        key = (account_id, region)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.renew_at:
            return cached.clients
        role_arn = self.role_arn(account_id, region)
        self.assumed += 1
        try:
            response = self._sts.assume_role(
                RoleArn=role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=DURATION_SECONDS
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "UnknownError"
            raise MemberAccessError(f"{API_ASSUME} {role_arn}: {code}") from exc
        except BotoCoreError as exc:
            raise MemberAccessError(f"{API_ASSUME} {role_arn}: {type(exc).__name__}") from exc
        issued = response["Credentials"]
        credentials = Credentials(
            issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
        )
        expires = issued["Expiration"].timestamp()
        clients = self._build(credentials, region)
        self._cache[key] = _Cached(clients, expires - RENEW_BEFORE_SECONDS)
        return clients
