"""The destination kit: the states every destination workflow is made of, written once.

A destination workflow reads a `Segment Ready` event (`read_segment_ready`), calls its service
(`ServiceApi.call`: SDK name, IAM prefix, retryable errors), waits (`poll_job` for the service's jobs,
`count_and_wait` for anything else: bounded loops that `until_or_give_up` decides), fills what a service
leaves out of its answers (`merge_defaults`), and ends every path in one `Report` (`Reports`) whose tail,
`common.workflow_kit.report_outcome`, turns it into an event and an email. Its steps are `Step` fragments
chained with `chain`; a step whose way on is one branch of a Choice ends in a `ChoiceExit`, so it chains
like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry

# `Segment Ready` detail fields that are numbers; the others are strings.
NUMBER_FIELDS = frozenset({"UserCount"})

# In a list of Choice branches: this branch is the fragment's way on, chained to whatever comes next.
WAY_ON = None
Branch = tuple[sfn.Condition, sfn.IChainable | None]


@dataclass(frozen=True, kw_only=True)
class ServiceApi:
    """An AWS service as a destination calls it: SDK name, IAM prefix, retried errors, fixed parameters."""

    service: str
    """SDK service name in Step Functions (`customerprofiles`, `pinpoint`, `s3`)."""
    iam_prefix: str
    """IAM action prefix (`profile`, `mobiletargeting`, `s3`): the SDK name and the prefix can differ."""
    retryable: Sequence[str]
    """Throttling and transient errors, named as the service's API model declares them (none: no retry)."""
    fixed_parameters: Mapping[str, Any] = field(default_factory=dict)
    """Parameters every call passes first (the domain, the project)."""

    def scoped(self, **parameters: Any) -> ServiceApi:
        """The same service with `parameters` passed on every call."""
        return replace(self, fixed_parameters={**self.fixed_parameters, **parameters})

    def call(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_name: str,
        action: str,
        resources: Sequence[str],
        parameters: Mapping[str, Any],
        result_path: str,
        result_selector: Mapping[str, Any] | None = None,
        iam_action: str | None = None,
        also_allow: Sequence[iam.PolicyStatement] = (),
    ) -> tasks.CallAwsService:
        """Direct SDK call allowed on `resources` only (`iam_action` when the action's own name is not the
        permission it needs, `also_allow` for more), its retryable errors retried with backoff."""
        task = tasks.CallAwsService(
            scope,
            construct_id,
            state_name=state_name,
            service=self.service,
            action=action,
            # This CDK version has no `iam_action_prefix`: name the action in full.
            iam_action=iam_action or f"{self.iam_prefix}:{action[0].upper()}{action[1:]}",
            iam_resources=[*resources],
            additional_iam_statements=[*also_allow] or None,
            parameters={**self.fixed_parameters, **parameters},
            result_selector=dict(result_selector) if result_selector else None,
            result_path=result_path,
        )
        if self.retryable:
            add_sdk_retry(task, self.retryable)
        return task


def read_segment_ready(scope: Construct, *, fields: Sequence[str], **more: Any) -> sfn.Pass:
    """First state of a `Segment Ready` workflow: the event's `fields` under `$.Segment`, then `more`."""
    return sfn.Pass(
        scope,
        "Read segment",
        state_name="Read the ready segment",
        parameters={
            "Segment": {
                name: (sfn.JsonPath.number_at if name in NUMBER_FIELDS else sfn.JsonPath.string_at)(
                    f"$.detail.{name}"
                )
                for name in fields
            },
            **more,
        },
    )


