"""The chat copy of every message: an Amazon Q Developer in chat applications custom
notification (version 1.0, source custom, content and metadata), published as the https variant
when the stack has a Slack or Teams channel, inert whatever the caller put in the event."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.chat import DESCRIPTION_MAX, DOCUMENT_MAX, STEP_MAX, TITLE_MAX, chat_notification
from shared.compose import MACHINE_PROTOCOLS, build_alert, to_sns_message
from shared.messages import build_digest, build_resolution
from shared.stateful import Resolution
from shared.text import chat
from tests.unit.test_notify import CRITICAL, make_enrichment, make_record, sso_caller

ROOT = Path(__file__).resolve().parents[2]
# What a chat client would turn into a link, a mention or a broadcast if it reached it raw:
# Slack's <url|text>, <@U…>, <!here>; Markdown [text](url); @mentions; bare URLs.
SLACK_SPECIAL = re.compile(r"<[^>]*>")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")
MENTION = re.compile(r"@(here|channel|everyone|\w)")
HOSTILE = (
    "prod/<https://evil.example/|Click me> <@U0123> <!channel> @here [x](https://evil.example) `"
)


def document(**record_changes: Any) -> dict[str, Any]:
    record = make_record(**record_changes)
    return chat_notification(build_alert(record, CRITICAL, make_enrichment()))


def caller_text(doc: dict[str, Any]) -> list[str]:
    """Every text field of the notification that a client renders."""
    content = doc["content"]
    return [content["title"], content["description"], *content["nextSteps"]]


def test_an_alert_is_a_custom_notification_with_title_who_what_where_and_links() -> None:
    # GIVEN an ordinary critical deletion alert
    doc = document()

    # WHEN / THEN it is in the service's format
    assert doc["version"] == "1.0"
    assert doc["source"] == "custom"
    content = doc["content"]
    assert content["textType"] == "client-markdown"
    # AND the title says the severity, the rule and the secret
    assert content["title"] == (
        ":rotating_light: *CRITICAL* `secret-deleted`: `prod/payments/db-password`"
    )
    # AND the description says what, who and where
    description = content["description"]
    assert "*What:* `DeleteSecret` on `prod/payments/db-password`" in description
    assert "*Who:* `arn:aws:sts::111122223333:assumed-role/" in description
    assert "alice＠example.com`" in description  # an @ never mentions anyone
    assert "account `111122223333` (`Production`), Region `eu-west-1`" in description
    assert "from `203.0.113.7`" in description
    # AND the next steps carry the console links to the secret and to the CloudTrail event
    steps = content["nextSteps"]
    assert steps[0] == (
        "Open the secret in the console: https://eu-west-1.console.aws.amazon.com/"
        "secretsmanager/secret?name=prod%2Fpayments%2Fdb-password&region=eu-west-1"
    )
    assert steps[1] == (
        "See the CloudTrail event: https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home"
        "?region=eu-west-1#/events/3f2c1e9a-0000-4000-8000-000000000001"
    )
    assert "secretwatch audit show 3f2c1e9a-0000-4000-8000-000000000001" in steps[2]
    # AND the metadata threads it under its own alert id, with the secret as related resource
    metadata = doc["metadata"]
    assert metadata["threadId"] == doc["id"]
    assert len(doc["id"]) > 10
    assert metadata["eventType"] == "alert"
    assert metadata["relatedResources"] == [make_record().secret.arn]  # type: ignore[union-attr]
    assert content["keywords"] == ["critical", "secret-deleted", "DeleteSecret", "alert"]


def test_a_hostile_secret_name_and_principal_inject_no_link_mention_or_markup() -> None:
    # GIVEN a secret name and a principal written to be links, mentions and code-span breakers
    record = make_record()
    assert record.secret is not None
    hostile = replace(
        record,
        secret=replace(record.secret, name=HOSTILE, arn=None),
        caller=sso_caller(principal="arn:aws:sts::1:assumed-role/r/<!here>@channel\n*Who:* me"),
        user_agent="curl <https://evil.example|docs>",
    )

    # WHEN the chat copy is built
    doc = chat_notification(build_alert(hostile, CRITICAL, make_enrichment()))

    # THEN no rendered field holds a Slack control sequence, a Markdown link, a mention, a bare
    # caller-given URL or a forged line
    for text in caller_text(doc):
        assert not SLACK_SPECIAL.search(text), text
        assert not MARKDOWN_LINK.search(text), text
        assert not MENTION.search(text), text
        assert "https://evil" not in text, text
    lines = doc["content"]["description"].split("\n")
    assert len([line for line in lines if line.startswith("*Who:*")]) == 1
    # AND every caller value stays inside an intact inline-code span (backticks paired per line)
    for line in doc["content"]["description"].split("\n"):
        assert line.count("`") % 2 == 0, line
    # AND the name is still readable, escaped
    assert "&lt;https[:]//evil.example/|Click me&gt;" in doc["content"]["description"]


def test_the_one_policy_escapes_chat_text() -> None:
    # GIVEN / WHEN / THEN the policy's chat form: inline code, Slack's three escapes, no
    # backtick, no mention, no link, control characters visible
    assert chat("a<b>&c", 100) == "`a&lt;b&gt;&amp;c`"
    assert chat("x`y", 100) == "`x'y`"
    assert chat("@here", 100) == "`＠here`"
    assert chat("see https://evil.example", 100) == "`see https[:]//evil.example`"
    assert chat("line\nforged\u202e", 100) == "`line\\nforged\\u202e`"
    assert chat("", 100) == "-"
    assert chat("plain *text*", 100, code=False) == "plain *text*"


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=400), limit=st.integers(min_value=8, max_value=300))
def test_chat_text_is_bounded_in_bytes_and_never_broken(value: str, limit: int) -> None:
    # GIVEN any text and any bound
    text = chat(value, limit)

    # WHEN / THEN it fits the bound in UTF-8 bytes, is one inline-code span, and holds no
    # character that makes markup, links or mentions
    assert len(text.encode("utf-8")) <= limit
    assert text == "-" or (text.startswith("`") and text.endswith("`") and text.count("`") == 2)
    assert not set(text) & set("<>@\n\r")
    assert "://" not in text
    assert "](" not in text


def test_an_enormous_hostile_record_stays_within_the_bounds() -> None:
    # GIVEN a record whose every caller field is huge and multi-byte
    huge = "秘" * 20_000 + "<@U1>"
    record = make_record(user_agent=huge, error_code="X" * 5000, error_message=huge)
    assert record.secret is not None
    record = replace(record, secret=replace(record.secret, name=huge))

    # WHEN the chat copy is built
    doc = chat_notification(build_alert(record, CRITICAL, make_enrichment()))

    # THEN every field and the whole document are within their byte bounds
    content = doc["content"]
    assert len(content["title"].encode()) <= TITLE_MAX
    assert len(content["description"].encode()) <= DESCRIPTION_MAX
    assert all(len(step.encode()) <= STEP_MAX for step in content["nextSteps"])
    assert len(json.dumps(doc).encode()) <= DOCUMENT_MAX
    for line in content["description"].split("\n"):
        assert line.count("`") % 2 == 0, line  # a cut never leaves a code span open


def test_no_link_without_a_well_formed_region_or_event_id() -> None:
    # GIVEN a record whose event id is not a CloudTrail id
    doc = document(event_id="not-an-id/../x")

    # WHEN / THEN the CloudTrail link is left out rather than built from it
    assert not any("cloudtrail" in step for step in doc["content"]["nextSteps"])


def test_a_digest_reads_well_and_threads_under_its_alert() -> None:
    # GIVEN a closed dedup window with a hostile principal
    window = {
        "rule_id": "access-while-pending-deletion",
        "first_alert": "a1b2c3d4e5f6a7b8",
        "first_event": "3f2c1e9a-0000-4000-8000-000000000001",
        "opened_at": 1_764_000_000_000,
        "last_at": 1_764_000_600_000,
        "window_end": 1_764_003_600_000,
        "principals": ["arn:aws:iam::1:user/<!channel>"],
        "source_ips": ["203.0.113.7"],
        "event_names": ["GetSecretValue"],
        "key_text": "prod/db",
    }

    # WHEN the digest's chat copy is built
    doc = chat_notification(build_digest(window, "digest-id-1", 7))

    # THEN it says how many repeats of which alert, names who, and threads under that alert
    content = doc["content"]
    assert content["title"] == ":repeat: *DIGEST* `access-while-pending-deletion`: 7 repeat(s)"
    assert "7 more finding(s)" in content["description"]
    assert "`arn:aws:iam::1:user/&lt;!channel&gt;`" in content["description"]
    assert doc["metadata"]["threadId"] == "a1b2c3d4e5f6a7b8"
    assert doc["metadata"]["eventType"] == "digest"


def test_a_resolution_reads_well_and_threads_under_the_alert_it_closes() -> None:
    # GIVEN a resolution of an open rotation-failed alert
    resolution = Resolution(
        key="resolved:rotation-failed",
        alert_id="resolution-id-1",
        resolved_alert_id="opened-alert-id",
        rule_id="rotation-failed",
        by_rule="rotation-succeeded",
        by="secretsmanager.amazonaws.com",
        opened_event_id="e-1",
        opened_ms=1_764_000_000_000,
        resolved_ms=1_764_000_000_000 + 3 * 3600 * 1000 + 60_000,
        secret="prod/db",
    )

    # WHEN its chat copy is built
    doc = chat_notification(build_resolution(make_record(), resolution))

    # THEN it says what closed what, after how long, under the closed alert's thread
    content = doc["content"]
    assert content["title"] == ":white_check_mark: *RESOLVED* `rotation-failed`: `prod/db`"
    assert "3h 1m after it opened" in content["description"]
    assert doc["metadata"]["threadId"] == "opened-alert-id"


def test_the_https_variant_is_the_chat_copy_only_when_asked() -> None:
    # GIVEN one alert
    alert = build_alert(make_record(), CRITICAL, make_enrichment())

    # WHEN it is written for a stack without and with a chat channel
    plain = json.loads(to_sns_message(alert))
    chat_stack = json.loads(to_sns_message(alert, https_format="chat"))

    # THEN without one every machine protocol gets the machine document, as before
    assert {json.loads(plain[p])["alert_id"] for p in MACHINE_PROTOCOLS} == {alert.alert_id}
    # AND with one only https changes: e-mail, SMS, queues and functions are untouched
    assert json.loads(chat_stack["https"])["source"] == "custom"
    for protocol in ("default", "email", "sms", *(p for p in MACHINE_PROTOCOLS if p != "https")):
        assert chat_stack[protocol] == plain[protocol], protocol


@pytest.mark.parametrize("kind", ["alert", "selftest"])
def test_every_kind_has_a_title_and_a_description(kind: str) -> None:
    # GIVEN an alert or the self-test's alert
    alert = build_alert(make_record(), CRITICAL, make_enrichment())
    if kind == "selftest":
        alert = replace(alert, attributes={**alert.attributes, "kind": "selftest"})

    # WHEN / THEN the chat copy has its title and description, and says its kind
    doc = chat_notification(alert)
    assert doc["content"]["title"]
    assert doc["content"]["description"]
    assert doc["metadata"]["eventType"] == kind


def test_a_stack_without_chat_never_loads_the_chat_module() -> None:
    # GIVEN a fresh interpreter (this module has imported shared.chat already)
    probe = (
        "import sys, json\n"
        "from tests.unit.test_notify import CRITICAL, make_enrichment, make_record\n"
        "from shared.compose import build_alert, to_sns_message\n"
        "to_sns_message(build_alert(make_record(), CRITICAL, make_enrichment()))\n"
        "print(json.dumps('shared.chat' in sys.modules))\n"
    )

    # WHEN an alert is written for a stack without a chat channel
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # THEN the chat module was never imported: cold start pays for it only on chat stacks
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False
