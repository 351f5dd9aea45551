"""Normalisation: one raw CloudTrail record → one typed, immutable ``CloudTrailRecord``.

Decision fields (what the rules decide on) are type-checked exactly and a wrong one rejects the
record, naming the field; descriptive fields of the wrong type become unknown with a warning.
Traps handled here: ``aRN``/``arn``, ARN-or-name secret ids, service events with no
``userIdentity.type``, U+2019 apostrophes, ``resourcePolicy`` as a JSON string, string booleans
in ``sessionContext`` (decided exactly, never guessed), and SSO sessions told apart by their
role's path rather than its name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.errors import OutOfScope, RecordRejected
from shared.jsonvalue import json_error, json_type, loads
from shared.models import (
    SECRETSMANAGER_SOURCE,
    Caller,
    CloudTrailRecord,
    RequestFields,
    RotationRules,
    SecretRef,
)
from shared.redact import ECHO_MEMBERS, describe
from shared.tamper import is_tamper_call, tamper_target

SSO_ROLE_PREFIX = "AWSReservedSSO_"
# IAM Identity Center creates its roles under this path (optionally followed by a Region): a role
# merely named AWSReservedSSO_... elsewhere is not an SSO session.
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
# An IAM policy nests about six levels (Statement, Condition, operator, key, values); the rules
# walk policies recursively, so a deeper one is refused at the edge.
MAX_POLICY_DEPTH = 16
# A full secret ARN ends with "-" and six random characters; AWS applies the same test to a
# partial ARN, so a name that looks like it ends in a suffix is treated as one (as AWS does).
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_REQUEST_KEYS = frozenset(
    {
        "recoveryWindowInDays",
        "forceDeleteWithoutRecovery",
        "resourcePolicy",
        "blockPublicPolicy",
        "rotationLambdaARN",
        "rotationRules",
        "rotateImmediately",
        "kmsKeyId",
        "versionStages",
        "addReplicaRegions",
        "removeReplicaRegions",
    }
)
_EMPTY_REQUEST = RequestFields()
_EMPTY_CALLER = Caller()


def normalise(raw: Mapping[str, Any], *, prefix: str = "") -> CloudTrailRecord:
    """Turn one raw CloudTrail record into a CloudTrailRecord.

    Raises OutOfScope for another event source, and RecordRejected (naming the field) when a
    decision field is missing or of the wrong JSON type. Descriptive fields that are missing are
    unknown (None); descriptive fields of the wrong type are unknown and noted in ``warnings``.
    """
    event_id_value = raw.get("eventID")
    hint = event_id_value if type(event_id_value) is str else None
    fields = _Fields(prefix, hint)

    source = fields.required_str(raw, "eventSource")
    tamper = False
    if source != SECRETSMANAGER_SOURCE:
        name = raw.get("eventName")
        # The few calls of other services that could blind secretwatch (shared.tamper) are
        # records too; everything else those services log stays out of scope.
        tamper = type(name) is str and is_tamper_call(source, name)
    if source != SECRETSMANAGER_SOURCE and not tamper:
        raise OutOfScope(
            f"event source {source} is not {SECRETSMANAGER_SOURCE}",
            event_id=hint,
            event_name=name if type(name) is str else None,
        )
    event_name = fields.required_str(raw, "eventName")
    event_id = fields.required_str(raw, "eventID")
    event_type = fields.required_str(raw, "eventType")
    event_time = fields.time(raw, "eventTime")

    error_message = fields.opt_str(raw, "errorMessage")
    if error_message is not None and "\u2019" in error_message:
        error_message = error_message.replace("\u2019", "'")
    request_parameters = fields.opt_object(raw, "requestParameters")
    response_elements = fields.opt_object(raw, "responseElements")
    additional = fields.opt_object(raw, "additionalEventData")
    user_identity = fields.opt_object(raw, "userIdentity")

    (
        record_account,
        region,
        source_ip,
        user_agent,
        vpc_endpoint_id,
        event_version,
        shared_event_id,
        request_id,
    ) = fields.desc_strs(raw, _TOP_STRINGS)
    if user_identity is not None:
        caller = _caller(user_identity, fields, raw)
    else:
        caller = _EMPTY_CALLER
        fields.warnings.append(f"{prefix}userIdentity is missing: the caller is unknown")

    return CloudTrailRecord(
        event_id=event_id,
        event_name=event_name,
        event_type=event_type,
        event_time=event_time,
        event_source=source,
        region=region,
        account_id=record_account,
        read_only=fields.opt_bool(raw, "readOnly"),
        error_code=fields.opt_str(raw, "errorCode"),
        error_message=error_message,
        # A tamper record names no secret (its requestParameters.name is a rule or a trail).
        secret=None
        if tamper
        else _secret(raw, request_parameters, response_elements, additional, fields),
        caller=caller,
        source_ip=source_ip,
        user_agent=user_agent,
        vpc_endpoint_id=vpc_endpoint_id,
        request=_EMPTY_REQUEST
        if tamper
        else _request(request_parameters, response_elements, fields),
        event_version=event_version,
        shared_event_id=shared_event_id,
        request_id=request_id,
        warnings=tuple(fields.warnings),
        target=tamper_target(source, event_name, request_parameters, response_elements)
        if tamper
        else None,
    )


class _Fields:
    """Type-checked access to a record's fields, with the JSON path for error messages."""

    __slots__ = ("event_id", "prefix", "warnings")

    def __init__(self, prefix: str, event_id: str | None) -> None:
        self.prefix = prefix
        self.event_id = event_id
        self.warnings: list[str] = []

    def reject(self, path: str, expected: str, value: Any) -> RecordRejected:
        field = self.prefix + path
        if value is _MISSING:
            message = f"{field} is missing"
        else:
            message = f"{field} must be {expected}, got {_describe(value, path)}"
        return RecordRejected(message, field=field, event_id=self.event_id)

    def required_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str:
        value = obj.get(key, _MISSING)
        if type(value) is str and value:
            return value
        raise self.reject(path + key, "a non-empty string", value)

    def opt_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str | None:
        value = obj.get(key)
        if value is None or type(value) is str:
            return value
        raise self.reject(path + key, "a string", value)

    def opt_bool(self, obj: Mapping[str, Any], key: str, path: str = "") -> bool | None:
        value = obj.get(key)
        if value is None or type(value) is bool:
            return value
        # Never guess the truth of "true": only a JSON boolean is a boolean.
        raise self.reject(path + key, "a JSON boolean", value)

    def opt_int(self, obj: Mapping[str, Any], key: str, path: str = "") -> int | None:
        value = obj.get(key)
        if value is None or type(value) is int:
            return value
        raise self.reject(path + key, "a whole number", value)

    def opt_object(self, obj: Mapping[str, Any], key: str, path: str = "") -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None or type(value) is dict:
            return value
        raise self.reject(path + key, "an object or null", value)

    def opt_str_list(
        self, obj: Mapping[str, Any], key: str, path: str = ""
    ) -> tuple[str, ...] | None:
        value = obj.get(key)
        if value is None:
            return None
        if type(value) is list and all(type(item) is str for item in value):
            return tuple(value)
        raise self.reject(path + key, "an array of strings", value)

    def time(self, obj: Mapping[str, Any], key: str) -> datetime:
        text = self.required_str(obj, key)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise self.reject(key, "an ISO 8601 time", text) from None
        if value.tzinfo is None:
            raise self.reject(key, "an ISO 8601 time with a zone (…Z)", text)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise self.reject(key, "a time between the years 1 and 9999 in UTC", text) from None

    def desc_str(self, obj: Mapping[str, Any], key: str, path: str = "") -> str | None:
        """A descriptive string: empty is unknown; the wrong type is unknown with a warning."""
        value = obj.get(key)
        if value is None or type(value) is str:
            return value or None
        self.warnings.append(
            f"{self.prefix}{path}{key} ignored: expected a string, got {_describe(value, path)}"
        )
        return None

    def desc_strs(self, obj: Mapping[str, Any], keys: tuple[str, ...], path: str = "") -> list[Any]:
        """:meth:`desc_str` for several keys at once (the common case costs one pass)."""
        values = [obj.get(key) for key in keys]
        if _STRING_OR_NONE.issuperset(map(type, values)):
            return [value or None for value in values]
        return [self.desc_str(obj, key, path) for key in keys]

    def desc_object(
        self, obj: Mapping[str, Any], key: str, path: str = ""
    ) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None or type(value) is dict:
            return value
        self.warnings.append(
            f"{self.prefix}{path}{key} ignored: expected an object, got {_describe(value, path)}"
        )
        return None


