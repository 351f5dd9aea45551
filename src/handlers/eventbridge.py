"""EventBridge route: one Secrets Manager CloudTrail event per invocation (asynchronous)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.observability import capture_lambda_handler, logger, metrics
from shared.pipeline import ROUTE_EVENTBRIDGE, deadline_from
from shared.runtime import get_pipeline


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = get_pipeline().process_event(
        event,
        ROUTE_EVENTBRIDGE,
        deadline_ms=deadline_from(context),
        request_id=getattr(context, "aws_request_id", None),
    )
    return summary.as_dict()
