"""Central mode: a member account's record is enriched through that member's read-only role.

moto's STS AssumeRole hands out credentials that moto maps to the role's account, so a client
built with them sees that account's secrets: the enrichment really comes from the member. moto
does not enforce IAM (any role can be assumed); the template tests check the policies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from shared.clients import Clients
from shared.enrich import Enricher
from shared.member_access import RENEW_BEFORE_SECONDS, MemberAccess, MemberAccessError
from tests.unit.test_enrich import ACCOUNT, REGION, make_record, ref_for

MEMBER = "444455556666"
ROLE_NAME = "secretwatch-member"


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def clients() -> Iterator[Clients]:
    with moto.mock_aws():
        yield Clients(region=REGION)


def _member_secret(clients: Clients, name: str) -> str:
    """A secret created in the member account, with that account's own credentials."""
    member = MemberAccess(clients.sts, ROLE_NAME, clients.for_credentials)
    created = member.clients(MEMBER, REGION).secretsmanager.create_secret(
        Name=name, SecretString="x", Description="member's", Tags=[{"Key": "owner", "Value": "m"}]
    )
    return created["ARN"]


def test_a_members_secret_is_described_through_its_role(clients: Clients) -> None:
    # GIVEN a secret in a member account, and one of the same name in the home account
    arn = _member_secret(clients, "db/orders")
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="db/orders", SecretString="y", Description="home's"
    )
    access = MemberAccess(clients.sts, ROLE_NAME, clients.for_credentials)
    enricher = Enricher(
        clients.secretsmanager, clients.iam, None, home_account_id=ACCOUNT, member_access=access
    )
    record = make_record(ref_for("db/orders", arn, account=MEMBER), account_id=MEMBER)

    # WHEN the member's record is enriched twice
    first = enricher.enrich(record)
    second = enricher.enrich(record)

    # THEN the member's secret is described (not the home account's), through one AssumeRole
    assert first.secret is not None
    assert first.secret.description == "member's"
    assert second.secret == first.secret
    assert access.assumed == 1
    assert access.role_arn(MEMBER, REGION) == f"arn:aws:iam::{MEMBER}:role/{ROLE_NAME}-{REGION}"
    assert not any("not called" in note for note in first.notes)


def test_the_home_accounts_records_do_not_assume_anything(clients: Clients) -> None:
    # GIVEN a home-account secret and an enricher in central mode
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="home", SecretString="x", Description="home's"
    )["ARN"]
    access = MemberAccess(clients.sts, ROLE_NAME, clients.for_credentials)
    enricher = Enricher(
        clients.secretsmanager, clients.iam, None, home_account_id=ACCOUNT, member_access=access
    )

    # WHEN a home-account record is enriched
    enrichment = enricher.enrich(make_record(ref_for("home", arn)))

    # THEN the function's own clients answer
    assert enrichment.secret is not None
    assert enrichment.secret.description == "home's"
    assert access.assumed == 0


class _RefusingSts:
    def __init__(self) -> None:
        self.calls = 0

    def assume_role(self, **_: Any) -> Any:
        self.calls += 1
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")


def test_a_role_that_cannot_be_assumed_degrades_the_enrichment(clients: Clients) -> None:
    # GIVEN a member whose role cannot be assumed
    access = MemberAccess(_RefusingSts(), ROLE_NAME, clients.for_credentials)  # type: ignore[arg-type]
    enricher = Enricher(
        clients.secretsmanager, clients.iam, None, home_account_id=ACCOUNT, member_access=access
    )
    arn = f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:db-AbCdEf"
    record = make_record(ref_for("db", arn, account=MEMBER), account_id=MEMBER)

    # WHEN its record is enriched
    enrichment = enricher.enrich(record)

    # THEN nothing raises: the secret and alias are unknown and the notes say why
    assert enrichment.secret is None
    assert enrichment.account_alias is None
    role = f"arn:aws:iam::{MEMBER}:role/{ROLE_NAME}-{REGION}"
    assert f"AssumeRole {role}: AccessDenied" in enrichment.notes
    assert enricher.stats.failures["AssumeRole"] == 2  # the secret, then the alias


class _CountingSts:
    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.calls = 0

    def assume_role(self, **_: Any) -> Any:
        self.calls += 1
        expiration = datetime.fromtimestamp(1_000_000, UTC) + self.lifetime
        return {"Credentials": {"AccessKeyId": "a", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expiration}}  # fmt: skip


def test_credentials_are_renewed_shortly_before_they_expire() -> None:
    # GIVEN credentials valid for an hour from t=1,000,000
    now = [1_000_000.0]
    sts = _CountingSts(timedelta(hours=1))
    access = MemberAccess(sts, ROLE_NAME, lambda c, r: c, clock=lambda: now[0])  # type: ignore[arg-type]

    # WHEN the member's clients are asked for now, just before the renewal point, and after it
    access.clients(MEMBER, REGION)
    now[0] += 3600 - RENEW_BEFORE_SECONDS - 1
    access.clients(MEMBER, REGION)
    calls_before_renewal = sts.calls
    now[0] += 2
    access.clients(MEMBER, REGION)

    # THEN one AssumeRole served the first two, a second one the third
    assert (calls_before_renewal, sts.calls) == (1, 2)


def test_the_error_carries_its_note() -> None:
    # GIVEN / WHEN / THEN the error's note is its message (the enricher puts it in the alert)
    error = MemberAccessError("AssumeRole x: AccessDenied")
    assert (error.note, str(error)) == ("AssumeRole x: AccessDenied", "AssumeRole x: AccessDenied")