_MISSING: Any = object()
_STRING_OR_NONE = frozenset({str, type(None)})
_TOP_STRINGS = (
    "recipientAccountId",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "vpcEndpointId",
    "eventVersion",
    "sharedEventID",
    "requestID",
)
_IDENTITY_STRINGS = ("arn", "principalId", "accountId", "userName", "invokedBy", "accessKeyId")


def _describe(value: Any, path: str = "") -> str:
    """A wrong value for an error message. Content echoed from the request or the response may
    hold anything, a secret value included: it is described by its type and size, never quoted."""
    if path.partition(".")[0] in ECHO_MEMBERS:
        return describe(value)
    kind = json_type(value)
    if kind in {"string", "number", "boolean"}:
        text = json.dumps(value)
        return f"the {kind} {text if len(text) <= 40 else text[:37] + '…'}"
    return kind


# --- the secret --------------------------------------------------------------------------------


def secret_from_id(secret_id: str) -> SecretRef:
    """A secret id as users and events give it (name, partial ARN or full ARN) → SecretRef."""
    key: tuple[str, str | None, str | None, str | None] = (secret_id, None, None, None)
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":", 6)
        if len(parts) == 7 and parts[2] == "secretsmanager" and parts[5] == "secret":
            name = parts[6]
            stripped = _ARN_SUFFIX.sub("", name)
            key = (
                stripped or name,
                secret_id if stripped != name else None,
                parts[3] or None,
                parts[4] or None,
            )
    ref = _SECRETS.get(key)
    if ref is None:
        ref = _intern(_SECRETS, key, SecretRef(*key))
    return ref


