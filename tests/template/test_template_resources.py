"""The resources in template.yaml have the shape the code and the operators rely on."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shared.audit.query import PROJECTED
from shared.models import SEVERITIES, SEVERITY_RANK, Severity
from tests.template.cfn import (
    FUNCTIONS,
    NO_VALUE,
    RULES,
    SELFTEST_RULE,
    TAMPER_RULE,
    Template,
    evaluate_condition,
    props,
    resources,
)

LOG_RETENTION_VALUES = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827]
LOG_RETENTION_VALUES += [2192, 2557, 2922, 3288, 3653]


# --- audit table ------------------------------------------------------------------------------


def test_audit_table_keys_and_indexes(template: Template) -> None:
    # GIVEN the audit table
    table = props(template, "AuditTable")

    # WHEN / THEN its key, attributes and six GSIs are exactly what the code queries
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "event_id", "KeyType": "HASH"}]
    attributes = ["event_id", "secret_name", "principal_name", "day", "time_key"]
    attributes += ["rule_0", "rule_1", "rule_2"]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": name, "AttributeType": "S"} for name in attributes
    ]
    indexes = {
        index["IndexName"]: (
            [(key["AttributeName"], key["KeyType"]) for key in index["KeySchema"]],
            index["Projection"],
        )
        for index in table["GlobalSecondaryIndexes"]
    }
    hash_keys = {
        "by-secret": "secret_name",
        "by-principal": "principal_name",
        "by-day": "day",
        "by-rule-0": "rule_0",
        "by-rule-1": "rule_1",
        "by-rule-2": "rule_2",
    }
    # AND each projects its keys and the filter attributes of the look-ups (PROJECTED), never
    # whole items: the code reads whole items from the table by key (docs/cost.md)
    assert indexes == {
        name: (
            [(hash_key, "HASH"), ("time_key", "RANGE")],
            {
                "ProjectionType": "INCLUDE",
                "NonKeyAttributes": [a for a in PROJECTED if a != hash_key],
            },
        )
        for name, hash_key in hash_keys.items()
    }


def test_routine_read_retention_is_a_parameter_threaded_to_every_function(
    template: Template,
) -> None:
    # GIVEN the parameters and the functions' environment
    parameters = template["Parameters"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]

    # WHEN / THEN RoutineReadRetentionDays is a number of at least 7 days (a deletion counts the
    # reads of the 7 days before it), 90 by default, below RetentionDays' default, and every
    # function reads it
    assert "RoutineReadRetentionDays" in parameters
    routine = parameters["RoutineReadRetentionDays"]
    assert {k: routine[k] for k in ("Type", "Default", "MinValue")} == {
        "Type": "Number",
        "Default": 90,
        "MinValue": 7,
    }
    assert routine["Default"] <= parameters["RetentionDays"]["Default"]
    assert environment["ROUTINE_READ_RETENTION_DAYS"] == {"Ref": "RoutineReadRetentionDays"}
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("RoutineReadRetentionDays" in group["Parameters"] for group in groups)


def test_audit_table_is_protected_and_expires_items(template: Template) -> None:
    # GIVEN the audit table resource
    resource = template["Resources"]["AuditTable"]
    table = resource["Properties"]

    # WHEN / THEN it survives stack deletion and replacement, is recoverable and encrypted with
    # KMS (the AWS managed key: see the checkov skip reason), and expires items by TTL
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert table["DeletionProtectionEnabled"] is True
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert template["Parameters"]["RetentionDays"] == {
        **template["Parameters"]["RetentionDays"],
        "Type": "Number",
        "Default": 400,
        "MinValue": 1,
    }


# --- functions ----------------------------------------------------------------------------------


def test_function_globals(template: Template) -> None:
    # GIVEN the Globals every function inherits
    function = template["Globals"]["Function"]

    # WHEN / THEN runtime, code, size and tracing are as specified
    assert {key: function[key] for key in function if key != "Environment"} == {
        "Runtime": "python3.12",
        "CodeUri": "src/",
        "Architectures": ["arm64"],
        "MemorySize": 256,
        "Timeout": 60,
        "Tracing": {"Fn::If": ["TracingOn", "Active", "PassThrough"]},
    }
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]}


@pytest.mark.parametrize(
    ("function", "handler", "suffix"),
    [
        ("EventBridgeFunction", "handlers.eventbridge.lambda_handler", "eventbridge"),
        ("LogSubscriptionFunction", "handlers.log_subscription.lambda_handler", "log-subscription"),
    ],
)
def test_function_logging_and_async_failure_handling(
    template: Template, function: str, handler: str, suffix: str
) -> None:
    # GIVEN one function, its log group and its asynchronous-invocation config
    properties = props(template, function)
    log_group = props(template, f"{function}LogGroup")
    (invoke_config,) = [
        config["Properties"]
        for config in resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": function}
    ]

    # WHEN / THEN it logs to its own /aws/lambda/<function> group with the chosen retention
    assert properties["Handler"] == handler
    # (named from the stack's id, not its name: tests/template/test_template_names.py)
    stack_id = {"Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]}  # fmt: skip
    assert properties["FunctionName"] == {"Fn::Sub": [f"secretwatch-${{Id}}-{suffix}", {"Id": stack_id}]}  # fmt: skip
    assert log_group["LogGroupName"] == {"Fn::Sub": [f"/aws/lambda/secretwatch-${{Id}}-{suffix}", {"Id": stack_id}]}  # fmt: skip
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": f"{function}LogGroup"}}
    # AND reserves no concurrency unless the ReservedConcurrency parameter asks (see below)
    assert properties["ReservedConcurrentExecutions"]["Fn::If"][0] == "HasReservedConcurrency"
    # AND failed asynchronous invocations are retried twice, then go to the failure queue
    assert invoke_config == {
        "FunctionName": {"Ref": function},
        "Qualifier": "$LATEST",
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 21600,
        "DestinationConfig": {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["FailedInvocationQueue", "Arn"]}}
        },
    }


def test_log_retention_parameter_allows_only_valid_cloudwatch_values(template: Template) -> None:
    # GIVEN the log retention parameter
    parameter = template["Parameters"]["LogRetentionDays"]

    # WHEN / THEN it offers exactly the values CloudWatch Logs accepts, default 90 days
    assert parameter["AllowedValues"] == LOG_RETENTION_VALUES
    assert parameter["Default"] == 90


@pytest.mark.parametrize("queue", ["FailedInvocationQueue", "EventsDeadLetterQueue"])
def test_failure_queues_are_encrypted_and_keep_messages_14_days(
    template: Template, queue: str
) -> None:
    # GIVEN a failure queue
    # WHEN / THEN it is encrypted with SSE-SQS and keeps messages for the maximum 14 days
    assert props(template, queue) == {
        "SqsManagedSseEnabled": True,
        "MessageRetentionPeriod": 1209600,
    }


# --- EventBridge --------------------------------------------------------------------------------


def test_rule_states(template: Template) -> None:
    # GIVEN the three rules and the read-rule parameter
    parameter = template["Parameters"]["ReadEventsRuleState"]

    # WHEN / THEN write calls and service events are plain ENABLED, and the read rule follows a
    # parameter whose default is the only state that receives read-only CloudTrail events
    assert props(template, "WriteCallsRule")["State"] == "ENABLED"
    assert props(template, "ServiceEventsRule")["State"] == "ENABLED"
    assert props(template, "FailedReadsRule")["State"] == {"Ref": "ReadEventsRuleState"}
    assert parameter["Default"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert parameter["AllowedValues"] == [
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
        "DISABLED",
    ]


@pytest.mark.parametrize("rule", [*RULES, SELFTEST_RULE, TAMPER_RULE])
def test_rule_target_retries_then_dead_letters(template: Template, rule: str) -> None:
    # GIVEN a rule on the default bus
    properties = props(template, rule)

    # WHEN / THEN its only target is the EventBridge function, with retries and a DLQ
    assert "EventBusName" not in properties
    assert properties["Targets"] == [
        {
            "Id": "EventBridgeFunction",
            "Arn": {"Fn::GetAtt": ["EventBridgeFunction", "Arn"]},
            "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}},
        }
    ]
    # AND EventBridge may invoke the function only for this rule
    (permission,) = [
        permission["Properties"]
        for permission in resources(template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [rule, "Arn"]}
    ]
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "EventBridgeFunction"},
        "Principal": "events.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": {"Fn::GetAtt": [rule, "Arn"]},
    }


def test_dead_letter_queue_accepts_only_these_rules(template: Template) -> None:
    # GIVEN the events dead-letter queue's policy
    policy = props(template, "EventsDeadLetterQueuePolicy")

    # WHEN / THEN only EventBridge, on behalf of the three rules and the digest schedule, may
    # send to it
    assert policy["Queues"] == [{"Ref": "EventsDeadLetterQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": [
                *({"Fn::GetAtt": [rule, "Arn"]} for rule in (*RULES, SELFTEST_RULE, TAMPER_RULE)),
                {"Fn::GetAtt": ["DigestFunctionEveryFiveMinutes", "Arn"]},
                # central mode: the same three patterns on the organisation's bus
                *(
                    {"Fn::If": ["IsCentral", {"Fn::GetAtt": [f"Central{rule}", "Arn"]}, NO_VALUE]}
                    for rule in RULES
                ),
            ]
        }
    }


# --- CloudWatch Logs route ----------------------------------------------------------------------

SUBSCRIPTION_RESOURCES = {
    "TrailLogGroupSubscriptionFilter",
    "TrailLogGroupPermission",
    "ExistingLogGroupSubscriptionFilter",
    "ExistingLogGroupPermission",
}
TRAIL_RESOURCES = {"Trail", "TrailBucket", "TrailBucketPolicy", "TrailLogGroup", "TrailLogsRole"}


@pytest.mark.parametrize(
    ("create_trail", "log_group_name", "expected"),
    [
        ("false", "", set()),
        (
            "false",
            "org-trail-logs",
            {"ExistingLogGroupSubscriptionFilter", "ExistingLogGroupPermission"},
        ),
        (
            "true",
            "",
            TRAIL_RESOURCES | {"TrailLogGroupSubscriptionFilter", "TrailLogGroupPermission"},
        ),
        (
            "true",
            "org-trail-logs",
            TRAIL_RESOURCES | {"TrailLogGroupSubscriptionFilter", "TrailLogGroupPermission"},
        ),
    ],
)
def test_subscription_follows_create_trail_then_log_group_name(
    template: Template, create_trail: str, log_group_name: str, expected: set[str]
) -> None:
    # GIVEN the CreateTrail and CloudTrailLogGroupName parameter values
    parameters = {"CreateTrail": create_trail, "CloudTrailLogGroupName": log_group_name}

    # WHEN the conditions of the trail and subscription resources are evaluated
    created = {
        name
        for name, resource in template["Resources"].items()
        if name in SUBSCRIPTION_RESOURCES | TRAIL_RESOURCES
        and evaluate_condition(template, resource["Condition"], parameters)
    }

    # THEN the created trail wins, else the named log group, else no subscription at all
    assert created == expected


@pytest.mark.parametrize(
    ("prefix", "log_group"),
    [
        ("TrailLogGroup", {"Ref": "TrailLogGroup"}),
        ("ExistingLogGroup", {"Ref": "CloudTrailLogGroupName"}),
    ],
)
def test_subscription_filter_sends_secrets_manager_records_to_the_function(
    template: Template, prefix: str, log_group: dict[str, str]
) -> None:
    # GIVEN one of the two possible subscription filters
    resource = template["Resources"][f"{prefix}SubscriptionFilter"]
    permission = props(template, f"{prefix}Permission")

    # WHEN / THEN it sends only Secrets Manager records to the log subscription function,
    # after CloudWatch Logs got permission to invoke it for that log group only
    assert resource["DependsOn"] == f"{prefix}Permission"
    assert resource["Properties"] == {
        "FilterName": {"Fn::Sub": ["secretwatch-${Id}", {"Id": STACK_ID_PREFIX}]},
        "LogGroupName": log_group,
        "FilterPattern": {
            "Fn::If": [
                "LogsRouteThisRegion",
                {
                    "Fn::Sub": '{ ($.eventSource = "secretsmanager.amazonaws.com") && '
                    '($.awsRegion = "${AWS::Region}") }'
                },
                '{ $.eventSource = "secretsmanager.amazonaws.com" }',
            ]
        },
        "DestinationArn": {"Fn::GetAtt": ["LogSubscriptionFunction", "Arn"]},
    }
    name = log_group["Ref"]
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "LogSubscriptionFunction"},
        "Principal": "logs.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
            f"log-group:${{{name}}}:*"
        },
    }


def test_created_trail_logs_management_events_everywhere_with_validation(
    template: Template,
) -> None:
    # GIVEN the optional trail and its bucket
    trail = props(template, "Trail")
    bucket = template["Resources"]["TrailBucket"]

    # WHEN / THEN it is a logging, multi-Region trail of all management events, with file
    # validation, delivered to CloudWatch Logs through its own role
    assert trail["IsLogging"] is True
    assert trail["IsMultiRegionTrail"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert trail["EnableLogFileValidation"] is True
    # AND every management event but KMS's and the RDS Data API's (secretwatch reads neither;
    # they would be most of the CloudWatch Logs ingestion, docs/cost.md)
    assert trail["EventSelectors"] == [
        {
            "ReadWriteType": "All",
            "IncludeManagementEvents": True,
            "ExcludeManagementEventSources": ["kms.amazonaws.com", "rdsdata.amazonaws.com"],
        }
    ]
    assert "AdvancedEventSelectors" not in trail  # a trail takes one kind or the other
    assert trail["CloudWatchLogsLogGroupArn"] == {"Fn::GetAtt": ["TrailLogGroup", "Arn"]}
    assert trail["CloudWatchLogsRoleArn"] == {"Fn::GetAtt": ["TrailLogsRole", "Arn"]}
    assert template["Resources"]["Trail"]["DependsOn"] == "TrailBucketPolicy"
    # AND its bucket is private, encrypted, versioned, owner-enforced, expiring and retained
    bucket_props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert set(bucket_props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket_props["PublicAccessBlockConfiguration"]) == 4
    assert bucket_props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket_props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket_props["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }
    (lifecycle,) = bucket_props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == {"Ref": "RetentionDays"}


def test_trail_bucket_policy_is_tls_only_and_scoped_to_this_trail(template: Template) -> None:
    # GIVEN the trail bucket policy
    statements = props(template, "TrailBucketPolicy")["PolicyDocument"]["Statement"]
    by_sid = {statement["Sid"]: statement for statement in statements}
    trail_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:"
        "trail/${AWS::StackName}-trail"
    }

    # WHEN / THEN plain HTTP is denied, and CloudTrail may write only for this trail
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
    assert by_sid["DenyInsecureTransport"]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    for sid in ("CloudTrailAclCheck", "CloudTrailWrite"):
        assert by_sid[sid]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert by_sid[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert props(template, "Trail")["TrailName"] == {"Fn::Sub": "${AWS::StackName}-trail"}


# --- alerts -------------------------------------------------------------------------------------


def test_topic_is_encrypted_with_a_rotating_key(template: Template) -> None:
    # GIVEN the alert topic and its key
    # WHEN / THEN the topic uses the stack's customer managed key, which rotates
    assert props(template, "AlertTopic")["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlertKey", "Arn"]}
    assert props(template, "AlertKey")["EnableKeyRotation"] is True
    assert props(template, "AlertKeyAlias")["TargetKeyId"] == {"Ref": "AlertKey"}


def test_alert_topic_policy_only_denies_plain_http(template: Template) -> None:
    # GIVEN the alert topic's policy
    policy = props(template, "AlertTopicPolicy")
    (statement,) = policy["PolicyDocument"]["Statement"]

    # WHEN / THEN non-TLS publishing is denied, and no service is allowed in: only the functions
    # publish here (through IAM), the alarms have their own topic
    assert policy["Topics"] == [{"Ref": "AlertTopic"}]
    assert statement["Sid"] == "DenyInsecureTransport"
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_email_and_sms_subscriptions_are_optional(template: Template) -> None:
    # GIVEN the two subscriptions
    email = template["Resources"]["AlertEmailSubscription"]
    sms = template["Resources"]["AlertSmsSubscription"]

    # WHEN / THEN each exists only when its parameter is set
    assert email["Condition"] == "HasEmail"
    assert email["Properties"]["Protocol"] == "email"
    assert sms["Condition"] == "HasPhone"
    assert sms["Properties"]["Protocol"] == "sms"
    for condition, parameter in (("HasEmail", "AlertEmail"), ("HasPhone", "AlertPhoneNumber")):
        assert not evaluate_condition(template, condition, {})
        assert evaluate_condition(template, condition, {parameter: "x"})
    # AND the SMS subscription filters on the severity and kind message attributes: a phone
    # gets alerts, never digests or resolutions
    assert sms["Properties"]["FilterPolicyScope"] == "MessageAttributes"
    assert sms["Properties"]["FilterPolicy"] == {
        "severity": {
            "Fn::FindInMap": ["SeverityAtOrAbove", {"Ref": "SmsMinimumSeverity"}, "Severities"]
        },
        # AND on the kind: alerts only, never a self-test
        "kind": ["alert"],
    }
    assert template["Parameters"]["SmsMinimumSeverity"]["AllowedValues"] == list(SEVERITIES)


@pytest.mark.parametrize("minimum", SEVERITIES)
def test_sms_filter_delivers_the_minimum_severity_and_above(
    template: Template, minimum: Severity
) -> None:
    # GIVEN the SMS filter policy for one minimum severity, as CloudFormation resolves it
    severities = template["Mappings"]["SeverityAtOrAbove"][minimum]["Severities"]
    filter_policy = {"severity": severities}
    assert severities == list(SEVERITIES[SEVERITIES.index(minimum) :])

    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        sns = session.client("sns")
        sqs = session.client("sqs")
        topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="sms-stand-in")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={
                "FilterPolicyScope": "MessageAttributes",
                "FilterPolicy": json.dumps(filter_policy),
                "RawMessageDelivery": "true",
            },
        )

        # WHEN one alert of every severity is published with its severity attribute
        for severity in SEVERITIES:
            sns.publish(
                TopicArn=topic_arn,
                Message=severity,
                MessageAttributes={"severity": {"DataType": "String", "StringValue": severity}},
            )
        received: list[str] = []
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            received += [message["Body"] for message in messages]
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    # THEN exactly the minimum severity and the ones above it get through
    assert sorted(received, key=SEVERITY_RANK.__getitem__) == severities


# --- alarms and outputs -------------------------------------------------------------------------


def _dimension(name: str, value: Any) -> dict[str, Any]:
    return {"Name": name, "Value": value}


def _central_rule_name(suffix: str) -> dict[str, Any]:
    return {"Fn::Sub": [f"secretwatch-${{Id}}-{suffix}", {"Id": STACK_ID_PREFIX}]}


STACK_ID_PREFIX = {
    "Fn::Select": [
        0,
        {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]},
    ]
}
CENTRAL_RULE_SUFFIXES = {
    "CentralWriteCallsRule": "central-writes",
    "CentralServiceEventsRule": "central-service-events",
    "CentralFailedReadsRule": "central-failed-reads",
}


def _mentions(value: Any, logical_id: str) -> bool:
    """Whether a resolved-or-not template value refers to ``logical_id`` anywhere."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute[:1] == [logical_id]:
            return True
        if isinstance(value.get("Fn::Sub"), str) and "${" + logical_id in value["Fn::Sub"]:
            return True
        return any(_mentions(child, logical_id) for child in value.values())
    if isinstance(value, list):
        return any(_mentions(child, logical_id) for child in value)
    return False


