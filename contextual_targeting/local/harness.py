"""Run a Step Functions definition locally against scripted AWS answers, on a virtual clock.

A test builds (or synthesizes) a workflow, scripts the AWS answers per Task resource or per state name and
runs it::

    execution = run_workflow(
        definition_from_template(Template.from_stack(stack).to_json(), "TrainingWorkflow"),
        {"bucket": "b"},
        {
            "aws-sdk:personalize:describeSolutionVersion": lambda call: {
                "SolutionVersion": {"Status": "ACTIVE" if call.now >= 600 else "CREATE IN_PROGRESS"}
            },
            "Create solution": script(AwsError("Personalize.ResourceAlreadyExistsException", "exists")),
            "sns:publish": {"MessageId": "m-1"},
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()

`runner.mjs` executes the definition with aws-local-stepfunctions under Node 22: every Task is answered
by the handlers here, every Wait and retry interval is overridden to 0 ms, so no real time passes.

Virtual clock (`TaskCall.now`, `Execution.virtual_seconds`: seconds since the execution started):

- A Wait adds its duration when it is entered: `Seconds`, `SecondsPath`, or `Timestamp`/`TimestampPath`
  relative to the virtual start time (`$$.Execution.StartTime`, 2026-01-01T00:00:00Z unless the context
  sets it). A retry adds `IntervalSeconds * BackoffRate**(attempt - 1)` capped by `MaxDelaySeconds`
  (`JitterStrategy: FULL` is charged the full interval, its upper bound). Tasks, Pass, Choice take no time.
- Parallel and Map: one clock per lane. Every Parallel branch and every Map iteration runs on its own clock,
  which starts when the Parallel/Map state is entered; when the state ends, the enclosing lane continues at
  the latest branch/iteration end. The library's events do not say which branch they come from, but state
  names are unique in a whole definition (asl-validator enforces it), so the state name gives the branch;
  Map iterations are told apart by the event's `index`. Map `MaxConcurrency` is honoured: a queued iteration
  starts when the iteration whose slot it takes in the local run ended on the virtual clock (the local run
  frees slots in wall-clock order, which may differ from virtual order when iterations poll for different
  durations).
- Limitations: a Map nested in another Map's iterations only has the outermost index on its events, so its
  iterations share one lane and their waits add up; a branch cancelled because a sibling failed is still
  charged its full waits.
- Per-loop reasoning: `TaskCall.since(state)` is the time since a state was last entered (e.g. the Create
  before a Describe loop), `TaskCall.elapsed_for(*states)` / `Execution.elapsed_for(*states)` the Wait and
  retry seconds those states accrued.
- The definition's `TimeoutSeconds` is enforced on the virtual clock: the run ends as `TIMED_OUT`.
- Every state event in `Execution.events` carries `at`: virtual seconds on its lane when the state was
  entered (before its own wait) or when it retried, exited or failed.

Known gaps of aws-local-stepfunctions 3.0.0 (all intrinsic functions work, nested ones too):

- `$$.State.*` (EnteredTime, Name, RetryCount) is not provided: such a path fails with States.Runtime.
  `$$.Execution.Input` inside a Parallel branch or Map iteration is the branch/iteration input.
- JSONata, workflow variables (`Assign`) and distributed Map would be ignored: the harness refuses them.
- Task `TimeoutSeconds`/`HeartbeatSeconds` run in wall time (60 s default): a handler must answer quickly.
  An `AwsError("States.Timeout")` is also matched by `States.TaskFailed` (AWS exempts timeouts).
- `States.Hash` with SHA-256 is wrong for inputs of 56 bytes or more (checked against Node's crypto): names
  derived from long keys are stable and distinct but not AWS's digest, so assert exact hashes on short input.
- The runner rewrites `"ResultPath": "$"` to its equivalent default (the library stores the result under a
  key named "$"), and reports a Fail state without Error/Cause with neither (the library invents both).
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import json
import math
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE = REPO_ROOT / "node_modules" / ".bin" / "node"
RUNNER = Path(__file__).with_name("runner.mjs")

PAYLOAD_LIMIT_BYTES = 256 * 1024
HISTORY_EVENT_LIMIT = 25_000
DEFAULT_START_TIME = "2026-01-01T00:00:00.000Z"
FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "us-east-1"
# The library runs at most 40 Map iterations at a time, as AWS does for an inline Map without MaxConcurrency.
DEFAULT_MAP_CONCURRENCY = 40
# Events of Parallel branches and Map iterations reach the harness slightly out of order; events are re-sorted
# at every task call, and at the latest when this many are waiting (a bound far above the observed skew).
_REORDER_WINDOW = 2_000
_CDK_HASH = re.compile(r"[0-9A-F]{8}")
# Fingerprints of definitions asl-validator accepted in this process.
_VALIDATED: set[str] = set()
# Every workflow run in this process, by the workflow's state names: the states its runs entered.
STATE_COVERAGE: dict[frozenset[str], set[str]] = {}
# The workflows that came from synthesized templates (the project's own, not the harness's examples).
_SYNTHESIZED: set[frozenset[str]] = set()

Lane = tuple[tuple[str, int | None], ...]
Handler = Callable[["TaskCall"], Any]


class AwsError(Exception):
    """An error a handler raises to fail the Task, e.g. `AwsError("S3.NoSuchKeyException", "...")`."""

    def __init__(self, name: str, cause: str = "") -> None:
        super().__init__(f"{name}: {cause}")
        self.name = name
        self.cause = cause


class HarnessError(AssertionError):
    """A run that cannot be judged: the test is wrong or the workflow misbehaves outside AWS semantics."""


class UnscriptedCallError(HarnessError):
    """A Task called a resource no handler scripts."""


class ScriptExhaustedError(HarnessError):
    """A `script(...)` handler was called more often than it has answers."""


class WorkflowHungError(HarnessError):
    """The run did not end within the wall-clock timeout."""


class RunawayExecutionError(HarnessError):
    """The run made more state transitions than the guard allows (an endless loop, most likely)."""


class InvalidDefinitionError(HarnessError):
    """The definition was rejected before running (asl-validator or an unrenderable token)."""


@dataclass
class TaskCall:
    """One Task invocation as the handler sees it, completed with its outcome after the handler returns."""

    state: str
    resource: str
    parameters: Any
    # The state's raw input (before InputPath/Parameters), from its StateEntered event.
    state_input: Any
    # Virtual seconds since the execution started, on this call's lane (see the module docstring).
    now: float
    # 1 for the first call of a state entry, 2 for its first retry, ...
    attempt: int
    # Index of the (outermost) Map iteration making the call, None outside a Map.
    index: int | None
    lane: Lane
    seq: int
    result: Any = None
    error: str | None = None
    cause: str | None = None
    _clock: _Clock | None = field(default=None, repr=False, compare=False)

    def elapsed_for(self, *state_names: str | Iterable[str]) -> float:
        """Wait and retry seconds accrued so far (at call time when used in a handler) by the given states."""
        assert self._clock is not None
        return self._clock.elapsed_for(_flatten(state_names))

    def since(self, state_name: str) -> float:
        """Virtual seconds from the latest entry of `state_name` (same Map iteration if any) to this call."""
        assert self._clock is not None
        return self.now - self._clock.entered_at(state_name, self.index)


@dataclass
class Execution:
    """The outcome of one local run."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]
    calls: list[TaskCall]
    # StateEntered + StateRetried events: the state transitions AWS bills.
    transitions: int
    virtual_seconds: float
    # Largest state input/output, task parameters or result, in UTF-8 JSON bytes, and where it was seen.
    max_payload_bytes: int
    max_payload_at: str | None
    # What AWS would write to the execution history (capped at 25,000), estimated from the events.
    history_events_estimate: int
    wall_seconds: float
    # The rendered definition that ran (tokens replaced).
    definition: dict[str, Any]
    _clock: _Clock = field(repr=False, compare=False)

    def calls_to(self, resource_or_state: str) -> list[TaskCall]:
        """Calls made by the state of that name or to that resource (full ARN or short form)."""
        return [
            c for c in self.calls if resource_or_state in (c.state, c.resource, _short_resource(c.resource))
        ]

    def states_entered(self) -> list[str]:
        """Names of the states entered, in execution order."""
        return [e["state"]["name"] for e in self.events if e["type"] == "StateEntered"]

    def elapsed_for(self, *state_names: str | Iterable[str]) -> float:
        """Wait and retry seconds accrued by the given states over the whole run."""
        return self._clock.elapsed_for(_flatten(state_names))

    def summary(self, last: int = 20) -> str:
        """A readable account of the run for assertion messages."""
        lines = [
            f"status={self.status} error={self.error!r} cause={self.cause!r}",
            f"virtual_seconds={self.virtual_seconds:g} transitions={self.transitions}"
            f" calls={len(self.calls)}",
            f"states: {' > '.join(self.states_entered()[-60:])}",
            f"last {last} events:",
        ]
        lines += [_describe_event(e) for e in self.events[-last:]]
        return "\n".join(lines)


