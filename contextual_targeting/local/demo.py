"""`contextual-targeting demo`: the default stack's synthesized workflows, end to end, on this machine.

The data folder is uploaded to a local S3 (moto) as `aws s3 sync` would, config last; each upload is an
`Object Created` event, and the stack's own EventBridge rules (from the template) decide which state machine
it starts. Every workflow runs in the local Step Functions interpreter the tests use
(`contextual_targeting.local.harness`); their Lambda functions run their real code in this process; the AWS
services they call are local stand-ins: Personalize (`personalize.py`, not a trained model), S3 (moto),
Customer Profiles (`profiles.py`), EventBridge (the template's rules) and SNS (the emails are kept).
Executions start when their event is put, on one virtual clock, so a run's trace shows the durations it
would take on AWS without waiting for them. No credentials are needed and nothing leaves this machine.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from contextual_targeting.cli.segments import SegmentRow, list_segments
from contextual_targeting.cli.validation import personalize_root
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.local.bus import (
    DEFAULT_BUS,
    Rule,
    bus_name,
    elsewhere_of,
    rules_from_template,
    targets_of,
)
from contextual_targeting.local.demo_output import DemoError, check_output, iso, write_output
from contextual_targeting.local.harness import (
    AwsError,
    Execution,
    TaskCall,
    definition_from_template,
    render_tokens,
    run_workflow,
)
from contextual_targeting.local.lambdas import LocalLambdas
from contextual_targeting.local.personalize import PersonalizeStandIn
from contextual_targeting.local.profiles import CustomerProfilesStandIn, upload_server
from contextual_targeting.local.scheduler import SchedulerStandIn
from contextual_targeting.local.synth import ACCOUNT, REGION, SynthesizedStack, logical_words, without_hash

DEMO_START = "2026-01-01T09:00:00.000Z"
"""Virtual time of the first upload: every demo run shows the same times, job names and segments."""
DEFAULT_OUTPUT = Path("demo-output")
_NAMESPACE = uuid.UUID("5b0f2a4e-5d0c-4f5e-9a53-1c3e0d9d7a10")


@dataclass(kw_only=True)
class Run:
    """One execution of one state machine."""

    machine: str
    workflow: str
    name: str
    arn: str
    start: float
    input: Any
    execution: Execution | None = None

    @property
    def end(self) -> float | None:
        """Virtual end (epoch seconds), once it ran."""
        return None if self.execution is None else self.start + self.execution.virtual_seconds

    @property
    def status(self) -> str:
        """The execution's status, `PENDING` before it ran."""
        return "PENDING" if self.execution is None else self.execution.status


