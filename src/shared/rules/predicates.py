"""Named predicates: logic a ``{key, op, value}`` condition cannot say, named from the rule file.

Register with ``@predicate("kebab-name")``; a rule file naming an unregistered predicate fails
at load. A predicate takes the record and the enrichment (or None) and returns a bool.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from shared.models import CloudTrailRecord, Enrichment

Predicate = Callable[[CloudTrailRecord, Enrichment | None], bool]
PREDICATES: dict[str, Predicate] = {}

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
# Condition keys that confine a wildcard principal to known accounts, organisations or networks.
_CONFINING_KEYS = frozenset(
    {
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceowner",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:resourceorgid",
        "aws:sourceorgid",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:userid",
    }
)


def predicate(name: str) -> Callable[[Predicate], Predicate]:
    def register(function: Predicate) -> Predicate:
        if name in PREDICATES:
            raise ValueError(f"predicate {name} is registered twice")
        PREDICATES[name] = function
        return function

    return register


def _allow_statements(policy: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(policy, dict):
        return
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return
    for statement in statements:
        if isinstance(statement, dict) and statement.get("Effect") == "Allow":
            yield statement


def _aws_principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return []
    values = principal.get("AWS", [])
    values = values if isinstance(values, list) else [values]
    return [value for value in values if isinstance(value, str)]


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    condition = statement.get("Condition")
    keys: set[str] = set()
    if isinstance(condition, dict):
        for operands in condition.values():
            if isinstance(operands, dict):
                keys.update(key.lower() for key in operands)
    return keys


def _is_public(statement: dict[str, Any]) -> bool:
    if "NotPrincipal" in statement:
        return True  # Allow + NotPrincipal: everyone except a few
    if "*" not in _aws_principals(statement):
        return False
    return not (_condition_keys(statement) & _CONFINING_KEYS)


@predicate("policy-allows-public-access")
def policy_allows_public_access(record: CloudTrailRecord, _: Enrichment | None) -> bool:
    """An Allow statement for any principal ("*") that no account/org/network condition confines."""
    return any(
        _is_public(statement) for statement in _allow_statements(record.request.resource_policy)
    )


def principal_accounts(statement: dict[str, Any]) -> set[str]:
    accounts: set[str] = set()
    for value in _aws_principals(statement):
        if _ACCOUNT_ID.match(value):
            accounts.add(value)
        else:
            match = _ARN_ACCOUNT.match(value)
            if match:
                accounts.add(match.group(1))
    return accounts


@predicate("policy-grants-other-account")
def policy_grants_other_account(record: CloudTrailRecord, _: Enrichment | None) -> bool:
    """An Allow statement naming a principal in another account, or a wildcard confined to an
    organisation or other accounts (still outside this account)."""
    owner = record.account_id or (record.secret.account_id if record.secret else None)
    for statement in _allow_statements(record.request.resource_policy):
        accounts = principal_accounts(statement)
        if owner is None and accounts:
            return True
        if accounts - {owner}:
            return True
        wildcard = "*" in _aws_principals(statement)
        if wildcard and not _is_public(statement) and _confined_beyond(statement, owner):
            return True
    return False


def _confined_beyond(statement: dict[str, Any], owner: str | None) -> bool:
    """A wildcard confined by conditions: does the confinement still reach outside ``owner``?"""
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    for operands in condition.values():
        if not isinstance(operands, dict):
            continue
        for key, values in operands.items():
            lowered = key.lower()
            if lowered in {"aws:principalorgid", "aws:principalorgpaths", "aws:sourceorgid"}:
                return True  # the whole organisation, not just this account
            items = values if isinstance(values, list) else [values]
            for item in items:
                if not isinstance(item, str):
                    continue
                match = _ARN_ACCOUNT.match(item)
                account = item if _ACCOUNT_ID.match(item) else (match.group(1) if match else None)
                if account is not None and account != owner:
                    return True
    return False
