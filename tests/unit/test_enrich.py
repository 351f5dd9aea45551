"""Enrichment: secret metadata and account names, cached, and never failing the event."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
import moto  # clients are created inside mock_aws (moto imported first), so all are mocked
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from shared.enrich import (
    API_ACCOUNT,
    API_ALIASES,
    API_DESCRIBE_SM,
    Enricher,
)
from shared.models import (
    Caller,
    CloudTrailRecord,
    Enrichment,
    RequestFields,
    SecretDetails,
    SecretRef,
    owner_from_tags,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

ACCOUNT = "123456789012"  # moto's account
OTHER_ACCOUNT = "444455556666"
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws() -> Iterator[None]:
    with moto.mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def secretsmanager(aws: None) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def iam(aws: None) -> IAMClient:
    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture
def organizations(aws: None) -> OrganizationsClient:
    return boto3.client("organizations", region_name="us-east-1")


def make_record(secret: SecretRef | None = None, **overrides: Any) -> CloudTrailRecord:
    record = CloudTrailRecord(
        event_id="3f2c1e9a-0000-4000-8000-000000000001",
        event_name="DeleteSecret",
        event_type="AwsApiCall",
        event_time=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        event_source="secretsmanager.amazonaws.com",
        region=REGION,
        account_id=ACCOUNT,
        read_only=False,
        error_code=None,
        error_message=None,
        secret=secret,
        caller=Caller(type="IAMUser", name="alice", user_name="alice", account_id=ACCOUNT),
        source_ip="203.0.113.7",
        user_agent="aws-cli/2.15",
        vpc_endpoint_id=None,
        request=RequestFields(recovery_window_days=7),
    )
    return replace(record, **overrides)


def ref_for(name: str, arn: str | None = None, account: str = ACCOUNT) -> SecretRef:
    return SecretRef(name=name, arn=arn, region=REGION, account_id=account)


def record_operations(client: Any) -> list[str]:
    """A spy: every API operation the client is asked to make, in order."""
    seen: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.*.*", hook)
    return seen


def rotation_function(iam: IAMClient) -> str:
    role = iam.create_role(
        RoleName="rotation",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    lambda_client = boto3.client("lambda", region_name=REGION)
    function = lambda_client.create_function(
        FunctionName="rotate-db",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )
    return str(function["FunctionArn"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- secret details -----------------------------------------------------------------------------


def test_describe_secret_fills_tags_owner_description_rotation_and_kms(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a secret with a description, a customer KMS key, tags and rotation configured
    function_arn = rotation_function(iam)
    arn = secretsmanager.create_secret(
        Name="prod/payments/db",
        SecretString="hunter2",
        Description="Payments database password",
        KmsKeyId="alias/payments",
        Tags=[
            {"Key": "Team", "Value": "platform"},
            {"Key": "Owner", "Value": "payments-oncall"},
            {"Key": "env", "Value": "prod"},
        ],
    )["ARN"]
    secretsmanager.rotate_secret(
        SecretId=arn,
        RotationLambdaARN=function_arn,
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    operations = record_operations(secretsmanager)
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN a record about it is enriched
    enrichment = enricher.enrich(make_record(ref_for("prod/payments/db", arn)))

    # THEN the metadata is there, the owner comes from the Owner tag, and the value was never read
    secret = enrichment.secret
    assert secret is not None
    assert secret.name == "prod/payments/db"
    assert secret.arn == arn
    assert secret.description == "Payments database password"
    assert secret.kms_key_id == "alias/payments"
    assert dict(secret.tags) == {"Team": "platform", "Owner": "payments-oncall", "env": "prod"}
    assert secret.owner == "payments-oncall"
    assert secret.rotation_enabled is True
    assert secret.rotation_lambda_arn == function_arn
    assert secret.deleted_date is None
    assert secret.last_changed_date is not None
    assert secret.last_changed_date.tzinfo == UTC
    assert enrichment.notes == ()
    assert operations == [API_DESCRIBE_SM]
    assert "GetSecretValue" not in operations


def test_secret_scheduled_for_deletion_shows_its_deletion_date(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a secret deleted with a 7-day recovery window
    secretsmanager.create_secret(Name="prod/db", SecretString="x")
    secretsmanager.delete_secret(SecretId="prod/db", RecoveryWindowInDays=7)
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN the DeleteSecret record is enriched (by name, as an old event may only carry the name)
    enrichment = enricher.enrich(make_record(ref_for("prod/db")))

    # THEN the scheduled deletion date is known, in UTC
    assert enrichment.secret is not None
    assert enrichment.secret.deleted_date is not None
    assert enrichment.secret.deleted_date.tzinfo == UTC
    assert enrichment.to_dict()["secret"]["deleted_date"].endswith("Z")


def test_unknown_secret_degrades_to_a_note(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN no such secret (purged, or never existed)
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN a record about it is enriched
    enrichment = enricher.enrich(make_record(ref_for("gone/for-good")))

    # THEN nothing raises, the secret is unknown and a note says why
    assert enrichment.secret is None
    assert any("ResourceNotFoundException" in note for note in enrichment.notes)
    assert any("deleted?" in note for note in enrichment.notes)
    assert enricher.stats.failures[API_DESCRIBE_SM] == 1


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "ThrottlingException", "InternalServiceError"]
)
def test_client_errors_degrade_by_error_code(
    secretsmanager: SecretsManagerClient, iam: IAMClient, code: str
) -> None:
    # GIVEN DescribeSecret fails with an error code (and a message text that must not matter)
    stubber = Stubber(secretsmanager)
    stubber.add_client_error(
        "describe_secret", service_error_code=code, service_message="no: ça ne va pas"
    )
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN the record is enriched
    with stubber:
        enrichment = enricher.enrich(make_record(ref_for("prod/db")))

    # THEN the secret stays unknown, the note names the code, the rest of enrichment still ran
    assert enrichment.secret is None
    assert f"{API_DESCRIBE_SM}: {code}" in enrichment.notes
    assert enricher.stats.calls[API_ALIASES] == 1
    stubber.assert_no_pending_responses()


class UnreachableSecretsManager:
    """A client whose endpoint cannot be reached (a BotoCoreError, not a ClientError)."""

    class meta:  # mimics boto3's client.meta.region_name
        region_name = REGION

    def __init__(self) -> None:
        self.calls = 0

    def describe_secret(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise EndpointConnectionError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com")


def test_botocore_errors_degrade_too(iam: IAMClient) -> None:
    # GIVEN a Secrets Manager endpoint that cannot be reached
    client = UnreachableSecretsManager()
    enricher = Enricher(cast("SecretsManagerClient", client), iam, None)

    # WHEN a record is enriched
    enrichment = enricher.enrich(make_record(ref_for("prod/db")))

    # THEN it degrades with a note naming the error type
    assert enrichment.secret is None
    assert f"{API_DESCRIBE_SM}: EndpointConnectionError" in enrichment.notes


class MalformedSecretsManager(UnreachableSecretsManager):
    def describe_secret(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {"ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"}  # no Name


def test_an_unexpected_response_shape_degrades_instead_of_raising(iam: IAMClient) -> None:
    # GIVEN a DescribeSecret answer without the Name member
    enricher = Enricher(cast("SecretsManagerClient", MalformedSecretsManager()), iam, None)

    # WHEN a record is enriched
    enrichment = enricher.enrich(make_record(ref_for("prod/db")))

    # THEN it degrades instead of raising
    assert enrichment.secret is None
    assert any("unexpected response" in note for note in enrichment.notes)


# --- caching ------------------------------------------------------------------------------------


def test_an_inaccessible_secret_is_looked_up_once_per_batch(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a secret we may not describe, and 1000 records about it
    stubber = Stubber(secretsmanager)
    stubber.add_client_error("describe_secret", service_error_code="AccessDeniedException")
    enricher = Enricher(secretsmanager, iam, None)
    record = make_record(ref_for("prod/db"))

    # WHEN all of them are enriched
    with stubber:
        results = [enricher.enrich(record) for _ in range(1000)]

    # THEN one DescribeSecret call was made, and every record still carries the note
    assert enricher.stats.calls[API_DESCRIBE_SM] == 1
    assert enricher.stats.cache_hits[API_DESCRIBE_SM] == 999
    assert enricher.stats.failures[API_DESCRIBE_SM] == 1
    assert all("DescribeSecret: AccessDeniedException" in r.notes for r in results)
    assert enricher.stats.calls[API_ALIASES] == 1


def test_cache_serves_repeats_and_expires_after_the_ttl(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a secret and an enricher with a 300 s TTL on an injected clock
    secretsmanager.create_secret(Name="prod/db", SecretString="x", Description="v1")
    clock = FakeClock()
    enricher = Enricher(secretsmanager, iam, None, ttl_seconds=300, clock=clock)
    operations = record_operations(secretsmanager)
    record = make_record(ref_for("prod/db"))

    # WHEN two records arrive together
    first, second = enricher.enrich(record), enricher.enrich(record)

    # THEN one DescribeSecret call serves both
    assert operations == [API_DESCRIBE_SM]
    assert first == second
    assert enricher.stats.cache_hits[API_DESCRIBE_SM] == 1

    # WHEN the description changes and time passes, but not past the TTL
    secretsmanager.update_secret(SecretId="prod/db", Description="v2")
    clock.now += 299
    # THEN the cached value is still served
    cached = enricher.enrich(record).secret
    assert cached is not None
    assert cached.description == "v1"

    # WHEN the TTL has passed
    clock.now += 1
    # THEN it is looked up again
    fresh = enricher.enrich(record).secret
    assert fresh is not None
    assert fresh.description == "v2"
    assert operations == [API_DESCRIBE_SM, "UpdateSecret", API_DESCRIBE_SM]


def test_a_failed_lookup_is_retried_after_the_ttl(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a secret that did not exist when first asked about
    clock = FakeClock()
    enricher = Enricher(secretsmanager, iam, None, ttl_seconds=60, clock=clock)
    record = make_record(ref_for("late/secret"))
    assert enricher.enrich(record).secret is None

    # WHEN it is created, and later the negative entry expires
    secretsmanager.create_secret(Name="late/secret", SecretString="x")
    still_negative = enricher.enrich(record)
    clock.now += 60
    found = enricher.enrich(record)

    # THEN the negative answer is served until the TTL, then the secret is found
    assert still_negative.secret is None
    assert found.secret is not None
    assert found.notes == ()
    assert enricher.stats.calls[API_DESCRIBE_SM] == 2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("TooManyRequestsException", 429),
        ("InternalServiceError", 500),
        ("SomethingNew", 503),  # any 5xx, whatever its code
    ],
)
def test_a_transient_failure_is_never_cached(
    secretsmanager: SecretsManagerClient, iam: IAMClient, code: str, status: int
) -> None:
    # GIVEN DescribeSecret failing once with throttling or a server error, then answering
    secretsmanager.create_secret(
        Name="prod/db", SecretString="x", Tags=[{"Key": "owner", "Value": "team-a"}]
    )
    stubber = Stubber(secretsmanager)
    stubber.add_client_error("describe_secret", service_error_code=code, http_status_code=status)
    enricher = Enricher(secretsmanager, iam, None)
    record = make_record(ref_for("prod/db"))
    with stubber:
        first = enricher.enrich(record)

    # WHEN the next record about the same secret arrives, within the cache's lifetime
    second = enricher.enrich(record)

    # THEN the first degraded, but the second asked again and has the owner and tags
    assert first.secret is None
    assert second.secret is not None
    assert second.secret.owner == "team-a"
    assert enricher.stats.calls[API_DESCRIBE_SM] == 2


def test_a_timeout_is_never_cached(secretsmanager: SecretsManagerClient, iam: IAMClient) -> None:
    # GIVEN DescribeSecret timing out once
    secretsmanager.create_secret(Name="prod/db", SecretString="x")
    calls: list[int] = []

    def time_out_once(**_: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="https://secretsmanager.example")

    secretsmanager.meta.events.register("before-call.secrets-manager.DescribeSecret", time_out_once)
    enricher = Enricher(secretsmanager, iam, None)
    record = make_record(ref_for("prod/db"))
    # WHEN two records arrive  THEN the second is enriched
    assert enricher.enrich(record).secret is None
    assert enricher.enrich(record).secret is not None


def test_cache_size_is_bounded(secretsmanager: SecretsManagerClient, iam: IAMClient) -> None:
    # GIVEN a cache of two entries and three secrets asked about in turn
    stubber = Stubber(secretsmanager)
    for _ in range(4):
        stubber.add_client_error("describe_secret", service_error_code="ResourceNotFoundException")
    enricher = Enricher(secretsmanager, iam, None, max_cache_entries=2)

    # WHEN a, b, c, then a again are enriched
    with stubber:
        for name in ("a", "b", "c", "a"):
            enricher.enrich(make_record(ref_for(name)))

    # THEN "a" was evicted to make room for "c" and had to be asked about again
    assert enricher.stats.calls[API_DESCRIBE_SM] == 4
    stubber.assert_no_pending_responses()


# --- where the secret lives ---------------------------------------------------------------------


def test_cross_account_secret_with_arn_is_still_tried_then_degrades(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a record about a secret that lives in another account (a resource policy might allow)
    arn = f"arn:aws:secretsmanager:{REGION}:{OTHER_ACCOUNT}:secret:shared/db-AbC123"
    stubber = Stubber(secretsmanager)
    stubber.add_client_error(
        "describe_secret",
        service_error_code="AccessDeniedException",
        expected_params={"SecretId": arn},
    )
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN it is enriched
    with stubber:
        enrichment = enricher.enrich(make_record(ref_for("shared/db", arn, OTHER_ACCOUNT)))

    # THEN DescribeSecret was called with the full ARN, and the failure says cross-account
    assert enricher.stats.calls[API_DESCRIBE_SM] == 1
    assert enrichment.secret is None
    assert any(f"cross-account secret in {OTHER_ACCOUNT}" in n for n in enrichment.notes)


def test_cross_account_secret_known_only_by_name_is_not_looked_up(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a same-named secret in our own account, and a record about the other account's one
    secretsmanager.create_secret(Name="shared/db", SecretString="x")
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN a record naming the other account's secret without its ARN is enriched
    enrichment = enricher.enrich(make_record(ref_for("shared/db", None, OTHER_ACCOUNT)))

    # THEN our own secret is not passed off as theirs
    assert enrichment.secret is None
    assert enricher.stats.calls[API_DESCRIBE_SM] == 0
    assert any("belongs to account" in note for note in enrichment.notes)


def test_secret_in_another_region_is_not_looked_up(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a record from us-east-1 and an enricher whose client is in eu-west-1
    secretsmanager.create_secret(Name="prod/db", SecretString="x")
    enricher = Enricher(secretsmanager, iam, None)
    ref = SecretRef(name="prod/db", region="us-east-1", account_id=ACCOUNT)

    # WHEN it is enriched
    enrichment = enricher.enrich(make_record(ref, region="us-east-1"))

    # THEN the eu-west-1 secret of the same name is not described in its place
    assert enrichment.secret is None
    assert enricher.stats.calls[API_DESCRIBE_SM] == 0
    assert any("us-east-1" in note for note in enrichment.notes)


def test_record_without_a_secret_needs_no_lookup(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a ListSecrets record (no secret)
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN it is enriched
    enrichment = enricher.enrich(make_record(None, event_name="ListSecrets", read_only=True))

    # THEN no DescribeSecret call and no note (nothing is missing)
    assert enrichment.secret is None
    assert enrichment.notes == ()
    assert enricher.stats.calls[API_DESCRIBE_SM] == 0


# --- account alias and name ---------------------------------------------------------------------


def test_account_alias_absent_then_present(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN an account without an alias
    record = make_record(None, event_name="ListSecrets")

    # WHEN enriched before and after an alias is created (fresh enrichers: no cache between)
    before = Enricher(secretsmanager, iam, None).enrich(record)
    iam.create_account_alias(AccountAlias="acme-prod")
    after = Enricher(secretsmanager, iam, None).enrich(record)

    # THEN the alias is None (not an error, no note), then the alias
    assert before.account_alias is None
    assert before.notes == ()
    assert after.account_alias == "acme-prod"


def test_account_alias_denied_degrades(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN ListAccountAliases is denied
    stubber = Stubber(iam)
    stubber.add_client_error("list_account_aliases", service_error_code="AccessDenied")
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN two records are enriched
    with stubber:
        results = [enricher.enrich(make_record(None)) for _ in range(2)]

    # THEN one call, no alias, a note each time
    assert [r.account_alias for r in results] == [None, None]
    assert all(f"{API_ALIASES}: AccessDenied" in r.notes for r in results)
    assert enricher.stats.calls[API_ALIASES] == 1


def test_alias_is_not_borrowed_for_another_account(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN our account has an alias and an organization trail delivers another account's event
    iam.create_account_alias(AccountAlias="acme-security")
    enricher = Enricher(secretsmanager, iam, None, home_account_id=ACCOUNT)

    # WHEN a record from the other account is enriched
    enrichment = enricher.enrich(make_record(None, account_id=OTHER_ACCOUNT))

    # THEN our alias is not shown as theirs, and IAM was not asked
    assert enrichment.account_alias is None
    assert enricher.stats.calls[API_ALIASES] == 0
    assert any(API_ALIASES in note for note in enrichment.notes)


def test_organizations_account_name(
    secretsmanager: SecretsManagerClient, iam: IAMClient, organizations: OrganizationsClient
) -> None:
    # GIVEN an organization whose management account is moto's account
    organizations.create_organization(FeatureSet="ALL")
    enricher = Enricher(secretsmanager, iam, organizations)

    # WHEN two records from that account are enriched
    first = enricher.enrich(make_record(None))
    second = enricher.enrich(make_record(None))

    # THEN the account's name is known, from one DescribeAccount call
    assert first.account_name == "master"
    assert second.account_name == "master"
    assert enricher.stats.calls[API_ACCOUNT] == 1


def test_no_organizations_client_means_no_name_and_no_call(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN an enricher built without an Organizations client
    enricher = Enricher(secretsmanager, iam, None)

    # WHEN a record is enriched
    enrichment = enricher.enrich(make_record(None))

    # THEN the name is None, without a call or a note
    assert enrichment.account_name is None
    assert enricher.stats.calls[API_ACCOUNT] == 0
    assert enrichment.notes == ()


def test_unknown_account_in_organization_degrades(
    secretsmanager: SecretsManagerClient, iam: IAMClient, organizations: OrganizationsClient
) -> None:
    # GIVEN an organization that does not contain the record's account
    organizations.create_organization(FeatureSet="ALL")
    enricher = Enricher(secretsmanager, iam, organizations)

    # WHEN the record is enriched
    enrichment = enricher.enrich(make_record(None, account_id=OTHER_ACCOUNT))

    # THEN the name is None and the note names the error code
    assert enrichment.account_name is None
    assert f"{API_ACCOUNT}: AccountNotFoundException" in enrichment.notes


def test_organizations_access_denied_is_remembered_for_every_account(
    secretsmanager: SecretsManagerClient, iam: IAMClient, organizations: OrganizationsClient
) -> None:
    # GIVEN a member account, where DescribeAccount is denied whichever account is asked about
    stubber = Stubber(organizations)
    stubber.add_client_error("describe_account", service_error_code="AccessDeniedException")
    enricher = Enricher(secretsmanager, iam, organizations)

    # WHEN records from two different accounts are enriched
    with stubber:
        first = enricher.enrich(make_record(None, account_id=ACCOUNT))
        second = enricher.enrich(make_record(None, account_id=OTHER_ACCOUNT))

    # THEN Organizations was asked once, and both records say why the name is missing
    assert enricher.stats.calls[API_ACCOUNT] == 1
    assert enricher.stats.cache_hits[API_ACCOUNT] == 1
    assert f"{API_ACCOUNT}: AccessDeniedException" in first.notes
    assert f"{API_ACCOUNT}: AccessDeniedException" in second.notes


# --- the value objects --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "owner"),
    [
        ({"owner": "a", "Owner": "b", "OWNER": "c"}, "a"),
        ({"OWNER": "c", "Owner": "b"}, "b"),
        ({"OWNER": "c"}, "c"),
        ({"contact": "x@example.com", "Team": "platform"}, "platform"),
        ({"Contact": "x@example.com"}, "x@example.com"),
        ({"owner": "  ", "team": "platform"}, "platform"),
        ({"env": "prod"}, None),
        ({}, None),
    ],
)
def test_owner_tag_priority(tags: dict[str, str], owner: str | None) -> None:
    # GIVEN tags  WHEN the owner is chosen  THEN owner beats team beats contact, any case
    assert owner_from_tags(tags) == owner


def test_secret_details_tags_are_a_read_only_copy() -> None:
    # GIVEN a tag dict
    tags = {"env": "prod"}

    # WHEN details are built from it and the dict is changed afterwards
    details = SecretDetails(name="prod/db", tags=tags)
    tags["env"] = "dev"

    # THEN the details keep their own read-only copy
    assert details.tags == {"env": "prod"}
    with pytest.raises(TypeError):
        details.tags["env"] = "dev"  # type: ignore[index]


def test_enrichment_to_dict_is_json_ready() -> None:
    # GIVEN a full enrichment
    enrichment = Enrichment(
        secret=SecretDetails(
            name="prod/db",
            arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbC123",
            tags={"owner": "team-a"},
            owner="team-a",
            deleted_date=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        ),
        account_alias="acme",
        account_name="Production",
        notes=("DescribeAccount: AccessDeniedException",),
    )

    # WHEN it is turned into a dict and through JSON
    data = enrichment.to_dict()

    # THEN it round-trips, with datetimes as ISO strings and tags as a dict
    assert json.loads(json.dumps(data)) == data
    assert data["secret"]["deleted_date"] == "2026-11-30T10:00:00Z"
    assert data["secret"]["tags"] == {"owner": "team-a"}
    assert data["notes"] == ["DescribeAccount: AccessDeniedException"]


def test_empty_enrichment() -> None:
    # GIVEN / WHEN an empty enrichment  THEN it knows nothing and is not partial
    empty = Enrichment.empty()
    assert empty.to_dict() == {
        "secret": None,
        "account_alias": None,
        "account_name": None,
        "notes": [],
    }
    assert not empty.partial


def test_expired_entries_are_evicted_before_live_ones(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN a full two-entry cache whose oldest entry has expired
    clock = FakeClock()
    stubber = Stubber(secretsmanager)
    for _ in range(3):
        stubber.add_client_error("describe_secret", service_error_code="ResourceNotFoundException")
    enricher = Enricher(secretsmanager, iam, None, ttl_seconds=10, clock=clock, max_cache_entries=2)
    with stubber:
        enricher.enrich(make_record(ref_for("old")))
        clock.now += 5
        enricher.enrich(make_record(ref_for("young")))
        clock.now += 6  # "old" has expired, "young" has not

        # WHEN a third secret needs room
        enricher.enrich(make_record(ref_for("new")))
        # THEN the expired entry made room and the live one is still served from the cache
        enricher.enrich(make_record(ref_for("young")))

    assert enricher.stats.calls[API_DESCRIBE_SM] == 3
    assert enricher.stats.cache_hits[API_DESCRIBE_SM] == 1


class UnreachableOrganizations:
    def describe_account(self, **_: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://organizations.us-east-1.amazonaws.com")


def test_organizations_connection_error_degrades(
    secretsmanager: SecretsManagerClient, iam: IAMClient
) -> None:
    # GIVEN an Organizations endpoint that cannot be reached
    organizations = cast("OrganizationsClient", UnreachableOrganizations())
    enricher = Enricher(secretsmanager, iam, organizations)

    # WHEN a record is enriched
    enrichment = enricher.enrich(make_record(None))

    # THEN the name is None, with a note, and the stats say what happened
    assert enrichment.account_name is None
    assert f"{API_ACCOUNT}: EndpointConnectionError" in enrichment.notes
    assert enricher.stats.as_dict() == {
        "calls": {API_ALIASES: 1, API_ACCOUNT: 1},
        "cache_hits": {},
        "failures": {API_ACCOUNT: 1},
    }