def script(*steps: Any) -> Handler:
    """A handler answering call n with steps[n]: a value returned, an AwsError raised or a callable called."""
    remaining = list(steps)
    count = 0

    def handler(call: TaskCall) -> Any:
        nonlocal count
        count += 1
        if not remaining:
            raise ScriptExhaustedError(
                f"script for state {call.state!r} ({call.resource}) has {len(steps)} answers,"
                f" got call #{count}"
            )
        step = remaining.pop(0)
        if isinstance(step, AwsError):
            raise step
        if callable(step):
            return step(call)
        return copy.deepcopy(step)

    return handler


def run_workflow(
    definition: Mapping[str, Any] | str,
    input: Any,
    handlers: Mapping[str, Any],
    *,
    context: Mapping[str, Any] | None = None,
    timeout: float = 60,
    substitutions: Mapping[str, Any] | None = None,
    max_transitions: int = HISTORY_EVENT_LIMIT,
    validate: bool = True,
) -> Execution:
    """Execute `definition` on `input`, answering each Task from `handlers`; return the finished Execution.

    `definition`: ASL as dict or JSON string; CloudFormation tokens in it (`Ref`, `Fn::GetAtt`, `Fn::Join`,
    `Fn::Sub`) are rendered with `render_tokens(..., substitutions)`. `handlers` maps a state name, a Task
    resource (`arn:aws:states:::sns:publish`) or its short form (`sns:publish`,
    `aws-sdk:personalize:describeSolutionVersion`) to a callable `(TaskCall) -> result` that may raise
    `AwsError`, or to a constant result / `AwsError`; a state name wins over a resource. An unscripted call
    raises `UnscriptedCallError`; any other exception of a handler propagates.

    `context` is merged into the context object (`$$`); `context["Execution"]["StartTime"]` sets the virtual
    start. `timeout` is wall-clock seconds (`WorkflowHungError`), `max_transitions` guards against endless
    loops (`RunawayExecutionError`). Caution: `Stack.resolve(graph.to_graph_json())` from Python has lost
    every `"ResultPath": null`; use `definition_from_chainable` or `definition_from_template` instead.
    """
    rendered = _as_definition(definition, substitutions)
    states = _index_states(rendered)
    start_time = _start_time(context)
    full_context = _merge(_default_context(start_time), dict(context or {}))
    job: dict[str, Any] = {
        "definition": rendered,
        "input": input,
        "context": full_context,
        "startTime": start_time,
    }
    fingerprint = hashlib.sha256(json.dumps(rendered, sort_keys=True).encode()).hexdigest()
    if not validate or fingerprint in _VALIDATED:
        # asl-validator takes ~0.25 s of the ~0.4 s a run costs; a definition once accepted is accepted again.
        job["validationOptions"] = {"noValidate": True}
    execution = _Run(rendered, states, start_time, handlers, timeout, max_transitions).execute(job)
    if validate:
        _VALIDATED.add(fingerprint)
    STATE_COVERAGE.setdefault(frozenset(states), set()).update(execution.states_entered())
    return execution


