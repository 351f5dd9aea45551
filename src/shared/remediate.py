"""Opt-in remediation: cancel the deletion of a secret that is still read.

When ``access-while-pending-deletion`` fires, something still depends on a secret that is about to
be purged. If the secret's owner opted in (tag ``secretwatch:auto-restore`` = ``true``, as
``DescribeSecret`` reports it) and the stack allows it (parameter ``AutoRestore``, env
``AUTO_RESTORE``), the function calls ``RestoreSecret`` on it:

- ``disabled`` (the default): nothing is done or reported;
- ``dry-run``: nothing is called; the alert and the audit item say what would have been restored;
- ``enabled``: ``RestoreSecret`` is called. Its IAM grant is conditioned on the same tag, so the
  code's check and IAM's agree.

The outcome is never an error for the pipeline: a refused or throttled call is reported in the
alert and the audit item, and the alert goes out. ``InvalidRequestException`` means the secret is
not (or no longer) scheduled for deletion: a retry after our own restore, so "already restored".
A retry of an event whose first delivery already acted reuses that outcome without calling AWS
again, so a secret deliberately deleted again in between is not restored a second time.

No secret value is read: there is no ``GetSecretValue`` here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from shared import bounds
from shared.models import format_time

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from shared.models import CloudTrailRecord, Enrichment, Evaluation

logger = logging.getLogger("secretwatch." + __name__.rpartition(".")[2])

AutoRestore = Literal["disabled", "dry-run", "enabled"]
AUTO_RESTORE_MODES: tuple[AutoRestore, ...] = ("disabled", "dry-run", "enabled")
AUTO_RESTORE_TAG = "secretwatch:auto-restore"
AUTO_RESTORE_TAG_VALUE = "true"  # exactly: IAM's StringEquals condition compares it exactly
RULE_ID = "access-while-pending-deletion"
ACTION = "RestoreSecret"
Result = Literal["restored", "already-restored", "would-restore", "failed"]


@dataclass(frozen=True, slots=True)
class Remediation:
    """What was done about one finding, when, and how it ended."""

    rule_id: str
    mode: AutoRestore
    secret: str  # the ARN (or name) RestoreSecret was, or would have been, called with
    at: str  # ISO 8601 UTC
    result: Result
    reader: str | None = None  # who still reads the secret (the caller of the failed read)
    error: str | None = None  # the error code of a failed call

    @property
    def cancelled(self) -> bool:
        return self.result in ("restored", "already-restored")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": ACTION,
            "rule": self.rule_id,
            "mode": self.mode,
            "secret": bounds.text(self.secret, 2048),
            "at": self.at,
            "result": self.result,
        }
        if self.reader is not None:
            out["reader"] = bounds.text(self.reader, 2048)
        if self.error is not None:
            out["error"] = bounds.text(self.error, 512)
        return out

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Remediation | None:
        """The outcome a previous delivery stored, or None when it is not readable."""
        mode, result = stored.get("mode"), stored.get("result")
        if mode not in AUTO_RESTORE_MODES or result not in (
            "restored",
            "already-restored",
            "would-restore",
            "failed",
        ):
            return None
        return cls(
            rule_id=str(stored.get("rule", RULE_ID)),
            mode=mode,
            secret=str(stored.get("secret", "")),
            at=str(stored.get("at", "")),
            result=result,
            reader=None if stored.get("reader") is None else str(stored["reader"]),
            error=None if stored.get("error") is None else str(stored["error"]),
        )

    def sentence(self, secret: str, reader: str) -> str:
        """The alert's headline, from escaped ``secret`` and ``reader``."""
        tail = f"{secret} is still read by {reader}"
        if self.cancelled:
            return f"deletion cancelled: {tail}"
        if self.result == "would-restore":
            return f"dry run, deletion not cancelled: {tail}"
        return f"deletion NOT cancelled ({self.error}): {tail}"  # the Action line says more


def wants_restore(record: CloudTrailRecord, evaluation: Evaluation, enrichment: Enrichment) -> bool:
    """The finding fired and alerts, and the secret's owner opted in by its tag."""
    details = enrichment.secret
    if details is None or record.secret is None:
        return False  # no tags known: never act on a guess
    if details.tags.get(AUTO_RESTORE_TAG) != AUTO_RESTORE_TAG_VALUE:
        return False
    # A finding an exception covers is an expected read: not a reason to undo a deletion.
    return any(f.rule_id == RULE_ID and f.exception is None for f in evaluation.findings)


class Restorer:
    """Cancels the deletion of opted-in secrets that are still read (see the module text)."""

    def __init__(
        self,
        secretsmanager: SecretsManagerClient,
        mode: AutoRestore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secretsmanager = secretsmanager
        self.mode = mode
        self._clock = clock

    def act(
        self,
        record: CloudTrailRecord,
        evaluation: Evaluation,
        enrichment: Enrichment,
        *,
        previous: Callable[[], Mapping[str, Any] | None] = lambda: None,
    ) -> Remediation | None:
        """The remediation for this record, or None when none applies. Never raises.

        ``previous`` returns what an earlier delivery of the same event stored, if anything; it
        is asked only when a restore would be made.
        """
        if self.mode == "disabled" or not wants_restore(record, evaluation, enrichment):
            return None
        earlier = previous()
        if earlier is not None:
            again = Remediation.from_dict(earlier)
            if again is not None:
                return again
        assert record.secret is not None  # wants_restore checked both
        assert enrichment.secret is not None
        secret_id = enrichment.secret.arn or record.secret.arn or record.secret.name
        reader = record.caller.identity_arn or record.caller.principal
        at = format_time(self._clock())
        if self.mode == "dry-run":
            return Remediation(RULE_ID, self.mode, secret_id, at, "would-restore", reader)
        result: Result = "restored"
        error = None
        try:
            self._secretsmanager.restore_secret(SecretId=secret_id)
        except ClientError as exc:
            error = str(exc.response.get("Error", {}).get("Code") or "UnknownError")
            result = "already-restored" if error == "InvalidRequestException" else "failed"
            if result == "already-restored":
                error = None
        except BotoCoreError as exc:
            error, result = type(exc).__name__, "failed"
        logger.warning(
            "auto-restore",
            extra={"result": result, "error_code": error, "rule_id": RULE_ID},
        )
        return Remediation(RULE_ID, self.mode, secret_id, at, result, reader, error)
