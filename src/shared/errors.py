"""One base error and a few subclasses that carry their context.

Policy: a record that cannot be read or handled is reported with its id and kept; enrichment
degrades instead of raising; a delivery failure re-raises so the platform retries.
"""

from __future__ import annotations


class SecretwatchError(Exception):
    """Base class for every error secretwatch raises on purpose."""


class InputError(SecretwatchError):
    """A whole input (file or Lambda event) could not be read at all."""


class RecordRejected(SecretwatchError):
    """One record is malformed: a decision field is missing or of the wrong JSON type."""

    def __init__(self, message: str, *, field: str | None = None, event_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.event_id = event_id


class OutOfScope(SecretwatchError):
    """A well-formed record from another event source: skipped, not an error."""

    def __init__(self, reason: str, *, event_id: str | None = None, event_name: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_name = event_name


class RuleConfigError(SecretwatchError):
    """The rule file is invalid; raised at load time, before any event is evaluated."""


class ConfigError(SecretwatchError):
    """A required setting (environment variable, option) is missing or invalid."""


class DeliveryError(SecretwatchError):
    """Writing the audit record or publishing an alert failed; the caller must retry."""

    def __init__(self, message: str, *, event_id: str | None = None, rule_id: str | None = None):
        super().__init__(message)
        self.event_id = event_id
        self.rule_id = rule_id


class UnexpectedResponse(SecretwatchError):
    """An AWS answer lacks what the API promises (a stub, a proxy, a future change)."""
