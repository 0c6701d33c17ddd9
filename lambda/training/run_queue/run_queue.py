"""One training run per dataset group at a time: which earlier runs of this run's dataset group are running?

Why executions and not a lock object: a run's turn is decided from the training state machine's own RUNNING
executions (ListExecutions, then DescribeExecution for the input of those that started earlier). A lock
object would need releasing on every outcome, and an execution that times out or is aborted runs no state
that could release it; an execution that is no longer RUNNING holds nothing, whatever ended it. Runs queue in
start order (ties broken by execution ARN), so two runs never both see a free turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRAIN_PREFIX = "train/"


@dataclass(frozen=True, order=True)
class Run:
    """A training execution: when it started and its ARN (the order of the queue)."""

    started: datetime
    arn: str


def as_datetime(value: Any) -> datetime:
    """A datetime from the SDK (datetime) or from the context object (ISO 8601 with Z)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def dataset_group_of(key: Any) -> str | None:
    """The dataset group a config key belongs to: `train/<dataset-group>/<name>_config.json`."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) == 3 and parts[0] + "/" == TRAIN_PREFIX and parts[1]:
        return parts[1]
    return None


def _source_key(execution_input: Any) -> Any:
    try:
        value = json.loads(execution_input) if isinstance(execution_input, str) else None
    except ValueError:
        return None
    source = value.get("Source") if isinstance(value, dict) else None
    return source.get("Key") if isinstance(source, dict) else None


def runs_ahead(sfn: Any, machine_arn: str, me: Run, dataset_group: str) -> list[Run]:
    """RUNNING executions of the machine for the same dataset group that started before `me`, oldest first."""
    ahead = []
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=machine_arn, statusFilter="RUNNING"
    ):
        for execution in page["executions"]:
            run = Run(as_datetime(execution["startDate"]), str(execution["executionArn"]))
            if run.arn == me.arn or not run < me:
                continue
            described = sfn.describe_execution(executionArn=run.arn)
            if dataset_group_of(_source_key(described.get("input"))) == dataset_group:
                ahead.append(run)
    return sorted(ahead)


def decide(event: dict[str, Any], sfn: Any) -> dict[str, Any]:
    """`{Proceed, Ahead, HeldBy, HeldSince}`: proceed when no earlier run of the dataset group is running.

    HeldBy is the oldest earlier run (the one training now); runs waiting behind it count in Ahead."""
    group = dataset_group_of(event["Key"])
    me = Run(as_datetime(event["StartTime"]), str(event["ExecutionArn"]))
    # A key outside train/<group>/ fails validation right after; it waits for no one.
    ahead = runs_ahead(sfn, str(event["StateMachineArn"]), me, group) if group else []
    holder = ahead[0] if ahead else None
    return {
        "Proceed": holder is None,
        "Ahead": len(ahead),
        "HeldBy": holder.arn if holder else "",
        "HeldSince": holder.started.isoformat() if holder else "",
        "DatasetGroupName": group or "",
    }