def test_alarm_topic_does_not_depend_on_the_alert_key(template: Template) -> None:
    # GIVEN the alarm topic, its policy and what every alarm publishes to
    topic = template["Resources"]["AlarmTopic"]
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    targets = {
        json.dumps(target)
        for alarm in alarms.values()
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
        for target in alarm["Properties"].get(key, [])
    }

    # WHEN / THEN the only target is the alarm topic, which no key encrypts and which refers to
    # nothing of the alert path (a disabled AlertKey cannot silence the alarms)
    assert targets == {json.dumps({"Ref": "AlarmTopic"})}
    assert "KmsMasterKeyId" not in topic["Properties"]
    assert not _mentions(topic, "AlertKey")
    assert not _mentions(topic, "AlertTopic")
    assert "DependsOn" not in topic
    # AND CloudWatch of this account may publish to it, and only over TLS
    policy = props(template, "AlarmTopicPolicy")
    by_sid = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    assert by_sid["CloudWatchAlarmsPublish"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert by_sid["CloudWatchAlarmsPublish"]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {
            "aws:SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
            }
        },
    }
    assert by_sid["DenyInsecureTransport"]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    # AND the heartbeat and the failed-alert alarms also say when they recover
    for name in ("HeartbeatAlarm", "AlertFailuresAlarm"):
        assert alarms[name]["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}]


def test_alert_email_also_receives_the_alarms(template: Template) -> None:
    # GIVEN the alarm topic's e-mail subscription
    subscription = template["Resources"]["AlarmEmailSubscription"]

    # WHEN / THEN it exists exactly when the alert e-mail does, for the same address
    assert subscription["Condition"] == template["Resources"]["AlertEmailSubscription"]["Condition"]
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlertEmail"},
    }


