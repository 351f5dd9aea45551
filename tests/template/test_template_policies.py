"""The functions get exactly the IAM permissions they need, each on the narrowest resource.

A function's permissions are the statements of its own role's inline policies plus every
AWS::IAM::Policy attached to that role (AlertPublishPolicy: sns:Publish and KMS for the encrypted
topic, kept separate because the key policy names the roles).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.cfn import (
    FUNCTIONS,
    Grant,
    Template,
    all_statements,
    function_role,
    props,
    resources,
    role_grants,
)

TABLE_ARN = {"Fn::GetAtt": ["AuditTable", "Arn"]}
# The topic in use: the stack's own, or the existing AlertTopicArn (test_template_routing.py).
TOPIC_ARN = {"Fn::If": ["UseExistingAlertTopic", {"Ref": "AlertTopicArn"}, {"Ref": "AlertTopic"}]}
KEY_ARN = {"Fn::GetAtt": ["AlertKey", "Arn"]}
EXISTING_KEY_ARN = {"Ref": "AlertTopicKeyArn"}
QUEUE_ARN = {"Fn::GetAtt": ["FailedInvocationQueue", "Arn"]}
RULES_PARAMETER = {
    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${RulesParameter}"
}
SECRETS_IN_ACCOUNT = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
}
VIA_SNS = {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"}}

# Actions that support no resource-level permissions: "*" is the only possible Resource.
NO_RESOURCE_LEVEL = {
    "iam:ListAccountAliases",
    "organizations:DescribeAccount",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# Actions that must depend on a parameter-driven condition.
CONDITIONAL = {
    "organizations:DescribeAccount": "OrganizationsLookupOn",
    "xray:PutTraceSegments": "TracingOn",
    "xray:PutTelemetryRecords": "TracingOn",
    "secretsmanager:RestoreSecret": "AutoRestoreOn",
    "sts:AssumeRole": "IsCentral",  # a member account's read-only role (DeploymentMode central)
}
# Actions whose condition depends on the resource: the stack's own key, or the existing topic's.
CONDITIONAL_ON_RESOURCE = {
    (action, repr(resource)): condition
    for action in ("kms:GenerateDataKey", "kms:Decrypt")
    for resource, condition in (
        (KEY_ARN, "CreateAlertTopic"),
        (EXISTING_KEY_ARN, "HasAlertTopicKey"),
    )
}
MEMBER_READ_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}-*"}
ORGANIZATION_CONDITION = {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}}
BY_SECRET_INDEX = {"Fn::Sub": "${AuditTable.Arn}/index/by-secret"}
AUTO_RESTORE_TAG_CONDITION = {"StringEquals": {"aws:ResourceTag/secretwatch:auto-restore": "true"}}
SECRET_VALUE_ACTIONS = {
    "secretsmanager:getsecretvalue",
    "secretsmanager:batchgetsecretvalue",
    "secretsmanager:getrandompassword",
}


STATE_TABLE_ARN = {"Fn::GetAtt": ["StateTable", "Arn"]}
DUE_INDEX_ARN = {"Fn::Sub": "${StateTable.Arn}/index/due"}


def _expected_grants(function: str) -> list[tuple[str, Any]]:
    """(action, the only Resource it may have) for one function: an action granted on two
    resources (the audit and the state table) is two grants."""
    logs = {"Fn::GetAtt": [f"{function}LogGroup", "Arn"]}
    publish = [
        ("sns:Publish", TOPIC_ARN),
        ("kms:GenerateDataKey", KEY_ARN),
        ("kms:Decrypt", KEY_ARN),
        ("kms:GenerateDataKey", EXISTING_KEY_ARN),  # AlertTopicArn's key, AlertTopicKeyArn
        ("kms:Decrypt", EXISTING_KEY_ARN),
    ]
    if function == "DigestFunction":
        # Reads the due index, claims and marks digests; publishes them. Nothing else.
        return [
            ("logs:CreateLogStream", logs),
            ("logs:PutLogEvents", logs),
            ("dynamodb:Query", DUE_INDEX_ARN),
            ("dynamodb:UpdateItem", STATE_TABLE_ARN),
            *publish,
            ("sqs:SendMessage", QUEUE_ARN),
            ("xray:PutTraceSegments", "*"),
            ("xray:PutTelemetryRecords", "*"),
        ]
    expected: list[tuple[str, Any]] = [
        ("logs:CreateLogStream", logs),
        ("logs:PutLogEvents", logs),
        ("dynamodb:PutItem", TABLE_ARN),
        ("dynamodb:UpdateItem", TABLE_ARN),
        ("dynamodb:GetItem", TABLE_ARN),
        # dedup windows, threshold counts, open alerts
        ("dynamodb:PutItem", STATE_TABLE_ARN),
        ("dynamodb:UpdateItem", STATE_TABLE_ARN),
        ("dynamodb:GetItem", STATE_TABLE_ARN),
        *publish,
        ("secretsmanager:DescribeSecret", SECRETS_IN_ACCOUNT),
        ("sqs:SendMessage", QUEUE_ARN),
        ("ssm:GetParameter", RULES_PARAMETER),  # the rule document in force, and nothing else
        ("dynamodb:Query", BY_SECRET_INDEX),  # a deletion's recent readers, one index only
        ("dynamodb:BatchGetItem", TABLE_ARN),  # those readers' items (the index holds keys)
        ("secretsmanager:RestoreSecret", SECRETS_IN_ACCOUNT),  # under the tag condition below
        ("sts:AssumeRole", MEMBER_READ_ROLES),  # central mode, in the organisation only
        *((action, "*") for action in sorted(NO_RESOURCE_LEVEL)),
    ]
    if function == "LogSubscriptionFunction":
        expected.append(("dynamodb:BatchWriteItem", TABLE_ARN))
    return expected


def _key(resource: Any) -> str:
    return repr(resource)


def _grants(template: Template, function: str) -> list[Grant]:
    return role_grants(template, function_role(template, function))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_gets_exactly_the_expected_actions(template: Template, function: str) -> None:
    # GIVEN the function's role and every policy attached to it
    grants = _grants(template, function)

    # WHEN the granted actions are collected, each with its resource
    granted = [
        (action, _key(resource))
        for grant in grants
        for action in grant.actions
        for resource in grant.resources
    ]

    # THEN they are exactly the expected grants, each granted once
    expected = [(action, _key(resource)) for action, resource in _expected_grants(function)]
    assert sorted(granted) == sorted(expected)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_action_is_on_its_narrowest_resource(template: Template, function: str) -> None:
    # GIVEN the expected resources of every action
    expected: dict[str, list[str]] = {}
    for action, resource in _expected_grants(function):
        expected.setdefault(action, []).append(_key(resource))

    # WHEN each statement is inspected
    for grant in _grants(template, function):
        # THEN it allows (no Deny/NotAction/NotResource tricks) only on one expected resource
        assert grant.statement["Effect"] == "Allow", grant
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(grant.statement), grant
        for action in grant.actions:
            assert len(grant.resources) == 1, (grant.policy, action, grant.resources)
            assert _key(grant.resources[0]) in expected[action], (grant.policy, action)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_optional_grants_depend_on_their_parameters(template: Template, function: str) -> None:
    # GIVEN the function's statements with the condition each one sits under
    grants = _grants(template, function)

    # WHEN / THEN Organizations and X-Ray grants exist only under their conditions
    for grant in grants:
        for action in grant.actions:
            expected = CONDITIONAL_ON_RESOURCE.get(
                (action, _key(grant.resources[0])), CONDITIONAL.get(action)
            )
            assert grant.condition == expected, (grant.policy, action)
    # AND "*" resources are used only by actions that cannot be scoped
    for grant in grants:
        if "*" in grant.resources:
            assert set(grant.actions) <= NO_RESOURCE_LEVEL, grant


@pytest.mark.parametrize("function", ["EventBridgeFunction", "LogSubscriptionFunction"])
def test_restore_is_granted_only_on_secrets_tagged_for_it(
    template: Template, function: str
) -> None:
    # GIVEN the function's statements
    grants = _grants(template, function)

    # WHEN the statement granting RestoreSecret is found
    (restore,) = [g for g in grants if "secretsmanager:RestoreSecret" in g.actions]

    # THEN it grants that action alone, only on secrets carrying the opt-in tag, and only when
    # AutoRestore is not disabled; every other statement carries no IAM condition
    assert restore.actions == ["secretsmanager:RestoreSecret"]
    assert restore.statement["Condition"] == AUTO_RESTORE_TAG_CONDITION
    assert restore.condition == "AutoRestoreOn"
    assert template["Conditions"]["AutoRestoreOn"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AutoRestore"}, "disabled"]}]
    }
    assert template["Parameters"]["AutoRestore"]["Default"] == "disabled"
    assert template["Parameters"]["AutoRestore"]["AllowedValues"] == [
        "disabled",
        "dry-run",
        "enabled",
    ]
    # (but the member roles' AssumeRole, which is limited to the organisation, and the key,
    # usable only through SNS for the alert topic)
    (assume,) = [g for g in grants if "sts:AssumeRole" in g.actions]
    assert assume.statement["Condition"] == ORGANIZATION_CONDITION
    keys = {g.statement["Sid"]: g for g in grants if "kms:GenerateDataKey" in g.actions}
    assert keys["EncryptForTopic"].statement["Condition"] == {
        "StringEquals": {**VIA_SNS, "kms:EncryptionContext:aws:sns:topicArn": {"Ref": "AlertTopic"}}
    }
    # (an existing topic may be in another Region, so only its encryption context is named)
    assert keys["EncryptForExistingTopic"].statement["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": {"Ref": "AlertTopicArn"}}
    }
    for grant in grants:
        if grant not in (restore, assume, *keys.values()):
            assert "Condition" not in grant.statement, grant


def test_the_digest_function_restores_nothing(template: Template) -> None:
    actions = {a for grant in _grants(template, "DigestFunction") for a in grant.actions}
    assert not {a for a in actions if a.startswith("secretsmanager:")}


def test_batch_writes_only_on_the_log_subscription_function(template: Template) -> None:
    # GIVEN both functions' actions
    actions = {
        function: {action for grant in _grants(template, function) for action in grant.actions}
        for function in FUNCTIONS
    }

    # WHEN / THEN only the log subscription function may batch-write the table; both batch-read
    # it (the log route skips ids already stored; a deletion's readers are read by key, as the
    # by-secret index holds keys only)
    assert "dynamodb:BatchWriteItem" in actions["LogSubscriptionFunction"]
    assert "dynamodb:BatchWriteItem" not in actions["EventBridgeFunction"]
    assert "dynamodb:BatchGetItem" in actions["LogSubscriptionFunction"]
    assert "dynamodb:BatchGetItem" in actions["EventBridgeFunction"]


def test_no_wildcard_action_anywhere(template: Template) -> None:
    # GIVEN every statement of every policy document in the template
    statements = list(all_statements(template))
    assert len(statements) > 20  # the walker really found the policies
    root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}

    # WHEN / THEN no statement uses "*" or NotAction; an allowed wildcard appears only in the key
    # policy: "kms:*" for the account itself (the AWS default statement that keeps the key
    # manageable). Deny statements may be broad: they only take access away.
    for path, statement in statements:
        assert "NotAction" not in statement, path
        action = statement["Action"]
        actions = [action] if isinstance(action, str) else action
        assert "*" not in actions, path
        wildcards = {name for name in actions if "*" in name}
        if not wildcards or statement["Effect"] == "Deny":
            continue
        assert path.startswith("/AlertKey/"), (path, wildcards)
        assert wildcards == {"kms:*"}, (path, wildcards)
        assert statement["Principal"] == root, path


def test_no_secret_value_action_anywhere(template: Template) -> None:
    # GIVEN every statement of every policy document in the template
    # WHEN / THEN none mentions an action that returns a secret value, not even by wildcard
    for path, statement in all_statements(template):
        action = statement["Action"]
        for name in [action] if isinstance(action, str) else action:
            lowered = name.lower()
            assert lowered not in SECRET_VALUE_ACTIONS, (path, name)
            if lowered.startswith("secretsmanager:"):
                assert "*" not in lowered, (path, name)


def test_functions_use_the_templates_roles_without_managed_policies(translated: Template) -> None:
    # GIVEN the template after the SAM transform (what CloudFormation really creates)
    roles = resources(translated, "AWS::IAM::Role")

    # WHEN / THEN SAM generated no role of its own, and no role carries a managed policy
    assert set(roles) == {
        "EventBridgeFunctionRole",
        "LogSubscriptionFunctionRole",
        "DigestFunctionRole",
        "TrailLogsRole",
        "MemberForwardRole",  # member mode (tests/template/test_template_modes.py)
        "MemberReadRole",
        "ChatChannelRole",  # chat channels (test_template_routing.py)
        "ReplayFileFunctionRole",  # replay on Step Functions (test_template_replay.py)
        "ReplayStateMachineRole",
    }
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], name
    for function in FUNCTIONS:
        assert translated["Resources"][function]["Properties"]["Role"] == {
            "Fn::GetAtt": [f"{function}Role", "Arn"]
        }
        # AND the function is only created once its alert permissions are attached
        depends_on = translated["Resources"][function]["DependsOn"]
        assert "AlertPublishPolicy" in ([depends_on] if isinstance(depends_on, str) else depends_on)


def test_roles_can_only_be_assumed_by_their_service(template: Template) -> None:
    # GIVEN every role in the template
    expected = {
        "EventBridgeFunctionRole": "lambda.amazonaws.com",
        "LogSubscriptionFunctionRole": "lambda.amazonaws.com",
        "DigestFunctionRole": "lambda.amazonaws.com",
        "TrailLogsRole": "cloudtrail.amazonaws.com",
        "ChatChannelRole": "chatbot.amazonaws.com",
        "ReplayFileFunctionRole": "lambda.amazonaws.com",
        "ReplayStateMachineRole": "states.amazonaws.com",
    }

    # WHEN / THEN each trusts exactly one service principal (the member mode's roles, which
    # trust EventBridge and the central account, are tested in test_template_modes.py)
    for name, role in resources(template, "AWS::IAM::Role").items():
        if name.startswith("Member"):
            continue
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement == {
            "Effect": "Allow",
            "Principal": {"Service": expected[name]},
            "Action": "sts:AssumeRole",
        }


def test_trail_role_writes_only_to_its_log_group(template: Template) -> None:
    # GIVEN the role CloudTrail uses for CloudWatch Logs
    grants = role_grants(template, "TrailLogsRole")

    # WHEN / THEN it may only create streams in and write to the trail's log group
    assert [(sorted(g.actions), g.resources) for g in grants] == [
        (["logs:CreateLogStream", "logs:PutLogEvents"], [{"Fn::GetAtt": ["TrailLogGroup", "Arn"]}])
    ]


def test_environment_comes_from_references_not_literals(template: Template) -> None:
    # GIVEN the environment every function inherits from Globals
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    # WHEN / THEN resource names and settings are references, and no function overrides them
    assert variables == {
        "AUDIT_TABLE_NAME": {"Ref": "AuditTable"},
        "ALERT_TOPIC_ARN": TOPIC_ARN,
        "HTTPS_MESSAGE_FORMAT": {"Fn::If": ["HasChat", "chat", "json"]},
        "RETENTION_DAYS": {"Ref": "RetentionDays"},
        "ENRICH_CACHE_SECONDS": "300",
        "ORGANIZATIONS_LOOKUP": {"Ref": "OrganizationsLookup"},
        "HOME_ACCOUNT_ID": {"Ref": "AWS::AccountId"},
        "POWERTOOLS_SERVICE_NAME": "secretwatch",
        "POWERTOOLS_METRICS_NAMESPACE": "Secretwatch",
        "POWERTOOLS_TRACE_DISABLED": {"Fn::If": ["TracingOn", "false", "true"]},
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
        "RULES_PARAMETER_NAME": {"Ref": "RulesParameter"},
        "STATE_TABLE_NAME": {"Ref": "StateTable"},
        "AUTO_RESTORE": {"Ref": "AutoRestore"},
        "MEMBER_ROLE_NAME": {"Fn::If": ["IsCentral", {"Ref": "MemberRoleName"}, ""]},
        "LOGS_ROUTE_REGION": {"Fn::If": ["LogsRouteThisRegion", {"Ref": "AWS::Region"}, ""]},
        # the stack's own resources, for secretwatch-tampered (shared.tamper)
        "STACK_NAME": {"Ref": "AWS::StackName"},
        "FUNCTION_NAME_PREFIX": {
            "Fn::Sub": [
                "secretwatch-${Id}-",
                {
                    "Id": {
                        "Fn::Select": [
                            0,
                            {
                                "Fn::Split": [
                                    "-",
                                    {
                                        "Fn::Select": [
                                            2,
                                            {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]},
                                        ]
                                    },
                                ]
                            },
                        ]
                    }
                },
            ]
        },
        "TRAIL_NAME": {"Fn::If": ["CreateTrailOn", {"Fn::Sub": "${AWS::StackName}-trail"}, ""]},
        "TRAIL_LOG_GROUP": {
            "Fn::If": ["CreateTrailOn", {"Ref": "TrailLogGroup"}, {"Ref": "CloudTrailLogGroupName"}]
        },
        "ALERT_KEY_ARN": {
            "Fn::If": [
                "CreateAlertTopic",
                {"Fn::GetAtt": ["AlertKey", "Arn"]},
                {"Ref": "AlertTopicKeyArn"},
            ]
        },
        "ALARM_TOPIC_ARN": {"Ref": "AlarmTopic"},
        "ROUTINE_READ_RETENTION_DAYS": {"Ref": "RoutineReadRetentionDays"},
    }
    # AND the function prefix is exactly how the functions are named (FunctionName's !Sub)
    for function in FUNCTIONS:
        name = props(template, function)["FunctionName"]["Fn::Sub"]
        prefix = variables["FUNCTION_NAME_PREFIX"]["Fn::Sub"]
        assert name[1] == prefix[1], function
        assert name[0].startswith(prefix[0]), function
    for function in FUNCTIONS:
        assert "Environment" not in props(template, function), function


def test_key_policy_lets_only_the_functions_use_the_key(template: Template) -> None:
    # GIVEN the alert key's policy
    statements = props(template, "AlertKey")["KeyPolicy"]["Statement"]
    by_sid = {statement["Sid"]: statement for statement in statements}

    # WHEN / THEN the account administers it, the function roles may encrypt for the topic
    # through SNS only, and nobody else is named: CloudWatch no longer needs the key, the alarms
    # publish to their own topic
    assert set(by_sid) == {"AccountRootAdministers", "FunctionsPublishToTopic"}
    assert by_sid["FunctionsPublishToTopic"]["Principal"] == {
        "AWS": [{"Fn::GetAtt": [f"{function}Role", "Arn"]} for function in FUNCTIONS]
    }
    assert by_sid["FunctionsPublishToTopic"]["Condition"] == {"StringEquals": VIA_SNS}
    assert sorted(by_sid["FunctionsPublishToTopic"]["Action"]) == [
        "kms:Decrypt",
        "kms:GenerateDataKey",
    ]
