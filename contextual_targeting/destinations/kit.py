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
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.loops import (
    WAY_ON,
    Branch,
    ChoiceExit,
    Step,
    chain,
    close_choice,
    count_and_wait,
    poll_job,
    until_or_give_up,
)
from contextual_targeting.common.workflow_kit import add_sdk_retry

__all__ = [
    "WAY_ON",
    "Branch",
    "ChoiceExit",
    "Reports",
    "ServiceApi",
    "Step",
    "chain",
    "close_choice",
    "count_and_wait",
    "merge_defaults",
    "poll_job",
    "read_segment_ready",
    "until_or_give_up",
]

# `Segment Ready` detail fields that are numbers; the others are strings.
NUMBER_FIELDS = frozenset({"UserCount"})


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
