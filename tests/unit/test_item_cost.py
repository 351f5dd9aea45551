"""What an audit item costs to write, measured by DynamoDB's size rules (scripts/ddb_cost.py).

The figures are docs/cost.md's: a routine read is at most 1 KB and 3 write units (the table and
the two indexes it lands in), down from 12 with whole-item projections.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scripts.ddb_cost import Index, cost, index_entry, item_size, template_indexes, write_units

from shared.audit.codec import from_item, to_item
from shared.audit.items import (
    ROUTINE_USER_AGENT_MAX,
    build_item,
    finding_upgrade,
    is_routine_read,
)
from shared.models import Evaluation, Finding
from shared.narrate import sentence
from shared.normalise import normalise
from shared.settings import Settings
from tests.conftest import build_raw
from tests.cost_samples import (
    NOW,
    RETENTION_DAYS,
    ROUTINE_DAYS,
    enrichment,
    finding,
    read_burst_count,
    rejected,
    routine_raw,
    routine_read,
)

# --- the calculator -----------------------------------------------------------------------------


def test_sizes_follow_the_documented_rules() -> None:
    # GIVEN one attribute of each type, sized by hand from the developer guide's rules
    item: dict[str, Any] = {
        "name": {"S": "héllo"},  # 4 + 6 UTF-8 bytes
        "n": {"N": "1234500"},  # 1 + ceil(5 significant digits / 2) + 1 = 5
        "ok": {"BOOL": True},  # 2 + 1
        "m": {"M": {"a": {"S": "xy"}}},  # 1 + 3 + (1 + 2) + 1 = 8
        "l": {"L": [{"S": "ab"}, {"N": "7"}]},  # 1 + 3 + (2 + 1) + (2 + 1) = 10
    }
    # WHEN / THEN the calculator agrees, and a write unit is one KB rounded up
    assert item_size(item) == 10 + 5 + 3 + 8 + 10
    assert [write_units(n) for n in (1, 1024, 1025, 2048, 2049)] == [1, 1, 2, 2, 3]


def test_index_entries_hold_keys_and_projected_attributes_only() -> None:
    # GIVEN an item and an INCLUDE index, and an item without the index's key
    item = {k: {"S": k} for k in ("event_id", "g", "time_key", "a", "b")}
    index = Index("i", ("g", "time_key"), "INCLUDE", ("a",))
    # WHEN / THEN the entry is the keys plus the included attribute; a sparse item has none
    assert index_entry(item, index, ("event_id",)) == {
        k: {"S": k} for k in ("event_id", "g", "time_key", "a")
    }
    assert index_entry({"event_id": {"S": "x"}}, index, ("event_id",)) is None


# --- routine reads -----------------------------------------------------------------------------


def test_a_routine_read_is_at_most_1_kb_and_3_write_units() -> None:
    # GIVEN the routine read of the cost samples (long Java SDK user agent, VPC endpoint,
    # enrichment of a tagged, rotated production secret)
    item = routine_read()

    # WHEN its cost is measured under template.yaml's indexes
    figures = cost(item)

    # THEN one write unit on the table and one on each of the two indexes it lands in
    assert figures.size <= 1024
    assert figures.table_units == 1
    assert figures.index_units == {"by-secret": 1, "by-principal": 1}
    assert figures.write_units == 3


def test_findings_and_rejected_records_cost_one_unit_per_index_entry() -> None:
    # GIVEN a deletion finding and a rejected record
    deletion, kept = cost(finding()), cost(rejected())
    # WHEN / THEN their index entries are keys and filter attributes only: 1 unit each
    assert set(deletion.index_units) == {"by-secret", "by-principal", "by-day", "by-rule-0"}
    assert set(deletion.index_units.values()) == {1}
    assert kept.index_units == {"by-day": 1}


def test_no_index_projects_a_whole_item() -> None:
    # GIVEN the template's indexes
    _, indexes = template_indexes()
    # WHEN / THEN none projects ALL (a whole item per entry is what made a read cost 12 units)
    assert indexes
    assert {index.projection for index in indexes} == {"INCLUDE"}


def test_a_routine_read_keeps_what_the_cli_the_narrator_and_deletion_impact_read() -> None:
    # GIVEN the same read stored as a routine read and (with a finding) as a full item
    record = normalise(routine_raw())
    routine = from_item(routine_read())
    full = build_item(
        record,
        Evaluation(findings=(Finding("x", "low", "d", "r"),)),
        enrichment().to_dict(),
        route="cloudwatch-logs",
        retention_days=RETENTION_DAYS,
        now=NOW,
    )

    # WHEN / THEN it tells the same sentence, keeps the reader's identity and time, the keys
    assert sentence(routine) == sentence(full)
    for key in ("event_id", "event_time", "time_key", "secret_name", "principal_name"):
        assert routine[key] == full[key]
    assert routine["principal"] == full["principal"]
    assert routine["caller"]["identity_arn"] == full["caller"]["identity_arn"]
    assert routine["source"]["ip"] == full["source"]["ip"]
    assert routine["enrichment"] == {"account_alias": "acme-payments-prod"}
    # AND it leaves out the by-day key, the secret's snapshot and every empty attribute
    assert "day" not in routine
    assert "threshold_counts" not in routine
    assert all(value not in ("", [], {}) for value in routine.values())
    assert len(routine["source"]["user_agent"].encode()) <= ROUTINE_USER_AGENT_MAX
    assert full["source"]["user_agent"] == record.user_agent  # a finding keeps all of it


def test_routine_reads_expire_after_their_own_retention_findings_after_retention_days() -> None:
    # GIVEN the routine read and the deletion of the samples (event time 2026-11-16 08:44:03)
    event_time = datetime(2026, 11, 16, 8, 44, 3, tzinfo=UTC)
    routine, deletion = from_item(routine_read()), from_item(finding())
    # WHEN / THEN the read goes after RoutineReadRetentionDays, the finding after RetentionDays
    assert routine["expires_at"] == int((event_time + timedelta(days=ROUTINE_DAYS)).timestamp())
    assert deletion["expires_at"] == int((event_time + timedelta(days=RETENTION_DAYS)).timestamp())


def test_a_routine_retention_above_retention_days_counts_as_retention_days() -> None:
    # GIVEN a routine retention longer than the retention of everything
    record = normalise(routine_raw())
    # WHEN building the read's item
    item = build_item(
        record,
        Evaluation(),
        None,
        route="cloudwatch-logs",
        retention_days=30,
        routine_retention_days=90,
        now=NOW,
    )
    # THEN RetentionDays bounds it
    assert item["expires_at"] == int((record.event_time + timedelta(days=30)).timestamp())


@pytest.mark.parametrize(
    ("overrides", "routine"),
    [
        ({}, True),  # GetSecretValue that succeeded
        ({"eventName": "DescribeSecret"}, True),
        ({"errorCode": "AccessDeniedException", "errorMessage": "no"}, False),  # a failed read
        ({"errorMessage": "marked for deletion"}, False),  # a message without a code
        ({"eventName": "DeleteSecret", "readOnly": False}, False),
        ({"eventName": "DeleteSecret"}, False),  # readOnly says true, the name says write
        ({"readOnly": False}, False),
    ],
)
def test_which_records_are_routine_reads(overrides: dict[str, Any], routine: bool) -> None:
    # GIVEN a record, with no finding
    record = normalise(build_raw(**overrides))
    # WHEN / THEN only successful reads are routine reads
    assert is_routine_read(record, Evaluation()) is routine


def test_a_read_with_a_finding_is_a_full_item_in_every_index() -> None:
    # GIVEN a successful read on which a rule fired, and one only counted by a threshold
    record = normalise(routine_raw())
    fired = Finding("read-burst", "medium", "d", "r", state="fired")
    # WHEN building both
    alerted = build_item(
        record, Evaluation(findings=(fired,)), None, route="r", retention_days=400, now=NOW
    )
    counted = build_item(
        record,
        Evaluation(findings=(read_burst_count(),)),
        None,
        route="r",
        retention_days=400,
        now=NOW,
    )
    # THEN the finding's item is whole, with its day; the counted one is a routine read
    assert alerted["day"] == "2026-11-16"
    assert alerted["event_source"] == "secretsmanager.amazonaws.com"
    assert "day" not in counted


def test_a_finding_added_later_moves_a_routine_read_into_the_day_index_and_retention() -> None:
    # GIVEN a stored routine read, and a stored deletion
    routine, deletion = from_item(routine_read()), from_item(finding())
    # WHEN a later delivery adds a finding to each
    upgrade = finding_upgrade(routine, RETENTION_DAYS, NOW)
    # THEN the read gains its day and the findings' retention; the deletion needs nothing
    event_time = datetime(2026, 11, 16, 8, 44, 3, tzinfo=UTC)
    assert upgrade == {
        "day": "2026-11-16",
        "expires_at": int((event_time + timedelta(days=RETENTION_DAYS)).timestamp()),
    }
    assert finding_upgrade(deletion, RETENTION_DAYS, NOW) == {}


def test_the_item_survives_the_codec() -> None:
    # GIVEN / WHEN a routine read through DynamoDB JSON and back
    item = from_item(routine_read())
    # THEN it is unchanged (what is stored is what is read)
    assert from_item(to_item(item)) == item


def test_settings_read_the_routine_retention() -> None:
    # GIVEN the functions' environment with and without the variable
    env = {"AUDIT_TABLE_NAME": "t", "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t"}
    # WHEN / THEN it is read, 90 when absent (a stack from before the parameter)
    assert (
        Settings.from_env({**env, "ROUTINE_READ_RETENTION_DAYS": "30"}).routine_read_retention_days
        == 30
    )
    assert Settings.from_env(env).routine_read_retention_days == 90
