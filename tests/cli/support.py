"""Shared helpers of the CLI tests (no tests here): moto set-up, a deployed stack's outputs, a scripted
Step Functions fake for histories moto cannot produce, and history event builders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from contextual_targeting.cli import main
from tests.helpers import REPO

EVENTS = REPO / "tests" / "events" / "cli"
REGION = "eu-central-1"
ACCOUNT = "123456789012"
BUCKET = "personalize-data"
IMPORT_BUCKET = "segment-import"
STACK = "ContextualTargeting"
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def exec_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


TRAINING = machine_arn("Training")
POSTPROCESSING = machine_arn("Postprocessing")
PREPARE = machine_arn("PinpointPrepare")
IMPORT = machine_arn("PinpointImport")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, and moto for every AWS call."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "CONTEXTUAL_TARGETING_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def deploy_stack(outputs: dict[str, str], name: str = STACK) -> None:
    """A CloudFormation stack whose DescribeStacks returns these outputs (moto)."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def create_buckets(*names: str) -> Any:
    """Versioned buckets, like the stack's."""
    s3 = boto3.client("s3", region_name=REGION)
    for name in names:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return s3


def copy_data(tmp_path: Path) -> Path:
    """A copy of the repository's demo data that a test may change."""
    target = tmp_path / "data"
    shutil.copytree(REPO / "data", target, ignore=shutil.ignore_patterns("*.py", "*.md"))
    return target


def invoke(*args: str) -> Any:
    """Run the command as a user would (Typer's runner), without a terminal."""
    return CliRunner().invoke(main.app, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------------------
# Step Functions: moto returns a fixed sample history, so executions with real histories are scripted here.


def entered(name: str, at: float, kind: str = "Task") -> dict[str, Any]:
    return {
        "type": f"{kind}StateEntered",
        "at": at,
        "stateEnteredEventDetails": {"name": name, "input": "{}"},
    }


def exited(name: str, at: float, kind: str = "Task") -> dict[str, Any]:
    return {"type": f"{kind}StateExited", "at": at, "stateExitedEventDetails": {"name": name, "output": "{}"}}


def put_event(detail_type: str, detail: dict[str, Any], at: float) -> dict[str, Any]:
    """A PutEvents task as the history shows it: the entries are in the scheduled parameters."""
    parameters = {
        "Entries": [{"DetailType": detail_type, "Detail": detail, "Source": "contextual-targeting"}]
    }
    return {
        "type": "TaskScheduled",
        "at": at,
        "taskScheduledEventDetails": {
            "resourceType": "events",
            "resource": "putEvents",
            "region": REGION,
            "parameters": json.dumps(parameters),
        },
    }


def personalize_event(resource: str, arn: str, status: str, at: float, **extra: Any) -> dict[str, Any]:
    detail = {"Arn": arn, "Status": status, "DatasetGroupName": "bingewatch", **extra}
    return put_event(f"Personalize {resource} State Change", detail, at)


@dataclass
class FakeExecution:
    arn: str
    machine: str
    status: str
    start: float
    stop: float | None = None
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeStepFunctions:
    """ListExecutions, DescribeExecution, GetExecutionHistory over scripted executions (seconds after T0)."""

    def __init__(self, *executions: FakeExecution) -> None:
        self.executions = {e.arn: e for e in executions}
        self.history_calls = 0

    def add(self, execution: FakeExecution) -> None:
        self.executions[execution.arn] = execution

    def list_executions(self, *, stateMachineArn: str, maxResults: int = 100, **_: Any) -> dict[str, Any]:  # noqa: N803
        found = sorted(
            (e for e in self.executions.values() if e.machine == stateMachineArn), key=lambda e: -e.start
        )
        return {
            "executions": [
                {"executionArn": e.arn, "status": e.status, "startDate": T0 + timedelta(seconds=e.start)}
                for e in found[:maxResults]
            ]
        }

    def describe_execution(self, *, executionArn: str) -> dict[str, Any]:  # noqa: N803
        if executionArn not in self.executions:
            raise ClientError(
                {"Error": {"Code": "ExecutionDoesNotExist", "Message": "Execution Does Not Exist"}},
                "DescribeExecution",
            )
        e = self.executions[executionArn]
        answer: dict[str, Any] = {
            "executionArn": e.arn,
            "stateMachineArn": e.machine,
            "name": e.arn.rsplit(":", 1)[-1],
            "status": e.status,
            "startDate": T0 + timedelta(seconds=e.start),
            "input": json.dumps(e.input),
        }
        if e.stop is not None:
            answer["stopDate"] = T0 + timedelta(seconds=e.stop)
        if e.output is not None:
            answer["output"] = json.dumps(e.output)
        if e.error:
            answer["error"] = e.error
        if e.cause:
            answer["cause"] = e.cause
        return answer

    def get_execution_history(self, *, executionArn: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.history_calls += 1
        events = []
        for number, event in enumerate(self.executions[executionArn].events, start=1):
            converted = {k: v for k, v in event.items() if k != "at"}
            converted["id"] = number
            converted["timestamp"] = T0 + timedelta(seconds=event["at"])
            events.append(converted)
        return {"events": events}


class Clock:
    """A virtual clock: `sleep` advances it, and can run a callback (what AWS does meanwhile)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now_value = start
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []

    def now(self) -> datetime:
        return self.now_value

    def monotonic(self) -> float:
        return (self.now_value - T0).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_value += timedelta(seconds=seconds)
        for callback in list(self.on_sleep):
            callback()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The commands' sleep and clocks, virtual."""
    fake = Clock()
    monkeypatch.setattr(main, "SLEEP", fake.sleep)
    monkeypatch.setattr(main, "CLOCK", fake.monotonic)
    monkeypatch.setattr(main, "NOW", fake.now)
    return fake


def use_clients(monkeypatch: pytest.MonkeyPatch, **fakes: Any) -> None:
    """Give the commands these clients (by service name); moto serves the others."""
    original = main.Aws.client

    def client(self: main.Aws, service: str) -> Any:
        return fakes[service] if service in fakes else original(self, service)

    monkeypatch.setattr(main.Aws, "client", client)