@dataclass(kw_only=True)
class DemoResult:
    """What one demo run did."""

    runs: list[Run]
    rows: list[SegmentRow] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Segment name -> its Customer Profiles report (the workflow's event detail)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_run_locally: list[str] = field(default_factory=list)
    """Rule targets the events reached that the demo does not run (a topic, a function, a queue)."""
    output: Path | None = None
    wall_seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        """Every execution succeeded."""
        return not self.failures


# ---------------------------------------------------------------------------------------------------------
# Names the template's resources get locally


def substitutions(template: Mapping[str, Any]) -> dict[str, Any]:
    """Readable names and ARNs for the template's resources (buckets, buses, functions, state machines)."""
    subs: dict[str, Any] = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    prefix = f"{REGION}:{ACCOUNT}"
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        name = without_hash(logical_id)
        slug = "-".join(logical_words(logical_id))
        if kind == "AWS::S3::Bucket":
            subs[logical_id], subs[f"{logical_id}.Arn"] = f"local-{slug}", f"arn:aws:s3:::local-{slug}"
        elif kind == "AWS::Events::EventBus":
            subs[logical_id] = f"local-{slug}"
            subs[f"{logical_id}.Arn"] = f"arn:aws:events:{prefix}:event-bus/local-{slug}"
            subs[f"{logical_id}.Name"] = f"local-{slug}"
        elif kind == "AWS::StepFunctions::StateMachine":
            subs[logical_id] = f"arn:aws:states:{prefix}:stateMachine:{name}"
            subs[f"{logical_id}.Name"] = name
        elif kind == "AWS::Lambda::Function":
            subs[logical_id], subs[f"{logical_id}.Arn"] = name, f"arn:aws:lambda:{prefix}:function:{name}"
        elif kind == "AWS::Lambda::LayerVersion":
            subs[logical_id] = f"arn:aws:lambda:{prefix}:layer:{name}:1"
        elif kind == "AWS::SNS::Topic":
            subs[logical_id] = f"arn:aws:sns:{prefix}:{name}"
        elif kind == "AWS::IAM::Role":
            subs[f"{logical_id}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    return subs


def stack_output(template: Mapping[str, Any], key: str, subs: Mapping[str, Any]) -> str | None:
    """A stack output's value, rendered locally (e.g. `PersonalizeBucketName`)."""
    output = template.get("Outputs", {}).get(key)
    return None if output is None else str(render_tokens(output["Value"], subs))


# ---------------------------------------------------------------------------------------------------------
# The pipeline


class _LocalStepFunctions:
    """What the Customer Profiles gate asks Step Functions: the running executions of a state machine."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline

    def get_paginator(self, operation: str) -> Any:
        if operation != "list_executions":
            raise AwsError("StepFunctions.InvalidArn", f"the local Step Functions has no {operation}")
        return self

    def paginate(self, *, stateMachineArn: str, statusFilter: str = "RUNNING") -> Iterator[dict[str, Any]]:  # noqa: N803
        """One page: executions of the machine running at the caller's virtual time."""
        now = self.pipeline.now
        running = [
            run
            for run in self.pipeline.runs
            if self.pipeline.machine_arn(run.machine) == stateMachineArn
            and run.start <= now
            and (run.end is None or run.end > now)
        ]
        assert statusFilter == "RUNNING"
        yield {
            "executions": [
                {
                    "executionArn": run.arn,
                    "stateMachineArn": stateMachineArn,
                    "name": run.name,
                    "status": "RUNNING",
                    "startDate": datetime.fromtimestamp(run.start, UTC),
                }
                for run in running
            ]
        }


class LocalPipeline:
    """The stack's workflows wired by its rules, with every AWS answer local, on one virtual clock."""

    def __init__(self, stack: SynthesizedStack, s3: Any, *, progress: Callable[[Run], None]) -> None:
        self.template = stack.template
        self.subs = substitutions(stack.template)
        self.s3 = s3
        self.progress = progress
        self.now = _epoch(DEMO_START)
        self.bucket = stack_output(stack.template, "PersonalizeBucketName", self.subs) or ""
        resources = stack.template["Resources"]
        self.machines = {
            k: v for k, v in resources.items() if v["Type"] == "AWS::StepFunctions::StateMachine"
        }
        self.definitions = {m: definition_from_template(stack.template, m, self.subs) for m in self.machines}
        self.rules: list[Rule] = rules_from_template(stack.template, self.subs)
        self.personalize = PersonalizeStandIn(s3=s3, now=lambda: self.now, region=REGION, account=ACCOUNT)
        self.profiles = CustomerProfilesStandIn(now=lambda: self.now, region=REGION, account=ACCOUNT)
        self.scheduler = SchedulerStandIn(region=REGION, account=ACCOUNT)
        self.lambdas = LocalLambdas.from_template(
            stack.template,
            stack.code,
            self.subs,
            region=REGION,
            clients={"customer-profiles": self.profiles, "stepfunctions": _LocalStepFunctions(self)},
        )
        self.runs: list[Run] = []
        self.events: list[dict[str, Any]] = []
        self.emails: list[dict[str, Any]] = []
        self._queue: list[tuple[float, str, int, Run]] = []
        self._order = itertools.count()
        self._current: Run | None = None
        self.not_run_locally: set[str] = set()
        """Rule targets events reached that the local run does not run (topics, functions, queues)."""

    # ---- wiring

    def machine_arn(self, machine: str) -> str:
        """The local ARN of a state machine (by logical id)."""
        return str(self.subs[machine])

    def _machine_of(self, arn: str) -> str:
        for machine in self.machines:
            if self.machine_arn(machine) == arn:
                return str(machine)
        raise AwsError(
            "StepFunctions.StateMachineDoesNotExistException", f"State Machine Does Not Exist: {arn}"
        )

    def start(self, machine: str, run_input: Any, *, name: str, at: float) -> Run:
        """Queue an execution; executions run in start order (ties in ARN order, as the gate orders them)."""
        workflow = " ".join(logical_words(machine)).capitalize()
        arn = self.machine_arn(machine).replace(":stateMachine:", ":execution:") + f":{name}"
        if any(r.arn == arn for r in self.runs):
            raise AwsError(
                "StepFunctions.ExecutionAlreadyExistsException", f"Execution Already Exists: {arn}"
            )
        run = Run(machine=machine, workflow=workflow, name=name, arn=arn, start=at, input=run_input)
        self.runs.append(run)
        heapq.heappush(self._queue, (at, arn, next(self._order), run))
        return run

    def put_event(self, bus: str, source: str, detail_type: str, detail: Any, *, at: float) -> str:
        """Put one event on a bus; every rule it matches starts its state machine."""
        event_id = str(uuid.uuid5(_NAMESPACE, f"event-{len(self.events)}"))
        event = {
            "version": "0",
            "id": event_id,
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": iso(at),
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
        current = self._current
        elsewhere = [without_hash(t) for t in elsewhere_of(self.rules, bus, event)]
        self.events.append(
            {
                "bus": bus_name(bus),
                "workflow": current.workflow if current else None,
                "execution": current.name if current else None,
                "event": event,
                "not_run_locally": elsewhere,
            }
        )
        self.not_run_locally.update(elsewhere)
        for machine in targets_of(self.rules, bus, event):
            self.start(machine, event, name=str(uuid.uuid5(_NAMESPACE, f"{machine}/{event_id}")), at=at)
        return event_id

    def _status_change(self, run: Run) -> None:
        """What Step Functions puts on the default bus when an execution starts or ends."""
        execution = run.execution
        at = run.start if execution is None else run.start + execution.virtual_seconds
        detail: dict[str, Any] = {
            "executionArn": run.arn,
            "stateMachineArn": self.machine_arn(run.machine),
            "name": run.name,
            "status": run.status if execution else "RUNNING",
            "startDate": int(run.start * 1000),
            "stopDate": int(at * 1000) if execution else None,
            "input": json.dumps(run.input),
            "output": json.dumps(execution.output) if execution and execution.status == "SUCCEEDED" else None,
            "error": execution.error if execution else None,
            "cause": execution.cause if execution else None,
        }
        self.put_event(DEFAULT_BUS, "aws.states", "Step Functions Execution Status Change", detail, at=at)

    def run_all(self) -> None:
        """Run queued executions (and those they lead to) until none is left."""
        while self._queue:
            _, _, _, run = heapq.heappop(self._queue)
            self.now = run.start
            self._status_change(run)
            self._current = run
            run.execution = run_workflow(
                self.definitions[run.machine],
                run.input,
                _Router(self, run),
                context={
                    "Execution": {"Id": run.arn, "Name": run.name, "StartTime": iso(run.start)},
                    "StateMachine": {"Id": self.machine_arn(run.machine), "Name": without_hash(run.machine)},
                },
                timeout=120,
            )
            self._current = None
            self.now = run.start + run.execution.virtual_seconds
            self._status_change(run)
            self.progress(run)

    # ---- answers to the workflows' Tasks

    def put_events(self, call: TaskCall) -> dict[str, Any]:
        ids = []
        for entry in call.parameters["Entries"]:
            detail = entry.get("Detail")
            detail = json.loads(detail) if isinstance(detail, str) else detail
            bus = str(entry.get("EventBusName") or DEFAULT_BUS)
            ids.append(self.put_event(bus, entry["Source"], entry["DetailType"], detail, at=self.now))
        return {"Entries": [{"EventId": i} for i in ids], "FailedEntryCount": 0}

    def publish(self, call: TaskCall) -> dict[str, Any]:
        message = call.parameters.get("Message")
        with contextlib.suppress(json.JSONDecodeError):  # a plain-text email stays text
            message = json.loads(message) if isinstance(message, str) else message
        current = self._current
        self.emails.append(
            {
                "time": iso(self.now),
                "workflow": current.workflow if current else None,
                "execution": current.name if current else None,
                "topic": call.parameters.get("TopicArn"),
                "delivery": "not sent: local stand-in for Amazon SNS",
                "subject": call.parameters.get("Subject"),
                "message": message,
            }
        )
        return {"MessageId": f"local-message-{len(self.emails)}"}

    def start_execution(self, call: TaskCall) -> dict[str, Any]:
        machine = self._machine_of(str(call.parameters["StateMachineArn"]))
        run_input = call.parameters.get("Input", {})
        run_input = json.loads(run_input) if isinstance(run_input, str) else run_input
        name = str(call.parameters.get("Name") or uuid.uuid5(_NAMESPACE, f"{machine}/{len(self.runs)}"))
        run = self.start(machine, run_input, name=name, at=self.now)
        return {"ExecutionArn": run.arn, "StartDate": iso(self.now)}

    def s3_call(self, action: str, call: TaskCall) -> Any:
        from botocore.exceptions import ClientError

        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
        try:
            answer = getattr(self.s3, method)(**call.parameters)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", "Unknown"))
            raise AwsError(f"S3.{code}{'' if code.endswith('Exception') else 'Exception'}", str(err)) from err
        answer.pop("ResponseMetadata", None)
        return json.loads(json.dumps(answer, default=str))

    def invoke(self, arn: str, event: Any, *, wrapped: bool) -> Any:
        result = self.lambdas.invoke(arn, event)
        return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200} if wrapped else result


class _Router(Mapping[str, Any]):
    """The harness's handler table for one execution: resources resolved by prefix, clock set per call."""

    def __init__(self, pipeline: LocalPipeline, run: Run) -> None:
        self.pipeline = pipeline
        self.run = run

    def __getitem__(self, key: str) -> Callable[[TaskCall], Any]:
        pipeline = self.pipeline
        answer: Callable[[TaskCall], Any] | None = None
        action = key.rsplit(":", 1)[-1]
        if key.startswith("aws-sdk:personalize:"):
            answer = lambda call: pipeline.personalize.call(action, call)  # noqa: E731
        elif key.startswith("aws-sdk:customerprofiles:"):
            answer = lambda call: pipeline.profiles.call(action, call)  # noqa: E731
        elif key.startswith("aws-sdk:scheduler:"):
            answer = lambda call: pipeline.scheduler.call(action, call)  # noqa: E731
        elif key.startswith("aws-sdk:s3:"):
            answer = lambda call: pipeline.s3_call(action, call)  # noqa: E731
        elif key == "events:putEvents":
            answer = pipeline.put_events
        elif key == "sns:publish":
            answer = pipeline.publish
        elif key == "states:startExecution":
            answer = pipeline.start_execution
        elif key == "lambda:invoke":
            answer = lambda call: pipeline.invoke(  # noqa: E731
                str(call.parameters["FunctionName"]), call.parameters.get("Payload"), wrapped=True
            )
        elif pipeline.lambdas.knows(key):
            answer = lambda call: pipeline.invoke(key, call.parameters, wrapped=False)  # noqa: E731
        if answer is None:
            raise KeyError(key)
        return self._clocked(answer)

    def _clocked(self, answer: Callable[[TaskCall], Any]) -> Callable[[TaskCall], Any]:
        def call(task: TaskCall) -> Any:
            self.pipeline.now = self.run.start + task.now
            return answer(task)

        return call

    def __iter__(self) -> Iterator[str]:
        return iter(
            [
                "aws-sdk:personalize:*",
                "aws-sdk:customerprofiles:*",
                "aws-sdk:scheduler:*",
                "aws-sdk:s3:*",
                "events:putEvents",
            ]
        )

    def __len__(self) -> int:
        return 5


# ---------------------------------------------------------------------------------------------------------
# The demo


@contextmanager
def local_aws() -> Iterator[Any]:
    """moto for S3, fake credentials, no profile or config file of the user's: nothing can reach AWS."""
    from moto import mock_aws

    environment = {
        "AWS_ACCESS_KEY_ID": "local-demo",
        "AWS_SECRET_ACCESS_KEY": "local-demo",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    removed = (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    )
    with mock.patch.dict(os.environ, environment):
        for name in removed:
            os.environ.pop(name, None)
        with mock_aws():
            import boto3

            yield boto3.client("s3", region_name=REGION)


def data_files(data_dir: Path) -> list[tuple[Path, str]]:
    """(file, key) of every file under the Personalize folder, as `aws s3 sync` uploads it, configs last."""
    root = personalize_root(data_dir)
    if not root.is_dir():
        raise DemoError(f"{data_dir}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    keys = [(p, p.relative_to(root).as_posix()) for p in files]
    configs = [(p, k) for p, k in keys if re.fullmatch(r"train/[^/]+/[^/]+_config\.json", k)]
    if not configs:
        raise DemoError(f"{root}: no training config at train/<dataset-group>/<name>_config.json")
    return [item for item in keys if item not in configs] + configs


def run_demo(
    stack: SynthesizedStack,
    data_dir: Path,
    output: Path = DEFAULT_OUTPUT,
    *,
    progress: Callable[[Run], None] = lambda run: None,
) -> DemoResult:
    """Upload `data_dir` locally, run every workflow it leads to, write `output` when all succeeded."""
    started = time.monotonic()
    files = data_files(data_dir)
    check_output(output)
    with local_aws() as s3:
        pipeline = LocalPipeline(stack, s3, progress=progress)
        s3.create_bucket(Bucket=pipeline.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=pipeline.bucket, VersioningConfiguration={"Status": "Enabled"})
        with upload_server(pipeline.profiles):
            for path, key in files:
                _upload(pipeline, path, key)
            pipeline.run_all()
        result = DemoResult(
            runs=pipeline.runs,
            events=pipeline.events,
            emails=pipeline.emails,
            not_run_locally=sorted(pipeline.not_run_locally),
        )
        result.failures = [_failure(run) for run in pipeline.runs if run.status != "SUCCEEDED"]
        if not pipeline.runs:
            result.failures.append("the uploads started no workflow: check the training config's key")
        if result.succeeded:
            result.rows = list_segments(s3, pipeline.bucket)
            result.contacts = {
                e["event"]["detail"].get("SegmentName", ""): e["event"]["detail"]
                for e in pipeline.events
                if e["event"]["detail-type"] == CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
            }
            result.output = write_output(pipeline, result, output)
    result.wall_seconds = time.monotonic() - started
    return result


def _upload(pipeline: LocalPipeline, path: Path, key: str) -> None:
    """PutObject, then the `Object Created` event S3 sends to the default bus."""
    body = path.read_bytes()
    answer = pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key, Body=body)
    detail = {
        "version": "0",
        "bucket": {"name": pipeline.bucket},
        "object": {
            "key": key,
            "size": len(body),
            "etag": str(answer["ETag"]).strip('"'),
            "version-id": answer.get("VersionId"),
            "sequencer": f"{len(pipeline.events):016X}",
        },
        "request-id": f"local-{len(pipeline.events):08d}",
        "requester": ACCOUNT,
        "reason": "PutObject",
    }
    pipeline.put_event(DEFAULT_BUS, "aws.s3", "Object Created", detail, at=pipeline.now)


def _failure(run: Run) -> str:
    execution = run.execution
    if execution is None:
        return f"{run.workflow} {run.name} never ran"
    reason = ": ".join(p for p in (execution.error, execution.cause) if p) or execution.status
    return f"{run.workflow} {run.name} {execution.status}: {reason}"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