class Step(sfn.StateMachineFragment):
    """A step of a destination workflow: a fragment that sets `_start` (where it begins) and `_ends` (its ways
    on to the next step, none when every way out is a report)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self._start: sfn.State
        self._ends: list[sfn.INextable] = []

    @property
    def start_state(self) -> sfn.State:
        """Where the step begins."""
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        """The ways on to the next step."""
        return self._ends


def chain(first: sfn.IChainable, *steps: sfn.IChainable) -> sfn.Chain:
    """`first`, then each of `steps` after the one before (`first.next(a).next(b)...`)."""
    result = sfn.Chain.start(first)
    for step in steps:
        result = result.next(step)
    return result


def close_choice(
    choice: sfn.Choice,
    branches: Sequence[Branch],
    *,
    otherwise: sfn.IChainable,
    way_on: sfn.IChainable | None = None,
) -> None:
    """Add `branches` to `choice` in their order (`WAY_ON` meaning `way_on`), then `otherwise`."""
    for condition, target in branches:
        chosen = way_on if target is WAY_ON else target
        assert chosen is not None, "a WAY_ON branch needs the state that comes next"
        choice.when(condition, chosen)
    choice.otherwise(otherwise)


@jsii.implements(sfn.INextable)
class ChoiceExit:
    """The way on out of a fragment that ends in a Choice: chaining a state to it closes the Choice.

    Step Functions lists a Choice's branches in the order they were added, and the way on is not always the
    first: the branches wait here until the state that comes next is known. So a step ending in a
    `ChoiceExit` must be followed by another; a Choice left without branches fails at synth.
    """

    def __init__(self, choice: sfn.Choice, branches: Sequence[Branch], *, otherwise: sfn.IChainable) -> None:
        self._choice = choice
        self._branches = branches
        self._otherwise = otherwise

    def next(self, state: sfn.IChainable) -> sfn.Chain:
        """Make `state` the way on and close the Choice."""
        close_choice(self._choice, self._branches, otherwise=self._otherwise, way_on=state)
        return sfn.Chain.sequence(self._choice, state)


def until_or_give_up(
    choice: sfn.Choice,
    *,
    until: Sequence[Branch],
    attempt: str,
    limit: int,
    gave_up: sfn.IChainable,
    again: sfn.IChainable,
) -> list[sfn.INextable]:
    """The decision of a bounded counter-and-wait loop: the first of `until` that holds; `gave_up` once the
    counter at `attempt` reaches `limit`; else `again` (count, wait, check again).

    Returns the loop's way on: a `ChoiceExit` when a branch of `until` is `WAY_ON`, else nothing (every
    branch already leads somewhere).
    """
    branches = [*until, (sfn.Condition.number_greater_than_equals(attempt, limit), gave_up)]
    if any(target is WAY_ON for _, target in until):
        return [ChoiceExit(choice, branches, otherwise=again)]
    close_choice(choice, branches, otherwise=again)
    return []


def count_and_wait(
    scope: Construct,
    counter: str,
    *,
    count: tuple[str, str],
    wait: tuple[str, str],
    every: cdk.Duration,
) -> sfn.Chain:
    """Add one to the counter at `counter` (`$.Slot.Attempt`), then wait `every`: the way back of a bounded
    loop. The counter's parent (`$.Slot`) becomes the count alone; `count` and `wait` are the two states'
    construct ids and names."""
    parent, _, name = counter.rpartition(".")
    counted = sfn.Pass(
        scope,
        count[0],
        state_name=count[1],
        parameters={name: sfn.JsonPath.math_add(sfn.JsonPath.number_at(counter), 1)},
        result_path=parent,
    )
    return counted.next(sfn.Wait(scope, wait[0], state_name=wait[1], time=sfn.WaitTime.duration(every)))


def poll_job(
    scope: Construct,
    noun: str,
    *,
    check: sfn.TaskStateBase,
    schedule: Sequence[int],
    outcomes: Sequence[Branch],
    gave_up: sfn.IChainable,
) -> sfn.Chain:
    """Wait, `check`, back off along `schedule` until one of `outcomes` holds; `gave_up` after the last check.

    The schedule travels in the state (`$.Poll`), so the loop costs four transitions a check whatever its
    length, and a job that never ends is bounded by `sum(schedule)` seconds of waiting. An outcome that is
    `WAY_ON` is the chain's way on.
    """
    start = sfn.Pass(
        scope,
        f"Start polling {noun}",
        state_name=f"Start waiting for the {noun}",
        parameters={"Schedule": list(schedule), "Attempt": 0, "Seconds": schedule[0]},
        result_path="$.Poll",
    )
    wait = sfn.Wait(
        scope,
        f"Wait for {noun}",
        state_name=f"Wait for the {noun}",
        time=sfn.WaitTime.seconds_path("$.Poll.Seconds"),
    )
    next_attempt = sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.Poll.Attempt"), 1)
    back_off = sfn.Pass(
        scope,
        f"Back off {noun}",
        state_name=f"Back off before checking the {noun} again",
        parameters={
            "Schedule": sfn.JsonPath.list_at("$.Poll.Schedule"),
            "Attempt": next_attempt,
            "Seconds": sfn.JsonPath.array_get_item(
                sfn.JsonPath.list_at("$.Poll.Schedule"), cdk.Token.as_number(next_attempt)
            ),
        },
        result_path="$.Poll",
    )
    done = sfn.Choice(scope, f"Is {noun} done", state_name=f"Is the {noun} done?")
    way_on = until_or_give_up(
        done,
        until=outcomes,
        attempt="$.Poll.Attempt",
        limit=len(schedule) - 1,
        gave_up=gave_up,
        again=back_off.next(wait),
    )
    start.next(wait).next(check).next(done)
    return sfn.Chain.custom(start, way_on, done)


def merge_defaults(
    scope: Construct,
    construct_id: str,
    *,
    state_name: str,
    fields: Mapping[str, tuple[str, str]],
    result_path: str,
) -> sfn.Pass:
    """Read a service's answer with the members it leaves out filled in: each field is the object at its
    second path merged over the defaults at its first (`{"Job": ("$.Defaults.Job", "$.Job.Check.Job")}`)."""
    return sfn.Pass(
        scope,
        construct_id,
        state_name=state_name,
        parameters={
            name: sfn.JsonPath.json_merge(sfn.JsonPath.object_at(defaults), sfn.JsonPath.object_at(answer))
            for name, (defaults, answer) in fields.items()
        },
        result_path=result_path,
    )


def caught_error() -> str:
    """`<Error>: <Cause>` of the error a catcher put under `$.Error`."""
    return sfn.JsonPath.format(
        "{}: {}", sfn.JsonPath.string_at("$.Error.Error"), sfn.JsonPath.string_at("$.Error.Cause")
    )


def not_finished(job: str, job_id: str, schedule: Sequence[int], *, may_complete_in: str = "") -> str:
    """Why a poll gave up: "<job> <id> did not finish within <n> seconds[; it may still complete in ...]"."""
    reason = f"{job} {{}} did not finish within {sum(schedule)} seconds"
    if may_complete_in:
        reason += f"; it may still complete in {may_complete_in}"
    return sfn.JsonPath.format(reason, job_id)


class Reports:
    """Builds the states that record an outcome under `$.Report` and go on to the workflow's tail.

    Each report is `base` overlaid with its own fields (keys of `base` keep their place). A failed or rejected
    outcome says why in `FailureReason` and in a `Message` that starts with `not_done`, a `JsonPath.format`
    template whose `{}` are filled from `subject`, e.g. "Segment {} was not imported into Pinpoint: ".
    """

    def __init__(
        self,
        scope: Construct,
        *,
        tail: sfn.IChainable,
        not_done: str,
        subject: Sequence[str],
        base: Mapping[str, Any] | None = None,
    ) -> None:
        self._scope = scope
        self._tail = tail
        self._not_done = not_done
        self._subject = subject
        self._base = dict(base or {})

    def report(self, construct_id: str, state_name: str, fields: Mapping[str, Any]) -> sfn.Chain:
        """Record `fields` (over the base) as the report, then go on to the tail."""
        return sfn.Pass(
            self._scope,
            construct_id,
            state_name=state_name,
            parameters={**self._base, **fields},
            result_path="$.Report",
        ).next(self._tail)

    def not_done(self, reason: str, *, end: str = "") -> str:
        """The message of an outcome that delivered nothing: `not_done`, then `reason`, then `end`.

        A literal reason goes into the template itself, a path is one more argument.
        """
        if cdk.Token.is_unresolved(reason):
            return sfn.JsonPath.format(self._not_done + "{}" + end, *self._subject, reason)
        return sfn.JsonPath.format(self._not_done + reason + end, *self._subject)

    def rejected(
        self, construct_id: str, state_name: str, *, reason: str, fields: Mapping[str, Any] | None = None
    ) -> sfn.Chain:
        """A REJECTED report: the input cannot be delivered, and nothing failed."""
        return self.report(
            construct_id,
            state_name,
            {
                **(fields or {}),
                "Status": "REJECTED",
                "FailureReason": reason,
                "Message": self.not_done(reason, end="."),
            },
        )

    def failed(
        self,
        construct_id: str,
        state_name: str,
        *,
        error: str,
        reason: str,
        fields: Mapping[str, Any] | None = None,
    ) -> sfn.Chain:
        """A FAILED report: the execution fails with `error`; `reason` is the cause."""
        return self.report(
            construct_id,
            state_name,
            {
                **(fields or {}),
                "Status": "FAILED",
                "Error": error,
                "FailureReason": reason,
                "Message": self.not_done(reason),
            },
        )

    def call_failed(
        self, construct_id: str, state_name: str, *, error: str, fields: Mapping[str, Any] | None = None
    ) -> sfn.Chain:
        """The FAILED report of a call whose error a catcher put under `$.Error`."""
        return self.failed(construct_id, state_name, error=error, reason=caught_error(), fields=fields)
