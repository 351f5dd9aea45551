"""Shared test fixtures: a factory for raw CloudTrail records and their normalised form."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from shared.models import CloudTrailRecord
from shared.normalise import normalise

RawFactory = Callable[..., dict[str, Any]]
RecordFactory = Callable[..., CloudTrailRecord]

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/db/orders-Ab12Cd"

_BASE: dict[str, Any] = {
    "eventVersion": "1.11",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAEXAMPLE",
        "userName": "alice",
    },
    "eventTime": "2026-10-21T17:09:13Z",
    "eventSource": "secretsmanager.amazonaws.com",
    "eventName": "GetSecretValue",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "aws-cli/2.31.0",
    "requestParameters": {"secretId": "prod/db/orders"},
    "responseElements": None,
    "requestID": "5d7c2b9e-0000-4000-8000-000000000001",
    "eventID": "0b1c2d3e-0000-4000-8000-000000000001",
    "readOnly": True,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": ACCOUNT,
    "eventCategory": "Management",
}


def build_raw(**overrides: Any) -> dict[str, Any]:
    """A realistic raw CloudTrail record; keyword overrides replace keys (None value kept)."""
    raw = copy.deepcopy(_BASE)
    raw.update(copy.deepcopy(overrides))
    return raw


@pytest.fixture
def raw_record() -> RawFactory:
    """``raw_record(eventName="DeleteSecret", requestParameters={...})`` → a raw record dict."""
    return build_raw


@pytest.fixture
def make_record() -> RecordFactory:
    """Like ``raw_record`` but normalised with ``shared.parse.normalise``."""

    def make(**overrides: Any) -> CloudTrailRecord:
        return normalise(build_raw(**overrides))

    return make
