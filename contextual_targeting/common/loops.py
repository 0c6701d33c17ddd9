"""Workflow shapes every component builds with: steps that chain, bounded loops, polling with backoff.

A workflow reads top-down as a chain of `Step` fragments (`chain`); a step whose way on is one branch of a
Choice ends in a `ChoiceExit`, so it chains like any other. Loops are bounded: `poll_job` for a job polled
along a backoff schedule, `count_and_wait` + `until_or_give_up` for anything else.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
import jsii
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

# In a list of Choice branches: this branch is the fragment's way on, chained to whatever comes next.
WAY_ON = None
Branch = tuple[sfn.Condition, sfn.IChainable | None]


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
