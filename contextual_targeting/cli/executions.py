"""Read Step Functions executions: status, steps with elapsed time, and the events a run published."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contextual_targeting.cli.stack_outputs import CliError

FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
PERSONALIZE_EVENT = "Personalize "
STATE_CHANGE = " State Change"


@dataclass(kw_only=True)
class Step:
    """One state of the workflow as the history shows it; Map iterations and retry loops fold into one."""

    name: str
    first_entered: datetime
    runs: int = 0
    running: int = 0
    elapsed: float = 0.0
    """Seconds during which at least one run of the state was active (parallel runs count once)."""


@dataclass(kw_only=True)
class PersonalizeStatus:
    """The last state change the workflow announced for one Personalize resource."""

    resource: str
    arn: str
    status: str
    detail: Mapping[str, Any]


@dataclass(kw_only=True)
class ExecutionView:
    """What one execution did so far."""

    arn: str
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    input: dict[str, Any]
    output: dict[str, Any]
    error: str | None = None
    cause: str | None = None
    steps: list[Step] = field(default_factory=list)
    personalize: list[PersonalizeStatus] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Events the execution put on the bus: `{"DetailType": ..., "Detail": {...}}`."""

    @property
    def finished(self) -> bool:
        """SUCCEEDED, FAILED, TIMED_OUT or ABORTED."""
        return self.status in FINISHED

    @property
    def current_steps(self) -> list[Step]:
        """States running now, most recently entered last."""
        return [s for s in self.steps if s.running]

    def reason(self) -> str:
        """Why the execution failed, as Step Functions reports it."""
        parts = [p for p in (self.error, self.cause) if p]
        return ": ".join(parts) if parts else self.status


def loads(text: Any) -> dict[str, Any]:
    """A JSON object from a string, `{}` for anything else."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def source_key(execution_input: Mapping[str, Any]) -> str | None:
    """The object key a run was started for: `Source.Key` of an input from `object_trigger`."""
    source = execution_input.get("Source")
    key = source.get("Key") if isinstance(source, Mapping) else None
    return key if isinstance(key, str) else None


def aware(value: datetime) -> datetime:
    """A time-zone aware datetime (moto and some SDK paths return naive or local ones)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def execution_arn(state_machine_arn: str, execution: str) -> str:
    """An execution ARN from a full ARN or a bare execution name of the state machine."""
    if execution.startswith("arn:"):
        return execution
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{execution}"


def latest_execution(sfn: Any, state_machine_arn: str) -> str:
    """The newest execution of a state machine (ListExecutions returns newest first)."""
    page = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=1)
    executions = page.get("executions", [])
    if not executions:
        raise CliError("no training run found: upload a training config first (contextual-targeting upload)")
    return str(executions[0]["executionArn"])


def recent_executions(
    sfn: Any, state_machine_arn: str, since: datetime, limit: int = 500
) -> list[dict[str, Any]]:
    """Executions started at or after `since`, newest first, at most `limit` of them."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 100}
    while len(found) < limit:
        page = sfn.list_executions(**kwargs)
        for execution in page.get("executions", []):
            if aware(execution["startDate"]) < since:
                return found
            found.append(execution)
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return found[:limit]


def history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    """Every history event of an execution, oldest first."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page.get("events", [])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def describe(sfn: Any, arn: str, *, with_history: bool = True, now: datetime | None = None) -> ExecutionView:
    """DescribeExecution, and from the history the steps and the events the execution published."""
    described = sfn.describe_execution(executionArn=arn)
    view = ExecutionView(
        arn=arn,
        name=str(described.get("name", arn.rsplit(":", 1)[-1])),
        status=str(described["status"]),
        started=aware(described["startDate"]),
        stopped=aware(described["stopDate"]) if described.get("stopDate") else None,
        input=loads(described.get("input")),
        output=loads(described.get("output")),
        error=described.get("error"),
        cause=described.get("cause"),
    )
    if with_history:
        events = history(sfn, arn)
        view.steps = steps(events, view.stopped or now or datetime.now(UTC))
        view.events = published_events(events)
        view.personalize = personalize_statuses(view.events)
        if view.status != "SUCCEEDED" and not (view.error or view.cause):
            view.error, view.cause = _failure(events)
    return view


def steps(events: Iterable[Mapping[str, Any]], now: datetime) -> list[Step]:
    """States in the order first entered, with how often they ran and the time they were active."""
    found: dict[str, Step] = {}
    open_runs: dict[str, deque[datetime]] = defaultdict(deque)
    intervals: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for event in events:
        kind = str(event.get("type", ""))
        when = aware(event["timestamp"])
        if kind.endswith("StateEntered"):
            name = str(event["stateEnteredEventDetails"]["name"])
            step = found.setdefault(name, Step(name=name, first_entered=when))
            step.runs += 1
            open_runs[name].append(when)
        elif kind.endswith("StateExited"):
            name = str(event["stateExitedEventDetails"]["name"])
            if open_runs[name]:
                intervals[name].append((open_runs[name].popleft(), when))
    for name, step in found.items():
        step.running = len(open_runs[name])
        spans = intervals[name] + [(start, now) for start in open_runs[name]]
        step.elapsed = _union_seconds(spans)
    return list(found.values())


def _union_seconds(spans: list[tuple[datetime, datetime]]) -> float:
    """Length of the union of time spans: parallel Map iterations of a state count once."""
    total = 0.0
    end: datetime | None = None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def published_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The EventBridge entries the execution's PutEvents tasks sent (their parameters are in the history)."""
    published = []
    for event in events:
        details = event.get("taskScheduledEventDetails")
        if event.get("type") != "TaskScheduled" or not details or details.get("resourceType") != "events":
            continue
        for entry in loads(details.get("parameters")).get("Entries", []):
            published.append(
                {"DetailType": entry.get("DetailType", ""), "Detail": loads(entry.get("Detail"))}
            )
    return published


def personalize_statuses(published: Iterable[Mapping[str, Any]]) -> list[PersonalizeStatus]:
    """The latest announced status of every Personalize resource, in the order they first appeared."""
    latest: dict[str, PersonalizeStatus] = {}
    for event in published:
        detail_type = str(event["DetailType"])
        detail = event["Detail"]
        if not (detail_type.startswith(PERSONALIZE_EVENT) and detail_type.endswith(STATE_CHANGE)):
            continue
        arn = str(detail.get("Arn", ""))
        resource = detail_type.removeprefix(PERSONALIZE_EVENT).removesuffix(STATE_CHANGE)
        status = PersonalizeStatus(
            resource=resource, arn=arn, status=str(detail.get("Status", "")), detail=detail
        )
        if arn in latest:
            latest[arn].status, latest[arn].detail = status.status, detail
        else:
            latest[arn] = status
    return list(latest.values())


def _failure(events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """Error and cause of the event that ended the execution, for when DescribeExecution omits them."""
    for event in reversed(events):
        for key in (
            "executionFailedEventDetails",
            "executionTimedOutEventDetails",
            "executionAbortedEventDetails",
        ):
            if key in event:
                return event[key].get("error"), event[key].get("cause")
    return None, None
