"""Create a Personalize resource, then poll `Describe*` until it is ACTIVE or failed: one fragment for all.

Personalize has no `.sync` integration and emits no events of its own, so every long-running resource goes
through the same states: create (or reuse), describe, choose, wait with backoff, describe again; with a
state-change event on the pipeline bus at each transition and a bound on the total wait.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry, put_event
from contextual_targeting.contracts.events import personalize_state_change

PERSONALIZE = "personalize"
PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"
# Personalize declares no throttling error: throttled calls arrive as its generic error.
THROTTLED = "Personalize.PersonalizeException"
LIMIT_EXCEEDED = "Personalize.LimitExceededException"
IN_USE = "Personalize.ResourceInUseException"
ALREADY_EXISTS = "Personalize.ResourceAlreadyExistsException"
CREATE_FAILED = "CREATE FAILED"
# A dataset group, dataset or solution found being deleted never becomes ACTIVE (statuses in the
# DescribeDatasetGroup/DescribeDataset/DescribeSolution references, e.g.
# https://docs.aws.amazon.com/personalize/latest/dg/API_Solution.html).
DELETING = ("DELETE PENDING", "DELETE IN_PROGRESS")


@dataclass(frozen=True, kw_only=True)
class PollSchedule:
    """Waits between two Describe calls: `first` seconds, doubling up to `cap`, `limit` seconds in total."""

    first: int
    """First wait in seconds (the first Describe runs right after the create, without waiting)."""
    cap: int
    """Longest single wait in seconds."""
    limit: int
    """Total seconds of waiting after which the resource counts as stuck and the run fails."""

    def waits(self) -> list[int]:
        """The distinct waits in order; the last one repeats until `limit`."""
        waits = [self.first]
        while waits[-1] < self.cap:
            waits.append(min(waits[-1] * 2, self.cap))
        return waits


# Dataset groups, datasets and solutions take seconds to a minute.
QUICK = PollSchedule(first=5, cap=60, limit=30 * 60)
# Imports (minutes), training (30-60 min, hours for big data), segment jobs (~20 min). Polls land at
# 40 s, 2, 4:40, 10, 20, 30 ... min: a 2-minute import is seen at 2 minutes, a 60-minute training costs
# 9 polls, and nothing is seen more than 10 minutes late.
LONG = PollSchedule(first=40, cap=600, limit=6 * 3600)
TRAINING = PollSchedule(first=40, cap=600, limit=24 * 3600)


@dataclass(frozen=True, kw_only=True)
class PersonalizeResource:
    """How one kind of Personalize resource is named in the API, in IAM, in state names and in events."""

    label: str
    """Lower-case words for state names: `Create <label>`, `Wait for <label>`."""
    api_name: str
    """`DatasetGroup`: `createDatasetGroup`, `describeDatasetGroup`, `DatasetGroupArn`, `$.DatasetGroup`."""
    event_name: str
    """`Dataset Group`: events are `Personalize Dataset Group State Change`."""
    reusable: bool
    """Long-lived and named by the config: an existing one is reused (its ARN is deterministic)."""
    failed_statuses: tuple[str, ...] = (CREATE_FAILED,)

    @property
    def arn_key(self) -> str:
        """The member that carries the ARN in requests and create responses."""
        return f"{self.api_name}Arn"


DATASET_GROUP = PersonalizeResource(
    label="dataset group", api_name="DatasetGroup", event_name="Dataset Group", reusable=True
)
DATASET = PersonalizeResource(label="dataset", api_name="Dataset", event_name="Dataset", reusable=True)
DATASET_IMPORT_JOB = PersonalizeResource(
    label="dataset import job", api_name="DatasetImportJob", event_name="Dataset Import Job", reusable=False
)
SOLUTION = PersonalizeResource(label="solution", api_name="Solution", event_name="Solution", reusable=True)
SOLUTION_VERSION = PersonalizeResource(
    label="solution version",
    api_name="SolutionVersion",
    event_name="Solution Version",
    reusable=False,
    failed_statuses=(CREATE_FAILED, "CREATE STOPPING", "CREATE STOPPED"),
)
BATCH_SEGMENT_JOB = PersonalizeResource(
    label="batch segment job", api_name="BatchSegmentJob", event_name="Batch Segment Job", reusable=False
)


class CallWithPlannedRequest(tasks.CallAwsService):
    """An SDK task whose request is the (InputPath-selected) state input itself: no `Parameters` field.

    The plan holds each create request whole, with optional members (`Domain`, `FilterArn`) only when the
    config sets them; ASL then passes the selected input as the request. CDK always renders `Parameters`,
    and an empty `Parameters` object would replace the request with `{}`, so this task leaves it out.
    """

    def to_state_json(self, query_language: sfn.QueryLanguage | None = None) -> Mapping[Any, Any]:
        """The Task state without its `Parameters`."""
        state = dict(super().to_state_json(query_language))
        state.pop("Parameters", None)
        return state


def retry_personalize(task: sfn.TaskStateBase, *, creates: bool = False, in_use: bool = False) -> None:
    """Retry throttling on every call; on creates also too-many-jobs, and `in use` where a parent is busy."""
    add_sdk_retry(task, [THROTTLED])
    if creates:
        # Too many jobs in flight in the account: they finish in minutes to hours, so back off long.
        task.add_retry(
            errors=[LIMIT_EXCEEDED],
            interval=cdk.Duration.minutes(1),
            backoff_rate=2,
            max_attempts=8,
            max_delay=cdk.Duration.minutes(15),
            jitter_strategy=sfn.JitterType.FULL,
        )
    if in_use:
        task.add_retry(
            errors=[IN_USE],
            interval=cdk.Duration.seconds(15),
            backoff_rate=2,
            max_attempts=6,
            max_delay=cdk.Duration.minutes(5),
        )


@dataclass(frozen=True, kw_only=True)
class CreateAndWaitProps:
    """One use of the fragment: which resource, where its plan node is, where to report."""

    resource: PersonalizeResource
    node: str
    """JSONPath of the resource's plan node: `{Name, Arn?, Request, Poll}`; the fragment adds `Created`,
    `Latest` (the last Describe) and `Error` to it."""
    bus: events.IEventBus
    schedule: PollSchedule
    create_resources: Sequence[str]
    """IAM resources of the create call (the resource and the parents it references)."""
    describe_resources: Sequence[str]
    pass_role: iam.IRole | None = None
    """The Personalize service role, when the create call hands it to Personalize."""
    retry_in_use: bool = False
    extra_detail: Mapping[str, Any] = field(default_factory=dict)
    """More event detail keys (JSONPath tokens allowed), e.g. a batch segment job's output location."""
    request_path: str | None = None
    """Where the create request is, when not at `<node>.Request`."""


