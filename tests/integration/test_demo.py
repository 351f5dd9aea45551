"""`make demo` runs `secretwatch demo`: it must finish, show each part, and prove idempotency."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cli.main import main


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
        "3. Alerts: 22 published",
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
    assert "Traceback" not in out + err
    # AND the Lambda functions' JSON logs and metrics stay out of the report
    assert '"level":' not in out + err
    assert '"_aws":' not in out