def _secret(
    raw: Mapping[str, Any],
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
    additional: dict[str, Any] | None,
    fields: _Fields,
) -> SecretRef | None:
    # Most specific first: response ARNs are full ARNs; a request secretId may be a name.
    found: SecretRef | None = None
    for obj, key, path in _secret_candidates(raw, request, response, additional, fields):
        value = obj.get(key)
        if value is None:
            continue
        if type(value) is not str:
            fields.desc_str(obj, key, path)  # the warning
            continue
        if not value:
            continue
        ref = secret_from_id(value)
        if found is None or (found.arn is None and ref.arn is not None and ref.name == found.name):
            found = ref
        if found.arn is not None:
            break
    if found is None:
        found = _secret_from_resources(raw, fields)
    return found


def _secret_candidates(
    raw: Mapping[str, Any],
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
    additional: dict[str, Any] | None,
    fields: _Fields,
) -> Iterator[tuple[Mapping[str, Any], str, str]]:
    if response is not None:
        yield response, "arn", "responseElements."
        yield response, "aRN", "responseElements."
    if additional is not None:
        yield additional, "SecretId", "additionalEventData."
    if request is not None:
        yield request, "secretId", "requestParameters."
        yield request, "name", "requestParameters."
    if response is not None:
        yield response, "name", "responseElements."
    service_details = fields.desc_object(raw, "serviceEventDetails")
    if service_details is not None:
        yield service_details, "secretId", "serviceEventDetails."


def _secret_from_resources(raw: Mapping[str, Any], fields: _Fields) -> SecretRef | None:
    resources = raw.get("resources")
    if type(resources) is not list:
        return None
    for resource in resources:
        if type(resource) is dict:
            arn = resource.get("ARN") or resource.get("arn")
            if type(arn) is str and ":secretsmanager:" in arn:
                return secret_from_id(arn)
    return None


# --- the caller --------------------------------------------------------------------------------


