"""Who did it and what it touched: read-only context for alerts and audit records.

Enrichment is best effort. Every look-up (``DescribeSecret``, ``ListAccountAliases``,
``DescribeAccount``) may fail for reasons that say nothing about the event (no permission, the
secret was purged, throttling, the Organizations API is only open to the management account), so a
failure leaves the field ``None`` and adds a human-readable note: :meth:`Enricher.enrich` never
raises and never drops the record.

The value of a secret is never read: there is no ``GetSecretValue`` call in this module, by design.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import UnexpectedResponse
from shared.member_access import API_ASSUME, MemberAccess, MemberAccessError, MemberClients
from shared.models import CloudTrailRecord, Enrichment, SecretDetails, SecretRef

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from shared.tamper import StackIdentity

# A child of the Powertools service logger ("secretwatch"): same JSON handler, same level.
logger = logging.getLogger("secretwatch." + __name__.rpartition(".")[2])

API_DESCRIBE_SM = "DescribeSecret"
API_ALIASES = "ListAccountAliases"
API_ACCOUNT = "DescribeAccount"

# Organizations error codes that mean "this API is closed to us for every account", not just for
# the one asked about: after one of these, DescribeAccount is not tried again until the TTL ends.
_ORGANIZATIONS_UNAVAILABLE = frozenset(
    {"AccessDeniedException", "AWSOrganizationsNotInUseException", "AccessDenied"}
)


@dataclass(slots=True)
class EnrichStats:
    """Counters per API name, for metrics and for the benchmark's call count."""

    calls: Counter[str] = field(default_factory=Counter)
    cache_hits: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "calls": dict(self.calls),
            "cache_hits": dict(self.cache_hits),
            "failures": dict(self.failures),
        }


@dataclass(frozen=True, slots=True)
class _Entry[T]:
    value: T | None
    note: str | None  # set when the look-up failed (a negative entry)
    expires_at: float


