"""The rule keys of state: dedup, threshold and resolves, validated like every other key."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import RuleConfigError
from shared.rules import compile_rules

BASE: dict[str, Any] = {
    "id": "my-rule",
    "description": "d",
    "runbook": "r",
    "severity": "medium",
    "events": ["GetSecretValue"],
    "outcome": "failure",
}


def one(**keys: Any) -> Any:
    return compile_rules({"rules": [{**BASE, **keys}]}, "doc")


def test_dedup_and_threshold_compile_with_their_durations() -> None:
    dedup = one(dedup={"window": "15m", "key": ["caller.identity_arn", "secret.name"]})
    rule = dedup.rules[0]
    assert rule.dedup is not None
    assert (rule.dedup.window_s, rule.dedup.key) == (900, ("caller.identity_arn", "secret.name"))
    threshold = (
        one(
            threshold={
                "count": 5,
                "window": "1h",
                "group_by": ["caller.principal"],
                "distinct": "secret.name",
            }
        )
        .rules[0]
        .threshold
    )
    assert threshold is not None
    assert (threshold.count, threshold.window_s, threshold.distinct) == (5, 3600, "secret.name")
    assert one(threshold={"count": 2, "window": "30s"}).rules[0].threshold.group_by == ()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"dedup": {"window": "1w", "key": ["secret.name"]}}, "duration such as 30s"),
        ({"dedup": {"window": "8d", "key": ["secret.name"]}}, "at most 7d"),
        ({"dedup": {"window": "1h", "key": []}}, "non-empty list of fields"),
        ({"dedup": {"window": "1h", "key": ["secret.nam"]}}, "did you mean 'secret.name'"),
        ({"dedup": {"window": "1h"}}, "missing key"),
        ({"threshold": {"count": 1, "window": "10m"}}, "from 2 to 1000"),
        ({"threshold": {"count": True, "window": "10m"}}, "whole number"),
        ({"threshold": {"count": 5, "window": "2d"}}, "at most 1d"),
        ({"threshold": {"count": 5, "window": "10m", "distinct": "nope"}}, "unknown field"),
        (
            {
                "threshold": {"count": 5, "window": "10m"},
                "dedup": {"window": "1h", "key": ["secret.name"]},
            },
            "dedup and threshold together",
        ),
        ({"resolves": "secret-deleted"}, "list of rule ids"),
        ({"resolves": ["no-such-rule"]}, "not a rule of this document"),
        ({"resolves": ["my-rule"]}, "cannot resolve itself"),
    ],
)
def test_a_bad_state_key_is_refused_with_where_and_why(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError, match=message):
        one(**keys)


def test_state_keys_are_accepted_under_override() -> None:
    ruleset = compile_rules(
        {
            "extends": "default",
            "override": {
                "access-while-pending-deletion": {
                    "dedup": {"window": "5m", "key": ["secret.name"]}
                },
                "access-denied-burst": {"threshold": {"count": 10, "window": "5m"}},
            },
        }
    )
    pending = ruleset.get("access-while-pending-deletion")
    burst = ruleset.get("access-denied-burst")
    assert pending is not None
    assert pending.dedup is not None
    assert pending.dedup.window_s == 300
    assert burst is not None
    assert burst.threshold is not None
    assert (burst.threshold.count, burst.threshold.group_by) == (10, ())


def test_disabling_a_resolved_default_drops_it_from_what_resolves_it() -> None:
    ruleset = compile_rules({"extends": "default", "disable": ["secret-deleted"]})
    restored = ruleset.get("secret-restored")
    assert restored is not None
    assert restored.resolves == ()
    assert "secret-deleted" not in ruleset.resolvable


def test_the_defaults_ship_dedup_thresholds_and_resolutions() -> None:
    ruleset = compile_rules({"extends": "default"})
    for rule_id in ("access-while-pending-deletion", "rotation-failed"):
        rule = ruleset.get(rule_id)
        assert rule is not None
        assert rule.dedup is not None
        assert rule.dedup.key == ("caller.identity_arn", "secret.name")
    denied, reads = ruleset.get("access-denied-burst"), ruleset.get("read-burst")
    assert denied is not None
    assert denied.threshold is not None
    assert (denied.threshold.count, denied.threshold.window_s, denied.severity) == (
        5,
        600,
        "medium",
    )
    assert reads is not None
    assert reads.threshold is not None
    assert (reads.threshold.count, reads.threshold.distinct) == (20, "secret.name")
    assert ruleset.resolvable == {"secret-deleted", "rotation-failed"}
