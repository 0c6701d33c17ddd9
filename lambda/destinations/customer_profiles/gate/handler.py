"""Lambda: may this execution upload now? At most `Limit` executions upload at a time, in start order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from run_log import logged


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def executions_ahead(sfn: Any, machine_arn: str, execution_arn: str, started: datetime) -> int:
    """Running executions of the machine that started before this one (ties broken by ARN)."""
    mine = (started, execution_arn)
    ahead = 0
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=machine_arn, statusFilter="RUNNING"
    ):
        for execution in page["executions"]:
            if execution["executionArn"] == execution_arn:
                continue
            if (_as_datetime(execution["startDate"]), execution["executionArn"]) < mine:
                ahead += 1
    return ahead


def decide(event: dict[str, Any], sfn: Any) -> dict[str, Any]:
    """`{Proceed, Ahead}`: proceed while fewer than `Limit` earlier executions are still running.

    Earlier executions that are themselves waiting count too, so slots go out in start order and two
    executions can never both see a free slot that only one of them may take.
    """
    ahead = executions_ahead(
        sfn, event["StateMachineArn"], event["ExecutionArn"], _as_datetime(event["StartTime"])
    )
    return {"Proceed": ahead < int(event["Limit"]), "Ahead": ahead}


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{StateMachineArn, ExecutionArn, StartTime, Limit}` in, `{Proceed, Ahead}` out."""
    return decide(event, boto3.client("stepfunctions"))