class _TtlCache[T]:
    """A small per-container cache; failed look-ups are cached too, for the same TTL."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float], max_entries: int) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[Hashable, _Entry[T]] = {}

    def get(self, key: Hashable) -> _Entry[T] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.expires_at:
            del self._entries[key]
            return None
        return entry

    def put(self, key: Hashable, value: T | None, note: str | None) -> _Entry[T]:
        if len(self._entries) >= self._max_entries:
            self._evict()
        entry = _Entry(value=value, note=note, expires_at=self._clock() + self._ttl)
        self._entries.pop(key, None)  # re-insert so the dict stays in expiry order
        self._entries[key] = entry
        return entry

    def _evict(self) -> None:
        now = self._clock()
        for key in [key for key, entry in self._entries.items() if now >= entry.expires_at]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest


# Error codes that say "try again later", not "this will never work".
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def is_transient(exc: ClientError) -> bool:
    """Throttling, a server-side error or a timeout: worth asking again, never worth caching."""
    if _error_code(exc) in TRANSIENT_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return isinstance(status, int) and status >= 500


def _error_code(exc: ClientError) -> str:
    code = exc.response.get("Error", {}).get("Code")
    return str(code) if code else "UnknownError"


class Enricher:
    """Adds secret metadata and account names to records, with a per-container TTL cache.

    ``home_account_id`` is the account the IAM client's credentials belong to. IAM only knows the
    alias of its own account, so when it is given, aliases are looked up only for records from that
    account (an organization trail delivers other accounts' events too). When it is ``None`` every
    record is assumed to come from the client's own account.

    ``member_access`` (central mode) answers for the other accounts: a record from a member
    account is described with the clients of that member's read-only role, and an AssumeRole
    that fails leaves a note, like any other failed look-up.
    """

    def __init__(
        self,
        secretsmanager: SecretsManagerClient,
        iam: IAMClient,
        organizations: OrganizationsClient | None,
        *,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        home_account_id: str | None = None,
        max_cache_entries: int = 4096,
        member_access: MemberAccess | None = None,
        stack: StackIdentity | None = None,
    ) -> None:
        self._secretsmanager = secretsmanager
        self._stack = stack
        self._iam = iam
        self._organizations = organizations
        self._home_account_id = home_account_id
        self._member_access = member_access
        self._secrets: _TtlCache[SecretDetails] = _TtlCache(ttl_seconds, clock, max_cache_entries)
        self._aliases: _TtlCache[str] = _TtlCache(ttl_seconds, clock, max_cache_entries)
        self._account_names: _TtlCache[str] = _TtlCache(ttl_seconds, clock, max_cache_entries)
        self.stats = EnrichStats()

    def enrich(self, record: CloudTrailRecord) -> Enrichment:
        notes: list[str] = []
        return Enrichment(
            secret=self._secret(record, notes),
            account_alias=self._account_alias(record.account_id, notes, record.region),
            account_name=self._account_name(record.account_id, notes),
            notes=tuple(notes),
            own_target=self._own_target(record),
        )

    def _own_target(self, record: CloudTrailRecord) -> str | None:
        """Which of this stack's resources a tamper call acts on. Only this account's: another
        account's record (central mode) acts on its own stack, whose names are not known here."""
        if record.target is None or self._stack is None:
            return None
        home = self._home_account_id
        if home is not None and record.account_id is not None and record.account_id != home:
            return None
        return self._stack.owns(record.target)

    # -- secret ---------------------------------------------------------------------------------

    def _secret(self, record: CloudTrailRecord, notes: list[str]) -> SecretDetails | None:
        ref = record.secret
        if ref is None:
            return None  # ListSecrets, GetRandomPassword, ...: there is nothing to describe
        client = self._secretsmanager
        secret_id = ref.arn or ref.name
        cache_key: Hashable = secret_id
        if self._is_member(record.account_id):
            member = self._member_clients(record.account_id, ref.region or record.region, notes)
            if member is None:
                return None
            client = member.secretsmanager
            cache_key = (record.account_id, secret_id)  # a name means a secret of that account
        skip = self._secret_skip_reason(ref, record, client)
        if skip is not None:
            notes.append(f"{API_DESCRIBE_SM} not called: {skip}")
            return None
        entry = self._secrets.get(cache_key)
        if entry is not None:
            self.stats.cache_hits[API_DESCRIBE_SM] += 1
        else:
            entry = self._describe_secret(client, cache_key, secret_id, ref, record.account_id)
        if entry.note is not None:
            notes.append(entry.note)
        return entry.value

    def _is_member(self, account_id: str | None) -> bool:
        home = self._home_account_id
        return (
            self._member_access is not None
            and None not in (home, account_id)
            and (account_id != home)
        )

    def _member_clients(
        self, account_id: str | None, region: str | None, notes: list[str]
    ) -> MemberClients | None:
        if self._member_access is None or account_id is None:  # not a member's: see _is_member
            return None
        try:
            return self._member_access.clients(account_id, region)
        except MemberAccessError as exc:
            self._failed(API_ASSUME, exc.note)
            notes.append(exc.note)
            return None

    def _secret_skip_reason(
        self, ref: SecretRef, record: CloudTrailRecord, client: SecretsManagerClient
    ) -> str | None:
        """A call that could only fail, or worse describe a different secret, is not made."""
        client_region = client.meta.region_name
        secret_region = ref.region or record.region
        account_id = record.account_id
        if secret_region and client_region and secret_region != client_region:
            return f"the secret is in {secret_region}, the enricher's client in {client_region}"
        cross_account = ref.account_id is not None and account_id is not None
        if ref.arn is None and cross_account and ref.account_id != account_id:
            # By name, the look-up would find a same-named secret in our own account.
            return f"the secret belongs to account {ref.account_id} and its ARN is unknown"
        return None

    def _describe_secret(
        self,
        client: SecretsManagerClient,
        cache_key: Hashable,
        secret_id: str,
        ref: SecretRef,
        account_id: str | None,
    ) -> _Entry[SecretDetails]:
        self.stats.calls[API_DESCRIBE_SM] += 1
        try:
            response = client.describe_secret(SecretId=secret_id)
            return self._secrets.put(cache_key, SecretDetails.from_describe(response), None)
        except ClientError as exc:
            code = _error_code(exc)
            note = f"{API_DESCRIBE_SM}: {code}"
            if code == "ResourceNotFoundException":
                note += " (secret not found: deleted?)"
            elif None not in (ref.account_id, account_id) and ref.account_id != account_id:
                note += f" (cross-account secret in {ref.account_id})"
            transient = is_transient(exc)
        except BotoCoreError as exc:
            code = type(exc).__name__
            note = f"{API_DESCRIBE_SM}: {code}"
            transient = True  # timeouts and connection errors say nothing about the secret
        except UnexpectedResponse as exc:
            # Only a malformed answer degrades here; a programming error is not disguised as one
            # (the pipeline keeps that record, rejected, with the error).
            code = type(exc).__name__
            note = f"{API_DESCRIBE_SM}: unexpected response ({exc})"
            transient = False
        self._failed(API_DESCRIBE_SM, code, secret_id=secret_id)
        if transient:
            # Throttling, a 5xx, a timeout: the next record asks again instead of losing the
            # owner and tags of this secret for the cache's lifetime.
            return _Entry(None, note, 0.0)
        return self._secrets.put(cache_key, None, note)

    # -- account ----------------------------------------------------------------------------------

    def _account_alias(
        self, account_id: str | None, notes: list[str], region: str | None = None
    ) -> str | None:
        home = self._home_account_id
        iam = self._iam
        if self._is_member(account_id):
            # The member's own role asks its IAM for its alias (IAM is global: any Region's
            # role of that account answers the same).
            cached = self._aliases.get(account_id)
            if cached is None:
                member = self._member_clients(account_id, region, notes)
                if member is None:
                    return None
                iam = member.iam
            home = account_id
        if home is not None and account_id is not None and account_id != home:
            notes.append(f"{API_ALIASES} not called: account {account_id} is not {home}")
            return None
        key = home or account_id or ""
        entry = self._aliases.get(key)
        if entry is not None:
            self.stats.cache_hits[API_ALIASES] += 1
        else:
            self.stats.calls[API_ALIASES] += 1
            try:
                aliases = iam.list_account_aliases().get("AccountAliases") or []
                entry = self._aliases.put(key, str(aliases[0]) if aliases else None, None)
            except (ClientError, BotoCoreError) as exc:
                entry = self._account_failure(self._aliases, key, API_ALIASES, exc)
        if entry.note is not None:
            notes.append(entry.note)
        return entry.value

    def _account_name(self, account_id: str | None, notes: list[str]) -> str | None:
        if self._organizations is None or account_id is None:
            return None  # not configured, or nothing to ask about: not a degradation
        entry = self._account_names.get(None) or self._account_names.get(account_id)
        if entry is not None:
            self.stats.cache_hits[API_ACCOUNT] += 1
        else:
            self.stats.calls[API_ACCOUNT] += 1
            try:
                response = self._organizations.describe_account(AccountId=account_id)
                name = response.get("Account", {}).get("Name")
                entry = self._account_names.put(account_id, name, None)
            except ClientError as exc:
                # Closed for every account (not the management account, no organization):
                # remember that once, under the None key, instead of once per account.
                key = None if _error_code(exc) in _ORGANIZATIONS_UNAVAILABLE else account_id
                entry = self._account_failure(self._account_names, key, API_ACCOUNT, exc)
            except BotoCoreError as exc:
                entry = self._account_failure(self._account_names, account_id, API_ACCOUNT, exc)
        if entry.note is not None:
            notes.append(entry.note)
        return entry.value

    def _account_failure(
        self,
        cache: _TtlCache[str],
        key: Hashable,
        api: str,
        exc: ClientError | BotoCoreError,
    ) -> _Entry[str]:
        code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        self._failed(api, code)
        if isinstance(exc, BotoCoreError) or is_transient(exc):
            return _Entry(None, f"{api}: {code}", 0.0)
        return cache.put(key, None, f"{api}: {code}")

    def _failed(self, api: str, code: str, *, secret_id: str | None = None) -> None:
        self.stats.failures[api] += 1
        logger.warning(
            "enrichment look-up failed",
            extra={"api": api, "error_code": code, "secret_id": secret_id},
        )
