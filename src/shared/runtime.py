"""The container's pipeline, assembled once at the first invocation and reused after."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.audit.recent_readers import RecentReaders
from shared.audit.store import AuditStore
from shared.clients import Clients
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.errors import ConfigError
from shared.impact import ImpactEnricher
from shared.live_rules import LiveRules, RulesSource, StaticRules, powertools_fetch
from shared.pipeline import Pipeline
from shared.remediate import Restorer
from shared.rules import default_rules
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.digests import DigestSender
    from shared.member_access import MemberAccess


@lru_cache(maxsize=1)
def get_pipeline() -> Pipeline:
    settings = get_settings()
    clients = Clients(region=settings.region)
    rules: RulesSource = StaticRules(default_rules())
    if settings.rules_parameter is not None:
        rules = LiveRules(settings.rules_parameter, powertools_fetch(clients.ssm))
    state = None
    if settings.state_table_name is not None:
        from shared.state.store import StateStore  # noqa: PLC0415
        from shared.stateful import StatefulRules  # noqa: PLC0415

        state = StatefulRules(
            StateStore(clients.dynamodb, settings.state_table_name), clock_ms=_now_ms
        )
    enricher = Enricher(
        clients.secretsmanager,
        clients.iam,
        clients.organizations if settings.organizations_lookup else None,
        ttl_seconds=settings.enrich_cache_seconds,
        home_account_id=settings.home_account_id,
        member_access=_member_access(clients, settings.member_role_name),
        stack=settings.stack,
    )
    readers = RecentReaders(clients.dynamodb, settings.table_name, stats=enricher.stats)
    return Pipeline(
        ruleset=rules,
        enricher=ImpactEnricher(enricher, readers),
        store=AuditStore(clients.dynamodb, settings.table_name),
        notifier=Notifier(
            clients.sns_for(settings.topic_arn),
            settings.topic_arn,
            https_format=settings.https_format,
        ),
        retention_days=settings.retention_days,
        routine_retention_days=settings.routine_read_retention_days,
        remediator=None
        if settings.auto_restore == "disabled"
        else Restorer(clients.secretsmanager, settings.auto_restore),
        state=state,
        logs_region=settings.logs_region,
    )


def _member_access(clients: Clients, role_name: str | None) -> MemberAccess | None:
    """Central mode only: the member accounts' read-only roles (template DeploymentMode)."""
    if role_name is None:
        return None
    from shared.member_access import MemberAccess  # noqa: PLC0415 — central mode only

    return MemberAccess(clients.sts, role_name, clients.for_credentials)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@lru_cache(maxsize=1)
def get_digests() -> DigestSender:
    """The digest function's sender: the state table and the alert topic."""
    from shared.digests import DigestSender  # noqa: PLC0415 — only the digest function

    settings = get_settings()
    if settings.state_table_name is None:
        raise ConfigError(
            "environment variable STATE_TABLE_NAME is required (set by template.yaml)"
        )
    clients = Clients(region=settings.region)
    from shared.state.store import StateStore  # noqa: PLC0415

    return DigestSender(
        StateStore(clients.dynamodb, settings.state_table_name),
        Notifier(
            clients.sns_for(settings.topic_arn),
            settings.topic_arn,
            https_format=settings.https_format,
        ),
        clock_ms=_now_ms,
    )