def test_pipeline_alarms(template: Template) -> None:
    # GIVEN every alarm
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()

    # WHEN each alarm's metric is identified
    watched: set[tuple[str, str, str]] = set()
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        watched.add(
            (
                properties["Namespace"],
                properties["MetricName"],
                json.dumps(properties["Dimensions"]),
            )
        )
        # (every alarm goes to the alarm topic, which the alert key cannot silence)
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert properties.get("OKActions", [{"Ref": "AlarmTopic"}]) == [{"Ref": "AlarmTopic"}]
        assert properties["Threshold"] == 1
        if name == "HeartbeatAlarm":
            # THEN the heartbeat breaches when nothing was processed for HeartbeatHours, missing
            # data included (a stopped trail sends no data at all)
            assert properties["ComparisonOperator"] == "LessThanThreshold"
            assert properties["TreatMissingData"] == "breaching"
            assert properties["Period"] == 3600
            assert properties["EvaluationPeriods"] == {"Ref": "HeartbeatHours"}
            assert properties["DatapointsToAlarm"] == {"Ref": "HeartbeatHours"}
            continue
        # THEN each other fires on the first occurrence and is quiet without data
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert properties["TreatMissingData"] == "notBreaching"

    # AND together they watch both functions, both queues, all three rules and the rule document
    def one(namespace: str, metric: str, name: str, value: Any) -> tuple[str, str, list[Any]]:
        return (namespace, metric, [_dimension(name, value)])

    expected: list[tuple[str, str, list[Any]]] = [
        one("Secretwatch", "RulesInvalid", "service", "secretwatch"),
        *(one("AWS/Lambda", "Errors", "FunctionName", {"Ref": f}) for f in FUNCTIONS),
        *(
            one(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                {"Fn::GetAtt": [q, "QueueName"]},
            )
            for q in ("EventsDeadLetterQueue", "FailedInvocationQueue")
        ),
        *(
            one("AWS/Events", "FailedInvocations", "RuleName", {"Ref": r})
            for r in (*RULES, TAMPER_RULE)
        ),
        # AND the heartbeat, throttles, lost destinations and dead letters, failed notifications
        # and the code's own failure counts
        one("Secretwatch", "RecordsParsed", "service", "secretwatch"),
        *(one("AWS/Lambda", "Throttles", "FunctionName", {"Ref": f}) for f in FUNCTIONS),
        *(
            one("AWS/Lambda", "DestinationDeliveryFailures", "FunctionName", {"Ref": f})
            for f in FUNCTIONS
        ),
        *(
            one("AWS/Events", "InvocationsFailedToBeSentToDlq", "RuleName", {"Ref": r})
            for r in (*RULES, SELFTEST_RULE, TAMPER_RULE)
        ),
        one(
            "AWS/SNS",
            "NumberOfNotificationsFailed",
            "TopicName",
            {"Fn::GetAtt": ["AlertTopic", "TopicName"]},
        ),
        *(
            one("Secretwatch", m, "service", "secretwatch")
            for m in ("RuleErrors", "AlertFailures", "RecordsRejected")
        ),
        # AND the central bus's rules (a custom bus's metrics carry the bus and the rule name)
        *(
            (
                "AWS/Events",
                metric,
                [
                    _dimension("EventBusName", {"Fn::GetAtt": ["CentralEventBus", "Name"]}),
                    _dimension("RuleName", _central_rule_name(suffix)),
                ],
            )
            for suffix in CENTRAL_RULE_SUFFIXES.values()
            for metric in ("FailedInvocations", "InvocationsFailedToBeSentToDlq")
        ),
        # AND CloudWatch Logs' deliveries to the log subscription function, for either log group
        *(
            (
                "AWS/Logs",
                "DeliveryErrors",
                [
                    _dimension("LogGroupName", {"Ref": group}),
                    _dimension("DestinationType", "Lambda"),
                    _dimension(
                        "FilterName", {"Fn::Sub": ["secretwatch-${Id}", {"Id": STACK_ID_PREFIX}]}
                    ),
                ],
            )
            for group in ("TrailLogGroup", "CloudTrailLogGroupName")
        ),
    ]
    assert len(watched) == len(expected) == len(list(alarms))
    assert watched == {(n, m, json.dumps(d)) for n, m, d in expected}


