"""Settings come from the environment the template sets; required values have no defaults."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings

BASE = {"AUDIT_TABLE_NAME": "audit", "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"}


def test_minimal_environment_gives_the_documented_defaults() -> None:
    # GIVEN only the two required variables
    # WHEN settings are read
    settings = Settings.from_env(BASE)
    # THEN the defaults apply
    assert (settings.table_name, settings.retention_days, settings.enrich_cache_seconds) == (
        "audit",
        400,
        300.0,
    )
    assert settings.organizations_lookup is False
    assert settings.home_account_id is None


def test_every_variable_is_read() -> None:
    # GIVEN a full environment as template.yaml sets it
    env = {
        **BASE,
        "RETENTION_DAYS": "30",
        "ENRICH_CACHE_SECONDS": "0",
        "ORGANIZATIONS_LOOKUP": "true",
        "AWS_REGION": "eu-west-1",
        "HOME_ACCOUNT_ID": "111122223333",
    }
    # WHEN read
    settings = Settings.from_env(env)
    # THEN each value is typed
    assert settings.retention_days == 30
    assert settings.enrich_cache_seconds == 0.0
    assert settings.organizations_lookup is True
    assert (settings.region, settings.home_account_id) == ("eu-west-1", "111122223333")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALERT_TOPIC_ARN": "x"}, "AUDIT_TABLE_NAME is required"),
        ({"AUDIT_TABLE_NAME": "x", "ALERT_TOPIC_ARN": "  "}, "ALERT_TOPIC_ARN is required"),
        ({**BASE, "RETENTION_DAYS": "a year"}, "RETENTION_DAYS must be a whole number"),
        ({**BASE, "RETENTION_DAYS": "0"}, "RETENTION_DAYS must be at least 1"),
        ({**BASE, "ORGANIZATIONS_LOOKUP": "maybe"}, "ORGANIZATIONS_LOOKUP must be true or false"),
    ],
    ids=[
        "no-table",
        "blank-topic",
        "retention-not-a-number",
        "retention-zero",
        "lookup-not-a-bool",
    ],
)
def test_bad_environment_is_a_clear_config_error(env: dict[str, str], message: str) -> None:
    # GIVEN a missing or malformed variable
    # WHEN read
    # THEN a ConfigError names it
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "expected"), [("false", False), ("0", False), ("", False), ("YES", True)]
)
def test_boolean_spellings(text: str, expected: bool) -> None:
    # GIVEN a boolean spelled as CloudFormation parameters and people write it
    # WHEN read
    # THEN it is decided exactly
    assert (
        Settings.from_env({**BASE, "ORGANIZATIONS_LOOKUP": text}).organizations_lookup is expected
    )


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "json"), ("", "json"), ("json", "json"), ("chat", "chat")]
)
def test_the_https_format_is_json_unless_the_stack_has_a_chat_channel(
    value: str | None, expected: str
) -> None:
    # GIVEN HTTPS_MESSAGE_FORMAT as the template sets it (absent: a stack from before chat)
    env = {**BASE, **({} if value is None else {"HTTPS_MESSAGE_FORMAT": value})}
    # WHEN / THEN it is read as given, json by default
    assert Settings.from_env(env).https_format == expected


def test_an_unknown_https_format_is_refused() -> None:
    # GIVEN / WHEN / THEN a typo is an error at cold start, not a silent machine document
    with pytest.raises(ConfigError, match="HTTPS_MESSAGE_FORMAT must be json or chat"):
        Settings.from_env({**BASE, "HTTPS_MESSAGE_FORMAT": "slack"})