def _caller(identity: dict[str, Any], fields: _Fields, raw: Mapping[str, Any]) -> Caller:
    path = "userIdentity."
    kind = fields.opt_str(identity, "type", path)  # decides root-activity: a decision field
    arn, principal_id, account_id, user_name, invoked_by, access_key_id = fields.desc_strs(
        identity, _IDENTITY_STRINGS, path
    )

    context = fields.desc_object(identity, "sessionContext", path) or {}
    issuer = fields.desc_object(context, "sessionIssuer", path + "sessionContext.") or {}
    attributes = fields.desc_object(context, "attributes", path + "sessionContext.") or {}
    mfa = _string_bool(attributes.get("mfaAuthenticated"))
    source_identity = fields.desc_str(context, "sourceIdentity", path + "sessionContext.")

    role_name = role_arn = session_name = None
    if kind == "AssumedRole":
        if issuer.get("type") == "Role":
            role_name = fields.desc_str(issuer, "userName", path + "sessionContext.sessionIssuer.")
            role_arn = fields.desc_str(issuer, "arn", path + "sessionContext.sessionIssuer.")
        if arn is not None and ":assumed-role/" in arn:
            _, _, tail = arn.partition(":assumed-role/")
            arn_role, _, session_name = tail.partition("/")
            role_name = role_name or arn_role or None
            session_name = session_name or None
        elif principal_id is not None and ":" in principal_id:
            session_name = principal_id.partition(":")[2] or None
    elif kind == "FederatedUser" and arn is not None and ":federated-user/" in arn:
        user_name = user_name or arn.partition(":federated-user/")[2] or None

    sso_user = sso_permission_set = None
    if is_sso_role(role_arn) and role_name is not None and role_name.startswith(SSO_ROLE_PREFIX):
        sso_user = session_name
        sso_permission_set = role_name[len(SSO_ROLE_PREFIX) :].rpartition("_")[0] or None

    store_user_id = store_arn = None
    on_behalf = fields.desc_object(identity, "onBehalfOf", path)
    if on_behalf is not None:
        store_user_id = fields.desc_str(on_behalf, "userId", path + "onBehalfOf.")
        store_arn = fields.desc_str(on_behalf, "identityStoreArn", path + "onBehalfOf.")

    if kind == "AssumedRole":
        identity_arn = role_arn
    elif kind in {"IAMUser", "Root", "FederatedUser"}:
        identity_arn = arn
    else:
        identity_arn = None

    if arn is not None:
        principal: str | None = arn
    elif store_user_id is not None:
        principal = (
            f"{store_arn}/user/{store_user_id}" if store_arn else f"identitycenter:{store_user_id}"
        )
    elif invoked_by is not None:
        principal = invoked_by
    elif principal_id is not None:
        principal = f"{account_id}:{principal_id}" if account_id else principal_id
    elif account_id is not None:
        principal = f"account:{account_id}"
    else:
        principal = None

    if kind == "Root":
        name: str | None = "root"
    else:
        name = sso_user or user_name or role_name or store_user_id or invoked_by or principal_id

    console = _string_bool(raw.get("sessionCredentialFromConsole"))
    values = (
        kind,
        principal,
        identity_arn,
        name,
        arn,
        principal_id,
        account_id,
        user_name,
        role_name,
        session_name,
        sso_user,
        sso_permission_set,
        store_user_id,
        access_key_id,
        invoked_by,
        source_identity,
        mfa,
        console,
    )
    caller = _CALLERS.get(values)
    if caller is None:
        caller = _intern(_CALLERS, values, Caller(*values))
    return caller


# Callers and secrets repeat from record to record (one role, one secret, many calls) and are
# immutable, so equal ones are shared: building a frozen dataclass costs more than decoding the
# record's JSON. Each table is emptied when full, so it stays small whatever the input.
_INTERNED_MAX = 4096
_CALLERS: dict[tuple[Any, ...], Caller] = {}
_SECRETS: dict[tuple[str, str | None, str | None, str | None], SecretRef] = {}


def _intern[T](table: dict[Any, T], key: Any, value: T) -> T:
    if len(table) >= _INTERNED_MAX:
        table.clear()
    table[key] = value
    return value