def test_central_rules_are_named_as_their_alarms_name_them(template: Template) -> None:
    # GIVEN the central bus's rules
    for rule, suffix in CENTRAL_RULE_SUFFIXES.items():
        # WHEN / THEN each has the fixed name its alarms' RuleName dimension gives
        assert props(template, rule)["Name"] == _central_rule_name(suffix)


def test_outputs(template: Template) -> None:
    # GIVEN the stack outputs
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}

    # WHEN / THEN the operator gets every name and URL needed to run and inspect secretwatch
    assert outputs == {
        "AuditTableName": {"Ref": "AuditTable"},
        "RulesParameterName": {"Ref": "RulesParameter"},
        "SelfTestRuleName": {"Ref": "SelfTestRule"},
        "AlertTopicArn": {
            "Fn::If": ["UseExistingAlertTopic", {"Ref": "AlertTopicArn"}, {"Ref": "AlertTopic"}]
        },
        "AlertHttpsFormat": {"Fn::If": ["HasChat", "chat", "json"]},
        "AlarmTopicArn": {"Ref": "AlarmTopic"},
        "EventBridgeFunctionName": {"Ref": "EventBridgeFunction"},
        "LogSubscriptionFunctionName": {"Ref": "LogSubscriptionFunction"},
        "EventsDeadLetterQueueUrl": {"Ref": "EventsDeadLetterQueue"},
        "FailedInvocationQueueUrl": {"Ref": "FailedInvocationQueue"},
        "StateTableName": {"Ref": "StateTable"},
        "DigestFunctionName": {"Ref": "DigestFunction"},
        # organisation modes (test_template_modes.py)
        "CentralEventBusArn": {"Fn::GetAtt": ["CentralEventBus", "Arn"]},
        "MemberReadRoleArn": {"Fn::GetAtt": ["MemberReadRole", "Arn"]},
        # replay on Step Functions (test_template_replay.py)
        "ReplayStateMachineArn": {"Ref": "ReplayStateMachine"},
        "ReplayResultsBucketName": {"Ref": "ReplayResultsBucket"},
        "ReplayBuckets": outputs["ReplayBuckets"],
    }


