"""Digest function: on a schedule, sends the digest of every dedup window that has closed.

Whatever event invokes it (the schedule's, a test's, an empty one), it does the same thing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.observability import capture_lambda_handler, logger, metrics
from shared.pipeline import deadline_from
from shared.runtime import get_digests


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return get_digests().run(deadline_ms=deadline_from(context)).as_dict()
