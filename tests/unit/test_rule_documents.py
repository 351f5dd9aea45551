"""Rule documents: overlays on the defaults, exceptions, audit-only rules, and the live document."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from shared.errors import RuleConfigError
from shared.live_rules import LiveRules, ParameterMissingError
from shared.models import CloudTrailRecord
from shared.rules import compile_rules, default_rules
from tests.conftest import RecordFactory

TODAY = date(2026, 12, 3)
DELETE = {
    "eventName": "DeleteSecret",
    "readOnly": False,
    "requestParameters": {"secretId": "test/ci/tmp", "recoveryWindowInDays": 7},
}
CI_CALLER = {
    "type": "IAMUser",
    "principalId": "AIDACI",
    "arn": "arn:aws:iam::111122223333:user/ci-runner",
    "accountId": "111122223333",
    "userName": "ci-runner",
}
CUSTOM = {
    "id": "prod-read-denied",
    "description": "Someone was refused a production secret.",
    "runbook": "Check the caller.",
    "severity": "medium",
    "events": ["GetSecretValue"],
    "outcome": "failure",
    "when": {"key": "error.code", "op": "eq", "value": "AccessDeniedException"},
}


def compile_doc(document: dict[str, Any]) -> Any:
    return compile_rules(document, "doc.yaml", today=lambda: TODAY)


def ids(document: dict[str, Any]) -> list[str]:
    return [rule.id for rule in compile_doc(document).rules]


def fired(document: dict[str, Any], record: CloudTrailRecord) -> list[tuple[str, str, str | None]]:
    evaluation = compile_doc(document).evaluate(record)
    return [(f.rule_id, f.mode, f.exception) for f in evaluation.findings]


DEFAULT_IDS = [rule.id for rule in default_rules().rules]


# --- overlays -------------------------------------------------------------------------------------


def test_extends_default_keeps_every_default_and_adds_its_own() -> None:
    assert ids({"version": 1, "extends": "default", "rules": [CUSTOM]}) == [
        *DEFAULT_IDS,
        "prod-read-denied",
    ]


def test_disable_removes_only_the_named_rules() -> None:
    document = {"extends": "default", "disable": ["secret-restored", "kms-key-changed"]}
    assert ids(document) == [
        i for i in DEFAULT_IDS if i not in {"secret-restored", "kms-key-changed"}
    ]


def test_override_changes_only_the_given_keys(make_record: RecordFactory) -> None:
    # GIVEN the defaults with secret-deleted made critical and audit-only
    document = {
        "extends": "default",
        "override": {"secret-deleted": {"severity": "critical", "mode": "audit-only"}},
    }
    ruleset = compile_doc(document)
    rule = ruleset.get("secret-deleted")
    assert rule is not None
    # THEN the rest of the rule is the default's, and its findings are recorded, not alerted
    assert rule.events == frozenset({"DeleteSecret"})
    assert rule.description == default_rules().get("secret-deleted").description  # type: ignore[union-attr]
    (finding,) = ruleset.evaluate(make_record(**DELETE)).findings
    assert (finding.severity, finding.mode, finding.alerts) == ("critical", "audit-only", False)


def test_a_rule_document_without_extends_replaces_the_defaults() -> None:
    assert ids({"version": 1, "rules": [CUSTOM]}) == ["prod-read-denied"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"version": 1, "rules": []},
            "doc.yaml: no rules: a document without extends replaces the defaults",
        ),
        ({"extends": "everything"}, "extends must be one of default, none"),
        (
            {"disable": ["secret-deleted"], "rules": [CUSTOM]},
            'disable changes the defaults: it needs "extends: default"',
        ),
        ({"extends": "none", "override": {"x": {}}}, "override changes the defaults"),
        ({"extends": "default", "disable": ["secret-delted"]}, "did you mean 'secret-deleted'?"),
        (
            {"extends": "default", "override": {"nope": {"severity": "low"}}},
            "override.nope: not a default rule",
        ),
        (
            {"extends": "default", "override": {"secret-deleted": {"severity": "urgent"}}},
            "override.secret-deleted (secret-deleted): severity must be one of",
        ),
        (
            {"extends": "default", "override": {"secret-deleted": {"id": "other"}}},
            "the id of a rule cannot be overridden",
        ),
        (
            {"extends": "default", "override": {"secret-deleted": {"mode": "silent"}}},
            "mode must be one of alert, audit-only",
        ),
        (
            {"extends": "default", "rules": [{**CUSTOM, "id": "secret-deleted"}]},
            "duplicate rule id 'secret-deleted' (a default rule: change it with override)",
        ),
        (
            {
                "extends": "default",
                "disable": ["secret-deleted"],
                "override": {"secret-deleted": {"severity": "low"}},
            },
            "the rule is also disabled",
        ),
    ],
)
def test_a_bad_document_is_refused_with_where_and_why(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuleConfigError) as caught:
        compile_doc(document)
    assert message in str(caught.value)


def test_extends_none_says_no_rules_on_purpose() -> None:
    assert ids({"version": 1, "extends": "none"}) == []


# --- exceptions -----------------------------------------------------------------------------------


def ci_exception(**changes: Any) -> dict[str, Any]:
    exception = {
        "id": "ci-cleanup",
        "rules": ["secret-deleted"],
        "when": {"key": "caller.name", "op": "glob", "value": "ci-*"},
        "reason": "the CI pipeline deletes its own test secrets",
        "expires": "2027-06-30",
    }
    exception.update(changes)
    return exception


def test_an_exception_suppresses_the_findings_it_covers(make_record: RecordFactory) -> None:
    document = {"extends": "default", "exceptions": [ci_exception()]}
    # GIVEN a deletion by CI and one by someone else
    by_ci = make_record(**DELETE, userIdentity=CI_CALLER)
    by_alice = make_record(**DELETE)
    # THEN only CI's is suppressed, and it is still a finding, marked with the exception
    assert fired(document, by_ci) == [("secret-deleted", "alert", "ci-cleanup")]
    assert fired(document, by_alice) == [("secret-deleted", "alert", None)]


def test_an_exception_for_every_rule(make_record: RecordFactory) -> None:
    document = {"extends": "default", "exceptions": [ci_exception(rules=["*"])]}
    assert fired(document, make_record(**DELETE, userIdentity=CI_CALLER)) == [
        ("secret-deleted", "alert", "ci-cleanup")
    ]


def test_an_expired_exception_is_ignored_and_reported(make_record: RecordFactory) -> None:
    # GIVEN an exception that ended yesterday
    document = {"extends": "default", "exceptions": [ci_exception(expires="2026-12-02")]}
    ruleset = compile_doc(document)
    # THEN the finding alerts again, and the rule set says which exceptions expired
    assert fired(document, make_record(**DELETE, userIdentity=CI_CALLER)) == [
        ("secret-deleted", "alert", None)
    ]
    assert [e.id for e in ruleset.expired_exceptions()] == ["ci-cleanup"]
    # AND on its last day it still applies
    assert [e.id for e in ruleset.expired_exceptions(date(2026, 12, 2))] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "CI cleanup"}, "id must be kebab-case"),
        (
            {"rules": ["secret-delted"]},
            "'secret-delted' is not a rule of this document (did you mean 'secret-deleted'?)",
        ),
        ({"rules": []}, "rules must be a non-empty list"),
        ({"reason": " "}, "reason must say why"),
        ({"expires": "next year"}, "expires must be a date such as 2027-06-30"),
        ({"when": {"key": "caller.nme", "op": "eq", "value": "x"}}, "unknown field 'caller.nme'"),
        ({"because": "x"}, "unknown keys: because"),
    ],
)
def test_a_bad_exception_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError) as caught:
        compile_doc({"extends": "default", "exceptions": [ci_exception(**changes)]})
    assert message in str(caught.value)


def test_an_exception_needs_an_expiry() -> None:
    exception = ci_exception()
    del exception["expires"]
    with pytest.raises(RuleConfigError, match="missing expires"):
        compile_doc({"extends": "default", "exceptions": [exception]})


def test_exception_ids_are_unique() -> None:
    with pytest.raises(RuleConfigError, match="duplicate exception id"):
        compile_doc({"extends": "default", "exceptions": [ci_exception(), ci_exception()]})


# --- the live document ----------------------------------------------------------------------------


class Parameter:
    """A stand-in for Parameter Store: its value, or why it cannot be read."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.error: Exception | None = None
        self.reads = 0

    def __call__(self, name: str) -> str:
        self.reads += 1
        if self.error is not None:
            raise self.error
        if self.value is None:
            raise ParameterMissingError(name)
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_missing_parameter_means_the_defaults() -> None:
    live = LiveRules("/secretwatch/x/rules", Parameter(None))
    assert [r.id for r in live.current().rules] == DEFAULT_IDS


