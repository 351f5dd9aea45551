"""`secretwatch replay --distributed` against a moto server, with the template's own state machine.

What moto 5.2.x models, and so what this test can prove: CloudFormation stack outputs, and a
state machine created from template.yaml's rendered DefinitionString, whose StartExecution
records the execution's name and input and whose StopExecution aborts it. What it does not
model: its default Step Functions backend never runs a definition (an execution stays RUNNING,
ListMapRuns is empty); its executing backend (config ``stepfunctions.execute_state_machine``)
has no ItemBatcher in its ASL grammar and its ResultWriter writes a manifest without result
files; and no moto backend runs Lambda code without Docker. The Distributed Map itself (listing,
batching, retries, tolerated failures, results) is therefore checked in the template tests
(tests/template/test_template_replay.py), the function on real batches in
test_replay_function.py, and the command's following and summing with a labelled botocore
Stubber (tests/unit/test_replay_distributed.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import replay_distributed
from cli.local_stack import Resolver
from cli.main import main
from tests.integration.conftest import REGION, Server

ROLE = "arn:aws:iam::123456789012:role/secretwatch-replay"


def _state_machine(server: Server) -> str:
    """The template's state machine, created in moto from its rendered definition."""
    template = server.stack.template
    resource = template["Resources"]["ReplayStateMachine"]["Properties"]
    physical = {"ReplayFileFunction.Arn": "arn:aws:lambda:eu-west-1:123456789012:function:replay"}
    definition = Resolver(template, physical, REGION).resolve(resource["DefinitionString"])
    json.loads(definition)  # the rendered text is JSON, as Step Functions requires
    sfn = server.client("stepfunctions")
    arn: str = sfn.create_state_machine(
        name="secretwatch-local-replay", definition=definition, roleArn=ROLE, type="STANDARD"
    )["stateMachineArn"]
    outputs = {"ReplayStateMachineArn": arn, "ReplayBuckets": "org-trail"}
    stack = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    server.client("cloudformation").create_stack(
        StackName="secretwatch", TemplateBody=json.dumps(stack)
    )
    return arn


@pytest.mark.integration
def test_the_command_starts_the_stacks_state_machine_and_reports_an_abort(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the template's state machine in moto and a stack naming it
    machine = _state_machine(server)
    sfn = server.client("stepfunctions")
    seen: list[dict[str, Any]] = []

    def abort_it(seconds: float) -> None:
        # Someone stops the execution in the console while the command follows it.
        (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
        seen.append(sfn.describe_execution(executionArn=execution["executionArn"]))
        sfn.stop_execution(executionArn=execution["executionArn"], error="Stopped", cause="by hand")

    monkeypatch.setattr(replay_distributed, "sleep", abort_it)

    # WHEN the distributed replay of a prefix of an allowed bucket runs
    status = main(
        [
            "replay",
            "--distributed",
            "s3://org-trail/AWSLogs/111122223333/CloudTrail/",
            "--stack",
            "secretwatch",
            "--endpoint-url",
            server.stack.endpoint_url or "",
            "--region",
            REGION,
        ]
    )
    out, err = capsys.readouterr()

    # THEN it started one execution of the stack's state machine with the bucket and prefix as
    # input and the name it printed, followed it, and reports the abort in one line, exit 1
    (running,) = seen
    assert running["status"] == "RUNNING"
    assert json.loads(running["input"]) == {
        "bucket": "org-trail",
        "prefix": "AWSLogs/111122223333/CloudTrail/",
    }
    assert running["name"].startswith("replay-")
    lines = err.splitlines()
    assert (
        lines[0]
        == f"secretwatch: started {running['executionArn']} (Ctrl-C stops following it, not the replay)"
    )
    assert lines[1].startswith("secretwatch: the replay was aborted (")
    assert lines[1].endswith(f"execution {running['executionArn']}")
    assert len(lines) == 2
    assert (status, out) == (1, "")
