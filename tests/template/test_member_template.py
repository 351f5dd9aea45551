"""The member stack as plain CloudFormation (scripts/member_template.py), for StackSets.

Service-managed StackSets refuse templates that use a macro, the AWS::Serverless transform
included, so docs/stacksets.md deploys the generated template, not template.yaml. These tests
show it is the member stack of template.yaml and nothing else, and that cfn-lint accepts it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from scripts import member_template

from tests.template.cfn import TEMPLATE_PATH, Template
from tests.template.test_template_modes import MEMBER_ONLY


def _generated() -> dict[str, Any]:
    return member_template.member_template(member_template.load(TEMPLATE_PATH))


def test_it_holds_the_member_stack_and_nothing_else(template: Template) -> None:
    # GIVEN the generated member template
    member = _generated()

    # WHEN / THEN no transform, no Globals, no SAM resource type; exactly the member resources,
    # each as template.yaml declares it, and the member role's output
    assert "Transform" not in member
    assert "Globals" not in member
    assert set(member["Resources"]) == MEMBER_ONLY
    for name, resource in member["Resources"].items():
        assert resource == template["Resources"][name], name
        assert not resource["Type"].startswith("AWS::Serverless"), name
    assert set(member["Outputs"]) == {"MemberReadRoleArn"}
    # AND the member's own deployment rule travels with it
    assert set(member["Rules"]) == {"MemberNeedsCentralBus"}


def test_parameters_are_the_ones_the_member_resources_use(template: Template) -> None:
    # GIVEN the generated member template
    parameters = _generated()["Parameters"]

    # WHEN / THEN only the parameters its resources refer to, as template.yaml has them, and a
    # DeploymentMode that can only be member
    assert set(parameters) == {
        "DeploymentMode",
        "CentralEventBusArn",
        "MemberRoleName",
        "ReadEventsRuleState",
    }
    for name in ("CentralEventBusArn", "MemberRoleName", "ReadEventsRuleState"):
        assert parameters[name] == template["Parameters"][name], name
    assert parameters["DeploymentMode"]["AllowedValues"] == ["member"]
    assert parameters["DeploymentMode"]["Default"] == "member"


def test_cfn_lint_accepts_the_written_file(tmp_path: Path) -> None:
    # GIVEN the file `make member-template` writes
    target = tmp_path / "member.json"
    assert member_template.main(["member_template.py", str(TEMPLATE_PATH), str(target)]) == 0
    written = json.loads(target.read_text())
    assert written == _generated()

    # WHEN cfn-lint checks it as plain CloudFormation
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # THEN it has no finding
    assert result.returncode == 0, result.stdout + result.stderr
