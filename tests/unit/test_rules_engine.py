"""shared.rules: operators, conditions, predicates, severities, outcomes, loading and isolation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import RuleConfigError
from shared.models import CloudTrailRecord, Enrichment, RuleError, SecretDetails
from shared.rules import DEFAULT_RULES_PATH, RuleSet, compile_rules, load_rules
from shared.rules.fields import getter_for, known_keys
from shared.rules.operators import OPERATORS
from shared.rules.predicates import PREDICATES, Predicate, predicate
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, RecordFactory

Register = Callable[[str, Predicate], None]


# ---------------------------------------------------------------------------------------------
# Helpers


def rule(**overrides: Any) -> dict[str, Any]:
    """A minimal valid rule; overrides replace keys, a value of ... removes the key."""
    entry: dict[str, Any] = {
        "id": "test-rule",
        "description": "A test rule.",
        "runbook": "Do nothing.",
        "severity": "medium",
        "events": ["*"],
    }
    for key, value in overrides.items():
        if value is ...:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def compile_one(**overrides: Any) -> RuleSet:
    return compile_rules({"version": 1, "rules": [rule(**overrides)]}, "test.json")


def fired(
    ruleset: RuleSet, record: CloudTrailRecord, enrichment: Enrichment | None = None
) -> list[str]:
    evaluation = ruleset.evaluate(record, enrichment)
    assert evaluation.rule_errors == ()
    return [finding.rule_id for finding in evaluation.findings]


def load_error(document: Any) -> str:
    with pytest.raises(RuleConfigError) as caught:
        compile_rules(document, "test.json")
    return str(caught.value)


def rule_error(**overrides: Any) -> str:
    return load_error({"version": 1, "rules": [rule(**overrides)]})


@pytest.fixture
def register_predicate() -> Iterator[Register]:
    """Register predicates for one test and remove them from PREDICATES afterwards."""
    added: list[str] = []

    def register(name: str, function: Predicate) -> None:
        predicate(name)(function)
        added.append(name)

    yield register
    for name in added:
        PREDICATES.pop(name, None)


# ---------------------------------------------------------------------------------------------
# Operators

OPERATOR_CASES: list[tuple[str, Any, Any, bool]] = [
    # eq: type-strict
    ("eq", "DeleteSecret", "DeleteSecret", True),
    ("eq", "DeleteSecret", "deletesecret", False),
    ("eq", True, True, True),
    ("eq", True, "true", False),
    ("eq", True, 1, False),
    ("eq", 1, True, False),
    ("eq", "true", True, False),
    ("eq", 7, 7, True),
    ("eq", 7, 7.0, True),
    ("eq", 7, "7", False),
    ("eq", None, None, True),
    ("eq", "x", None, False),
    ("eq", False, None, False),
    # ne: None (unknown) is "not equal"
    ("ne", True, None, True),
    ("ne", True, True, False),
    ("ne", True, False, True),
    ("ne", True, "true", True),
    ("ne", None, None, False),
    # in / not_in
    ("in", ["a", "b"], "a", True),
    ("in", ["a", "b"], "c", False),
    ("in", ["a"], None, False),
    ("in", [True], "true", False),
    ("in", [True], True, True),
    ("in", [1, "x"], 1, True),
    ("in", [1], True, False),
    ("in", [None], None, True),
    ("not_in", ["a"], "b", True),
    ("not_in", ["a"], "a", False),
    ("not_in", ["a"], None, True),
    # glob: whole-string, case-sensitive, strings only
    ("glob", "prod/*", "prod/db", True),
    ("glob", "prod/*", "dev/prod/db", False),
    ("glob", "prod", "prod/db", False),
    ("glob", "PROD/*", "prod/db", False),
    ("glob", ["a*", "b*"], "bx", True),
    ("glob", "a?c", "abc", True),
    ("glob", "*", None, False),
    ("glob", "*", 5, False),
    # regex: search anywhere, strings only
    ("regex", "marked for deletion", "it was marked for deletion.", True),
    ("regex", ["marked for deletion", "because it was deleted"], "because it was deleted.", True),
    ("regex", "^x$", "ax", False),
    ("regex", ".*", None, False),
    ("regex", ".*", ("a",), False),
    # contains: substring of a string, member of a list
    ("contains", "AWSPENDING", ("AWSCURRENT", "AWSPENDING"), True),
    ("contains", "AWSPENDING", ("AWSCURRENT",), False),
    ("contains", "AWSPENDING", (), False),
    ("contains", "deletion", "marked for deletion", True),
    ("contains", 1, "1", False),
    ("contains", True, (1,), False),
    ("contains", 1, (1, 2), True),
    ("contains", "x", None, False),
    ("contains", "x", 5, False),
    # exists: None is unknown; False is a known value
    ("exists", True, "x", True),
    ("exists", True, None, False),
    ("exists", True, False, True),
    ("exists", False, None, True),
    ("exists", False, "x", False),
    # prefix / suffix
    ("prefix", "arn:aws:iam::", "arn:aws:iam::111122223333:root", True),
    ("prefix", ["a", "b"], "bz", True),
    ("prefix", "a", "ba", False),
    ("prefix", "a", None, False),
    ("suffix", ".amazonaws.com", "lambda.amazonaws.com", True),
    ("suffix", [".com", ".net"], "x.net", True),
    ("suffix", ".com", "x.org", False),
    ("suffix", "x", None, False),
    # ordering: numbers compare with numbers (never booleans), strings with strings
    ("gt", 7, 8, True),
    ("gt", 7, 7, False),
    ("gt", 1.5, 2, True),
    ("gt", 7, True, False),
    ("gt", 0, True, False),
    ("gt", 7, "8", False),
    ("gt", 7, None, False),
    ("ge", 7, 7, True),
    ("ge", 7, 6, False),
    ("ge", "b", 1, False),
    ("lt", 7, 6, True),
    ("lt", 7, 7, False),
    ("lt", "2026-01-01", "2025-12-31T00:00:00Z", True),
    ("lt", "2026-01-01", None, False),
    ("le", 7, 7, True),
    ("le", 7, 8, False),
    ("le", "b", "b", True),
]


@pytest.mark.parametrize(
    ("op", "value", "actual", "expected"),
    OPERATOR_CASES,
    ids=[f"{op}-{value!r}-{actual!r}" for op, value, actual, _ in OPERATOR_CASES],
)
def test_operator(op: str, value: Any, actual: Any, expected: bool) -> None:
    # GIVEN an operator compiled with its value
    test = OPERATORS[op](value)

    # WHEN it is applied to a field value
    result = test(actual)

    # THEN it matches exactly as the table says
    assert result is expected


def test_operator_table_is_exactly_the_documented_set() -> None:
    # GIVEN / WHEN the operator table
    # THEN it holds exactly the contract's operators
    assert set(OPERATORS) == {
        "eq", "ne", "in", "not_in", "glob", "regex", "contains", "exists",
        "prefix", "suffix", "gt", "ge", "lt", "le",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("eq", ["a"], "eq takes a string, number, boolean or null, got list"),
        ("ne", {"a": 1}, "ne takes a string, number, boolean or null, got dict"),
        ("in", [], "in takes a non-empty list"),
        ("in", "a", "in takes a non-empty list"),
        ("in", [["a"]], "in takes a string, number, boolean or null"),
        ("not_in", [], "in takes a non-empty list"),
        ("glob", 5, "glob takes a string or a non-empty list of strings"),
        ("glob", [], "glob takes a string or a non-empty list of strings"),
        ("regex", "(", "regex is not a valid regular expression"),
        ("regex", [1], "regex takes a string or a non-empty list of strings"),
        ("contains", ["a"], "contains takes a string, number, boolean or null"),
        ("exists", "yes", "exists takes true or false"),
        ("prefix", [1], "prefix takes a string"),
        ("suffix", None, "suffix takes a string"),
        ("gt", True, "gt takes a number or a string"),
        ("ge", None, "ge takes a number or a string"),
        ("lt", [1], "lt takes a number or a string"),
        ("le", {}, "le takes a number or a string"),
    ],
)
def test_bad_operator_value_fails_at_load(op: str, value: Any, message: str) -> None:
    # GIVEN a rule whose comparison value does not suit its operator
    # WHEN it is compiled
    error = rule_error(when={"key": "event.name", "op": op, "value": value})

    # THEN the load fails, naming where and why
    assert "test.json: rules[0] (test-rule): when.value: " in error
    assert message in error


def test_operators_through_rule_keys(make_record: RecordFactory) -> None:
    # GIVEN rules comparing real record fields
    record = make_record(
        eventName="DeleteSecret",
        readOnly=False,
        requestParameters={"secretId": "prod/db/orders", "recoveryWindowInDays": 7},
    )
    checks = {
        "window-is-7": {"key": "request.recovery_window_days", "op": "eq", "value": 7},
        "window-lt-10": {"key": "request.recovery_window_days", "op": "lt", "value": 10},
        "read-only-false": {"key": "event.read_only", "op": "eq", "value": False},
        "read-only-not-true-string": {"key": "event.read_only", "op": "eq", "value": "false"},
        "secret-glob": {"key": "secret.name", "op": "glob", "value": "prod/*"},
        "no-force-flag": {
            "key": "request.force_delete_without_recovery",
            "op": "exists",
            "value": False,
        },
        "caller-prefix": {"key": "caller.arn", "op": "prefix", "value": f"arn:aws:iam::{ACCOUNT}:"},
        "time-after": {"key": "event.time", "op": "ge", "value": "2026-01-01T00:00:00Z"},
    }
    ruleset = compile_rules(
        {"rules": [rule(id=name, when=when) for name, when in checks.items()]}, "t"
    )

    # WHEN it is evaluated
    names = set(fired(ruleset, record))

    # THEN every check matches except the string-vs-boolean one
    assert names == set(checks) - {"read-only-not-true-string"}


# ---------------------------------------------------------------------------------------------
# Conditions: all / any / not, nesting


def test_all_any_not_nest(make_record: RecordFactory) -> None:
    # GIVEN a DeleteSecret with a 7-day window, and nested conditions about it
    record = make_record(
        eventName="DeleteSecret",
        requestParameters={"secretId": "prod/db/orders", "recoveryWindowInDays": 7},
    )
    is_delete = {"key": "event.name", "op": "eq", "value": "DeleteSecret"}
    is_get = {"key": "event.name", "op": "eq", "value": "GetSecretValue"}
    short = {"key": "request.recovery_window_days", "op": "lt", "value": 10}
    cases: dict[str, tuple[dict[str, Any], bool]] = {
        "all-true": ({"all": [is_delete, short]}, True),
        "all-one-false": ({"all": [is_delete, is_get]}, False),
        "any-one-true": ({"any": [is_get, short]}, True),
        "any-none-true": ({"any": [is_get, {"not": short}]}, False),
        "not-false": ({"not": is_get}, True),
        "not-not": ({"not": {"not": is_delete}}, True),
        "deep": ({"all": [{"any": [is_get, {"all": [is_delete, {"not": is_get}]}]}, short]}, True),
        "deep-false": ({"not": {"any": [is_get, {"all": [is_delete, short]}]}}, False),
    }
    ruleset = compile_rules(
        {"rules": [rule(id=name, when=when) for name, (when, _) in cases.items()]}
    )

    # WHEN the record is evaluated
    names = set(fired(ruleset, record))

    # THEN exactly the true conditions fire
    assert names == {name for name, (_, expected) in cases.items() if expected}


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("text", "when: a condition must be an object"),
        ({}, "when: a condition must be an object"),
        ({"all": []}, "when.all must be a non-empty list of conditions"),
        ({"any": "x"}, "when.any must be a non-empty list of conditions"),
        (
            {"all": [{"key": "event.name", "op": "eq", "value": "x"}], "any": []},
            "unexpected keys any",
        ),
        (
            {"not": {"key": "event.name", "op": "eq", "value": "x"}, "x": 1},
            "when: unexpected keys x",
        ),
        ({"all": [{"key": "event.name"}]}, "when.all[0]: missing op"),
        ({"op": "eq", "value": "x"}, "when: missing key"),
        ({"key": "event.name", "op": "eq"}, "when: eq needs a value"),
        ({"key": "event.name", "op": "eq", "value": "x", "extra": 1}, "unexpected keys extra"),
        ({"key": 5, "op": "eq", "value": "x"}, "when.key: unknown field 5"),
        ({"key": "event.name", "op": 5, "value": "x"}, "when.op: unknown operator 5"),
        ({"predicate": 5}, "when.predicate: unknown predicate 5"),
        ({"predicate": "policy-allows-public-access", "key": "x"}, "unexpected keys key"),
        ({"not": "text"}, "when.not: a condition must be an object"),
    ],
)
def test_malformed_condition_fails_at_load(when: Any, message: str) -> None:
    # GIVEN a rule with a malformed condition
    # WHEN it is compiled
    error = rule_error(when=when)

    # THEN the message says where and what
    assert message in error


# ---------------------------------------------------------------------------------------------
# Predicates


def test_named_predicate_decides_the_rule(
    make_record: RecordFactory, register_predicate: Register
) -> None:
    # GIVEN a predicate registered for this test and a rule naming it
    register_predicate(
        "is-prod-secret", lambda r, _: r.secret is not None and r.secret.name.startswith("prod/")
    )
    ruleset = compile_one(when={"predicate": "is-prod-secret"})

    # WHEN records on a prod and a dev secret are evaluated
    prod = fired(ruleset, make_record(requestParameters={"secretId": "prod/db"}))
    dev = fired(ruleset, make_record(requestParameters={"secretId": "dev/db"}))

    # THEN only the prod one fires
    assert prod == ["test-rule"]
    assert dev == []


def test_predicate_receives_the_enrichment(
    make_record: RecordFactory, register_predicate: Register
) -> None:
    # GIVEN a predicate that reads the enrichment
    register_predicate(
        "has-owner",
        lambda _, e: e is not None and e.secret is not None and e.secret.owner is not None,
    )
    ruleset = compile_one(when={"predicate": "has-owner"})
    record = make_record()

    # WHEN it is evaluated with and without enrichment
    with_owner = fired(
        ruleset, record, Enrichment(secret=SecretDetails(name="prod/db", owner="team-a"))
    )
    without = fired(ruleset, record)

    # THEN the enrichment decides
    assert with_owner == ["test-rule"]
    assert without == []


def test_registering_a_predicate_twice_fails(register_predicate: Register) -> None:
    # GIVEN a registered predicate
    register_predicate("twice", lambda _r, _e: True)

    # WHEN / THEN registering the same name again raises
    with pytest.raises(ValueError, match="registered twice"):
        predicate("twice")(lambda _r, _e: False)


def test_unknown_predicate_names_it_suggests_and_lists_the_known_ones() -> None:
    # GIVEN a rule naming a misspelt predicate
    # WHEN it is compiled
    error = rule_error(when={"predicate": "policy-allows-public-acess"})

    # THEN the error names it, suggests the near miss and lists what exists
    assert "unknown predicate 'policy-allows-public-acess'" in error
    assert "did you mean 'policy-allows-public-access'?" in error
    assert "known: policy-allows-public-access, policy-grants-other-account" in error


def test_fixture_cleans_predicates_up() -> None:
    # GIVEN / WHEN a later test looks at the registry
    # THEN only the shipped predicates are there (the fixture removed the test ones)
    assert set(PREDICATES) == {"policy-allows-public-access", "policy-grants-other-account"}


# ---------------------------------------------------------------------------------------------
# Severity, outcome, ordering


def test_severity_when_first_match_wins(make_record: RecordFactory) -> None:
    # GIVEN a rule whose severity_when lists two matching entries and one that does not match
    always = {"key": "event.name", "op": "exists", "value": True}
    never = {"key": "event.name", "op": "eq", "value": "Nope"}
    ruleset = compile_one(
        severity="low",
        severity_when=[
            {"severity": "info", "when": never},
            {"severity": "high", "when": always},
            {"severity": "critical", "when": always},
        ],
    )

    # WHEN it fires
    (finding,) = ruleset.evaluate(make_record()).findings

    # THEN the first matching entry sets the severity
    assert finding.severity == "high"
    assert finding.description == "A test rule."
    assert finding.runbook == "Do nothing."


def test_severity_when_no_match_keeps_the_base_severity(make_record: RecordFactory) -> None:
    # GIVEN a rule whose only severity_when entry does not match
    ruleset = compile_one(
        severity="low",
        severity_when=[
            {"severity": "critical", "when": {"key": "event.name", "op": "eq", "value": "x"}}
        ],
    )

    # WHEN / THEN it fires at its base severity
    assert [f.severity for f in ruleset.evaluate(make_record()).findings] == ["low"]


@pytest.mark.parametrize(
    ("severity_when", "message"),
    [
        ("high", "severity_when must be a list of {severity, when}"),
        (
            [{"severity": "high"}],
            "severity_when[0] must be an object with exactly severity and when",
        ),
        (
            [{"severity": "high", "when": {}, "x": 1}],
            "severity_when[0] must be an object with exactly",
        ),
        (
            [{"severity": "urgent", "when": {"key": "event.name", "op": "exists", "value": True}}],
            "severity_when[0].severity must be one of info, low, medium, high, critical, got 'urgent'",
        ),
        (
            [{"severity": "high", "when": {"key": "nope", "op": "eq", "value": 1}}],
            "unknown field 'nope'",
        ),
    ],
)
def test_bad_severity_when_fails_at_load(severity_when: Any, message: str) -> None:
    # GIVEN a malformed severity_when
    # WHEN / THEN the load fails naming it
    assert message in rule_error(severity_when=severity_when)


def test_findings_come_out_most_severe_first(make_record: RecordFactory) -> None:
    # GIVEN three always-firing rules listed low, critical, medium
    ruleset = compile_rules(
        {"rules": [rule(id="a-low", severity="low"), rule(id="b-critical", severity="critical"),
                   rule(id="c-medium", severity="medium")]}
    )  # fmt: skip

    # WHEN a record is evaluated
    findings = ruleset.evaluate(make_record()).findings

    # THEN the findings are sorted by severity, most severe first
    assert [(f.rule_id, f.severity) for f in findings] == [
        ("b-critical", "critical"),
        ("c-medium", "medium"),
        ("a-low", "low"),
    ]


@pytest.mark.parametrize(
    ("outcome", "ok", "error_code", "error_message_only"),
    [
        (None, True, False, False),
        ("success", True, False, False),
        ("failure", False, True, True),
        ("any", True, True, True),
    ],
)
def test_outcome_decides_which_calls_a_rule_sees(
    make_record: RecordFactory,
    outcome: str | None,
    ok: bool,
    error_code: bool,
    error_message_only: bool,
) -> None:
    # GIVEN a rule with this outcome (None: the default), and a successful call, a call with an
    # errorCode, and a service event failure that has only an errorMessage
    ruleset = compile_one(outcome=... if outcome is None else outcome)
    success = make_record()
    failed = make_record(errorCode="AccessDenied", errorMessage="not allowed")
    message_only = make_record(
        eventType="AwsServiceEvent", errorMessage="Error when executing lambda"
    )

    # WHEN each is evaluated
    results = [bool(fired(ruleset, r)) for r in (success, failed, message_only)]

    # THEN the rule fires exactly on the outcomes it asks for
    assert results == [ok, error_code, error_message_only]


def test_bad_outcome_fails_at_load() -> None:
    # GIVEN / WHEN / THEN an unknown outcome fails the load
    assert "outcome must be one of success, failure, any, got 'failed'" in rule_error(
        outcome="failed"
    )


# ---------------------------------------------------------------------------------------------
# Event-name index and wildcard


def test_rules_are_indexed_by_event_name_with_wildcards(make_record: RecordFactory) -> None:
    # GIVEN a rule for DeleteSecret, a wildcard rule, and a rule for two other events
    ruleset = compile_rules(
        {
            "rules": [
                rule(id="on-delete", events=["DeleteSecret"]),
                rule(id="on-everything", events=["*"]),
                rule(id="on-policy", events=["PutResourcePolicy", "DeleteResourcePolicy"]),
                rule(id="star-and-name", events=["GetSecretValue", "*"]),
            ]
        }
    )

    # WHEN the index is asked for several event names
    for_delete = [r.id for r in ruleset.rules_for("DeleteSecret")]
    for_policy = [r.id for r in ruleset.rules_for("DeleteResourcePolicy")]
    for_unknown = [r.id for r in ruleset.rules_for("SomeFutureEvent")]

    # THEN each list is the named rules plus the wildcards, in file order
    assert for_delete == ["on-delete", "on-everything", "star-and-name"]
    assert for_policy == ["on-everything", "on-policy", "star-and-name"]
    assert for_unknown == ["on-everything", "star-and-name"]
    assert set(fired(ruleset, make_record(eventName="SomeFutureEvent"))) == {
        "on-everything",
        "star-and-name",
    }
    assert fired(ruleset, make_record(eventName="CreateSecret")) == [
        "on-everything",
        "star-and-name",
    ]


def test_rule_never_sees_an_event_it_does_not_list(make_record: RecordFactory) -> None:
    # GIVEN a rule for DeleteSecret whose condition is always true
    ruleset = compile_one(events=["DeleteSecret"])

    # WHEN / THEN it does not fire on GetSecretValue
    assert fired(ruleset, make_record(eventName="GetSecretValue")) == []
    assert fired(ruleset, make_record(eventName="DeleteSecret")) == ["test-rule"]


def test_ruleset_lookup_and_length() -> None:
    # GIVEN a rule set of two rules
    ruleset = compile_rules({"rules": [rule(id="one"), rule(id="two")]}, "origin.json")

    # WHEN / THEN it can be measured and searched
    assert len(ruleset) == 2
    assert ruleset.origin == "origin.json"
    found = ruleset.get("two")
    assert found is not None
    assert found.id == "two"
    assert ruleset.get("three") is None


# ---------------------------------------------------------------------------------------------
# Load errors


def test_unknown_operator_names_it_and_suggests() -> None:
    # GIVEN a comparison with a misspelt operator
    # WHEN it is compiled
    error = rule_error(when={"key": "event.name", "op": "eqq", "value": "x"})

    # THEN the error names the operator, suggests the near miss and lists the known ones
    assert "when.op: unknown operator 'eqq'" in error
    assert "(did you mean 'eq'?)" in error
    assert "known: eq, ne, in, not_in, glob, regex" in error


def test_unknown_operator_far_from_any_gets_no_suggestion() -> None:
    # GIVEN an operator nothing like the known ones
    error = rule_error(when={"key": "event.name", "op": "between", "value": "x"})

    # WHEN / THEN it is named without a suggestion
    assert "unknown operator 'between'" in error
    assert "did you mean" not in error


def test_unknown_field_names_it_and_suggests_the_near_miss() -> None:
    # GIVEN a comparison on a misspelt field
    # WHEN it is compiled
    error = rule_error(when={"key": "caller.typ", "op": "eq", "value": "Root"})

    # THEN the error names the field and suggests the real one
    assert error == (
        "test.json: rules[0] (test-rule): when.key: unknown field 'caller.typ' "
        "(did you mean 'caller.type'?)"
    )


def test_unknown_field_deep_in_a_condition_names_its_path() -> None:
    # GIVEN a misspelt field inside any/not
    when = {"any": [{"key": "event.name", "op": "eq", "value": "x"},
                    {"not": {"key": "request.kms_key", "op": "exists", "value": True}}]}  # fmt: skip

    # WHEN it is compiled
    error = rule_error(when=when)

    # THEN the path to it and a suggestion are given
    assert "when.any[1].not.key: unknown field 'request.kms_key'" in error
    assert "did you mean 'request.kms_key_id'?" in error


def test_tag_keys_are_open_ended_but_need_a_name() -> None:
    # GIVEN rules on a tag and on an empty tag name
    ok = compile_one(when={"key": "secret.tags.Owner", "op": "eq", "value": "team-a"})
    error = rule_error(when={"key": "secret.tags.", "op": "eq", "value": "x"})

    # WHEN / THEN the named tag is accepted and the empty one rejected
    assert len(ok) == 1
    assert "unknown field 'secret.tags.'" in error
    assert "secret.tags.<TagKey>" in known_keys()


def test_duplicate_rule_id_fails_at_load() -> None:
    # GIVEN two rules with one id
    document = {"rules": [rule(id="same-id"), rule(id="other"), rule(id="same-id")]}

    # WHEN / THEN the load fails naming the id and the position
    assert load_error(document) == "test.json: rules[2]: duplicate rule id 'same-id'"


@pytest.mark.parametrize("severity", ["severe", "HIGH", "", None, 3])
def test_bad_severity_fails_at_load(severity: Any) -> None:
    # GIVEN a rule with a severity outside info..critical
    # WHEN / THEN the load fails, listing the allowed values
    error = rule_error(severity=severity)
    assert f"severity must be one of info, low, medium, high, critical, got {severity!r}" in error


@pytest.mark.parametrize(
    "rule_id",
    ["Secret-Deleted", "secret_deleted", "secret--deleted", "-secret", "secret-", "secret deleted",
     "", 5, None, "secret-deleted\n"],
)  # fmt: skip
def test_non_kebab_rule_id_fails_at_load(rule_id: Any) -> None:
    # GIVEN a rule whose id is not kebab-case
    # WHEN / THEN the load fails naming the id
    error = rule_error(id=rule_id)
    assert f"id must be kebab-case (like secret-deleted), got {rule_id!r}" in error


@pytest.mark.parametrize("rule_id", ["a", "secret-deleted", "rule-2", "x1-y2-z3"])
def test_kebab_rule_ids_are_accepted(rule_id: str) -> None:
    # GIVEN / WHEN / THEN a kebab-case id loads
    assert compile_one(id=rule_id).rules[0].id == rule_id


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"severty": "high"}, "unknown keys: severty"),
        ({"description": ...}, "description must be a non-empty string"),
        ({"runbook": "   "}, "runbook must be a non-empty string"),
        ({"events": []}, "events must be a non-empty list of event names"),
        ({"events": "DeleteSecret"}, "events must be a non-empty list of event names"),
        ({"events": ["DeleteSecret", ""]}, "events must be a non-empty list of event names"),
        ({"enabled": "no"}, "enabled must be true or false"),
    ],
)
def test_malformed_rule_fails_at_load(overrides: dict[str, Any], message: str) -> None:
    # GIVEN a rule missing or misusing a key
    # WHEN / THEN the load fails naming it
    assert message in rule_error(**overrides)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], 'test.json: expected an object with a "rules" list'),
        ({"rules": {}}, 'test.json: expected an object with a "rules" list'),
        ({"rules": [], "extra": 1}, "test.json: unknown top-level keys: extra"),
        ({"version": 2, "rules": []}, "test.json: unsupported version 2 (expected 1)"),
        ({"rules": ["x"]}, "test.json: rules[0]: a rule must be an object"),
    ],
)
def test_malformed_document_fails_at_load(document: Any, message: str) -> None:
    # GIVEN / WHEN / THEN a malformed rule document fails with a clear message
    assert load_error(document) == message


def test_disabled_rule_is_skipped_but_still_validated(make_record: RecordFactory) -> None:
    # GIVEN a disabled rule next to an enabled one
    ruleset = compile_rules({"rules": [rule(id="off", enabled=False), rule(id="on", enabled=True)]})

    # WHEN a record is evaluated
    names = fired(ruleset, make_record())

    # THEN only the enabled rule is loaded and fires
    assert [r.id for r in ruleset.rules] == ["on"]
    assert names == ["on"]

    # AND a disabled rule with an error still fails the load
    error = rule_error(enabled=False, when={"key": "event.name", "op": "equals", "value": "x"})
    assert "unknown operator 'equals'" in error
    error = rule_error(
        enabled=False, severity_when=[{"severity": "high", "when": {"predicate": "nope"}}]
    )
    assert "unknown predicate 'nope'" in error


# ---------------------------------------------------------------------------------------------
# Rule files


def test_yaml_and_json_rule_files_load_the_same(tmp_path: Path, make_record: RecordFactory) -> None:
    # GIVEN the same rule written as YAML, .yml and JSON
    yaml_text = """\
