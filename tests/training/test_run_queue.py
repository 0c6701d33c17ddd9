"""The run-queue Lambda (`lambda/training/run_queue`): an earlier RUNNING execution of the same dataset group
holds a run back; later runs, other dataset groups and the run itself do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import load_lambda

rq = load_lambda("training/run_queue", "run_queue")
handler = load_lambda("training/run_queue", "handler")

MACHINE = "arn:aws:states:eu-central-1:123456789012:stateMachine:Training"
T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
KEY = "train/bingewatch/bingewatch_config.json"


def arn(name: str) -> str:
    return f"arn:aws:states:eu-central-1:123456789012:execution:Training:{name}"


class FakeStepFunctions:
    """RUNNING executions by name: (seconds after T0, config key), served in pages of two."""

    def __init__(self, running: dict[str, tuple[float, str]]) -> None:
        self.running = running
        self.described: list[str] = []

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_executions"
        return self

    def paginate(self, *, stateMachineArn: str, statusFilter: str) -> Any:  # noqa: N803
        assert stateMachineArn == MACHINE
        assert statusFilter == "RUNNING"
        executions = [
            {"executionArn": arn(name), "startDate": T0 + timedelta(seconds=start), "status": "RUNNING"}
            for name, (start, _) in sorted(self.running.items(), key=lambda item: -item[1][0])
        ]
        for i in range(0, len(executions), 2):
            yield {"executions": executions[i : i + 2]}

    def describe_execution(self, *, executionArn: str) -> dict[str, Any]:  # noqa: N803
        self.described.append(executionArn)
        name = executionArn.rsplit(":", 1)[1]
        source = {"Bucket": "b", "Key": self.running[name][1]}
        return {"executionArn": executionArn, "input": json.dumps({"Source": source})}


def _event(name: str, start: float, key: str = KEY) -> dict[str, Any]:
    return {
        "StateMachineArn": MACHINE,
        "ExecutionArn": arn(name),
        "StartTime": (T0 + timedelta(seconds=start)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "Key": key,
    }


def test_an_earlier_run_of_the_same_dataset_group_holds_the_run() -> None:
    # GIVEN an upload's run, a scheduled run of another group, and this run, in start order
    sfn = FakeStepFunctions(
        {
            "upload": (0, KEY),
            "other": (30, "train/other/other_config.json"),
            "me": (60, KEY),
            "later": (90, KEY),
        }
    )
    # WHEN this run asks
    answer = rq.decide(_event("me", 60), sfn)
    # THEN the upload's run holds it; the other group and the later run do not count, nor are they described
    assert answer == {
        "Proceed": False,
        "Ahead": 1,
        "HeldBy": arn("upload"),
        "HeldSince": T0.isoformat(),
        "DatasetGroupName": "bingewatch",
    }
    assert sorted(sfn.described) == [arn("other"), arn("upload")]


def test_the_oldest_earlier_run_is_named_and_the_queue_counted() -> None:
    sfn = FakeStepFunctions({"first": (0, KEY), "second": (10, KEY), "me": (20, KEY)})
    answer = rq.decide(_event("me", 20), sfn)
    assert (answer["HeldBy"], answer["Ahead"]) == (arn("first"), 2)


def test_the_first_run_goes_on_and_does_not_wait_for_later_ones() -> None:
    sfn = FakeStepFunctions({"me": (0, KEY), "later": (5, KEY)})
    assert rq.decide(_event("me", 0), sfn)["Proceed"] is True
    assert sfn.described == []


def test_runs_started_in_the_same_instant_queue_by_arn() -> None:
    sfn = FakeStepFunctions({"a": (0, KEY), "b": (0, KEY)})
    assert rq.decide(_event("a", 0), sfn)["Proceed"] is True
    assert rq.decide(_event("b", 0), sfn)["HeldBy"] == arn("a")


@pytest.mark.parametrize("key", ["train/bingewatch_config.json", "elsewhere/x/y_config.json", ""])
def test_a_key_outside_a_dataset_group_folder_waits_for_no_one(key: str) -> None:
    # The validator rejects such a key right after; no ListExecutions is needed for that.
    sfn = FakeStepFunctions({"other": (0, key)})
    answer = rq.decide(_event("me", 10, key), sfn)
    assert answer["Proceed"] is True
    assert answer["DatasetGroupName"] == ""


def test_an_execution_with_unreadable_input_is_not_of_the_group() -> None:
    class Odd(FakeStepFunctions):
        def describe_execution(self, *, executionArn: str) -> dict[str, Any]:  # noqa: N803
            return {"executionArn": executionArn, "input": "not json"}

    assert rq.decide(_event("me", 10), Odd({"odd": (0, KEY), "me": (10, KEY)}))["Proceed"] is True


def test_the_handler_asks_step_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    sfn = FakeStepFunctions({"me": (0, KEY)})
    monkeypatch.setattr(handler.boto3, "client", lambda service: sfn)
    assert handler.handler(_event("me", 0), None)["Proceed"] is True
