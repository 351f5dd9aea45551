"""The pure parts of the audit reader (``shared.audit.query``) and the narrator: principals,
plans, expressions, sentences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import audit_view as view
from cli.timewindow import parse_time
from shared import narrate
from shared.audit import query as q

NOW = datetime(2026, 11, 23, 12, 30, 45, 123456, tzinfo=UTC)
ALICE = {"type": "IAMUser", "user_name": "alice", "name": "alice"}


# ---------------------------------------------------------------------------------------------
# Time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", datetime(2026, 11, 22, 12, 30, 45, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 16, 12, 30, 45, tzinfo=UTC)),
        ("30m", datetime(2026, 11, 23, 12, 0, 45, tzinfo=UTC)),
        ("2w", datetime(2026, 11, 9, 12, 30, 45, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_relative_dates_and_iso(text: str, expected: datetime) -> None:
    # GIVEN a time as a user types it WHEN parsed THEN a UTC time to the second
    assert parse_time(text, NOW) == expected


def test_a_date_as_until_means_its_last_second() -> None:
    # GIVEN a bare date WHEN parsed as the end of a window THEN its last second
    assert parse_time("2026-11-01", NOW, end_of_day=True) == datetime(
        2026, 11, 1, 23, 59, 59, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["yesterday", "7x", "", "2026-13-01"])
def test_parse_time_rejects_what_it_cannot_read(text: str) -> None:
    # GIVEN nonsense WHEN parsed THEN a ValueError that says what is accepted
    with pytest.raises(ValueError, match="24h, 7d"):
        parse_time(text, NOW)


@given(st.integers(min_value=0, max_value=10_000), st.sampled_from("smhdw"))
def test_relative_times_are_never_after_now(amount: int, unit: str) -> None:
    # GIVEN any relative time WHEN parsed THEN it is at or before now, whole seconds
    value = parse_time(f"{amount}{unit}", NOW)
    assert value <= NOW
    assert value.microsecond == 0


def test_days_back_lists_the_window_newest_first() -> None:
    # GIVEN a window over three calendar days WHEN listing its days THEN newest first
    since = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    assert list(q.days_back(since, since + timedelta(hours=26))) == [
        "2026-11-03",
        "2026-11-02",
        "2026-11-01",
    ]


# ---------------------------------------------------------------------------------------------
# Principals and secrets


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Alice", "alice"),
        ("arn:aws:iam::111122223333:user/team/Alice", "alice"),
        ("arn:aws:iam::111122223333:root", "root"),
        ("arn:aws:iam::111122223333:role/service/Deploy", "deploy"),
        ("arn:aws:sts::111122223333:assumed-role/Deploy/session-1", "deploy"),
        (
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/Carol@Example.com",
            "carol@example.com",
        ),
        ("arn:aws:sts::111122223333:federated-user/bob", "bob"),
        ("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_A_1", None),
    ],
)
def test_principal_lookup_gives_the_indexed_short_name(value: str, name: str | None) -> None:
    # GIVEN an ARN or a name WHEN looked up THEN the by-principal key, and the ARN as a filter
    lookup = q.principal_lookup(value)
    assert lookup.name == name
    assert lookup.arn == (value if value.startswith("arn:") else None)


@pytest.mark.parametrize(
    "value", ["arn:aws:s3:::bucket", "arn:aws:iam::1:group/admins", "arn:aws:sts::1:assumed-role/x"]
)
def test_principal_lookup_rejects_other_arns(value: str) -> None:
    with pytest.raises(ValueError, match="ARN"):
        q.principal_lookup(value)


def test_secret_name_strips_the_arn_and_its_suffix() -> None:
    # GIVEN a full ARN, a name WHEN normalised THEN the indexed name
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-Ab12Cd"
    assert q.secret_name(arn) == "prod/db"
    assert q.secret_name(" prod/db ") == "prod/db"


def test_severities_from_means_that_level_or_higher() -> None:
    assert q.severities_from("high") == ["high", "critical"]
    with pytest.raises(ValueError, match="unknown severity"):
        q.severities_from("urgent")


# ---------------------------------------------------------------------------------------------
# Plans and expressions


def test_plan_prefers_secret_then_rule_then_principal_then_day() -> None:
    who = q.principal_lookup("alice")
    # GIVEN filters of decreasing selectivity WHEN planned THEN the most selective index
    assert q.plan(q.Filters(secret="s", rule="r", principal=who), NOW).index == "by-secret"
    assert q.plan(q.Filters(rule="r", principal=who), NOW).index == "by-rule"
    assert q.plan(q.Filters(principal=who), NOW).index == "by-principal"
    day = q.plan(q.Filters(event_name="DeleteSecret"), NOW)
    assert day.index == "by-day"
    assert len(day.hash_values) == 31
    assert day.hash_values[0] == "2026-11-23"
    assert day.note is not None
    assert day.note.startswith("no index on event name; searched the last 30")


def test_an_explicit_window_on_the_day_index_has_no_note() -> None:
    since = datetime(2026, 11, 20, tzinfo=UTC)
    p = q.plan(q.Filters(severity="high", since=since), NOW)
    assert (p.index, p.note, p.hash_values) == (
        "by-day",
        None,
        ("2026-11-23", "2026-11-22", "2026-11-21", "2026-11-20"),
    )


def test_sso_role_arn_falls_back_to_the_day_index_with_a_note() -> None:
    who = q.principal_lookup("arn:aws:iam::1:role/AWSReservedSSO_Admin_0123")
    p = q.plan(q.Filters(principal=who), NOW)
    assert p.index == "by-day"
    assert p.note is not None
    assert "--principal" in p.note


def test_key_condition_bounds_time_key_inclusively() -> None:
    # GIVEN a window WHEN building the key condition THEN BETWEEN the first and last second
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    expr = q.Expression()
    p = q.Plan("by-secret", "secret_name", ("s",), since, until)
    condition = q.key_condition(expr, "secret_name", "s", p)
    assert condition == "#secret_name = :v0 AND #time_key BETWEEN :v1 AND :v2"
    assert expr.values[":v1"] == {"S": "2026-11-01T00:00:00Z"}
    assert expr.values[":v2"]["S"] > "2026-11-02T00:00:00Z#ffffffff-ffff"
    assert expr.values[":v2"]["S"] < "2026-11-02T00:00:01Z"


def test_filter_expression_holds_only_what_the_index_does_not() -> None:
    # GIVEN every filter on the secret index
    filters = q.Filters(
        secret="s",
        rule="r",
        principal=q.principal_lookup("arn:aws:iam::1:user/alice"),
        severity="critical",
        event_name="DeleteSecret",
    )
    expr = q.Expression()
    # WHEN building the filter
    text = q.filter_expression(expr, filters, "by-secret")
    # THEN the secret is not repeated; the rest are ANDed, with every placeholder defined; the
    # principal's ARN is not among them: no index projects it (it is checked on whole items)
    assert text == (
        "(#rule_0 = :v0 OR #rule_1 = :v0 OR #rule_2 = :v0) AND #principal_name = :v1 AND "
        "#severity IN (:v2) AND #event_name = :v3"
    )
    assert set(expr.names) == {
        "#rule_0", "#rule_1", "#rule_2", "#principal_name", "#severity", "#event_name",
    }  # fmt: skip
    assert set(expr.names.values()) <= set(q.PROJECTED)
    assert q.filter_expression(q.Expression(), q.Filters(secret="s"), "by-secret") is None


def test_whole_items_are_checked_against_every_filter_including_the_arn() -> None:
    # GIVEN an item by an assumed role whose identity is the role ARN
    item: dict[str, Any] = {
        "secret_name": "s",
        "principal_name": "app",
        "principal": "arn:aws:sts::1:assumed-role/app/s1",
        "caller": {"identity_arn": "arn:aws:iam::1:role/app"},
        "rule_1": "r",
        "severity": "high",
        "event_name": "DeleteSecret",
        "account_id": "111122223333",
    }
    role = q.principal_lookup("arn:aws:iam::1:role/app")
    # WHEN / THEN the ARN matches through the identity, the session ARN through the principal
    assert q.matches(item, q.Filters(secret="s", rule="r", principal=role, severity="medium"))
    assert q.matches(item, q.Filters(principal=q.principal_lookup(item["principal"])))
    # and any one filter that differs refuses it
    assert not q.matches(item, q.Filters(principal=q.principal_lookup("arn:aws:iam::1:role/x")))
    assert not q.matches(item, q.Filters(severity="critical"))
    assert not q.matches(item, q.Filters(rule="other"))
    assert not q.matches(item, q.Filters(event_name="GetSecretValue"))
    assert not q.matches(item, q.Filters(account="999999999999"))
    assert not q.matches(item, q.Filters(secret="t"))


def test_the_account_filter_is_on_the_records_account() -> None:
    # GIVEN a look-up of one member account's records on the secret index (central mode)
    expr = q.Expression()

    # WHEN building the filter
    text = q.filter_expression(expr, q.Filters(secret="s", account="111122223333"), "by-secret")

    # THEN it compares the item's account_id, which the audit writer stores for every record
    assert text == "#account_id = :v0"
    assert expr.values == {":v0": {"S": "111122223333"}}


def test_audit_takes_an_account_id_and_refuses_anything_else() -> None:
    # GIVEN the audit command's parser
    from cli.errors import UsageError
    from cli.main import build_parser

    parser = build_parser()

    # WHEN / THEN --account takes a 12-digit ID into the filters, and nothing else
    args = parser.parse_args(["audit", "--account", "111122223333"])
    assert args.account == "111122223333"
    with pytest.raises(UsageError, match="12-digit account ID"):
        parser.parse_args(["audit", "--account", "alias-name"])


def test_merge_newest_interleaves_sorted_streams_once_each() -> None:
    def items(*keys: str) -> list[dict[str, Any]]:
        return [{"time_key": k, "event_id": k[-1]} for k in keys]

    merged = q.merge_newest(
        iter(s) for s in (items("3#c", "1#a"), items("4#d", "3#c"), items("2#b"))
    )
    assert [i["event_id"] for i in merged] == ["d", "c", "b", "a"]


# ---------------------------------------------------------------------------------------------
# Sentences


def item(event_name: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "event_name": event_name,
        "event_time": "2026-11-01T10:00:00Z",
        "caller": ALICE,
        "source": {"ip": "203.0.113.7"},
    }
    base.update(extra)
    return base


SSO = {
    "type": "AssumedRole",
    "sso_user": "alice@example.com",
    "sso_permission_set": "AdministratorAccess",
    "role_name": "AWSReservedSSO_AdministratorAccess_0123",
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            item("CreateSecret", caller=SSO),
            "created by alice@example.com (SSO, permission set AdministratorAccess) from 203.0.113.7",
        ),
        (item("PutSecretValue"), "value changed by IAM user alice from 203.0.113.7"),
        (
            item("UpdateSecret", request={"new_version_id": "v"}),
            "value changed by IAM user alice from 203.0.113.7",
        ),
        (
            item("UpdateSecret", request={"kms_key_id": "k"}),
            "encryption key changed to k by IAM user alice from 203.0.113.7",
        ),
        (item("UpdateSecret"), "details updated by IAM user alice from 203.0.113.7"),
        (
            item("RotateSecret", request={"rotation_after_days": 30}),
            "rotation set up (every 30 days) by IAM user alice from 203.0.113.7",
        ),
        (item("RotateSecret"), "rotation started by IAM user alice from 203.0.113.7"),
        (item("CancelRotateSecret"), "rotation turned off by IAM user alice from 203.0.113.7"),
        (
            item("RotationStarted", caller={"invoked_by": "secretsmanager.amazonaws.com"}),
            "rotation started",
        ),
        (item("RotationSucceeded"), "rotation succeeded"),
        (item("RotationFailed", error_message="lambda broke"), "rotation failed: lambda broke"),
        (item("TestRotationFailed", error_message="nope"), "test rotation failed: nope"),
        (item("TestRotationSucceeded"), "test rotation succeeded"),
        (
            item("DeleteSecret", request={"recovery_window_days": 7}),
            "deletion scheduled (7-day recovery window) by IAM user alice from 203.0.113.7",
        ),
        (
            item("DeleteSecret", request={"force_delete_without_recovery": True}),
            "deleted immediately (no recovery window) by IAM user alice from 203.0.113.7",
        ),
        (
            item(
                "GetSecretValue",
                error_code="InvalidRequestException",
                facts={"read_while_pending_deletion": True},
            ),
            "read while pending deletion by IAM user alice from 203.0.113.7 — refused (InvalidRequestException)",
        ),
        (item("GetSecretValue", source={"ip": "AWS Internal"}), "value read by IAM user alice"),
        (
            item("RestoreSecret", caller={"type": "Root"}),
            "restored (its deletion cancelled) by the root user from 203.0.113.7",
        ),
        (
            item(
                "PutResourcePolicy",
                facts={"policy_public": True, "policy_other_accounts": False},
            ),
            "policy changed (public!) by IAM user alice from 203.0.113.7",
        ),
        (
            item(
                "PutResourcePolicy",
                facts={"policy_public": False, "policy_other_accounts": True},
            ),
            "policy changed (grants another account) by IAM user alice from 203.0.113.7",
        ),
        (item("DeleteResourcePolicy"), "policy removed by IAM user alice from 203.0.113.7"),
        (item("TagResource"), "tagged by IAM user alice from 203.0.113.7"),
        (item("UntagResource"), "tags removed by IAM user alice from 203.0.113.7"),
        (
            item(
                "ReplicateSecretToRegions",
                request={"add_replica_regions": ["us-east-1", "eu-west-2"]},
            ),
            "replicated to us-east-1, eu-west-2 by IAM user alice from 203.0.113.7",
        ),
        (
            item("RemoveRegionsFromReplication", request={"remove_replica_regions": ["us-east-1"]}),
            "replicas removed from us-east-1 by IAM user alice from 203.0.113.7",
        ),
        (
            item("StopReplicationToReplica"),
            "replication stopped (replica promoted to a standalone secret) by IAM user alice from 203.0.113.7",
        ),
        (
            item("UpdateSecretVersionStage", request={"version_stages": ["AWSCURRENT"]}),
            "version stage AWSCURRENT moved by IAM user alice from 203.0.113.7",
        ),
        (
            item(
                "DescribeSecret",
                caller={"type": "AssumedRole", "role_name": "ci", "session_name": "run-1"},
            ),
            "described by role ci (session run-1) from 203.0.113.7",
        ),
        (
            item("DeleteSecret", error_code="AccessDenied", source={}),
            "deletion scheduled (30-day recovery window) by IAM user alice — refused (AccessDenied)",
        ),
        ({"kind": "rejected", "error": "bad JSON"}, "unreadable record kept for replay: bad JSON"),
    ],
)
def test_one_sentence_per_event(record: dict[str, Any], expected: str) -> None:
    # GIVEN an audit item WHEN told as a sentence THEN what, by whom, from where, refused or not
    assert narrate.sentence(record) == expected


def test_the_narrator_reads_facts_not_rules() -> None:
    # GIVEN a public policy change recorded under a rule document that rates it "low"
    recorded = item(
        "PutResourcePolicy",
        facts={"policy_public": True},
        findings=[{"rule": "my-policy-rule", "severity": "low"}],
    )
    # WHEN told  THEN it is still public: the sentence comes from what happened
    assert narrate.sentence(recorded).startswith("policy changed (public!)")
    # AND a "critical" finding on a policy that is not public does not make it so
    quiet = item(
        "PutResourcePolicy", findings=[{"rule": "resource-policy-changed", "severity": "critical"}]
    )
    assert narrate.sentence(quiet).startswith("policy changed by")


def test_summary_and_timeline_rows_are_flat_strings() -> None:
    record = item(
        "DeleteSecret",
        secret_name="prod/db",
        severity="high",
        findings=[{"rule": "secret-deleted", "severity": "high"}],
    )
    assert view.summary_row(record) == {
        "time": "2026-11-01 10:00:00Z",
        "event_name": "DeleteSecret",
        "secret": "prod/db",
        "principal": "alice",
        "source_ip": "203.0.113.7",
        "severity": "high",
        "rules": "secret-deleted",
        "error": "",
        "event_id": "e1",
    }
    assert view.timeline_row(record)["findings"] == "high: secret-deleted"


def test_a_day_by_day_plan_longer_than_the_cap_is_cut_and_says_so() -> None:
    # GIVEN a window of 99999 days that no index serves
    since = NOW - timedelta(days=99999)
    # WHEN planned with the default cap
    p = q.plan(q.Filters(event_name="DeleteSecret", since=since), NOW)
    # THEN only the last 90 days are queried, newest first, and the note names the way out
    assert len(p.hash_values) == q.DEFAULT_MAX_DAYS == 90
    assert p.hash_values[0] == "2026-11-23"
    assert p.hash_values[-1] == "2026-08-26"
    assert p.since == datetime(2026, 8, 26, tzinfo=UTC)
    assert p.note is not None
    assert "searched only the last 90 days" in p.note
    assert "--max-days 100000" in p.note


def test_max_days_raises_the_cap_deliberately() -> None:
    since = datetime(2026, 5, 1, tzinfo=UTC)
    # GIVEN 207 days and a cap of 365 WHEN planned THEN every day, and no note
    p = q.plan(q.Filters(severity="high", since=since, max_days=365), NOW)
    assert len(p.hash_values) == 207
    assert p.note is None
    # AND the indexed look-ups are never capped (one query answers them)
    assert q.plan(q.Filters(secret="s", since=since, max_days=1), NOW).since == since
