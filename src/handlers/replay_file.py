"""Replay route: one batch of CloudTrail log files from S3, for the replay state machine's
Distributed Map (``secretwatch replay --distributed``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.observability import capture_lambda_handler, logger, metrics
from shared.replay_batch import get_replay, read_batch, replay_batch


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    replay = get_replay()
    return replay_batch(read_batch(event), replay.s3, replay.pipeline()).as_dict()
