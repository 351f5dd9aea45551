"""The self-test: a synthetic, Secrets Manager-shaped event that proves a deployment end to end.

``secretwatch selftest`` puts one event on the default bus with the source below (EventBridge
refuses ``aws.*`` sources from PutEvents, hence our own). The stack's SelfTestRule sends it to
the EventBridge function, which accepts this source for this one shape only: a CloudTrail-like
record whose eventName is ``SecretwatchSelfTest``. Such a record is never evaluated against the
rule document: it gets exactly one finding, of the rule below, at severity info, and its alert
carries the message attribute ``kind`` = ``selftest``, which the SMS subscription's filter
policy leaves out (e-mail subscribers get it). Anyone allowed PutEvents on the bus can send
one, and all it can cause is that one info alert, recorded like any other.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.rules import RuleSet

SELFTEST_SOURCE = "secretwatch.selftest"
SELFTEST_DETAIL_TYPE = "secretwatch self-test"
SELFTEST_EVENT_NAME = "SecretwatchSelfTest"
SELFTEST_RULE_ID = "selftest"
SELFTEST_KIND = "selftest"  # the alert's ``kind`` message attribute
SECRETSMANAGER_SOURCE = "secretsmanager.amazonaws.com"


def is_selftest_event(event: Any) -> bool:
    """The one EventBridge shape the function accepts from the self-test source."""
    if not isinstance(event, dict):
        return False
    detail = event.get("detail")
    return (
        event.get("source") == SELFTEST_SOURCE
        and event.get("detail-type") == SELFTEST_DETAIL_TYPE
        and isinstance(detail, dict)
        and detail.get("eventSource") == SECRETSMANAGER_SOURCE
        and detail.get("eventName") == SELFTEST_EVENT_NAME
    )


@lru_cache(maxsize=1)
def selftest_rules() -> RuleSet:
    """The only rules a self-test record meets: one, that always fires, at severity info."""
    from shared.rules import compile_rules  # noqa: PLC0415 — the rules package imports envelopes

    return compile_rules(
        {
            "version": 1,
            "rules": [
                {
                    "id": SELFTEST_RULE_ID,
                    "description": "A self-test event (secretwatch selftest) passed through "
                    "the pipeline.",
                    "runbook": "Nothing to do: this alert proves that alerts reach you. It is "
                    "never sent by SMS.",
                    "severity": "info",
                    "events": [SELFTEST_EVENT_NAME],
                }
            ],
        },
        "<selftest>",
    )