def test_every_parameter_is_described_and_grouped(template: Template) -> None:
    # GIVEN the parameters and the console/guided-deploy grouping
    interface = template["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [name for group in interface["ParameterGroups"] for name in group["Parameters"]]

    # WHEN / THEN every parameter has a description and a label and sits in exactly one group
    assert sorted(grouped) == sorted(template["Parameters"])
    for name, parameter in template["Parameters"].items():
        assert len(parameter["Description"]) > 40, name
        assert interface["ParameterLabels"][name]["default"], name


def test_reserved_concurrency_is_a_parameter_off_by_default(template: Template) -> None:
    # GIVEN the parameter and the two event functions
    parameter = template["Parameters"]["ReservedConcurrency"]
    assert parameter["Default"] == 0
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, 0]}]
    }
    # WHEN / THEN each caps its concurrency only when the parameter says so; the digest runs
    # one scheduled invocation at a time and needs none
    for function in ("EventBridgeFunction", "LogSubscriptionFunction"):
        assert props(template, function)["ReservedConcurrentExecutions"] == {
            "Fn::If": [
                "HasReservedConcurrency",
                {"Ref": "ReservedConcurrency"},
                {"Ref": "AWS::NoValue"},
            ]
        }
    assert "ReservedConcurrentExecutions" not in props(template, "DigestFunction")
