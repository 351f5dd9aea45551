"""The command line's AWS layer: the Region as the SDK finds it, one session and Config, stack
outputs read once, and one exit-code policy for `audit` and `replay` alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from botocore.stub import Stubber

import cli.evaluate
from cli import aws
from cli.errors import EXIT_FAILURE, EXIT_USAGE, exit_status
from cli.main import main
from cli.replay import ReplayError, ReplayOptions, replay
from shared.rules import load_rules
from tests.conftest import build_raw


@pytest.fixture
def no_aws_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Region, profile or credentials anywhere; an AWS config file the test may fill."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "SECRETWATCH_TABLE",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


def client_error(code: str, operation: str = "Query") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "refused"}}, operation)


def trail(tmp_path: Path) -> Path:
    folder = tmp_path / "trail"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"Records": [build_raw(eventName="DeleteSecret")]}))
    return folder


# --- the exit-code policy, command by command -----------------------------------------------


@pytest.mark.usefixtures("no_aws_settings")
def test_no_region_is_a_usage_error_in_audit_and_in_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no Region in any option, variable or profile
    source = trail(tmp_path)
    # WHEN audit and replay need a client
    audit_status, audit_err = run(capsys, "audit", "--table", "t", "--secret", "x")
    replay_status, replay_err = run(capsys, "replay", str(source), "--table", "t")
    # THEN both exit 2 with the same one line, naming every place a Region may come from
    expected = (
        "secretwatch: error: no AWS Region: pass --region, set AWS_REGION or "
        "AWS_DEFAULT_REGION, or give the profile a region (aws configure set region REGION)\n"
    )
    assert (audit_status, audit_err) == (EXIT_USAGE, expected)
    assert (replay_status, replay_err) == (EXIT_USAGE, expected)


@pytest.mark.usefixtures("no_aws_settings")
def test_no_region_names_the_profile_in_use(
    no_aws_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a profile without a region
    no_aws_settings.write_text("[profile ops]\noutput = json\n")
    # WHEN audit runs with it THEN the line names that profile
    status, err = run(capsys, "audit", "--table", "t", "--secret", "x", "--profile", "ops")
    assert status == EXIT_USAGE
    assert "give profile ops a region" in err


@pytest.mark.usefixtures("no_aws_settings")
def test_an_unknown_profile_is_a_usage_error_in_audit_and_in_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a profile that the AWS config does not have, as an option and as AWS_PROFILE
    source = trail(tmp_path)
    # WHEN audit and replay (even a dry run, which needs no AWS call) are given it
    audit = run(capsys, "audit", "--table", "t", "--secret", "x", "--profile", "ghost")
    dry_run = run(capsys, "replay", str(source), "--dry-run", "--profile", "ghost")
    monkeypatch.setenv("AWS_PROFILE", "ghost")
    from_environment = run(capsys, "replay", str(source), "--dry-run")
    # THEN each exits 2 with the same line
    expected = (
        EXIT_USAGE,
        "secretwatch: error: AWS profile ghost not found: check --profile or AWS_PROFILE "
        "(`aws configure list-profiles` lists them)\n",
    )
    assert audit == dry_run == from_environment == expected


@pytest.mark.usefixtures("no_aws_settings")
def test_no_table_is_a_usage_error_in_audit_and_in_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a Region but no --table, --stack or SECRETWATCH_TABLE
    source = trail(tmp_path)
    # WHEN audit and replay start
    audit = run(capsys, "audit", "--secret", "x", "--region", "eu-west-1")
    replayed = run(capsys, "replay", str(source), "--region", "eu-west-1")
    # THEN both exit 2 with the same line
    expected = (
        EXIT_USAGE,
        "secretwatch: error: no audit table: pass --table, --stack or set SECRETWATCH_TABLE\n",
    )
    assert audit == replayed == expected


@pytest.mark.usefixtures("no_aws_settings")
@pytest.mark.parametrize("command", ["audit", "replay"])
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--endpoint-url", "localhost:4566"], "not an endpoint URL: 'localhost:4566'"),
        (["--region", "eu west 1"], "not an AWS Region: 'eu west 1'"),
        (["--table", "t", "--stack", "s"], "not allowed with argument"),
    ],
)
def test_bad_aws_options_are_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    option: list[str],
    message: str,
) -> None:
    # GIVEN an option AWS cannot work with
    target = ["--secret", "x"] if command == "audit" else [str(trail(tmp_path))]
    table = [] if "--table" in option else ["--table", "t"]
    # WHEN the command runs
    status, err = run(capsys, command, *target, *table, *option)
    # THEN exit 2 and the reason, before any AWS call
    assert status == EXIT_USAGE
    assert message in err
    assert "Traceback" not in err


def test_access_denied_on_the_table_is_a_failure_at_run_time(tmp_path: Path) -> None:
    # GIVEN a replay whose DynamoDB client is refused (moto does not enforce IAM: stubbed)
    layer = aws.Aws(session=boto3.Session(region_name="eu-west-1"))
    with Stubber(layer.client("dynamodb")) as stub:
        stub.add_client_error("batch_get_item", "AccessDeniedException", "no")
        # WHEN it starts
        with pytest.raises(ReplayError) as caught:
            replay(ReplayOptions(sources=(str(trail(tmp_path)),), table="t"), layer, load_rules())
    # THEN one line names the table and the refusal, and the command exits 1
    assert (
        str(caught.value) == "audit table 't' in eu-west-1: access denied (AccessDeniedException)"
    )
    assert exit_status(caught.value) == EXIT_FAILURE


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (client_error("AccessDeniedException"), 1, "Query failed: access denied (AccessDeniedException)"),
        (client_error("AccessDenied", "GetObject"), 1, "GetObject failed: access denied (AccessDenied)"),
        (client_error("ResourceNotFoundException"), 1, "Query failed: not found (ResourceNotFoundException)"),
        (client_error("ExpiredToken"), 1, "Query failed: the AWS credentials are not valid (ExpiredToken)"),
        (client_error("ThrottlingException"), 1, "Query failed: ThrottlingException: refused"),
        (NoCredentialsError(), 1, aws.NO_CREDENTIALS),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"), 1, "cannot reach http://127.0.0.1:9/"),
        (ConnectTimeoutError(endpoint_url="http://x/"), 1, 'AWS call failed: Connect timeout on endpoint URL: "http://x/"'),
        (NoRegionError(), 2, aws.no_region_message(None)),
        (ProfileNotFound(profile="ghost"), 2, "AWS profile ghost not found: check --profile or AWS_PROFILE (`aws configure list-profiles` lists them)"),
        (InvalidRegionError(region_name="mars"), 2, "not an AWS Region: 'mars' (check --region, AWS_REGION, AWS_DEFAULT_REGION or the profile)"),
    ],
)  # fmt: skip
def test_every_aws_error_has_one_line_and_one_status(
    error: Exception, status: int, line: str
) -> None:
    # GIVEN an AWS error raised inside a command's work
    # WHEN it leaves aws_errors
    with pytest.raises((aws.AwsFailure, aws.AwsSetupError)) as caught, aws.aws_errors():
        raise error
    # THEN it is one line and the policy's status
    assert str(caught.value) == line
    assert exit_status(caught.value) == status


def test_a_command_may_explain_a_refusal_in_its_own_words() -> None:
    with (
        pytest.raises(aws.AwsFailure, match=r"^the table is gone$"),
        aws.aws_errors(
            lambda exc: (
                "the table is gone" if aws.error_code(exc) == "ResourceNotFoundException" else None
            )
        ),
    ):
        raise client_error("ResourceNotFoundException")


def test_an_aws_error_no_command_translated_still_follows_the_policy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a command through which a botocore error escapes untranslated
    def broken(paths: list[str], ruleset: Any) -> Any:
        raise NoCredentialsError

    monkeypatch.setattr(cli.evaluate, "evaluate_paths", broken)
    # WHEN it runs THEN it is the layer's line and status, not an internal error
    status, err = run(capsys, "evaluate", "x.json")
    assert (status, err) == (EXIT_FAILURE, f"secretwatch: {aws.NO_CREDENTIALS}\n")


# --- the Region, the session, the clients, the stack ----------------------------------------


@pytest.mark.usefixtures("no_aws_settings")
@pytest.mark.parametrize(
    ("option", "environment", "profile_region", "expected"),
    [
        ("eu-west-3", {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, "us-east-2", "eu-west-3"),
        (None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, "us-east-2", "eu-west-1"),
        (None, {"AWS_DEFAULT_REGION": "eu-west-2"}, "us-east-2", "eu-west-2"),
        (None, {}, "us-east-2", "us-east-2"),
    ],
)  # fmt: skip
def test_the_region_comes_from_the_option_then_the_environment_then_the_profile(  # noqa: PLR0917 — parametrised
    no_aws_settings: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    environment: dict[str, str],
    profile_region: str,
    expected: str,
) -> None:
    # GIVEN a profile with a region, some variables and maybe --region
    no_aws_settings.write_text(f"[profile ops]\nregion = {profile_region}\n")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    layer = aws.Aws(region=option, profile="ops")
    # WHEN a client is made THEN its Region is the first one set, in that order
    assert layer.region == expected
    assert layer.client("dynamodb").meta.region_name == expected


@pytest.mark.usefixtures("no_aws_settings")
def test_clients_are_built_once_with_the_layers_config_and_endpoint() -> None:
    # GIVEN a layer with an endpoint
    layer = aws.Aws(region="eu-west-1", endpoint_url="http://127.0.0.1:5999")
    # WHEN the same service is asked for twice
    first, second = layer.client("dynamodb"), layer.client("dynamodb")
    # THEN one client, with the endpoint, the standard retries and the timeouts
    assert first is second
    assert first.meta.endpoint_url == "http://127.0.0.1:5999"
    config: Any = first.meta.config
    expected: Any = aws.CONFIG
    assert config.retries["mode"] == "standard"
    assert (config.connect_timeout, config.read_timeout) == (
        expected.connect_timeout,
        expected.read_timeout,
    )


@pytest.mark.usefixtures("no_aws_settings")
def test_a_stacks_outputs_are_read_once() -> None:
    # GIVEN a stack whose outputs name the table and the topic (one DescribeStacks answer)
    layer = aws.Aws(session=boto3.Session(region_name="eu-west-1"))
    outputs = [
        {"OutputKey": "AuditTableName", "OutputValue": "audit"},
        {"OutputKey": "AlertTopicArn", "OutputValue": "arn:aws:sns:eu-west-1:1:alerts"},
    ]
    stack = {"StackName": "sw", "CreationTime": "2026-11-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE", "Outputs": outputs}  # fmt: skip
    with Stubber(layer.client("cloudformation")) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "sw"})
        # WHEN the table and then the topic are read from it
        table = layer.stack_output("sw", aws.TABLE_OUTPUT)
        topic = layer.stack_output("sw", aws.TOPIC_OUTPUT)
        # THEN both come from the one call (a second would find no stubbed answer)
        stub.assert_no_pending_responses()
    assert (table, topic) == ("audit", "arn:aws:sns:eu-west-1:1:alerts")
    with pytest.raises(aws.AwsFailure, match=r"^stack sw in eu-west-1 has no Missing output$"):
        layer.stack_output("sw", "Missing")


def test_a_missing_stack_is_one_line() -> None:
    layer = aws.Aws(session=boto3.Session(region_name="eu-west-1"))
    with Stubber(layer.client("cloudformation")) as stub:
        stub.add_client_error(
            "describe_stacks", "ValidationError", "Stack with id x does not exist"
        )
        with pytest.raises(aws.AwsFailure) as caught:
            layer.stack_outputs("x")
    assert str(caught.value) == "stack x not found in eu-west-1 (check --stack/--region)"
    assert exit_status(caught.value) == EXIT_FAILURE


@pytest.mark.usefixtures("no_aws_settings")
def test_an_invalid_endpoint_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN AWS_ENDPOINT_URL without a scheme (the option is checked by argparse)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    # WHEN a client is made THEN exit 2, naming both places the endpoint comes from
    with pytest.raises(aws.AwsSetupError, match="check --endpoint-url or AWS_ENDPOINT_URL"):
        aws.Aws(region="eu-west-1").client("dynamodb")


def test_sns_gets_one_attempt_like_the_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the layer (replay --notify publishes through it)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    layer = aws.Aws(region="eu-west-1")
    # WHEN it builds the SNS and DynamoDB clients  THEN Publish is never retried by the SDK
    assert layer.client("sns").meta.config.retries["total_max_attempts"] == 1
    assert layer.client("dynamodb").meta.config.retries["total_max_attempts"] == 5
