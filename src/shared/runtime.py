"""The container's pipeline, assembled once at the first invocation and reused after."""

from __future__ import annotations

from functools import lru_cache

from shared.audit.recent_readers import RecentReaders
from shared.audit.store import AuditStore
from shared.clients import Clients
from shared.deliver import Notifier
from shared.enrich import Enricher
from shared.impact import ImpactEnricher
from shared.live_rules import LiveRules, RulesSource, StaticRules, powertools_fetch
from shared.pipeline import Pipeline
from shared.remediate import Restorer
from shared.rules import default_rules
from shared.settings import get_settings


@lru_cache(maxsize=1)
def get_pipeline() -> Pipeline:
    settings = get_settings()
    clients = Clients(region=settings.region)
    rules: RulesSource = StaticRules(default_rules())
    if settings.rules_parameter is not None:
        rules = LiveRules(settings.rules_parameter, powertools_fetch(clients.ssm))
    enricher = Enricher(
        clients.secretsmanager,
        clients.iam,
        clients.organizations if settings.organizations_lookup else None,
        ttl_seconds=settings.enrich_cache_seconds,
        home_account_id=settings.home_account_id,
    )
    readers = RecentReaders(clients.dynamodb, settings.table_name, stats=enricher.stats)
    return Pipeline(
        ruleset=rules,
        enricher=ImpactEnricher(enricher, readers),
        store=AuditStore(clients.dynamodb, settings.table_name),
        notifier=Notifier(clients.sns, settings.topic_arn),
        retention_days=settings.retention_days,
        remediator=None
        if settings.auto_restore == "disabled"
        else Restorer(clients.secretsmanager, settings.auto_restore),
    )
