"""Tampering with secretwatch itself: which calls blind it, what they target, what is ours.

The issue this answers: the monitor could be blinded silently (a rule disabled, the trail
stopped, the subscription filter or the alert key removed) and nothing watched for it. The
``TamperRule`` of template.yaml delivers these CloudTrail records through the EventBridge route;
:func:`tamper_target` names the resource each call acts on (normalise keeps it on the record as
``target``), and :class:`StackIdentity` says whether that resource is one of this stack's
(the enricher sets ``Enrichment.own_target``, the ``secretwatch-tampered`` rule fires on it).

Only the calls in :data:`TAMPER_CALLS` are read from these sources; every other call of theirs
(KMS Decrypt above all) stays out of scope, so a replay of a year of CloudTrail does not audit
every KMS call of the account.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared import bounds
from shared.models import TargetRef

EVENTS_SOURCE = "events.amazonaws.com"
CLOUDTRAIL_SOURCE = "cloudtrail.amazonaws.com"
LOGS_SOURCE = "logs.amazonaws.com"
KMS_SOURCE = "kms.amazonaws.com"
LAMBDA_SOURCE = "lambda.amazonaws.com"
SNS_SOURCE = "sns.amazonaws.com"

# A target name is an ARN or a resource name: ARNs stay under 2 KB, so anything longer is
# hostile and kept as a readable prefix (bounds.text ends it with a hash of the whole value).
TARGET_NAME_MAX = 1024
_ARN_KEY_ID = re.compile(r":key/([A-Za-z0-9-]+)$")

Extractor = Callable[[Mapping[str, Any], Mapping[str, Any]], TargetRef | None]


def _text(value: Any) -> str | None:
    if type(value) is not str or not value:
        return None
    return bounds.text(value, TARGET_NAME_MAX)


def _rule(name_key: str) -> Extractor:
    def extract(request: Mapping[str, Any], _: Mapping[str, Any]) -> TargetRef | None:
        name = _text(request.get(name_key))
        if name is None:
            return None
        # A rule's name may be given as its ARN (…:rule/[bus/]name): the last part is the name.
        short = name.rpartition("/")[2] if name.startswith("arn:") else name
        state = request.get("state")
        return TargetRef(
            "eventbridge-rule",
            short,
            parent=_text(request.get("eventBusName")),
            disables=(state == "DISABLED") if type(state) is str else None,
        )

    return extract


def _trail(name_key: str) -> Extractor:
    def extract(request: Mapping[str, Any], _: Mapping[str, Any]) -> TargetRef | None:
        name = _text(request.get(name_key))
        if name is None:
            return None
        # StopLogging and DeleteTrail take a name or an ARN (…:trail/name).
        return TargetRef("trail", name.rpartition(":trail/")[2] or name)

    return extract


def _log_group(kind: str) -> Extractor:
    def extract(request: Mapping[str, Any], _: Mapping[str, Any]) -> TargetRef | None:
        group = _text(request.get("logGroupName"))
        if group is None:
            return None
        if kind == "subscription-filter":
            return TargetRef(kind, _text(request.get("filterName")) or "", parent=group)
        return TargetRef(kind, group)

    return extract


def _key(request: Mapping[str, Any], response: Mapping[str, Any]) -> TargetRef | None:
    key_id = _text(request.get("keyId")) or _text(response.get("keyId"))
    if key_id is None:
        return None
    match = _ARN_KEY_ID.search(key_id)
    return TargetRef("kms-key", match.group(1) if match else key_id)


def _function(request: Mapping[str, Any], response: Mapping[str, Any]) -> TargetRef | None:
    name = _text(request.get("functionName")) or _text(response.get("functionArn"))
    if name is None:
        return None
    # A function name, a partial ARN (account:function:name) or a full ARN, maybe qualified.
    if ":function:" in name:
        name = name.partition(":function:")[2].partition(":")[0]
    return TargetRef("function", name)


def _topic(arn_key: str) -> Extractor:
    def extract(request: Mapping[str, Any], _: Mapping[str, Any]) -> TargetRef | None:
        arn = _text(request.get(arn_key))
        if arn is None:
            return None
        if arn_key == "subscriptionArn":  # arn:aws:sns:region:account:topic:subscription-id
            return TargetRef("sns-subscription", arn, parent=arn.rpartition(":")[0])
        return TargetRef("sns-topic", arn)

    return extract


# (event source, event name) → how to find the resource the call acts on. Lambda's CloudTrail
# event names carry the API version (DeleteFunction20150331); the console and the SDKs use both
# RemovePermission versions.
TAMPER_CALLS: dict[tuple[str, str], Extractor] = {
    (EVENTS_SOURCE, "DisableRule"): _rule("name"),
    (EVENTS_SOURCE, "DeleteRule"): _rule("name"),
    (EVENTS_SOURCE, "PutRule"): _rule("name"),
    (EVENTS_SOURCE, "RemoveTargets"): _rule("rule"),
    (EVENTS_SOURCE, "PutTargets"): _rule("rule"),
    (CLOUDTRAIL_SOURCE, "StopLogging"): _trail("name"),
    (CLOUDTRAIL_SOURCE, "DeleteTrail"): _trail("name"),
    (CLOUDTRAIL_SOURCE, "UpdateTrail"): _trail("name"),
    (CLOUDTRAIL_SOURCE, "PutEventSelectors"): _trail("trailName"),
    (CLOUDTRAIL_SOURCE, "PutAdvancedEventSelectors"): _trail("trailName"),
    (LOGS_SOURCE, "DeleteSubscriptionFilter"): _log_group("subscription-filter"),
    (LOGS_SOURCE, "PutSubscriptionFilter"): _log_group("subscription-filter"),
    (LOGS_SOURCE, "DeleteLogGroup"): _log_group("log-group"),
    (KMS_SOURCE, "DisableKey"): _key,
    (KMS_SOURCE, "ScheduleKeyDeletion"): _key,
    (KMS_SOURCE, "PutKeyPolicy"): _key,
    (LAMBDA_SOURCE, "DeleteFunction20150331"): _function,
    (LAMBDA_SOURCE, "PutFunctionConcurrency20171031"): _function,
    (LAMBDA_SOURCE, "RemovePermission20150331"): _function,
    (LAMBDA_SOURCE, "RemovePermission20150331v2"): _function,
    (LAMBDA_SOURCE, "DeleteEventSourceMapping20150331"): _function,
    (SNS_SOURCE, "DeleteTopic"): _topic("topicArn"),
    (SNS_SOURCE, "SetTopicAttributes"): _topic("topicArn"),
    (SNS_SOURCE, "Unsubscribe"): _topic("subscriptionArn"),
}
TAMPER_SOURCES = frozenset(source for source, _ in TAMPER_CALLS)


def is_tamper_call(source: str, event_name: str) -> bool:
    return (source, event_name) in TAMPER_CALLS


def tamper_target(
    source: str,
    event_name: str,
    request: Mapping[str, Any] | None,
    response: Mapping[str, Any] | None,
) -> TargetRef | None:
    """The resource a tamper call acts on; None when the record does not name it."""
    extract = TAMPER_CALLS.get((source, event_name))
    if extract is None:
        return None
    return extract(request or {}, response or {})


@dataclass(frozen=True, slots=True)
class StackIdentity:
    """This stack's own resources, as the template passes them to the functions.

    Rules: CloudFormation names them ``<stack>-<LogicalId>-<random>``, so they are recognised by
    the stack name (a function cannot refer to a rule that targets it: that is a cycle).
    Functions: ``secretwatch-<id>-…``. The trail is ``<stack>-trail`` when the stack created it;
    with an existing log group its trail is unknown, so *every* StopLogging, DeleteTrail and
    selector change in the account is treated as ours: CloudTrail is where all of this comes from.
    """

    stack_name: str
    function_prefix: str | None = None
    trail_name: str | None = None  # None: the trail is not the stack's (any trail counts)
    log_group: str | None = None  # the CloudTrail log group the stack subscribes to
    alert_key_id: str | None = None
    topic_arns: frozenset[str] = frozenset()

    def owns(self, target: TargetRef | None) -> str | None:
        """Which of this stack's resources ``target`` is (a label), or None if it is not one."""
        if target is None:
            return None
        kind, name = target.kind, target.name
        if kind == "eventbridge-rule" and name.startswith(self.stack_name + "-"):
            return f"EventBridge rule {name}"
        if kind == "trail" and (self.trail_name is None or name == self.trail_name):
            return f"trail {name}"
        if kind == "subscription-filter" and self.log_group and target.parent == self.log_group:
            return f"subscription filter {name} of {target.parent}"
        if kind == "log-group" and self._owns_log_group(name):
            return f"log group {name}"
        if kind == "function" and self.function_prefix and name.startswith(self.function_prefix):
            return f"function {name}"
        if kind == "kms-key" and self.alert_key_id and name == self.alert_key_id:
            return f"alert key {name}"
        if kind == "sns-topic" and name in self.topic_arns:
            return f"topic {name}"
        if kind == "sns-subscription" and target.parent in self.topic_arns:
            return f"subscription {name}"
        return None

    def _owns_log_group(self, name: str) -> bool:
        """The trail's log group, or one of the functions' own (/aws/lambda/<function>)."""
        if self.log_group is not None and name == self.log_group:
            return True
        prefix = self.function_prefix
        return prefix is not None and name.startswith(f"/aws/lambda/{prefix}")


def identity_from_env(env: Mapping[str, str]) -> StackIdentity | None:
    """The identity the template passes (STACK_NAME and friends); None when it is not given."""
    stack = env.get("STACK_NAME", "").strip()
    if not stack:
        return None
    key = env.get("ALERT_KEY_ARN", "").strip()
    match = _ARN_KEY_ID.search(key)
    topics = (env.get("ALERT_TOPIC_ARN", "").strip(), env.get("ALARM_TOPIC_ARN", "").strip())
    return StackIdentity(
        stack_name=stack,
        function_prefix=env.get("FUNCTION_NAME_PREFIX", "").strip() or None,
        trail_name=env.get("TRAIL_NAME", "").strip() or None,
        log_group=env.get("TRAIL_LOG_GROUP", "").strip() or None,
        alert_key_id=match.group(1) if match else (key or None),
        topic_arns=frozenset(arn for arn in topics if arn),
    )
