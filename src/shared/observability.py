"""One logger, one metrics object, and an optional tracer for the service.

Tracer imports aws_xray_sdk and costs ~0.6 s of cold start, so it is created only when tracing
is on (POWERTOOLS_TRACE_DISABLED=false, set by the template's EnableTracing parameter).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from shared.text import log_serializer

# Log lines are JSON under the one escaping policy (ASCII only): a caller's bidi override or line
# separator reaches nobody's terminal raw.
logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "secretwatch"),
    json_serializer=log_serializer,
)
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


@contextmanager
def quiet_service_telemetry() -> Iterator[None]:
    """For the command line running the pipeline: the Lambda logger and metrics print JSON on
    stdout, and the command prints its own report. SECRETWATCH_DEBUG=1 keeps the logs."""
    previous_level = logger.log_level
    previous_env = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    if not os.environ.get("SECRETWATCH_DEBUG"):
        logger.setLevel(logging.CRITICAL)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    try:
        yield
    finally:
        logger.setLevel(previous_level)
        if previous_env is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = previous_env