version: 1
rules:
  - id: big-window
    description: A long recovery window.
    runbook: Nothing to do.
    severity: info
    events: [DeleteSecret]
    when:
      key: request.recovery_window_days
      op: ge
      value: 20
"""
    document = {
        "version": 1,
        "rules": [
            {
                "id": "big-window",
                "description": "A long recovery window.",
                "runbook": "Nothing to do.",
                "severity": "info",
                "events": ["DeleteSecret"],
                "when": {"key": "request.recovery_window_days", "op": "ge", "value": 20},
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text(yaml_text, encoding="utf-8")
    (tmp_path / "rules.YML").write_text(yaml_text, encoding="utf-8")
    (tmp_path / "rules.json").write_text(json.dumps(document), encoding="utf-8")
    record = make_record(
        eventName="DeleteSecret", requestParameters={"secretId": "s", "recoveryWindowInDays": 30}
    )

    # WHEN each is loaded and evaluated
    results = {
        name: fired(load_rules(tmp_path / name), record)
        for name in ("rules.yaml", "rules.YML", "rules.json")
    }

    # THEN all three fire the same rule
    assert results == {name: ["big-window"] for name in results}
    assert load_rules(str(tmp_path / "rules.json")).origin == str(tmp_path / "rules.json")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "rules: [\n  - id: x\n    severity: [", "not valid YAML"),
        ("bad.json", '{"rules": [', "not valid JSON: Expecting value at line 1 column 12"),
        ("empty.yaml", "", 'expected an object with a "rules" list'),
        ("bad-op.yaml", "rules:\n  - {id: x, description: d, runbook: r, severity: low, events: ['*'],\n"
                        "     when: {key: event.name, op: regexp, value: x}}\n", "did you mean 'regex'?"),
    ],
)  # fmt: skip
def test_bad_rule_file_fails_with_its_name(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    # GIVEN a broken rule file
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    # WHEN / THEN loading it raises RuleConfigError naming the file and the problem
    with pytest.raises(RuleConfigError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_missing_rule_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    # GIVEN a path with no file
    missing = tmp_path / "nope.yaml"

    # WHEN / THEN the error says it cannot be read
    with pytest.raises(RuleConfigError, match="cannot read the rule file"):
        load_rules(missing)


def test_default_rules_load_from_the_bundled_file() -> None:
    # GIVEN / WHEN the defaults are loaded without a path
    ruleset = load_rules()

    # THEN they come from the bundled JSON
    assert ruleset.origin == str(DEFAULT_RULES_PATH)
    assert len(ruleset) == 15


# ---------------------------------------------------------------------------------------------
# Isolation: one rule raising never stops the others


def test_raising_predicate_is_a_rule_error_and_other_rules_still_fire(
    make_record: RecordFactory, register_predicate: Register
) -> None:
    # GIVEN a rule whose predicate raises, between two rules that fire
    def explode(record: CloudTrailRecord, enrichment: Any) -> bool:
        raise RuntimeError("boom")

    register_predicate("explodes", explode)
    ruleset = compile_rules(
        {"rules": [rule(id="before", severity="low"), rule(id="broken", when={"predicate": "explodes"}),
                   rule(id="after", severity="high")]}
    )  # fmt: skip

    # WHEN a record is evaluated
    evaluation = ruleset.evaluate(make_record())

    # THEN the broken rule is reported and the others' findings still come out
    assert [f.rule_id for f in evaluation.findings] == ["after", "before"]
    assert evaluation.rule_errors == (RuleError("broken", "RuntimeError: boom"),)


def test_raising_severity_condition_is_isolated_too(
    make_record: RecordFactory, register_predicate: Register
) -> None:
    # GIVEN a rule whose severity_when predicate raises
    def explode(record: CloudTrailRecord, enrichment: Any) -> bool:
        raise KeyError("missing")

    register_predicate("explodes-later", explode)
    ruleset = compile_rules(
        {"rules": [rule(id="sev", severity_when=[{"severity": "high", "when": {"predicate": "explodes-later"}}]),
                   rule(id="fine")]}
    )  # fmt: skip

    # WHEN a record is evaluated
    evaluation = ruleset.evaluate(make_record())

    # THEN it is a rule error and the other rule fires
    assert [f.rule_id for f in evaluation.findings] == ["fine"]
    assert [e.rule_id for e in evaluation.rule_errors] == ["sev"]
    assert evaluation.rule_errors[0].message == "KeyError: 'missing'"


# ---------------------------------------------------------------------------------------------
# Fields


def test_cross_account_field(make_record: RecordFactory) -> None:
    # GIVEN records by a caller in this account, in another account, and with no account
    getter = getter_for("caller.cross_account")
    assert getter is not None
    same = make_record()
    other = make_record(
        userIdentity={"type": "AWSAccount", "principalId": "AROA:x", "accountId": OTHER_ACCOUNT}
    )
    unknown = make_record(userIdentity={"type": "AWSService", "invokedBy": "lambda.amazonaws.com"})

    # WHEN / THEN cross_account is False, True and unknown
    assert getter(same, None) is False
    assert getter(other, None) is True
    assert getter(unknown, None) is None


def test_every_record_field_reads_without_enrichment(make_record: RecordFactory) -> None:
    # GIVEN a record with every part present, and one with no secret and no rotation rules
    full = make_record(
        requestParameters={"secretId": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:x-Ab12Cd",
                           "rotationRules": {"automaticallyAfterDays": 30, "scheduleExpression": "rate(30 days)"}}
    )  # fmt: skip
    bare = make_record(requestParameters=None)

    # WHEN every known key is read from both
    keys = [key for key in known_keys() if not key.endswith("<TagKey>")]
    getters = {key: getter_for(key) for key in keys}

    # THEN nothing raises, enrichment keys are unknown, and record keys carry the values
    for key, getter in getters.items():
        assert getter is not None, key
        getter(full, None)
        getter(bare, None)
    assert getters["secret.name"] is not None
    assert getters["secret.name"](full, None) == "x"
    assert getters["secret.name"](bare, None) is None
    assert getters["request.rotation_after_days"](full, None) == 30  # type: ignore[misc]
    assert getters["request.rotation_after_days"](bare, None) is None  # type: ignore[misc]
    assert getters["event.time"](full, None) == "2026-10-21T17:09:13Z"  # type: ignore[misc]
    assert getters["secret.owner"](full, None) is None  # type: ignore[misc]
    assert getters["account.alias"](full, None) is None  # type: ignore[misc]


def test_enrichment_fields_and_tags(make_record: RecordFactory) -> None:
    # GIVEN rules on enrichment fields and a tag
    ruleset = compile_rules(
        {
            "rules": [
                rule(id="owned", when={"key": "secret.owner", "op": "eq", "value": "team-a"}),
                rule(
                    id="tagged",
                    when={"key": "secret.tags.Environment", "op": "eq", "value": "prod"},
                ),
                rule(id="aliased", when={"key": "account.alias", "op": "prefix", "value": "acme-"}),
            ]
        }
    )
    enrichment = Enrichment(
        secret=SecretDetails(name="prod/db", owner="team-a", tags={"Environment": "prod"}),
        account_alias="acme-prod",
    )
    record = make_record()

    # WHEN evaluated with and without enrichment, and with a secret that has no tags
    enriched = set(fired(ruleset, record, enrichment))
    plain = fired(ruleset, record)
    no_tags = fired(ruleset, record, Enrichment(secret=SecretDetails(name="prod/db")))

    # THEN the enrichment keys match only when the enrichment carries them
    assert enriched == {"owned", "tagged", "aliased"}
    assert plain == []
    assert no_tags == []
