"""Lambda: may this training run go on, or is an earlier run of its dataset group still in progress?"""

from __future__ import annotations

from typing import Any

import boto3
from run_log import logged
from run_queue import decide


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{StateMachineArn, ExecutionArn, StartTime, Key}` in, `{Proceed, HeldBy, ...}` out."""
    return decide(event, boto3.client("stepfunctions"))
