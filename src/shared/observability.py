"""One logger, one metrics object, and an optional tracer for the service.

Tracer imports aws_xray_sdk and costs ~0.6 s of cold start, so it is created only when tracing
is on (POWERTOOLS_TRACE_DISABLED=false, set by the template's EnableTracing parameter).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "secretwatch"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Secretwatch"))

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").strip().lower() in {"false", "0"}


def capture_lambda_handler[Handler: Callable[..., Any]](handler: Handler) -> Handler:
    """Trace the handler with X-Ray when tracing is enabled (decided at the first call, not at
    import); otherwise add nothing."""
    chosen: list[Callable[..., Any]] = []

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if not chosen:
            chosen.append(_traced(handler) if tracing_enabled() else handler)
        return chosen[0](event, context)

    return wrapper  # type: ignore[return-value]


def _traced(handler: Callable[..., Any]) -> Callable[..., Any]:
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 — only paid for when tracing is on

    traced: Callable[..., Any] = Tracer().capture_lambda_handler(handler)
    return traced


def count(name: str, value: int = 1) -> None:
    # Powertools keeps (and at 100 values prints) metrics even when disabled: skip them instead.
    if value and not is_metrics_disabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
