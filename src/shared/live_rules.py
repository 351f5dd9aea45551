"""The rule document in force in a deployed stack: an SSM parameter, read live.

The stack creates the parameter (output ``RulesParameterName``); ``secretwatch rules push``
publishes new versions of it. Each function reads it through Powertools Parameters, cached for
at most a minute, so a change takes effect within a minute without a redeploy.

A broken document never silences the defaults: when the parameter holds something the loader
refuses (written by other means than ``rules push``), the function keeps the last document it
loaded successfully, or, in a fresh container, the bundled defaults; either way it logs the
loader's message and counts ``RulesInvalid`` (an alarm on that metric notifies the topic). A
missing parameter means the bundled defaults. When the parameter cannot be read (throttling,
no permission), the last good document stays in force and the read is retried after a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from shared.errors import RuleConfigError
from shared.observability import count
from shared.rules import RuleSet, compile_rules, default_rules, parse_document
from shared.text import clean

logger = logging.getLogger("secretwatch.rules")

MAX_AGE_SECONDS = 60
NOT_FOUND = "ParameterNotFound"


@runtime_checkable
class RulesSource(Protocol):
    def current(self) -> RuleSet: ...


class StaticRules:
    """One rule set for good (the command line, tests)."""

    def __init__(self, ruleset: RuleSet) -> None:
        self._ruleset = ruleset

    def current(self) -> RuleSet:
        return self._ruleset


class ParameterMissingError(Exception):
    """The parameter does not exist: the bundled defaults apply."""


def powertools_fetch(ssm: Any, max_age: int = MAX_AGE_SECONDS) -> Callable[[str], str]:
    """A reader of one parameter through Powertools Parameters (its cache: ``max_age``)."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider  # noqa: PLC0415
    from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415
        GetParameterError,
    )

    provider = SSMProvider(boto3_client=ssm)

    def fetch(name: str) -> str:
        try:
            value = provider.get(name, max_age=max_age)
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code")
            if code == NOT_FOUND:
                raise ParameterMissingError(name) from exc
            raise
        return value if isinstance(value, str) else str(value)

    return fetch


class LiveRules:
    """The document in the parameter, compiled when it changes; never worse than the defaults."""

    def __init__(
        self,
        parameter_name: str,
        fetch: Callable[[str], str],
        *,
        defaults: Callable[[], RuleSet] = default_rules,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = MAX_AGE_SECONDS,
    ) -> None:
        self.parameter_name = parameter_name
        self._fetch = fetch
        self._defaults = defaults
        self._clock = clock
        self._retry_after = retry_after
        self._text: str | None = None  # the text the rule set in force was compiled from
        self._ruleset: RuleSet | None = None  # the last good one
        self._broken: str | None = None  # the text of a document the loader refused
        self._failed_at: float | None = None  # when the parameter last could not be read

    def current(self) -> RuleSet:
        if self._failed_at is not None and self._clock() - self._failed_at < self._retry_after:
            return self._in_force()
        try:
            text = self._fetch(self.parameter_name)
        except ParameterMissingError:
            self._text, self._ruleset, self._failed_at = None, None, None
            return self._defaults()
        except Exception as exc:  # noqa: BLE001 — unreadable now: what was in force stays
            self._failed_at = self._clock()
            logger.warning(
                "rule document unreadable; the one in force stays",
                extra={"parameter": self.parameter_name, "error": type(exc).__name__},
            )
            return self._in_force()
        self._failed_at = None
        if text == self._text and self._ruleset is not None:
            return self._ruleset
        if text == self._broken:
            count("RulesInvalid")
            return self._in_force()
        origin = f"ssm:{self.parameter_name}"
        try:
            ruleset = compile_rules(parse_document(text, origin), origin)
        except RuleConfigError as exc:
            self._broken = text
            count("RulesInvalid")
            logger.error(
                "rule document refused; the last good one stays in force",
                extra={
                    "parameter": self.parameter_name,
                    "error": clean(str(exc), 2000),
                    "in_force": self._in_force().origin,
                },
            )
            return self._in_force()
        self._text, self._ruleset, self._broken = text, ruleset, None
        logger.info(
            "rule document loaded",
            extra={"parameter": self.parameter_name, "rules": len(ruleset)},
        )
        return ruleset

    def _in_force(self) -> RuleSet:
        return self._ruleset if self._ruleset is not None else self._defaults()
