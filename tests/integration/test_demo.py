"""`make demo` runs `secretwatch demo`: it must finish, show each part, and prove idempotency."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def isolated_environment() -> Iterator[None]:
    """The demo configures the process like a Lambda container; put everything back after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from shared.runtime import get_pipeline
    from shared.settings import get_settings

    get_settings.cache_clear()
    get_pipeline.cache_clear()


@pytest.mark.integration
@pytest.mark.usefixtures("isolated_environment")
def test_demo_runs_every_part_and_adds_nothing_the_second_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN nothing but this checkout (no AWS account)
    # WHEN the demo runs
    status = main(["demo"])
    out, err = capsys.readouterr()
    # THEN it exits 0 and shows the stack, events, alerts, a look-up and idempotency
    assert status == 0, err
    for heading in (
        "1. The stack",
        "2. Events",
        # 22 of Secrets Manager, and the two trail samples: the local stack subscribes to no trail
        # of its own, so stopping any trail is tampering with its source (README)
        "3. Alerts: 24 published",
        "4. Audit look-up",
        "5. Idempotency",
    ):
        assert heading in out
    assert "Subject: [CRITICAL]" in out
    # AND the look-up and the timeline come from the real `secretwatch audit` command
    assert "$ secretwatch audit --secret prod/rds/orders-primary" in out
    assert "prod/rds/orders-primary: 6 event(s), oldest first" in out
    assert "nothing new: no second audit record, no second alert" in out
    # AND the running stack is tuned: a pushed rule fires, CI's deletion is suppressed, undone
    tuning = out.split("6. Tuning the running stack", 1)[1]
    assert "published version 2 of /secretwatch/secretwatch-local/rules" in tuning
    assert "│ ledger-secret-created" in tuning
    assert "│ secret-deleted" not in tuning
    assert "suppressed by exception ci-cleanup, not alerted" in tuning
    assert "version 3 of /secretwatch/secretwatch-local/rules now holds version 1" in tuning
    # AND the self-test passes every hop through the template's SelfTestRule, and SMS gets none
    proof = out.split("7. Self-test", 1)[1]
    assert "ok   alert published" in proof
    assert "passed in" in proof
    assert "SMS subscriber received 0 self-test message(s)" in proof
    # AND the rule state: a storm is one alert and one digest, a burst of denials crosses its
    # threshold once, a deletion names its recent reader, and the restore resolves it
    quiet = out.split("8. Quiet but never blind", 1)[1]
    assert "│ 1 alert published (kind alert); the 29 repeats are folded into it" in quiet
    assert "│ Subject: [DIGEST] access-while-pending-deletion: 29 repeat(s)" in quiet
    assert quiet.count("access-denied-burst") == 1
    assert "│ Subject: [CRITICAL] secret-deleted: prod/checkout/stripe-key" in quiet
    assert "read 3 times in the last 7 days by 1 principal" in quiet
    assert "│ [resolved] [RESOLVED] secret-deleted: prod/checkout/stripe-key" in quiet
    assert "Traceback" not in out + err
    # AND the Lambda functions' JSON logs and metrics stay out of the report
    assert '"level":' not in out + err
    assert '"_aws":' not in out


@pytest.mark.integration
def test_demo_with_a_missing_events_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a folder that does not exist, and one without payloads
    for folder in (tmp_path / "nonexistent", tmp_path):
        # WHEN the demo is pointed at it THEN exit 2 with one line, and nothing is sent
        assert main(["demo", "--events", str(folder)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"secretwatch: error: --events {folder}:")


@pytest.mark.integration
def test_demo_keep_leaves_a_stack_the_printed_commands_work_against(tmp_path: Path) -> None:
    # GIVEN `secretwatch demo --keep` running in another process
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--keep"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        commands: list[str] = []
        for line in demo.stdout:
            if line.startswith("  AWS_ACCESS_KEY_ID=local"):
                commands.append(line.strip())
            if line.startswith("Ctrl-C stops"):
                break
        # WHEN the printed audit command is run as printed, from a shell
        timeline = next(c for c in commands if " audit timeline " in c)
        words = shlex.split(timeline)
        assignments = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words[:2]}
        assert words[2] == "secretwatch"
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *words[3:]],
            cwd=tmp_path,
            env={**env, **assignments, "PYTHONPATH": str(ROOT / "src")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # THEN it reads the kept stack: the secret's six events, one JSON line each in a pipe
        assert done.returncode == 0, done.stderr
        story = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(story) == 6
        assert "RotationFailed" in {event["event_name"] for event in story}
        assert any(" replay " in c for c in commands)
    finally:
        # AND Ctrl-C ends the demo normally
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert "Traceback" not in err
