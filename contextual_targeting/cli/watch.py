"""`watch`: follow a training run and the post-processing and destination runs (Customer Profiles, Pinpoint)
it leads to, to their end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contextual_targeting.cli.executions import (
    ExecutionView,
    describe,
    loads,
    recent_executions,
    source_key,
)
from contextual_targeting.cli.segments import read_manifest
from contextual_targeting.contracts.events import BATCH_SEGMENT_JOB_STATE_CHANGE

DEFAULT_INTERVAL = 30.0
# How long after the run (or the previous stage) ended a follow-up execution may take to appear: EventBridge
# delivers within seconds, so minutes mean the rule or the stage is missing.
FOLLOW_TIMEOUT = timedelta(minutes=5)
ACTIVE = "ACTIVE"


@dataclass(kw_only=True)
class Machines:
    """The state machines to follow; absent ones (older stacks, no Pinpoint) are skipped."""

    training: str
    postprocessing: str | None = None
    pinpoint_prepare: str | None = None
    pinpoint_import: str | None = None
    customer_profiles: str | None = None


@dataclass(kw_only=True)
class WatchState:
    """Everything known about the run so far."""

    training: ExecutionView
    postprocessing: dict[str, ExecutionView] = field(default_factory=dict)
    """By batch segment job ARN."""
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By batch segment job ARN."""
    prepares: dict[str, ExecutionView] = field(default_factory=dict)
    """By segment name."""
    imports: dict[str, ExecutionView] = field(default_factory=dict)
    """By segment name."""
    uploads: dict[str, ExecutionView] = field(default_factory=dict)
    """Customer Profiles upload runs, by segment name."""
    waiting_for: list[str] = field(default_factory=list)
    done: bool = False
    failure: str | None = None

    def views(self) -> list[tuple[str, ExecutionView]]:
        """Every execution followed, labelled, in pipeline order."""
        labelled = [("Training", self.training)]
        labelled += [("Post-processing", v) for v in self.postprocessing.values()]
        labelled += [(f"Pinpoint prepare {name}", v) for name, v in self.prepares.items()]
        labelled += [(f"Pinpoint import {name}", v) for name, v in self.imports.items()]
        labelled += [(f"Customer Profiles {name}", v) for name, v in self.uploads.items()]
        return labelled


def active_jobs(training: ExecutionView) -> dict[str, dict[str, Any]]:
    """Batch segment jobs the run announced ACTIVE (each one starts a post-processing run), by job ARN."""
    jobs: dict[str, dict[str, Any]] = {}
    for event in training.events:
        detail = event["Detail"]
        if event["DetailType"] == BATCH_SEGMENT_JOB_STATE_CHANGE and detail.get("Status") == ACTIVE:
            jobs[str(detail.get("JobArn") or detail.get("Arn"))] = detail
    return jobs


