"""Replay on Step Functions: the state machine's Distributed Map, the replay function and the
exact permissions of both roles (`secretwatch replay --distributed`)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.replay_batch import BUCKET_NAME, MAX_BATCH_FILES
from tests.template.cfn import (
    REPLAY_FUNCTION,
    Template,
    evaluate_condition,
    props,
    render,
    role_grants,
)

STACK_ID = {"Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]}  # fmt: skip
REPLAY = {
    "ReplayFileFunction",
    "ReplayFileFunctionLogGroup",
    "ReplayFileFunctionRole",
    "ReplayResultsBucket",
    "ReplayResultsBucketPolicy",
    "ReplayStateMachineLogGroup",
    "ReplayStateMachineRole",
    "ReplayStateMachine",
}
NAMED_BUCKET = {"ReplayBucketName": "org-trail-logs"}


def _definition(template: Template, **parameters: str) -> dict[str, Any]:
    """The state machine's ASL as CloudFormation would render it for these parameters."""
    text = render(
        template, props(template, "ReplayStateMachine")["DefinitionString"], parameters=parameters
    )
    definition: dict[str, Any] = json.loads(text)
    return definition


def _map(template: Template, **parameters: str) -> dict[str, Any]:
    (state,) = _definition(template, **parameters)["States"].values()
    found: dict[str, Any] = state
    return found


def _present(template: Template, parameters: dict[str, str]) -> set[str]:
    return {
        logical_id
        for logical_id in REPLAY
        if evaluate_condition(template, template["Resources"][logical_id]["Condition"], parameters)
    }


@pytest.mark.parametrize("mode", ["standalone", "central"])
def test_the_replay_exists_wherever_the_table_does(template: Template, mode: str) -> None:
    # GIVEN a stack that holds the audit table (standalone or central)
    parameters = {"DeploymentMode": mode, "OrganizationId": "o-a1b2c3d4e5"}
    # WHEN / THEN every replay resource exists, with the table's own condition
    assert _present(template, parameters) == REPLAY
    for logical_id in REPLAY:
        assert template["Resources"][logical_id]["Condition"] == "NotMember", logical_id


def test_a_member_stack_has_no_replay(template: Template) -> None:
    # GIVEN a member stack (its events are audited centrally) with a bucket named anyway
    parameters = {"DeploymentMode": "member", **NAMED_BUCKET, "CreateTrail": "true"}
    # WHEN / THEN nothing of the replay exists, nor may it read any bucket
    assert _present(template, parameters) == set()
    assert not evaluate_condition(template, "HasReplayBucketName", parameters)