def is_sso_role(role_arn: str | None) -> bool:
    """An IAM Identity Center role: recognised by the path IAM Identity Center creates it under,
    never by its name (anyone may name a role AWSReservedSSO_...)."""
    if role_arn is None or ":role/" not in role_arn:
        return False
    return role_arn.partition(":role/")[2].startswith(SSO_ROLE_PATH[1:])


def _string_bool(value: Any) -> bool | None:
    """CloudTrail writes some flags as the strings "true"/"false": decide exactly, else unknown."""
    if type(value) is bool:
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    return None


# --- the request -------------------------------------------------------------------------------


def _request(
    request: dict[str, Any] | None, response: dict[str, Any] | None, fields: _Fields
) -> RequestFields:
    version_id = fields.opt_str(response, "versionId", "responseElements.") if response else None
    deletion_date = (
        fields.desc_str(response, "deletionDate", "responseElements.") if response else None
    )
    if (
        (request is None or not (request.keys() & _REQUEST_KEYS))
        and version_id is None
        and deletion_date is None
    ):
        return _EMPTY_REQUEST
    rp = request or {}
    path = "requestParameters."
    return RequestFields(
        recovery_window_days=fields.opt_int(rp, "recoveryWindowInDays", path),
        force_delete_without_recovery=fields.opt_bool(rp, "forceDeleteWithoutRecovery", path),
        resource_policy=_policy(rp, fields),
        block_public_policy=fields.opt_bool(rp, "blockPublicPolicy", path),
        rotation_lambda_arn=fields.opt_str(rp, "rotationLambdaARN", path),
        rotation_rules=_rotation_rules(rp, fields),
        rotate_immediately=fields.opt_bool(rp, "rotateImmediately", path),
        kms_key_id=fields.opt_str(rp, "kmsKeyId", path),
        version_stages=fields.opt_str_list(rp, "versionStages", path),
        new_version_id=version_id,
        add_replica_regions=_replica_regions(rp, fields),
        remove_replica_regions=fields.opt_str_list(rp, "removeReplicaRegions", path),
        deletion_date=deletion_date,
    )


def _policy(request: Mapping[str, Any], fields: _Fields) -> dict[str, Any] | None:
    value = request.get("resourcePolicy")
    if value is None:
        return None
    if type(value) is str:
        try:
            value = loads(value)
        except json.JSONDecodeError as exc:
            raise RecordRejected(
                f"{fields.prefix}requestParameters.resourcePolicy is not valid JSON: {json_error(exc)}",
                field=f"{fields.prefix}requestParameters.resourcePolicy",
                event_id=fields.event_id,
            ) from None
    if type(value) is not dict:
        raise fields.reject("requestParameters.resourcePolicy", "a JSON policy document", value)
    if _depth(value) > MAX_POLICY_DEPTH:
        raise fields.reject(
            "requestParameters.resourcePolicy",
            f"a policy document nested at most {MAX_POLICY_DEPTH} levels deep",
            value,
        )
    return value


def _depth(value: Any) -> int:
    """How deeply a decoded JSON value nests, counted without recursion (hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if type(node) is dict:
            stack.extend((child, level + 1) for child in node.values())
        elif type(node) is list:
            stack.extend((child, level + 1) for child in node)
    return deepest


def _rotation_rules(request: Mapping[str, Any], fields: _Fields) -> RotationRules | None:
    rules = fields.opt_object(request, "rotationRules", "requestParameters.")
    if rules is None:
        return None
    path = "requestParameters.rotationRules."
    return RotationRules(
        automatically_after_days=fields.opt_int(rules, "automaticallyAfterDays", path),
        schedule_expression=fields.opt_str(rules, "scheduleExpression", path),
        duration=fields.opt_str(rules, "duration", path),
    )


def _replica_regions(request: Mapping[str, Any], fields: _Fields) -> tuple[str, ...] | None:
    value = request.get("addReplicaRegions")
    if value is None:
        return None
    if type(value) is list:
        regions = [item.get("region") if type(item) is dict else None for item in value]
        if all(type(region) is str for region in regions):
            return tuple(str(region) for region in regions)
    raise fields.reject(
        "requestParameters.addReplicaRegions", "an array of {region} objects", value
    )