class Watcher:
    """Polls the executions; `tick` is one look, `run` loops with an injected sleep and clock."""

    def __init__(
        self,
        sfn: Any,
        s3: Any,
        machines: Machines,
        training_arn: str,
        *,
        now: Callable[[], datetime],
        follow_timeout: timedelta = FOLLOW_TIMEOUT,
    ) -> None:
        self.sfn = sfn
        self.s3 = s3
        self.machines = machines
        self.training_arn = training_arn
        self.now = now
        self.follow_timeout = follow_timeout
        # Finished executions never change: describe them once.
        self._finished: dict[str, ExecutionView] = {}
        self._inputs: dict[str, dict[str, Any]] = {}

    def run(
        self,
        *,
        interval: float,
        sleep: Callable[[float], None],
        on_update: Callable[[WatchState], None],
    ) -> WatchState:
        """Look, report, sleep, until everything the run led to has finished (or failed)."""
        while True:
            state = self.tick()
            on_update(state)
            if state.done:
                return state
            sleep(interval)

    def view(self, arn: str) -> ExecutionView:
        """The execution, described again unless it had already finished."""
        if arn in self._finished:
            return self._finished[arn]
        view = describe(self.sfn, arn, now=self.now())
        if view.finished:
            self._finished[arn] = view
        return view

    def tick(self) -> WatchState:
        """One look at the training run and whatever it led to."""
        state = WatchState(training=self.view(self.training_arn))
        training = state.training
        if not training.finished:
            return state
        if training.status != "SUCCEEDED":
            state.done, state.failure = (
                True,
                f"training run {training.name} {training.status}: {training.reason()}",
            )
            return state
        if self.machines.postprocessing is None:
            state.done = True
            return state
        assert training.stopped is not None
        jobs = active_jobs(training)
        self._follow_postprocessing(state, jobs, training.stopped)
        if state.failure or state.waiting_for:
            state.done = state.failure is not None or self._gave_up(state, training.stopped)
            return state
        self._follow_pinpoint(state)
        self._follow_customer_profiles(state)
        state.done = not state.waiting_for or self._gave_up(state, self._last_stop(state))
        return state

    def _gave_up(self, state: WatchState, since: datetime) -> bool:
        """Stop waiting for follow-up executions that never started; that counts as a failure."""
        if self.now() - since < self.follow_timeout:
            return False
        if state.failure is None:
            state.failure = "no run started for: " + ", ".join(state.waiting_for)
        return True

    def _candidates(self, machine: str, since: datetime) -> list[tuple[str, dict[str, Any]]]:
        """(ARN, input) of executions of `machine` started since `since`; inputs are cached."""
        found = []
        for execution in recent_executions(self.sfn, machine, since - timedelta(minutes=1)):
            arn = str(execution["executionArn"])
            if arn not in self._inputs:
                described = self.sfn.describe_execution(executionArn=arn)
                self._inputs[arn] = loads(described.get("input"))
            found.append((arn, self._inputs[arn]))
        return found

    def _follow_postprocessing(
        self, state: WatchState, jobs: dict[str, dict[str, Any]], since: datetime
    ) -> None:
        """One post-processing run per ACTIVE job: its input is the job's state-change event."""
        assert self.machines.postprocessing is not None
        found: dict[str, str] = {}
        for arn, execution_input in self._candidates(self.machines.postprocessing, state.training.started):
            detail = execution_input.get("detail", {})
            job = str(detail.get("JobArn") or detail.get("Arn"))
            if job in jobs and job not in found:
                found[job] = arn  # newest first: a re-run wins over the first attempt
        for job, detail in jobs.items():
            if job not in found:
                state.waiting_for.append(f"post-processing of {detail.get('JobName', job)}")
                continue
            view = self.view(found[job])
            state.postprocessing[job] = view
            if not view.finished:
                state.waiting_for.append(f"post-processing of {detail.get('JobName', job)}")
            elif view.status != "SUCCEEDED":
                state.failure = f"post-processing run {view.name} {view.status}: {view.reason()}"
            else:
                manifest = _manifest_location(view)
                if manifest:
                    state.manifests[job] = read_manifest(self.s3, *manifest)

    def _follow_customer_profiles(self, state: WatchState) -> None:
        """Each ready segment: one upload run, started by its Segment Ready event."""
        machine = self.machines.customer_profiles
        if machine is None or not state.postprocessing:
            return
        since = min(v.started for v in state.postprocessing.values())
        runs: dict[str, str] = {}
        for arn, execution_input in self._candidates(machine, since):
            name = execution_input.get("detail", {}).get("SegmentName")
            if name and name not in runs:
                runs[name] = arn  # newest first: a replayed event's run wins
        for name in _ready_segments(state):
            if name not in runs:
                state.waiting_for.append(f"Customer Profiles upload of {name}")
                continue
            upload = state.uploads[name] = self.view(runs[name])
            if not upload.finished:
                state.waiting_for.append(f"Customer Profiles upload of {name}")
            elif upload.status != "SUCCEEDED":
                state.failure = (
                    f"Customer Profiles upload run {upload.name} {upload.status}: {upload.reason()}"
                )

    def _follow_pinpoint(self, state: WatchState) -> None:
        """Each ready segment: a prepare run (Segment Ready event in), then an import run for its file."""
        prepare_machine, import_machine = self.machines.pinpoint_prepare, self.machines.pinpoint_import
        if prepare_machine is None or not state.postprocessing:
            return
        since = min(v.started for v in state.postprocessing.values())
        ready = _ready_segments(state)
        prepares: dict[str, str] = {}
        for arn, execution_input in self._candidates(prepare_machine, since):
            name = execution_input.get("detail", {}).get("SegmentName")
            if name in ready and name not in prepares:
                prepares[name] = arn
        import_candidates = self._candidates(import_machine, since) if import_machine else []
        for name in ready:
            if name not in prepares:
                state.waiting_for.append(f"Pinpoint prepare of {name}")
                continue
            prepare = state.prepares[name] = self.view(prepares[name])
            if not prepare.finished:
                state.waiting_for.append(f"Pinpoint prepare of {name}")
                continue
            if prepare.status != "SUCCEEDED":
                state.failure = f"Pinpoint prepare run {prepare.name} {prepare.status}: {prepare.reason()}"
                continue
            key = prepare.output.get("Key")
            if not key or import_machine is None:
                continue  # no user had an endpoint: nothing to import
            match = next((arn for arn, i in import_candidates if source_key(i) == key), None)
            if match is None:
                state.waiting_for.append(f"Pinpoint import of {name}")
                continue
            imported = state.imports[name] = self.view(match)
            if not imported.finished:
                state.waiting_for.append(f"Pinpoint import of {name}")
            elif imported.status != "SUCCEEDED":
                state.failure = f"Pinpoint import run {imported.name} {imported.status}: {imported.reason()}"

    def _last_stop(self, state: WatchState) -> datetime:
        """When the latest finished execution ended: follow-ups are expected soon after it."""
        stops = [v.stopped for _, v in state.views() if v.stopped is not None]
        return max(stops)


def _ready_segments(state: WatchState) -> dict[str, dict[str, Any]]:
    """The ready segments of every manifest read so far, by segment name."""
    return {
        s["SegmentName"]: s
        for m in state.manifests.values()
        for s in m.get("Segments", [])
        if s.get("Status") == "READY" and s.get("SegmentName")
    }


def _manifest_location(view: ExecutionView) -> tuple[str, str] | None:
    """(bucket, key) of the job's manifest, from the post-processing output."""
    uri = str(view.output.get("Result", {}).get("ManifestUri", ""))
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key
    return None
