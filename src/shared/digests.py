"""Digests of closed dedup windows, sent once each by the scheduled digest function.

A window is due when its end has passed (the ``due`` index of the state table). Each is claimed
for this invocation (a conditional write with the invocation's deadline), published, then marked
sent, as alerts are (docs/delivery.md): an invocation that dies between the claim and the mark
leaves a claim that lapses at its deadline, and the next run sends the digest again, with the same
``alert_id``. A window with no repeats has nothing to tell: it leaves the index unsent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.audit.items import alert_id as stable_alert_id
from shared.errors import DeliveryError
from shared.messages import build_digest
from shared.observability import count
from shared.pipeline import DEADLINE_MARGIN_MS, DEFAULT_LEASE_MS, NotifierPort
from shared.state.keys import DUE_DIGEST, repeats
from shared.state.store import StateStore

logger = logging.getLogger("secretwatch.digests")


@dataclass
class DigestRun:
    due: int = 0
    sent: int = 0
    empty: int = 0  # windows without repeats: nothing to send
    skipped: int = 0  # claimed by another live invocation
    failures: int = 0
    deferred: int = 0  # left for the next run: this one ran short of time
    alert_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "sent": self.sent,
            "empty": self.empty,
            "skipped": self.skipped,
            "failures": self.failures,
            "deferred": self.deferred,
            "alert_ids": self.alert_ids[:1000],
        }


def digest_id(window: dict[str, Any]) -> str:
    """A digest's stable id: from the alert its window folded repeats into."""
    return stable_alert_id(str(window.get("first_alert")), "digest")


class DigestSender:
    def __init__(
        self, store: StateStore, notifier: NotifierPort, *, clock_ms: Callable[[], int]
    ) -> None:
        self.store = store
        self.notifier = notifier
        self._clock_ms = clock_ms

    def run(self, *, deadline_ms: int | None = None) -> DigestRun:
        """Send every digest due now. Raises DeliveryError after trying them all when any failed,
        so that the schedule's retry (and the next run) takes them."""
        run = DigestRun()
        now = self._clock_ms()
        deadline = deadline_ms if deadline_ms is not None else now + DEFAULT_LEASE_MS
        token = os.urandom(16).hex()
        for window in list(self.store.due(DUE_DIGEST, now)):
            run.due += 1
            pk = str(window["pk"])
            if self._clock_ms() + DEADLINE_MARGIN_MS >= deadline:
                run.deferred += 1
                continue
            told = repeats(window)
            if told == 0:
                self.store.finish_digest(pk, token=None, state="empty")
                run.empty += 1
                continue
            if not self.store.claim_digest(
                pk,
                window_end=int(window.get("window_end") or 0),
                token=token,
                deadline_ms=deadline,
                now_ms=self._clock_ms(),
            ):
                run.skipped += 1
                continue
            identifier = digest_id(window)
            try:
                message_id = self.notifier.publish(build_digest(window, identifier, told))
            except DeliveryError as exc:
                count("DigestFailures")
                logger.error("digest not sent", extra={"alert_id": identifier, "error": str(exc)})
                self.store.hand_back_digest(pk, token=token)
                run.failures += 1
                continue
            run.sent += 1
            run.alert_ids.append(identifier)
            logger.info(
                "digest published",
                extra={"alert_id": identifier, "repeats": told, "message_id": message_id},
            )
            try:
                self.store.finish_digest(
                    pk,
                    token=token,
                    state="sent",
                    digest_alert_id=identifier,
                    digest_message_id=message_id,
                    digest_sent_ms=self._clock_ms(),
                )
            except DeliveryError as exc:
                # SNS has it: the claim lapses and the next run may repeat it (same alert_id).
                logger.error("digest sent but not marked sent", extra={"error": str(exc)})
        count("DigestsSent", run.sent)
        if run.failures:
            raise DeliveryError(f"{run.failures} digest(s) not sent; the next run retries them")
        return run
