"""The command line's one AWS layer: options, session and clients, stack outputs, errors.

Every command that calls AWS declares ``--region``, ``--profile``, ``--endpoint-url`` and
``--table``/``--stack`` through :func:`options`, opens one :class:`Aws` per run (one session,
clients built once each with one botocore ``Config``, a stack's outputs read once) and runs its
work inside :func:`aws_errors`, which turns whatever AWS raised into one line and the exit
policy of ``cli.errors``:

- exit 2 (``AwsSetupError``): the user fixes it with options or the environment: no Region,
  an invalid Region, an unknown profile, an unreadable AWS config, an invalid endpoint URL;
- exit 1 (``AwsFailure``): it failed at run time: AWS refused or found nothing, no credentials,
  the endpoint could not be reached, any other botocore failure.

Errors are told apart by exception class and error code, never by message text. Only the
commands that call AWS import this module, so ``evaluate`` and ``rules`` never load boto3.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    EndpointConnectionError,
    InvalidConfigError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from cli.aws_options import connection_options
from cli.errors import UsageError
from shared.clients import BOTO_CONFIG, PUBLISH_CONFIG
from shared.errors import SecretwatchError

TABLE_ENV = "SECRETWATCH_TABLE"
TABLE_OUTPUT = "AuditTableName"
TOPIC_OUTPUT = "AlertTopicArn"
# How the stack's functions write the https variant (chat with a Slack or Teams channel): a
# command that publishes for the stack writes it the same way, or the channel would drop it.
HTTPS_FORMAT_OUTPUT = "AlertHttpsFormat"

# The same timeouts and standard retries as the Lambda functions: a command waits no longer
# for a silent endpoint than the service does.
CONFIG = BOTO_CONFIG
# Except SNS Publish, which, as in the functions, gets one attempt: an SDK retry after a lost
# answer would send an alert twice.
SERVICE_CONFIGS = {"sns": PUBLISH_CONFIG}

ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403"})
INVALID_CREDENTIALS_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
NO_OBJECT_CODES = frozenset({"NoSuchKey", "404"})

# What a per-item read may raise and report on its own line (the run goes on): every AWS failure.
AWS_ERRORS = (ClientError, BotoCoreError)

NO_CREDENTIALS = (
    "no AWS credentials: run `aws configure` or `aws sso login`, set AWS_PROFILE or "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or pass --profile"
)
NO_TABLE = f"no audit table: pass --table, --stack or set {TABLE_ENV}"


class AwsSetupError(UsageError):
    """The AWS settings cannot work (Region, profile, config, endpoint): exit status 2."""


class AwsFailure(SecretwatchError):
    """An AWS call failed at run time (refused, not found, no credentials, unreachable): exit 1."""


# ---------------------------------------------------------------------------------------------
# Options


def options() -> argparse.ArgumentParser:
    """The AWS options and the audit table's target, as an argparse parent (``audit``,
    ``replay``). Defaults are SUPPRESS so that a subcommand's copy never overwrites a value given
    before the action (``audit --table T show ID``); read them with :meth:`Aws.from_args` and
    :func:`table_name`."""
    parent = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS, parents=[connection_options()]
    )
    target = parent.add_mutually_exclusive_group()
    target.add_argument("--table", metavar="NAME", help=f"audit table name (or ${TABLE_ENV})")
    target.add_argument(
        "--stack",
        metavar="NAME",
        help=f"read the table (and the alert topic) from this stack's outputs ({TABLE_OUTPUT}, "
        f"{TOPIC_OUTPUT})",
    )
    return parent


# ---------------------------------------------------------------------------------------------
# Session, clients, stack outputs


class Aws:
    """One command run's AWS: one session, each client built once, each stack read once.

    The Region is the SDK's: ``--region``, else ``AWS_REGION`` (which boto3 alone ignores, but
    the AWS CLI and the other SDKs honour first), else what botocore finds
    (``AWS_DEFAULT_REGION``, then the profile's ``region``). No default is invented.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        self._region = region
        self._profile = profile
        self.endpoint_url = endpoint_url
        self._session = session
        self._clients: dict[str, Any] = {}
        self._outputs: dict[str, dict[str, str]] = {}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Aws:
        return cls(
            region=getattr(args, "region", None),
            profile=getattr(args, "profile", None),
            endpoint_url=getattr(args, "endpoint_url", None),
        )

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            region = self._region or os.environ.get("AWS_REGION") or None
            try:
                self._session = boto3.Session(profile_name=self._profile, region_name=region)
            except BotoCoreError as exc:  # ProfileNotFound, an unreadable config file
                raise translate(exc) from exc
        return self._session

    @property
    def region(self) -> str:
        """The Region every client uses; no Region anywhere is a setup error (exit 2)."""
        region = self.session.region_name
        if not region:
            raise AwsSetupError(no_region_message(self._profile or os.environ.get("AWS_PROFILE")))
        return str(region)

    def client(self, service: str) -> Any:
        """The service's client, built once per run with the layer's Config and endpoint."""
        if service not in self._clients:
            region = self.region
            try:
                self._clients[service] = self.session.client(  # type: ignore[call-overload]
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=SERVICE_CONFIGS.get(service, CONFIG),
                )
            except BotoCoreError as exc:
                raise translate(exc) from exc
            except ValueError as exc:  # botocore's "Invalid endpoint" (e.g. $AWS_ENDPOINT_URL)
                raise AwsSetupError(
                    f"invalid AWS endpoint URL ({exc}): check --endpoint-url or AWS_ENDPOINT_URL"
                ) from exc
        return self._clients[service]

    def stack_outputs(self, stack: str) -> Mapping[str, str]:
        """A stack's outputs by key, from one DescribeStacks call per run."""
        if stack not in self._outputs:
            cloudformation = self.client("cloudformation")
            try:
                stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
            except ClientError as exc:
                if error_code(exc) == "ValidationError":  # how CloudFormation says "no such stack"
                    raise AwsFailure(
                        f"stack {stack} not found in {self.region} (check --stack/--region)"
                    ) from exc
                raise
            outputs = stacks[0].get("Outputs", []) if stacks else []
            self._outputs[stack] = {
                str(o["OutputKey"]): str(o["OutputValue"])
                for o in outputs
                if "OutputKey" in o and "OutputValue" in o
            }
        return self._outputs[stack]

    def stack_output(self, stack: str, key: str) -> str:
        value = self.stack_outputs(stack).get(key)
        if value is None:
            raise AwsFailure(f"stack {stack} in {self.region} has no {key} output")
        return value


def table_name(args: argparse.Namespace, aws: Aws) -> str | None:
    """The audit table: ``--table``, else the ``--stack``'s output, else ``$SECRETWATCH_TABLE``."""
    table = getattr(args, "table", None)
    if table:
        return str(table)
    stack = getattr(args, "stack", None)
    if stack:
        return aws.stack_output(str(stack), TABLE_OUTPUT)
    return os.environ.get(TABLE_ENV) or None


def require_table(args: argparse.Namespace, aws: Aws) -> str:
    table = table_name(args, aws)
    if table is None:
        raise UsageError(NO_TABLE)
    return table


# ---------------------------------------------------------------------------------------------
# Errors


def error_code(exc: BaseException) -> str:
    """A ClientError's code, or the exception's class name for anything else."""
    if not isinstance(exc, ClientError):
        return type(exc).__name__
    return str(exc.response.get("Error", {}).get("Code") or "UnknownError")


def no_region_message(profile: str | None) -> str:
    where = f"profile {profile}" if profile else "the profile"
    return (
        "no AWS Region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or give "
        f"{where} a region (aws configure set region REGION)"
    )


def describe(exc: BaseException) -> str:
    """One phrase for an AWS failure, for a line that names what failed: chosen by exception
    class or error code, never by message text."""
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}"
    if isinstance(exc, BotoCoreError):
        return f"AWS call failed: {exc}"
    if not isinstance(exc, ClientError):
        return type(exc).__name__
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return f"not found ({code})"
    if code == "NoSuchBucket":
        return f"the bucket does not exist ({code})"
    if code in ACCESS_DENIED_CODES:
        return f"access denied ({code})"
    if code in NO_OBJECT_CODES:
        return f"the object does not exist ({code})"
    if code in INVALID_CREDENTIALS_CODES:
        return f"the AWS credentials are not valid ({code})"
    return code