def test_the_distributed_map_lists_the_prefix_of_the_input_and_invokes_the_function(
    template: Template,
) -> None:
    # GIVEN the rendered definition
    definition = _definition(template)
    state = _map(template)

    # WHEN / THEN one Map state lists s3://<input bucket>/<input prefix> ...
    assert definition["StartAt"] == "ReplayLogFiles"
    assert state["Type"] == "Map"
    assert state["End"] is True
    assert state["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
    }
    # AND hands the function batches in the shape it reads (shared.replay_batch.read_batch)
    assert state["ItemBatcher"] == {
        "MaxItemsPerBatch": 10,
        "BatchInput": {"bucket.$": "$.bucket"},
    }
    assert state["ItemBatcher"]["MaxItemsPerBatch"] <= MAX_BATCH_FILES
    # AND runs each batch as a child execution of its own (DISTRIBUTED), one Task invoking the
    # replay function with the batch and keeping only its result
    processor = state["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    task = processor["States"][processor["StartAt"]]
    assert task["Type"] == "Task"
    assert task["End"] is True
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": f"<{REPLAY_FUNCTION}>", "Payload.$": "$"}
    assert task["OutputPath"] == "$.Payload"


def test_lambda_throttling_and_service_errors_are_retried_with_jitter(template: Template) -> None:
    # GIVEN the replay task's retry policy
    task = next(iter(_map(template)["ItemProcessor"]["States"].values()))
    (retry,) = task["Retry"]
    # WHEN / THEN Lambda's transient errors, throttling included, are retried with backoff; the
    # function's own errors are not (a bad file is reported in its result, not raised)
    assert set(retry["ErrorEquals"]) == {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
    }
    assert "States.ALL" not in retry["ErrorEquals"]
    assert retry["MaxAttempts"] >= 3
    assert retry["BackoffRate"] > 1
    assert retry["JitterStrategy"] == "FULL"


@pytest.mark.parametrize("concurrency", ["1", "7", "1000"])
def test_max_concurrency_is_the_parameter_as_a_number(template: Template, concurrency: str) -> None:
    # GIVEN the ReplayConcurrency parameter set to a value
    # WHEN the definition is rendered
    state = _map(template, ReplayConcurrency=concurrency)
    # THEN MaxConcurrency is that number (a JSON number, not a string ASL would refuse)
    assert state["MaxConcurrency"] == int(concurrency)
    assert (
        '"MaxConcurrency": ${ReplayConcurrency},'
        in props(template, "ReplayStateMachine")["DefinitionString"]["Fn::Sub"]
    )
    parameter = template["Parameters"]["ReplayConcurrency"]
    assert (
        parameter["Type"],
        parameter["Default"],
        parameter["MinValue"],
        parameter["MaxValue"],
    ) == (
        "Number",
        20,
        1,
        1000,
    )


def test_failed_batches_never_abort_and_results_go_to_the_results_bucket(
    template: Template,
) -> None:
    # GIVEN the map state
    state = _map(template)
    # WHEN / THEN a failed batch never fails the run, and every batch's result is exported
    assert state["ToleratedFailurePercentage"] == 100
    assert state["ResultWriter"] == {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "<ReplayResultsBucket>", "Prefix": "results"},
    }
    # AND the results expire: they only feed the command's summary
    bucket = props(template, "ReplayResultsBucket")
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 7
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_the_state_machine_logs_and_traces_like_the_functions(template: Template) -> None:
    # GIVEN the state machine and its log group
    machine = props(template, "ReplayStateMachine")
    group = props(template, "ReplayStateMachineLogGroup")
    # WHEN / THEN it is named from the stack's id, logs errors to its own group with the
    # functions' retention, and traces only when EnableTracing says so
    assert machine["StateMachineName"] == {
        "Fn::Sub": ["secretwatch-${Id}-replay", {"Id": STACK_ID}]
    }
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["RoleArn"] == {"Fn::GetAtt": ["ReplayStateMachineRole", "Arn"]}
    assert group["LogGroupName"] == {"Fn::Sub": ["/aws/vendedlogs/states/secretwatch-${Id}-replay", {"Id": STACK_ID}]}  # fmt: skip
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert machine["LoggingConfiguration"] == {
        "Level": "ERROR",
        "IncludeExecutionData": False,
        "Destinations": [
            {
                "CloudWatchLogsLogGroup": {
                    "LogGroupArn": {"Fn::GetAtt": ["ReplayStateMachineLogGroup", "Arn"]}
                }
            }
        ],
    }
    assert machine["TracingConfiguration"] == {"Enabled": {"Fn::If": ["TracingOn", True, False]}}


def test_the_replay_function_is_built_and_logs_like_the_others(template: Template) -> None:
    # GIVEN the replay function and its log group
    function = template["Resources"][REPLAY_FUNCTION]
    properties = function["Properties"]
    group = props(template, f"{REPLAY_FUNCTION}LogGroup")
    # WHEN / THEN its handler, name, log group, role and build are those of its siblings
    assert properties["Handler"] == "handlers.replay_file.lambda_handler"
    assert properties["FunctionName"] == {
        "Fn::Sub": ["secretwatch-${Id}-replay-file", {"Id": STACK_ID}]
    }
    assert group["LogGroupName"] == {"Fn::Sub": ["/aws/lambda/secretwatch-${Id}-replay-file", {"Id": STACK_ID}]}  # fmt: skip
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": f"{REPLAY_FUNCTION}LogGroup"}}
    assert properties["Role"] == {"Fn::GetAtt": [f"{REPLAY_FUNCTION}Role", "Arn"]}
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert "Environment" not in properties  # the Globals' settings, like the others
    assert "Events" not in properties  # only the state machine invokes it
    # AND a batch of ten bounded files fits in its time (Step Functions' default task timeout is
    # the function's own)
    assert (properties["MemorySize"], properties["Timeout"]) == (1024, 900)


# --- permissions --------------------------------------------------------------------------------