def uncovered_states() -> list[tuple[str, list[str]]]:
    """For each synthesized workflow run in this process (named by a state), the states no run entered."""
    report = []
    for states, entered in STATE_COVERAGE.items():
        if states not in _SYNTHESIZED:
            continue
        missing = sorted(states - entered)
        if missing:
            report.append((min(entered) if entered else min(states), missing))
    return report


def definition_from_template(
    template: Mapping[str, Any] | str,
    state_machine: str | Any | None = None,
    substitutions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The runnable definition of a state machine in a synthesized template (`Template.to_json()`).

    `state_machine`: a logical id or a prefix of it (`"TrainingWorkflow"` matches `TrainingWorkflow1A2B3C4D`),
    None when the template has exactly one state machine, or an `assertions.Capture` that captured a
    `DefinitionString`. The `Fn::Join` pieces are joined, `DefinitionSubstitutions` applied and tokens
    rendered as in `render_tokens`.
    """
    tpl = json.loads(template) if isinstance(template, str) else template
    resources = tpl.get("Resources", {})
    known = [*resources, *tpl.get("Parameters", {})]
    machines = {k: v for k, v in resources.items() if v.get("Type") == "AWS::StepFunctions::StateMachine"}
    subs = dict(substitutions or {})
    if state_machine is not None and not isinstance(state_machine, str):
        return _synthesized(_as_definition(_captured(state_machine), subs, known))
    if state_machine is None:
        if len(machines) != 1:
            raise InvalidDefinitionError(
                f"template has {len(machines)} state machines, name one: {sorted(machines)}"
            )
        logical_id = next(iter(machines))
    else:
        logical_id = _match_logical_id(state_machine, machines)
    props = machines[logical_id]["Properties"]
    if "DefinitionString" not in props:
        raise InvalidDefinitionError(
            f"{logical_id} has no DefinitionString (DefinitionS3Location is not supported)"
        )
    text = render_tokens(props["DefinitionString"], subs, known)
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", str(render_tokens(value, subs, known)))
    return _synthesized(_as_definition(text, subs, known))


def _synthesized(definition: dict[str, Any]) -> dict[str, Any]:
    """Note a definition as the project's own (from a template), whose every state a test must enter."""
    _SYNTHESIZED.add(frozenset(_index_states(definition)))
    return definition


def definition_from_chainable(
    chainable: Any, substitutions: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The runnable definition of a CDK chain (`IChainable`) that is not yet part of a state machine.

    Serializes inside CDK (`Stack.to_json_string`) because `Stack.resolve` of the graph JSON drops
    `"ResultPath": null` (jsii turns JSON null into a missing key), which silently changes the semantics.
    """
    import aws_cdk as cdk
    from aws_cdk import aws_stepfunctions as sfn

    start = chainable.start_state
    stack = cdk.Stack.of(start)
    graph = sfn.StateGraph(start, f"sfn-local harness ({start.state_id})")
    return _as_definition(stack.resolve(stack.to_json_string(graph.to_graph_json())), substitutions)


def render_tokens(
    value: Any,
    substitutions: Mapping[str, Any] | None = None,
    known_ids: Iterable[str] | None = None,
) -> Any:
    """Replace CloudFormation intrinsics with readable fake values; `substitutions` overrides them.

    `{"Ref": "X"}` and `{"Fn::GetAtt": ["X", "Arn"]}` become `arn:aws:fake:::X` (a valid ARN shape, as
    asl-validator checks Task resources), other attributes `arn:aws:fake:::X.Attr`; pseudo parameters get
    `aws`, `us-east-1`, `123456789012`. A substitution key is a logical id, or one without CDK's hash suffix
    (`"Topic"` for `TopicBFC7AF6E`), with `.Attr` for an attribute, or a pseudo parameter (`"AWS::Region"`).
    `known_ids` (the template's resources and parameters) turns a `Ref` to anything else into an error.
    """
    return _TokenRenderer(substitutions, known_ids).walk(value)


class _TokenRenderer:
    """`render_tokens`' walk over a resolved definition, one intrinsic function at a time."""

    def __init__(self, substitutions: Mapping[str, Any] | None, known_ids: Iterable[str] | None) -> None:
        self.subs = dict(substitutions or {})
        self.known = set(known_ids) if known_ids is not None else None

    @staticmethod
    def names_id(key: str, logical_id: str) -> bool:
        # A key names a resource by its full logical id or by the id without CDK's 8-hex-digit hash suffix.
        return logical_id == key or (
            logical_id.startswith(key) and _CDK_HASH.fullmatch(logical_id[len(key) :]) is not None
        )

    def lookup(self, logical_id: str, attr: str | None = None) -> tuple[bool, Any]:
        wanted = logical_id if attr is None else f"{logical_id}.{attr}"
        if wanted in self.subs:
            return True, self.subs[wanted]
        keys = [
            k
            for k in self.subs
            if (attr is None and "." not in k and self.names_id(k, logical_id))
            or (
                attr is not None and k.endswith(f".{attr}") and self.names_id(k[: -len(attr) - 1], logical_id)
            )
        ]
        if len(keys) > 1:
            raise InvalidDefinitionError(f"substitution keys {keys} all name {wanted!r}")
        return (True, self.subs[keys[0]]) if keys else (False, None)

    def ref(self, name: str) -> Any:
        found, val = self.lookup(name)
        if found:
            return val
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": FAKE_REGION,
            "AWS::AccountId": FAKE_ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "LocalStack",
            "AWS::StackId": f"arn:aws:cloudformation:{FAKE_REGION}:{FAKE_ACCOUNT}:stack/LocalStack/fake",
        }
        if name in pseudo:
            return pseudo[name]
        if self.known is not None and name not in self.known and not name.startswith("AWS::"):
            raise InvalidDefinitionError(f"Ref to {name!r}, which the template does not define")
        return f"arn:aws:fake:::{name}"

    def get_att(self, logical: str, attr: str) -> Any:
        found, val = self.lookup(logical, attr)
        if found:
            return val
        if attr == "Arn":
            found, val = self.lookup(logical)
            if found:
                return val
            return f"arn:aws:fake:::{logical}"
        return f"arn:aws:fake:::{logical}.{attr}"

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.walk(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def walk(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical, attr)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.walk(p)) for p in self.walk_list(parts))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if key == "Fn::Select":
                idx, items = arg
                return self.walk_list(items)[int(self.walk(idx))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.walk(text)).split(sep)
            if key.startswith("Fn::"):
                raise InvalidDefinitionError(f"intrinsic {key} is not supported by the harness: {node}")
        return {k: self.walk(v) for k, v in node.items()}

    def walk_list(self, parts: Any) -> list[Any]:
        rendered = self.walk(parts)
        if not isinstance(rendered, list):
            raise InvalidDefinitionError(f"expected a list, got {rendered!r}")
        return rendered


# ---------------------------------------------------------------------------------------------------------
# Definition helpers


@dataclass(frozen=True)
class _StateInfo:
    name: str
    type: str
    spec: dict[str, Any]
    # Enclosing Parallel/Map states from the root: (name, branch index) or (name, None) for a Map.
    path: tuple[tuple[str, int | None], ...]


def _as_definition(
    definition: Any, substitutions: Mapping[str, Any] | None, known_ids: Iterable[str] | None = None
) -> dict[str, Any]:
    rendered = render_tokens(definition, substitutions, known_ids)
    if isinstance(rendered, str):
        rendered = json.loads(rendered)
    if not isinstance(rendered, dict) or "States" not in rendered or "StartAt" not in rendered:
        raise InvalidDefinitionError(f"not a state machine definition: {str(rendered)[:200]}")
    leftover = re.search(r"\$\{Token\[[^\]]*\]\}", json.dumps(rendered))
    if leftover:
        raise InvalidDefinitionError(
            f"unresolved CDK token {leftover.group(0)}: pass Stack.resolve(...) output, a template "
            "definition "
            "or use definition_from_chainable()"
        )
    return rendered


def _index_states(definition: Mapping[str, Any]) -> dict[str, _StateInfo]:
    found: dict[str, _StateInfo] = {}

    def visit(machine: Mapping[str, Any], path: tuple[tuple[str, int | None], ...]) -> None:
        _reject_unsupported("definition", machine)
        for name, spec in machine.get("States", {}).items():
            _reject_unsupported(f"state {name!r}", spec)
            for rule in [*spec.get("Choices", []), *spec.get("Catch", [])]:
                _reject_unsupported(f"a rule of state {name!r}", rule)
            if name in found:
                raise InvalidDefinitionError(f"state name {name!r} occurs twice; AWS requires unique names")
            found[name] = _StateInfo(name, spec.get("Type", ""), spec, path)
            if spec.get("Type") == "Parallel":
                for i, branch in enumerate(spec.get("Branches", [])):
                    visit(branch, (*path, (name, i)))
            elif spec.get("Type") == "Map":
                visit(spec.get("ItemProcessor") or spec.get("Iterator") or {}, (*path, (name, None)))

    visit(definition, ())
    return found


# Fields aws-local-stepfunctions 3.0.0 would ignore silently (and so run a different workflow than AWS).
_UNSUPPORTED_FIELDS = {
    "Assign": "workflow variables",
    "Arguments": "JSONata arguments",
    "Output": "JSONata output",
    "Items": "Map Items",
    "ItemReader": "distributed Map",
    "ResultWriter": "distributed Map",
    "ItemBatcher": "distributed Map",
    "ToleratedFailureCount": "distributed Map",
    "ToleratedFailureCountPath": "distributed Map",
    "ToleratedFailurePercentage": "distributed Map",
    "ToleratedFailurePercentagePath": "distributed Map",
}


def _reject_unsupported(where: str, spec: Mapping[str, Any]) -> None:
    if spec.get("QueryLanguage") == "JSONata":
        raise InvalidDefinitionError(f"{where} uses JSONata, which aws-local-stepfunctions 3.0.0 cannot run")
    if (spec.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED":
        raise InvalidDefinitionError(f"{where} is a distributed Map, which the local runner cannot run")
    for key, feature in _UNSUPPORTED_FIELDS.items():
        if key in spec:
            raise InvalidDefinitionError(f"{where} uses {key} ({feature}), which the local runner ignores")


def _match_logical_id(prefix: str, machines: Mapping[str, Any]) -> str:
    if prefix in machines:
        return prefix
    matches = [k for k in machines if k.startswith(prefix)]
    if len(matches) != 1:
        raise InvalidDefinitionError(f"{len(matches)} state machines match {prefix!r}: {sorted(machines)}")
    return matches[0]


def _captured(capture: Any) -> Any:
    try:
        return capture.as_object()
    except Exception:  # a Capture raises when the captured value is a string
        return capture.as_string()


def _start_time(context: Mapping[str, Any] | None) -> str:
    start = str(((context or {}).get("Execution") or {}).get("StartTime", DEFAULT_START_TIME))
    _parse_time(start)  # fail early on a malformed start time
    return start


def _default_context(start_time: str) -> dict[str, Any]:
    machine_arn = f"arn:aws:states:{FAKE_REGION}:{FAKE_ACCOUNT}:stateMachine:LocalStateMachine"
    return {
        "Execution": {
            "Id": f"arn:aws:states:{FAKE_REGION}:{FAKE_ACCOUNT}:execution:LocalStateMachine:local-execution",
            "Name": "local-execution",
            "RoleArn": f"arn:aws:iam::{FAKE_ACCOUNT}:role/LocalStateMachineRole",
            "StartTime": start_time,
        },
        "StateMachine": {"Id": machine_arn, "Name": "LocalStateMachine"},
        # One token for every `.waitForTaskToken` call: the handler answers as the callback would.
        "Task": {"Token": "local-task-token"},
    }


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _short_resource(resource: str) -> str:
    return re.sub(r"^arn:[^:]+:states:::", "", resource)


def _flatten(names: Iterable[str | Iterable[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        if isinstance(name, str):
            out.add(name)
        else:
            out.update(name)
    return out


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _describe_event(event: Mapping[str, Any]) -> str:
    state = event.get("state") or event.get("parentState") or {}
    parts = [f"#{event.get('seq')}", event.get("type", "?")]
    if state:
        parts.append(repr(state.get("name")))
    if event.get("index") is not None:
        parts.append(f"[{event['index']}]")
    if "Error" in event:
        parts.append(f"{event['Error']}: {str(event.get('Cause'))[:200]}")
    if "wait" in event:
        parts.append(f"wait={event['wait']}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# Virtual clock


class _Clock:
    """Per-lane virtual seconds derived from the (seq-ordered) event stream."""

    def __init__(self, states: Mapping[str, _StateInfo], start_epoch: float) -> None:
        self.states = states
        self.start_epoch = start_epoch
        self.lanes: dict[Lane, float] = {(): 0.0}
        self.starts: dict[tuple[Lane, str], float] = {}
        self.slots: dict[tuple[Lane, str], list[float]] = {}
        self.waited: dict[str, float] = {}
        self.entries: dict[tuple[str, int | None], float] = {}

    def lane_of(self, name: str, index: int | None) -> Lane:
        info = self.states.get(name)
        if info is None:
            return ()
        lane: list[tuple[str, int | None]] = []
        outermost_map = True
        for container, branch in info.path:
            if branch is None:
                # Events carry the index of the outermost Map only; deeper Map iterations share a lane.
                lane.append((container, index if outermost_map else None))
                outermost_map = False
            else:
                lane.append((container, branch))
        return tuple(lane)

    def time(self, lane: Lane) -> float:
        if lane not in self.lanes:
            parent, (container, slot_index) = lane[:-1], lane[-1]
            start = self.starts.get((parent, container), self.time(parent))
            pool = self.slots.get((parent, container))
            if pool is not None and slot_index is not None:
                start = max(start, heapq.heappop(pool)) if pool else start
            self.lanes[lane] = start
        return self.lanes[lane]

    def advance(self, lane: Lane, name: str, seconds: float) -> None:
        self.lanes[lane] = self.time(lane) + seconds
        self.waited[name] = self.waited.get(name, 0.0) + seconds

    def open_container(self, lane: Lane, name: str) -> None:
        now = self.time(lane)
        self.starts[(lane, name)] = now
        prefix_len = len(lane)
        for key in [
            k
            for k in self.lanes
            if len(k) > prefix_len and k[:prefix_len] == lane and k[prefix_len][0] == name
        ]:
            del self.lanes[key]
        info = self.states[name]
        if info.type == "Map" and self._is_outermost_map(info):
            limit = info.spec.get("MaxConcurrency") or DEFAULT_MAP_CONCURRENCY
            self.slots[(lane, name)] = [now] * int(limit)

    def close_container(self, lane: Lane, name: str) -> None:
        prefix_len = len(lane)
        ends = [
            t
            for k, t in self.lanes.items()
            if len(k) == prefix_len + 1 and k[:prefix_len] == lane and k[-1][0] == name
        ]
        self.lanes[lane] = max([self.time(lane), *ends])

    def release_slot(self, lane: Lane, name: str, index: int) -> None:
        pool = self.slots.get((lane, name))
        child = (*lane, (name, index))
        if pool is not None and child in self.lanes:
            heapq.heappush(pool, self.lanes[child])

    def wait_seconds(self, spec: Mapping[str, Any] | None, lane: Lane) -> float:
        if not spec:
            return 0.0
        if "timestamp" in spec:
            if not isinstance(spec["timestamp"], str):
                return 0.0
            target = _parse_time(spec["timestamp"])
            return max(0.0, target - (self.start_epoch + self.time(lane)))
        seconds = spec.get("seconds")
        return float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else 0.0

    def entered_at(self, name: str, index: int | None) -> float:
        if (name, index) in self.entries:
            return self.entries[(name, index)]
        if (name, None) in self.entries:
            return self.entries[(name, None)]
        raise HarnessError(f"state {name!r} has not been entered (yet)")

    def elapsed_for(self, names: set[str]) -> float:
        unknown = names - set(self.states)
        if unknown:
            raise HarnessError(f"no such states: {sorted(unknown)}")
        return sum(self.waited.get(n, 0.0) for n in names)

    def max_time(self) -> float:
        return max(self.lanes.values())

    def _is_outermost_map(self, info: _StateInfo) -> bool:
        return all(branch is not None for _, branch in info.path)


def retry_interval(retrier: Mapping[str, Any], attempt: int) -> float:
    """Seconds AWS waits before retry `attempt` (1-based) of `retrier`, jitter ignored."""
    interval = float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** (
        attempt - 1
    )
    cap = retrier.get("MaxDelaySeconds")
    return min(interval, float(cap)) if cap is not None else interval


# ---------------------------------------------------------------------------------------------------------
# One run


@dataclass
class _Entry:
    seq: int
    name: str
    index: int | None
    lane: Lane
    raw_input: Any
    attempt: int


class _StopRunError(Exception):
    def __init__(self, status: str, error: str | None, cause: str | None) -> None:
        super().__init__(status)
        self.status, self.error, self.cause = status, error, cause


class _Run:
    def __init__(
        self,
        definition: dict[str, Any],
        states: dict[str, _StateInfo],
        start_time: str,
        handlers: Mapping[str, Any],
        timeout: float,
        max_transitions: int,
    ) -> None:
        self.definition = definition
        self.states = states
        self.handlers = handlers
        self.timeout = timeout
        self.max_transitions = max_transitions
        self.execution_timeout = definition.get("TimeoutSeconds")
        self.clock = _Clock(states, _parse_time(start_time))
        self.events: list[dict[str, Any]] = []
        self.calls: list[TaskCall] = []
        self.buffer: list[tuple[int, int, dict[str, Any]]] = []
        self.received = 0
        self.open_entries: dict[str, list[_Entry]] = {}
        self.attempts: dict[tuple[str, int | None], int] = {}
        self.transitions = 0
        self.history = 0
        self.max_payload = 0
        self.max_payload_at: str | None = None
        self.stderr: list[str] = []

    # -- process plumbing ----------------------------------------------------------------------------------

    def execute(self, job: dict[str, Any]) -> Execution:
        if not NODE.exists():
            raise HarnessError(f"{NODE} is missing: run `npm ci` (or `make setup`) first")
        started = time.monotonic()
        # The repository's own Node and the runner shipped next to this file: no user input in the command.
        proc = subprocess.Popen(  # noqa: S603
            [str(NODE), str(RUNNER)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        lines: queue.Queue[str | None] = queue.Queue()
        readers = [
            threading.Thread(target=self._pump, args=(proc.stdout, lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr, self._keep_stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            self._send(proc, job)
            end = self._converse(proc, lines, started + self.timeout)
        except _StopRunError as stop:
            end = {"status": stop.status, "error": stop.error, "cause": stop.cause, "output": None}
        finally:
            self._terminate(proc, readers)
        return Execution(
            status=end["status"],
            output=end.get("output"),
            error=end.get("error"),
            cause=end.get("cause"),
            events=self.events,
            calls=self.calls,
            transitions=self.transitions,
            virtual_seconds=self.clock.max_time(),
            max_payload_bytes=self.max_payload,
            max_payload_at=self.max_payload_at,
            history_events_estimate=self.history,
            wall_seconds=time.monotonic() - started,
            definition=self.definition,
            _clock=self.clock,
        )

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str | None], None]) -> None:
        try:
            for line in stream:
                sink(line)
        except ValueError:
            pass  # stream closed while reading: the run is over
        finally:
            sink(None)

    def _keep_stderr(self, line: str | None) -> None:
        if line is not None:
            self.stderr = [*self.stderr[-49:], line.rstrip("\n")]

    @staticmethod
    def _send(proc: subprocess.Popen[str], message: Mapping[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
        proc.stdin.flush()

    @staticmethod
    def _terminate(proc: subprocess.Popen[str], readers: list[threading.Thread]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        # The readers end at EOF once the process is gone; closing a pipe under a reading thread could block.
        for reader in readers:
            reader.join(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass  # stdin of a killed runner: the broken pipe is expected

    def _failure_context(self) -> str:
        recent = self.events[-20:] + [m for _, _, m in sorted(self.buffer)][-20:]
        text = "\n".join(_describe_event(e) for e in recent[-20:]) or "(no events)"
        err = "\n".join(self.stderr[-15:])
        return f"\nlast {min(20, len(recent))} events:\n{text}" + (f"\nrunner stderr:\n{err}" if err else "")

    # -- conversation ------------------------------------------------------------------------------------

    def _converse(
        self, proc: subprocess.Popen[str], lines: queue.Queue[str | None], deadline: float
    ) -> dict[str, Any]:
        while True:
            # Checked before reading: a runaway loop keeps the queue full and must still hit the deadline.
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                line = lines.get(timeout=remaining)
            except queue.Empty:
                raise WorkflowHungError(
                    f"workflow still running after {self.timeout:g} s of wall time" + self._failure_context()
                ) from None
            if line is None:
                proc.wait(timeout=5)
                raise HarnessError(
                    f"runner exited (code {proc.returncode}) without finishing the execution"
                    + self._failure_context()
                )
            message = json.loads(line)
            op = message.pop("op")
            if op == "event":
                self.received += 1
                heapq.heappush(self.buffer, (message["seq"], self.received, message))
                if len(self.buffer) > _REORDER_WINDOW:
                    # A long stretch without task calls (a Wait/Choice loop): apply the oldest half, which
                    # is far beyond the few events of skew.
                    self._drain_oldest(_REORDER_WINDOW // 2)
            elif op == "task":
                self._drain(message["seq"])
                self._answer(proc, message)
            elif op == "end":
                self._drain(math.inf)
                return dict(message)
            elif op == "fatal":
                raise InvalidDefinitionError(f"runner refused the definition: {message['message']}")
            else:
                raise HarnessError(f"unknown runner message {op!r}")

    def _drain(self, upto: float) -> None:
        while self.buffer and self.buffer[0][0] < upto:
            self._apply(heapq.heappop(self.buffer)[2])

    def _drain_oldest(self, keep: int) -> None:
        while len(self.buffer) > keep:
            self._apply(heapq.heappop(self.buffer)[2])

    def _answer(self, proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
        name = message["state"]
        entry = self._take_entry(name, message["seq"])
        call = TaskCall(
            state=name,
            resource=message["resource"],
            parameters=message["parameters"],
            state_input=entry.raw_input if entry else None,
            now=self.clock.time(entry.lane) if entry else self.clock.time(()),
            attempt=entry.attempt if entry else 1,
            index=entry.index if entry else None,
            lane=entry.lane if entry else (),
            seq=message["seq"],
            _clock=self.clock,
        )
        self.calls.append(call)
        self.history += 3  # TaskScheduled, TaskStarted, TaskSucceeded/TaskFailed
        self._measure(call.parameters, f"{name} (parameters)")
        handler = self._handler_for(call)
        reply: dict[str, Any] = {"id": message["id"]}
        try:
            value = handler(call) if callable(handler) else _constant(handler)
        except AwsError as err:
            call.error, call.cause = err.name, err.cause
            reply.update(error=err.name, cause=err.cause)
        except BaseException as err:
            err.add_note(f"raised by the handler of Task state {name!r} ({call.resource}) at t={call.now:g}s")
            raise
        else:
            try:
                call.result = json.loads(json.dumps(value))
            except TypeError as err:
                raise HarnessError(
                    f"handler of {name!r} returned a value that is not JSON: {value!r}"
                ) from err
            self._measure(call.result, f"{name} (result)")
            reply["result"] = call.result
        self._send(proc, reply)

    def _handler_for(self, call: TaskCall) -> Any:
        for key in (call.state, call.resource, _short_resource(call.resource)):
            if key in self.handlers:
                return self.handlers[key]
        raise UnscriptedCallError(
            f"no handler for Task state {call.state!r}, resource {call.resource!r}\n"
            f"parameters: {json.dumps(call.parameters)[:1000]}\n"
            f"scripted keys: {sorted(self.handlers)}" + self._failure_context()
        )

    def _take_entry(self, name: str, seq: int) -> _Entry | None:
        candidates = [e for e in self.open_entries.get(name, []) if e.seq < seq]
        if not candidates:
            return None
        entry = max(candidates, key=lambda e: e.seq)
        self.open_entries[name].remove(entry)
        return entry

    # -- event semantics ---------------------------------------------------------------------------------

    def _apply(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event["type"]
        state = event.get("state") or {}
        name = state.get("name")
        index = event.get("index")
        for key in ("input", "output"):
            if key in state:
                self._measure(state[key], f"{name} ({key})")
        if kind == "ExecutionStarted":
            self.history += 2  # ExecutionStarted + ExecutionSucceeded/Failed
            self._measure(event.get("input"), "execution input")
        elif kind == "ExecutionSucceeded":
            self._measure(event.get("output"), "execution output")
        elif kind in ("MapIterationStarted", "MapIterationSucceeded", "MapIterationFailed"):
            self.history += 1
            self._map_iteration(event)
        if name is None or name not in self.states:
            return
        lane = self.clock.lane_of(name, index)
        info = self.states[name]
        # Virtual seconds on the state's lane: when it was entered (before its own wait), or when it
        # retried, exited or failed (after its wait, retry interval or branches).
        event["at"] = self.clock.time(lane)
        if kind == "StateEntered":
            self.transitions += 1
            self.history += 2 + (2 if info.type in ("Parallel", "Map") else 0)
            self.clock.entries[(name, index)] = event["at"]
            if info.type == "Wait":
                self.clock.advance(lane, name, self.clock.wait_seconds(event.get("wait"), lane))
            elif info.type in ("Parallel", "Map"):
                self.clock.open_container(lane, name)
            elif info.type == "Task":
                self.attempts[(name, index)] = 1
                self._open_entry(event, name, index, lane, 1)
        elif kind == "StateRetried":
            self.transitions += 1
            retry = event.get("retry") or {}
            self.clock.advance(
                lane, name, retry_interval(retry.get("retrier") or {}, int(retry.get("attempt", 1)))
            )
            if info.type in ("Parallel", "Map"):
                self.clock.open_container(lane, name)
            elif info.type == "Task":
                attempt = self.attempts.get((name, index), 1) + 1
                self.attempts[(name, index)] = attempt
                self._open_entry(event, name, index, lane, attempt)
        elif kind in ("StateExited", "StateFailed"):
            if info.type in ("Parallel", "Map"):
                self.clock.close_container(lane, name)
            seq = event["seq"]
            remaining = [e for e in self.open_entries.get(name, []) if not (e.index == index and e.seq < seq)]
            self.open_entries[name] = remaining
        if kind != "StateEntered":
            event["at"] = self.clock.time(lane)
        if self.transitions > self.max_transitions:
            raise RunawayExecutionError(
                f"more than {self.max_transitions} state transitions: an endless loop?"
                + self._failure_context()
            )
        self._check_deadline()

    def _open_entry(
        self, event: dict[str, Any], name: str, index: int | None, lane: Lane, attempt: int
    ) -> None:
        entry = _Entry(event["seq"], name, index, lane, (event.get("state") or {}).get("input"), attempt)
        self.open_entries.setdefault(name, []).append(entry)

    def _map_iteration(self, event: dict[str, Any]) -> None:
        info = self.states.get(str((event.get("parentState") or {}).get("name")))
        if info is None or not self.clock._is_outermost_map(info):
            return
        parent = info.name
        lane = self.clock.lane_of(parent, None)
        if event["type"] == "MapIterationStarted":
            self.clock.time((*lane, (parent, event["index"])))
        else:
            self.clock.release_slot(lane, parent, event["index"])

    def _check_deadline(self) -> None:
        limit = self.execution_timeout
        if limit is None or self.clock.max_time() < limit:
            return
        # AWS stops the execution when TimeoutSeconds have passed; what ran after that point did not happen.
        for lane in self.clock.lanes:
            self.clock.lanes[lane] = min(self.clock.lanes[lane], float(limit))
        self.events.append({"seq": None, "type": "ExecutionTimeout"})
        raise _StopRunError("TIMED_OUT", "States.Timeout", f"execution exceeded TimeoutSeconds={limit}")

    def _measure(self, value: Any, where: str) -> None:
        size = _json_size(value)
        if size > self.max_payload:
            self.max_payload, self.max_payload_at = size, where


def _constant(value: Any) -> Any:
    if isinstance(value, AwsError):
        raise value
    return copy.deepcopy(value)
