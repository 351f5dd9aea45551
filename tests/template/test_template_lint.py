"""template.yaml passes every linter the project uses, exactly as a developer would run them.

SAM CLI and checkov live in their own virtual environments (.venv-sam, .venv-checkov), which
`make test` creates; cfn-lint (with the cfn-lint-serverless rules) is in the test environment.
Accepted findings are suppressed inside template.yaml, next to the resource, with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.template.cfn import REPO_ROOT, TEMPLATE_PATH, load_template

TIMEOUT_SECONDS = 300


def _tool(venv: str, name: str) -> Path:
    path = REPO_ROOT / venv / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: run make test (it creates {venv})")
    return path


def _run(command: list[str | Path], **extra_env: str) -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", **extra_env}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(str(part) for part in command)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def test_sam_validate_lint() -> None:
    # GIVEN the SAM CLI from .venv-sam (it needs a Region, never credentials)
    sam = _tool(".venv-sam", "sam")

    # WHEN / THEN `sam validate --lint` accepts the template
    _run(
        [sam, "validate", "--lint", "--template-file", TEMPLATE_PATH],
        AWS_DEFAULT_REGION="us-east-1",
    )


def test_cfn_lint_with_serverless_rules() -> None:
    # GIVEN cfn-lint from the test environment, with the serverless best-practice rules
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    assert cfn_lint.is_file(), f"{cfn_lint} is missing: run make test"

    # WHEN / THEN it reports nothing (not even warnings or informational findings)
    _run([cfn_lint, "-a", "cfn_lint_serverless.rules", "--", TEMPLATE_PATH])


def _checkov(template_file: Path) -> None:
    checkov = _tool(".venv-checkov", "checkov")
    _run(
        [
            checkov,
            "-f",
            template_file,
            "--framework",
            "cloudformation",
            "--quiet",
            "--compact",
            "--skip-download",
        ]
    )


def test_checkov() -> None:
    # GIVEN checkov from .venv-checkov, offline (--skip-download)
    # WHEN / THEN it finds no failed check in the template as written
    _checkov(TEMPLATE_PATH)


def test_checkov_with_every_optional_resource(tmp_path: Path) -> None:
    # GIVEN a copy whose parameter defaults switch every optional part on: checkov evaluates
    # conditions with the default parameter values, so the trail, its bucket, the SNS
    # subscriptions, the chat channels and the X-Ray grants are only scanned this way
    template = load_template()
    defaults = {
        "CreateTrail": "true",
        "EnableTracing": "true",
        "OrganizationsLookup": "true",
        "AlertEmail": "security@example.com",
        "AlertPhoneNumber": "+14155550100",
        "CloudTrailLogGroupName": "aws-cloudtrail-logs-example",
        "SlackWorkspaceId": "T0123ABCD",
        "SlackChannelId": "C0123ABCDEF",
        "TeamsTenantId": "00000000-0000-4000-8000-000000000001",
        "TeamsTeamId": "00000000-0000-4000-8000-000000000002",
        "TeamsChannelId": "19%3aexample%40thread.tacv2",
    }
    for name, value in defaults.items():
        template["Parameters"][name]["Default"] = value
    variant = tmp_path / "template-all-on.json"
    variant.write_text(json.dumps(template, indent=1))

    # WHEN / THEN checkov still finds no failed check
    _checkov(variant)


def test_checkov_with_an_existing_alert_topic(tmp_path: Path) -> None:
    # GIVEN a copy that publishes to an existing topic and its key (no topic, key or alarm of
    # its own): the grants on the given ARNs are only scanned this way
    template = load_template()
    defaults = {
        "AlertTopicArn": "arn:aws:sns:eu-west-1:111122223333:org-alerts",
        "AlertTopicKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "AlertEmail": "security@example.com",
    }
    for name, value in defaults.items():
        template["Parameters"][name]["Default"] = value
    variant = tmp_path / "template-existing-topic.json"
    variant.write_text(json.dumps(template, indent=1))

    # WHEN / THEN checkov finds no failed check
    _checkov(variant)