def test_a_new_document_takes_effect_and_is_compiled_once() -> None:
    parameter = Parameter(json.dumps({"extends": "default", "rules": [CUSTOM]}))
    live = LiveRules("/p", parameter)
    first = live.current()
    assert first.get("prod-read-denied") is not None
    assert live.current() is first  # the same text is not compiled again
    parameter.value = json.dumps({"extends": "default", "disable": ["secret-deleted"]})
    assert live.current().get("secret-deleted") is None


def test_a_broken_document_keeps_the_last_good_one(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a container that loaded a good document, then the parameter written badly
    parameter = Parameter(json.dumps({"extends": "default", "rules": [CUSTOM]}))
    live = LiveRules("/p", parameter)
    good = live.current()
    parameter.value = json.dumps({"rules": []})
    # WHEN the functions read it  THEN the last good document stays, with the loader's message
    assert live.current() is good
    refused = [r for r in caplog.records if r.getMessage().startswith("rule document refused")]
    assert "no rules" in refused[0].error  # type: ignore[attr-defined]


def test_a_broken_document_in_a_fresh_container_means_the_defaults() -> None:
    live = LiveRules("/p", Parameter("{not json"))
    assert [r.id for r in live.current().rules] == DEFAULT_IDS


def test_an_unreadable_parameter_keeps_the_document_and_waits_before_asking_again() -> None:
    # GIVEN a loaded document and then Parameter Store throttling
    parameter = Parameter(json.dumps({"extends": "default", "rules": [CUSTOM]}))
    clock = Clock()
    live = LiveRules("/p", parameter, clock=clock)
    good = live.current()
    parameter.error = RuntimeError("throttled")
    # WHEN asked again and again within a minute
    assert live.current() is good
    assert live.current() is good
    # THEN it asked once, and asks again after a minute
    assert parameter.reads == 2
    clock.now += 61
    parameter.error = None
    live.current()
    assert parameter.reads == 3
