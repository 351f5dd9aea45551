"""The AWS options every AWS-calling command takes, as the AWS CLI spells them.

Kept apart from ``cli.aws`` (which imports boto3) so that a command can declare them without
loading the SDK before it runs: ``secretwatch rules list`` never calls AWS, ``rules push`` does.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit


def connection_options() -> argparse.ArgumentParser:
    """``--region``, ``--profile``, ``--endpoint-url`` as an argparse parent (defaults SUPPRESS,
    so an action's copy never overwrites a value given before it)."""
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    parent.add_argument(
        "--region",
        metavar="REGION",
        help="AWS Region (else $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's region)",
    )
    parent.add_argument(
        "--profile", metavar="PROFILE", help="named profile of the AWS CLI config (or $AWS_PROFILE)"
    )
    parent.add_argument(
        "--endpoint-url",
        metavar="URL",
        type=endpoint_url,
        help="send every AWS call to this endpoint (e.g. a local moto server)",
    )
    return parent


def endpoint_url(text: str) -> str:
    """An ``--endpoint-url`` value: botocore would otherwise fail late with a ValueError."""
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"not an endpoint URL: {text!r} (expected http://host:port or https://host)"
        )
    return text
