"""The one narrator: an event told as a sentence, from the facts stored in its audit item.

The alert e-mail opens with it (:func:`headline`), and ``secretwatch audit timeline`` and
``audit show`` print it (:func:`sentence`), so a reader meets one wording of each event
everywhere. It reads the audit item only — what was recorded, never which rules fired — so it
tells the same story under any rule document: whether a policy was public is a fact of the
event (``facts.policy_public``), computed when the item is built (:func:`facts`).

Every caller-controlled value goes through ``shared.text``: the sentence is safe to print.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.models import CloudTrailRecord
from shared.rules.predicates import policy_allows_public_access, policy_grants_other_account
from shared.text import clean

DEFAULT_RECOVERY_WINDOW_DAYS = 30  # DeleteSecret with neither parameter
_PENDING_DELETION = re.compile("marked for deletion|because it was deleted")
_SIMPLE: dict[str, str] = {
    "CreateSecret": "created",
    "CancelRotateSecret": "rotation turned off",
    "RotationStarted": "rotation started",
    "RotationSucceeded": "rotation succeeded",
    "RotationAbandoned": "rotation abandoned",
    "TestRotationStarted": "test rotation started",
    "TestRotationSucceeded": "test rotation succeeded",
    "RestoreSecret": "restored (its deletion cancelled)",
    "DeleteResourcePolicy": "policy removed",
    "TagResource": "tagged",
    "UntagResource": "tags removed",
    "StopReplicationToReplica": "replication stopped (replica promoted to a standalone secret)",
    "BatchGetSecretValue": "values read in a batch",
    "DescribeSecret": "described",
    "ListSecretVersionIds": "versions listed",
    "GetResourcePolicy": "policy read",
    "ValidateResourcePolicy": "policy validated",
}


def facts(record: CloudTrailRecord) -> dict[str, bool]:
    """What the narrator needs to know beyond the record's fields, decided now, stored in the
    item (an empty dict when nothing is worth saying)."""
    found: dict[str, bool] = {}
    if record.request.resource_policy is not None:
        found["policy_public"] = policy_allows_public_access(record, None)
        found["policy_other_accounts"] = policy_grants_other_account(record, None)
    if (
        record.event_name == "GetSecretValue"
        and record.error_code == "InvalidRequestException"
        and record.error_message is not None
        and _PENDING_DELETION.search(record.error_message) is not None
    ):
        found["read_while_pending_deletion"] = True
    return found


# --- who ------------------------------------------------------------------------------------------


def who(caller: Mapping[str, Any]) -> str:
    """The caller as a reader would name them."""

    def c(value: Any, limit: int = 200) -> str:
        return clean(str(value), limit) if value else "unknown"

    kind = caller.get("type")
    invoked_by = caller.get("invoked_by")
    if caller.get("sso_user"):
        permission_set = caller.get("sso_permission_set")
        role = f", permission set {c(permission_set)}" if permission_set else ""
        text = f"{c(caller['sso_user'])} (SSO{role})"
    elif kind == "Root":
        account = caller.get("account_id")
        text = f"the root user of account {c(account)}" if account else "the root user"
    elif kind == "IAMUser":
        text = f"IAM user {c(caller.get('user_name') or caller.get('name') or caller.get('arn'))}"
    elif kind == "AssumedRole":
        role = c(caller.get("role_name") or caller.get("name"))
        text = f"role {role} (session {c(caller.get('session_name'))})"
    elif kind == "FederatedUser":
        text = f"federated user {c(caller.get('name') or caller.get('principal'))}"
    elif kind == "AWSAccount":
        account, principal = c(caller.get("account_id")), c(caller.get("principal_id"))
        text = f"a principal of account {account} ({principal})"
    elif kind == "IdentityCenterUser":
        user = caller.get("name") or caller.get("identity_store_user_id")
        text = f"Identity Center user {c(user)}"
    elif kind == "AWSService" or (kind is None and invoked_by):
        return f"AWS service {c(invoked_by or caller.get('name'))}"
    else:
        name = caller.get("name") or caller.get("principal") or caller.get("arn")
        text = c(name) if name else "an unknown caller"
    if invoked_by:
        text += f" via {c(invoked_by)}"
    return text


# --- what -----------------------------------------------------------------------------------------


def what(item: Mapping[str, Any]) -> str:
    """What happened, without who: one phrase per event name, a generic one otherwise."""
    name = str(item.get("event_name") or "")
    request: Mapping[str, Any] = item.get("request") or {}
    known: Mapping[str, Any] = item.get("facts") or {}
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "PutSecretValue":
        stages = request.get("version_stages") or []
        return "new pending value stored (rotation)" if "AWSPENDING" in stages else "value changed"
    if name == "UpdateSecret":
        if request.get("new_version_id"):
            return "value changed"
        if request.get("kms_key_id"):
            return f"encryption key changed to {clean(str(request['kms_key_id']), 300)}"
        return "details updated"
    if name == "RotateSecret":
        if request.get("rotation_after_days"):
            return f"rotation set up (every {request['rotation_after_days']} days)"
        if request.get("rotation_schedule"):
            return f"rotation set up ({clean(str(request['rotation_schedule']), 200)})"
        return "rotation set up" if request.get("rotation_lambda_arn") else "rotation started"
    if name in {"RotationFailed", "TestRotationFailed"}:
        error = item.get("error_message")
        test = "test " if name.startswith("Test") else ""
        return f"{test}rotation failed" + (f": {clean(str(error), 1100)}" if error else "")
    if name == "DeleteSecret":
        if request.get("force_delete_without_recovery"):
            return "deleted immediately (no recovery window)"
        days = request.get("recovery_window_days") or DEFAULT_RECOVERY_WINDOW_DAYS
        return f"deletion scheduled ({days}-day recovery window)"
    if name == "GetSecretValue":
        return (
            "read while pending deletion"
            if known.get("read_while_pending_deletion")
            else ("value read")
        )
    if name == "PutResourcePolicy":
        if known.get("policy_public"):
            return "policy changed (public!)"
        if known.get("policy_other_accounts"):
            return "policy changed (grants another account)"
        return "policy changed"
    if name in {"ReplicateSecretToRegions", "RemoveRegionsFromReplication"}:
        adding = name.startswith("Replicate")
        regions = request.get("add_replica_regions" if adding else "remove_replica_regions")
        listed = clean(", ".join(str(r) for r in regions or []), 300) or "?"
        return ("replicated to " if adding else "replicas removed from ") + listed
    if name == "UpdateSecretVersionStage":
        stages = clean(", ".join(str(s) for s in request.get("version_stages") or []), 300)
        return f"version stage {stages or '?'} moved"
    return clean(name, 100) or "unknown event"


def _origin(item: Mapping[str, Any]) -> str:
    ip = str((item.get("source") or {}).get("ip") or "")
    if not ip or ip == "AWS Internal" or ip.endswith(".amazonaws.com"):
        return ""
    return f" from {clean(ip, 100)}"


def _by_service(item: Mapping[str, Any]) -> bool:
    """A service event: the secret's own machinery acted, there is nobody to name."""
    return item.get("event_type") == "AwsServiceEvent" or str(
        item.get("event_name", "")
    ).startswith(("Rotation", "TestRotation"))


# --- the sentence ---------------------------------------------------------------------------------


def sentence(item: Mapping[str, Any]) -> str:
    """One event as one sentence: what, by whom, from where, refused or not."""
    if item.get("kind") == "rejected":
        return f"unreadable record kept for replay: {clean(str(item.get('error')), 1000)}"
    text = what(item)
    if not _by_service(item):
        text += f" by {who(item.get('caller') or {})}{_origin(item)}"
    if item.get("error_code"):
        text += f" — refused ({clean(str(item['error_code']), 100)})"
    return text


def headline(item: Mapping[str, Any]) -> str:
    """The sentence with the secret it is about: the first line of an alert."""
    secret = item.get("secret_name")
    subject = clean(str(secret), 520) if secret else "(no secret)"
    return f"{subject}: {sentence(item)}."