TRAIL_BUCKET_OBJECTS = {"Fn::Sub": "${TrailBucket.Arn}/*"}
NAMED_BUCKET_OBJECTS = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ReplayBucketName}/*"}
MACHINE_ARN = {"Fn::Sub": ["arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:secretwatch-${Id}-replay", {"Id": STACK_ID}]}  # fmt: skip
CHILD_EXECUTIONS = {"Fn::Sub": ["arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:secretwatch-${Id}-replay/*", {"Id": STACK_ID}]}  # fmt: skip
LOG_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]


def _granted(template: Template, role: str) -> list[tuple[str, str, str | None]]:
    return sorted(
        (action, json.dumps(resource, sort_keys=True), grant.condition)
        for grant in role_grants(template, role)
        for action in grant.actions
        for resource in grant.resources
    )


def _expected(grants: list[tuple[str, Any, str | None]]) -> list[tuple[str, str, str | None]]:
    return sorted((a, json.dumps(r, sort_keys=True), c) for a, r, c in grants)


def test_the_function_reads_only_the_replay_buckets_and_writes_only_the_audit_table(
    template: Template,
) -> None:
    # GIVEN the replay function's role
    table = {"Fn::GetAtt": ["AuditTable", "Arn"]}
    rules = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${RulesParameter}"}  # fmt: skip
    logs = {"Fn::GetAtt": ["ReplayFileFunctionLogGroup", "Arn"]}
    # WHEN / THEN it gets exactly these grants: no SNS, no KMS, no Secrets Manager at all, no
    # state table (a replay's rule state is in memory), no s3:ListBucket (it reads what it is
    # given), GetObject only in the replay buckets and each only under its own condition
    assert _granted(template, "ReplayFileFunctionRole") == _expected(
        [
            ("logs:CreateLogStream", logs, None),
            ("logs:PutLogEvents", logs, None),
            *((f"dynamodb:{a}", table, None) for a in ("PutItem", "UpdateItem", "GetItem")),
            *((f"dynamodb:{a}", table, None) for a in ("BatchWriteItem", "BatchGetItem")),
            ("ssm:GetParameter", rules, None),
            ("s3:GetObject", NAMED_BUCKET_OBJECTS, "HasReplayBucketName"),
            ("s3:GetObject", TRAIL_BUCKET_OBJECTS, "CreateTrailOn"),
            ("xray:PutTraceSegments", "*", "TracingOn"),
            ("xray:PutTelemetryRecords", "*", "TracingOn"),
        ]
    )


def test_the_state_machine_invokes_only_the_function_and_lists_only_the_replay_buckets(
    template: Template,
) -> None:
    # GIVEN the state machine's role
    results = {"Fn::Sub": "${ReplayResultsBucket.Arn}/results/*"}
    # WHEN / THEN it may invoke the replay function and nothing else, list only the replay
    # buckets (each under its condition), run its own child executions, write results under
    # the ResultWriter's prefix, and set up its log delivery (no resource-level permissions)
    assert _granted(template, "ReplayStateMachineRole") == _expected(
        [
            ("lambda:InvokeFunction", {"Fn::GetAtt": [REPLAY_FUNCTION, "Arn"]}, None),
            (
                "s3:ListBucket",
                {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ReplayBucketName}"},
                "HasReplayBucketName",
            ),
            ("s3:ListBucket", {"Fn::GetAtt": ["TrailBucket", "Arn"]}, "CreateTrailOn"),
            ("states:StartExecution", MACHINE_ARN, None),
            ("states:DescribeExecution", CHILD_EXECUTIONS, None),
            ("states:StopExecution", CHILD_EXECUTIONS, None),
            *((f"s3:{a}", results, None) for a in ("PutObject", "GetObject")),
            *(
                (f"s3:{a}", results, None)
                for a in ("ListMultipartUploadParts", "AbortMultipartUpload")
            ),
            *((action, "*", None) for action in LOG_DELIVERY),
            *((f"xray:{a}", "*", "TracingOn") for a in ("PutTraceSegments", "PutTelemetryRecords")),
            *((f"xray:{a}", "*", "TracingOn") for a in ("GetSamplingRules", "GetSamplingTargets")),
        ]
    )
    # AND the ARN it may start child executions of is the state machine's own name
    rendered = render(template, MACHINE_ARN)
    name = render(template, props(template, "ReplayStateMachine")["StateMachineName"])
    assert rendered.endswith(f":stateMachine:{name}")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, "-"),
        (NAMED_BUCKET, "org-trail-logs"),
        ({"CreateTrail": "true"}, "<TrailBucket>"),
        ({**NAMED_BUCKET, "CreateTrail": "true"}, "org-trail-logs,<TrailBucket>"),
    ],
)
def test_the_replay_buckets_output_names_what_the_roles_may_read(
    template: Template, parameters: dict[str, str], expected: str
) -> None:
    # GIVEN the bucket parameters / WHEN the output is rendered / THEN it lists the buckets the
    # conditions grant, which the command checks a URL against before starting anything
    output = template["Outputs"]["ReplayBuckets"]["Value"]
    assert render(template, output, parameters=parameters) == expected
    assert evaluate_condition(template, "HasReplayBucketName", parameters) == (
        "ReplayBucketName" in parameters
    )


def test_the_bucket_parameter_accepts_only_bucket_names(template: Template) -> None:
    # GIVEN the parameter's pattern and the function's own check of BatchInput.bucket
    pattern = re.compile(template["Parameters"]["ReplayBucketName"]["AllowedPattern"])
    # WHEN / THEN both take bucket names and refuse ARNs, URLs and upper case
    for good in ("org-trail-logs", "a.b-c1"):
        assert pattern.match(good), good
        assert BUCKET_NAME.match(good), good
    for bad in ("arn:aws:s3:::x", "s3://bucket", "Bucket", "-x-"):
        assert not pattern.match(bad), bad
        assert not BUCKET_NAME.match(bad), bad
    assert pattern.match("")