def translate(exc: BaseException) -> SecretwatchError:
    """An AWS exception as one of the two kinds of error the exit policy knows."""
    if isinstance(exc, ProfileNotFound):
        return AwsSetupError(
            f"AWS profile {exc.kwargs.get('profile', '?')} not found: check --profile or "
            "AWS_PROFILE (`aws configure list-profiles` lists them)"
        )
    if isinstance(exc, NoRegionError):
        return AwsSetupError(no_region_message(None))
    if isinstance(exc, InvalidRegionError):
        return AwsSetupError(
            f"not an AWS Region: {exc.kwargs.get('region_name', '?')!r} (check --region, "
            "AWS_REGION, AWS_DEFAULT_REGION or the profile)"
        )
    if isinstance(exc, ConfigParseError | InvalidConfigError):
        return AwsSetupError(f"the AWS configuration cannot be used: {exc}")
    if isinstance(exc, ClientError):
        return AwsFailure(failed_call(exc))
    return AwsFailure(describe(exc))


def failed_call(exc: ClientError) -> str:
    """A refused call that the command has no better words for: the operation and the reason
    (AWS's own message too when the code is not one we describe)."""
    phrase = describe(exc)
    message = str(exc.response.get("Error", {}).get("Message") or "")
    detail = f": {message}" if phrase == error_code(exc) and message else ""
    return f"{exc.operation_name} failed: {phrase}{detail}"


Explain = Callable[[ClientError], str | None]


@contextmanager
def aws_errors(explain: Explain | None = None) -> Iterator[None]:
    """Whatever AWS raises inside becomes one line and the exit policy; never a traceback.

    ``explain`` gives the command's own words for a refused call it understands better (the
    audit table not found, the permissions it needs), or None to use the general ones.
    """
    try:
        yield
    except ClientError as exc:
        raise AwsFailure((explain(exc) if explain else None) or failed_call(exc)) from exc
    except BotoCoreError as exc:
        raise translate(exc) from exc