class CreateAndWait(sfn.StateMachineFragment):
    """Create (or reuse) a Personalize resource and wait for ACTIVE, with events and a bounded backoff.

    create -> announce creation -> check -> active? announce ready | failed? announce and fail
                                     ^------ wait along the schedule <- not yet (until the bound: give up)
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: CreateAndWaitProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self._node = props.node
        self._label = props.resource.label
        # Reusable resources have deterministic ARNs in the plan; fresh ones take the create response's ARN.
        self._arn_path = f"{self._node}.Arn" if props.resource.reusable else f"{self._node}.Created.Arn"

        create = self._create()
        describe = self._describe()
        created = self._event("Created", f"Announce {self._label} creation", Status="CREATE PENDING")
        active = self._event(
            "Active",
            f"Announce {self._label} ready",
            Status=sfn.JsonPath.string_at(f"{self._node}.Latest.Status"),
        )
        request_failure = sfn.Fail(
            self,
            "RequestFailed",
            state_name=f"Fail on {self._label} request",
            error=f"{props.resource.api_name}RequestFailed",
            cause_path=f"{self._node}.Error.Cause",
        )
        # Errors the retries did not absorb (bad input, missing parent, ...) fail the run naming the step.
        if props.resource.reusable:
            create.add_catch(describe, errors=[ALREADY_EXISTS], result_path=sfn.JsonPath.DISCARD)
        create.add_catch(request_failure, errors=[sfn.Errors.ALL], result_path=f"{self._node}.Error")
        describe.add_catch(request_failure, errors=[sfn.Errors.ALL], result_path=f"{self._node}.Error")

        create.next(created).next(describe).next(self._decide(active, self._next_check(describe)))
        self._start: sfn.State = create
        self._ends: list[sfn.INextable] = [active]

    def _create(self) -> CallWithPlannedRequest:
        """The create call, its request taken whole from the plan."""
        props, resource, node = self._props, self._props.resource, self._node
        create = CallWithPlannedRequest(
            self,
            "Create",
            state_name=f"Create {self._label}",
            service=PERSONALIZE,
            action=f"create{resource.api_name}",
            iam_resources=list(props.create_resources),
            additional_iam_statements=_pass_role(props.pass_role),
            # The plan holds the whole request (optional members included only when configured).
            input_path=props.request_path or f"{node}.Request",
            result_selector=None
            if resource.reusable
            else {"Arn": sfn.JsonPath.string_at(f"$.{resource.arn_key}")},
            result_path=sfn.JsonPath.DISCARD if resource.reusable else f"{node}.Created",
        )
        retry_personalize(create, creates=True, in_use=props.retry_in_use)
        return create

    def _describe(self) -> tasks.CallAwsService:
        """The Describe call: its status and whole answer go to `<node>.Latest`."""
        resource = self._props.resource
        describe = tasks.CallAwsService(
            self,
            "Describe",
            state_name=f"Check {self._label}",
            service=PERSONALIZE,
            action=f"describe{resource.api_name}",
            iam_resources=list(self._props.describe_resources),
            parameters={resource.arn_key: sfn.JsonPath.string_at(self._arn_path)},
            result_selector={
                "Status": sfn.JsonPath.string_at(f"$.{resource.api_name}.Status"),
                "Resource": sfn.JsonPath.object_at(f"$.{resource.api_name}"),
            },
            result_path=f"{self._node}.Latest",
        )
        retry_personalize(describe)
        return describe

    def _event(self, construct_id: str, state_name: str, **more: Any) -> tasks.EventBridgePutEvents:
        """The resource's state-change event on the pipeline bus."""
        detail = {
            "Arn": sfn.JsonPath.string_at(self._arn_path),
            "DatasetGroupName": sfn.JsonPath.string_at("$.Run.DatasetGroupName"),
            "DatasetGroupArn": sfn.JsonPath.string_at("$.Run.DatasetGroupArn"),
            **self._props.extra_detail,
        }
        return put_event(
            self,
            construct_id,
            bus=self._props.bus,
            detail_type=personalize_state_change(self._props.resource.event_name),
            detail={**detail, **more},
            state_name=state_name,
        )

    def _decide(self, active: sfn.IChainable, check_again: sfn.IChainable) -> sfn.Choice:
        """ACTIVE goes on; failed (or, reused, being deleted) fails the run; else wait and check again."""
        props, resource, node, label = self._props, self._props.resource, self._node, self._label

        def status_in(statuses: Sequence[str]) -> sfn.Condition:
            return sfn.Condition.or_(
                *(sfn.Condition.string_equals(f"{node}.Latest.Status", s) for s in statuses)
            )

        # `FailureReason` where Describe gives one: datasets and solutions have none, and a stopped training
        # has none either (a missing path would end the run with an uncatchable States.Runtime error).
        why = sfn.Pass(
            self,
            "Why",
            state_name=f"Read {label} failure reason",
            parameters={
                # Describe's answer over a default reason: Personalize's own reason wins when it gives one.
                "Reason": sfn.JsonPath.json_merge(
                    sfn.JsonPath.string_to_json(
                        json.dumps({"FailureReason": f"Personalize reports no reason for a failed {label}"})
                    ),
                    sfn.JsonPath.object_at(f"{node}.Latest.Resource"),
                )
            },
            result_path=f"{node}.Why",
        )
        failed = self._failed()
        decide = (
            sfn.Choice(self, "Decide", state_name=f"Is the {label} active?")
            .when(sfn.Condition.string_equals(f"{node}.Latest.Status", "ACTIVE"), active)
            .when(status_in(resource.failed_statuses), why.next(failed))
        )
        if resource.reusable:
            # Found being deleted: it will never be ACTIVE, so say so now rather than after the bound.
            deleting = sfn.Pass(
                self,
                "Deleting",
                state_name=f"Note {label} deletion",
                parameters={
                    "Reason": {
                        "FailureReason": "Personalize is deleting it: wait until it is gone, "
                        "then upload the config again"
                    }
                },
                result_path=f"{node}.Why",
            )
            decide.when(status_in(DELETING), deleting.next(failed))
        timed_out = sfn.Fail(
            self,
            "TimedOut",
            state_name=f"Give up on {label}",
            error=f"{resource.api_name}TimedOut",
            cause=f"The {label} was not ACTIVE after {props.schedule.limit // 60} minutes of waiting",
        )
        return decide.when(
            sfn.Condition.number_greater_than_equals(f"{node}.Poll.Elapsed", props.schedule.limit),
            timed_out,
        ).otherwise(check_again)

    def _failed(self) -> sfn.Chain:
        """Announce the failure with its reason (`<node>.Why`), then fail the run naming the resource."""
        node, label = self._node, self._label
        reason = sfn.JsonPath.string_at(f"{node}.Why.Reason.FailureReason")
        failed = self._event(
            "Failed",
            f"Announce {label} failure",
            Status=sfn.JsonPath.string_at(f"{node}.Latest.Status"),
            FailureReason=reason,
        )
        explain = sfn.Pass(
            self,
            "Explain",
            state_name=f"Explain {label} failure",
            parameters={
                "Cause": sfn.JsonPath.format(
                    f"{label.capitalize()} {{}} is {{}}: {{}}",
                    sfn.JsonPath.string_at(f"{node}.Name"),
                    sfn.JsonPath.string_at(f"{node}.Latest.Status"),
                    reason,
                )
            },
            result_path=f"{node}.Error",
        )
        failure = sfn.Fail(
            self,
            "Fail",
            state_name=f"Fail on {label}",
            error=f"{self._props.resource.api_name}Failed",
            cause_path=f"{node}.Error.Cause",
        )
        return failed.next(explain).next(failure)

    def _next_check(self, describe: sfn.IChainable) -> sfn.Chain:
        """Wait the schedule's next interval, then check again."""
        node, label = self._node, self._label
        # The wait table and an index into it; the index stops at the last entry, which then repeats (the
        # cap). Written as raw intrinsics: CDK's JsonPath.array() quotes numbers as strings and
        # JsonPath.math_add() takes no token from array_get_item(), and SecondsPath needs a number.
        waits = self._props.schedule.waits()
        steps = [1] * (len(waits) - 1) + [0]
        poll = f"{node}.Poll"
        wait_now = f"States.ArrayGetItem(States.Array({', '.join(map(str, waits))}), {poll}.Index)"
        step = f"States.ArrayGetItem(States.Array({', '.join(map(str, steps))}), {poll}.Index)"
        schedule_next = sfn.Pass(
            self,
            "Schedule",
            state_name=f"Schedule next {label} check",
            parameters={
                "Wait.$": wait_now,
                "Index.$": f"States.MathAdd({poll}.Index, {step})",
                "Elapsed.$": f"States.MathAdd({poll}.Elapsed, {wait_now})",
            },
            result_path=poll,
        )
        wait = sfn.Wait(
            self,
            "Wait",
            state_name=f"Wait for {label}",
            time=sfn.WaitTime.seconds_path(f"{node}.Poll.Wait"),
        )
        return schedule_next.next(wait).next(describe)

    @property
    def start_state(self) -> sfn.State:
        """The create call."""
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        """The ACTIVE event; every other way out fails the run."""
        return self._ends


def _pass_role(role: iam.IRole | None) -> list[iam.PolicyStatement] | None:
    """`iam:PassRole` for the Personalize role, only towards Personalize."""
    if role is None:
        return None
    return [
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": PERSONALIZE_PRINCIPAL}},
        )
    ]


def personalize_arn(scope: Construct, resource_type: str, name: str = "*") -> str:
    """`arn:<partition>:personalize:<region>:<account>:<type>/<name>` of this stack."""
    return cdk.Stack.of(scope).format_arn(
        service=PERSONALIZE,
        resource=resource_type,
        resource_name=name,
        arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
    )
