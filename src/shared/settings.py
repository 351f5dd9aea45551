"""Settings of the Lambda functions, read from the environment once per container.

A plain frozen dataclass, not pydantic: importing pydantic costs ~0.2 s of cold start, more than
the whole budget over the boto3 floor (see scripts/bench.py). Required values have no silent
defaults: a missing table name or topic is a ConfigError at the first invocation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from shared.errors import ConfigError
from shared.remediate import AUTO_RESTORE_MODES, AutoRestore
from shared.tamper import StackIdentity, identity_from_env

_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    topic_arn: str
    retention_days: int = 400
    # Routine reads (successful, no finding) expire sooner; never later than retention_days.
    routine_read_retention_days: int = 90
    enrich_cache_seconds: float = 300.0
    organizations_lookup: bool = False
    region: str | None = None
    home_account_id: str | None = None  # the account the stack runs in (IAM knows only its alias)
    rules_parameter: str | None = None  # the SSM parameter of the rule document in force
    state_table_name: str | None = None  # dedup windows, thresholds, open alerts (None: no state)
    auto_restore: AutoRestore = "disabled"  # stack parameter AutoRestore (shared.remediate)
    # Central mode: members' records are enriched through <member_role_name>-<Region> in their
    # account (shared.member_access); None elsewhere.
    member_role_name: str | None = None
    # The log subscription function takes only this Region's records (LogsRouteRegions=
    # this-region); None: every Region's.
    logs_region: str | None = None
    # The https variant of every message: "json" (the machine document) or "chat" (a custom
    # notification for the stack's Slack or Teams channel, template HasChat).
    https_format: str = "json"
    # This stack's own resources, for the tamper rule (shared.tamper); None: not given.
    stack: StackIdentity | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            table_name=_required(env, "AUDIT_TABLE_NAME"),
            topic_arn=_required(env, "ALERT_TOPIC_ARN"),
            retention_days=_int(env, "RETENTION_DAYS", 400, minimum=1),
            routine_read_retention_days=_int(env, "ROUTINE_READ_RETENTION_DAYS", 90, minimum=1),
            enrich_cache_seconds=float(_int(env, "ENRICH_CACHE_SECONDS", 300, minimum=0)),
            organizations_lookup=_bool(env, "ORGANIZATIONS_LOOKUP", default=False),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            home_account_id=env.get("HOME_ACCOUNT_ID") or None,
            rules_parameter=env.get("RULES_PARAMETER_NAME", "").strip() or None,
            state_table_name=env.get("STATE_TABLE_NAME", "").strip() or None,
            auto_restore=_auto_restore(env),
            member_role_name=env.get("MEMBER_ROLE_NAME", "").strip() or None,
            logs_region=env.get("LOGS_ROUTE_REGION", "").strip() or None,
            https_format=_https_format(env),
            stack=identity_from_env(env),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required (set by template.yaml)")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"environment variable {name} must be a whole number, got {text!r}"
        ) from None
    if value < minimum:
        raise ConfigError(f"environment variable {name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = env.get(name)
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {text!r}")


def _auto_restore(env: Mapping[str, str]) -> AutoRestore:
    text = env.get("AUTO_RESTORE", "").strip()
    if not text:
        return "disabled"  # absent: the stack predates the setting, which defaults to off
    for mode in AUTO_RESTORE_MODES:
        if text == mode:
            return mode
    raise ConfigError(
        f"environment variable AUTO_RESTORE must be one of {', '.join(AUTO_RESTORE_MODES)}, "
        f"got {text!r}"
    )


def _https_format(env: Mapping[str, str]) -> str:
    text = env.get("HTTPS_MESSAGE_FORMAT", "").strip()
    if not text:
        return "json"  # absent: the stack predates chat channels
    if text not in ("json", "chat"):
        raise ConfigError(
            f"environment variable HTTPS_MESSAGE_FORMAT must be json or chat, got {text!r}"
        )
    return text


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, read at the first invocation (never at import time)."""
    return Settings.from_env()
