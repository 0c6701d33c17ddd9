"""Scheduled retraining: the stack's EventBridge Scheduler group and role, and the workflow fragment that
keeps one schedule per dataset group in line with the latest training config.

A config with a `schedule` block gets a schedule named after its dataset group in the stack's schedule group;
the schedule starts the training workflow with `{"Source": {"Bucket", "Key"}, "Trigger": "schedule"}` (no
VersionId: the run reads the config's latest version). A config without the block deletes the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry

SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
SCHEDULE_NOT_FOUND = "Scheduler.ResourceNotFoundException"
# Errors the scheduler API model declares for throttling and transient faults.
SCHEDULER_RETRYABLE = ["Scheduler.ThrottlingException", "Scheduler.InternalServerException"]
SCHEDULE_TRIGGER = "schedule"
"""`Trigger` of the input a schedule starts the training workflow with."""


class TrainingSchedules(Construct):
    """The schedule group the training workflow keeps its schedules in, and the role the schedules use."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        group = scheduler.CfnScheduleGroup(self, "Group")
        # Deleting the group deletes its schedules: they would only start a workflow that no longer exists.
        group.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        self.group_name: str = group.ref  # Ref is the generated group name
        self.group_arn: str = group.attr_arn
        # Confused-deputy protection: only EventBridge Scheduler acting for this account's group.
        self.role: iam.IRole = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_PRINCIPAL,
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": group.attr_arn},
                },
            ),
            description="Lets the training schedules start the training workflow, and nothing else",
        )

    def schedules_arn(self) -> str:
        """ARN pattern of the group's schedules (named after dataset groups at run time)."""
        return cdk.Stack.of(self).format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.group_name}/*",
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )


@dataclass(frozen=True, kw_only=True)
class ScheduleTarget:
    """Where the workflow keeps schedules and the role they start it with."""

    group_name: str
    schedules_arn: str
    """IAM resource for the Scheduler calls: the group's schedules."""
    role: iam.IRole
    """Handed to EventBridge Scheduler (iam:PassRole, only to scheduler.amazonaws.com)."""


def sync_schedule(
    scope: Construct, *, target: ScheduleTarget, then: sfn.IChainable, failed: sfn.IChainable
) -> sfn.Choice:
    """Create, update or delete the dataset group's schedule as the plan says, then go on to `then`.

    The plan's `Schedule` (`$.Validation.Plan.Schedule`: Name, Expression, Timezone, Input, Description) is
    what the schedule should be. UpdateSchedule replaces the whole schedule, so the schedule is read first:
    an unchanged one is left alone (a rate schedule keeps its rhythm), a changed one keeps its State (a
    schedule paused with `contextual-targeting schedule --pause` stays paused).
    """
    wanted = sfn.Pass(
        scope,
        "WantedSchedule",
        state_name="Prepare the schedule",
        parameters={
            "Wanted": {
                "Name": sfn.JsonPath.string_at("$.Validation.Plan.Schedule.Name"),
                "ScheduleExpression": sfn.JsonPath.string_at("$.Validation.Plan.Schedule.Expression"),
                "ScheduleExpressionTimezone": sfn.JsonPath.string_at("$.Validation.Plan.Schedule.Timezone"),
                "Description": sfn.JsonPath.string_at("$.Validation.Plan.Schedule.Description"),
                "Target": {
                    "Arn": sfn.JsonPath.state_machine_id,
                    "RoleArn": target.role.role_arn,
                    "Input": sfn.JsonPath.string_at("$.Validation.Plan.Schedule.Input"),
                },
            }
        },
        result_path="$.Schedule",
    )
    look_up = _scheduler_call(
        scope,
        "GetSchedule",
        "Look up the schedule",
        "getSchedule",
        target,
        {"Name": sfn.JsonPath.string_at("$.Schedule.Wanted.Name"), "GroupName": target.group_name},
        result_path="$.Schedule.Current",
    )
    create = _scheduler_call(
        scope, "CreateSchedule", "Create the schedule", "createSchedule", target, _request(target, "ENABLED")
    )
    update = _scheduler_call(
        scope,
        "UpdateSchedule",
        "Update the schedule",
        "updateSchedule",
        target,
        _request(target, sfn.JsonPath.string_at("$.Schedule.Current.State")),
    )
    delete = _scheduler_call(
        scope,
        "DeleteSchedule",
        "Delete the schedule, if any",
        "deleteSchedule",
        target,
        {
            "Name": sfn.JsonPath.string_at("$.Validation.Plan.Run.DatasetGroupName"),
            "GroupName": target.group_name,
        },
    )
    look_up.add_catch(create, errors=[SCHEDULE_NOT_FOUND], result_path=sfn.JsonPath.DISCARD)
    delete.add_catch(then, errors=[SCHEDULE_NOT_FOUND], result_path=sfn.JsonPath.DISCARD)
    for task in (look_up, create, update, delete):
        task.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.Failure")
    create.next(then)
    update.next(then)
    delete.next(then)
    current = "$.Schedule.Current"
    # Rules are tried in order: the comparisons only ever see members that are there.
    up_to_date = (
        sfn.Choice(scope, "ScheduleUpToDate", state_name="Is the schedule up to date?")
        .when(
            sfn.Condition.or_(
                sfn.Condition.not_(sfn.Condition.is_present(f"{current}.ScheduleExpressionTimezone")),
                sfn.Condition.not_(sfn.Condition.is_present(f"{current}.Target.Input")),
            ),
            update,
        )
        .when(_same_schedule(), then)
        .otherwise(update)
    )
    look_up.next(up_to_date)
    return (
        sfn.Choice(scope, "WantsSchedule", state_name="Does the config ask for a schedule?")
        .when(sfn.Condition.is_present("$.Validation.Plan.Schedule"), wanted.next(look_up))
        .otherwise(delete)
    )


def _scheduler_call(
    scope: Construct,
    construct_id: str,
    state_name: str,
    action: str,
    target: ScheduleTarget,
    parameters: dict[str, object],
    *,
    result_path: str = sfn.JsonPath.DISCARD,
) -> tasks.CallAwsService:
    """One Scheduler SDK call on the group's schedules; create and update pass the role to Scheduler."""
    pass_role = [
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[target.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_PRINCIPAL}},
        )
    ]
    task = tasks.CallAwsService(
        scope,
        construct_id,
        state_name=state_name,
        service="scheduler",
        action=action,
        parameters=parameters,
        iam_resources=[target.schedules_arn],
        additional_iam_statements=pass_role if action in ("createSchedule", "updateSchedule") else None,
        result_path=result_path,
    )
    add_sdk_retry(task, SCHEDULER_RETRYABLE)
    return task


def _request(target: ScheduleTarget, state: str) -> dict[str, object]:
    """CreateSchedule/UpdateSchedule request: the whole schedule (UpdateSchedule replaces every field)."""
    wanted = "$.Schedule.Wanted"
    return {
        "Name": sfn.JsonPath.string_at(f"{wanted}.Name"),
        "GroupName": target.group_name,
        "ScheduleExpression": sfn.JsonPath.string_at(f"{wanted}.ScheduleExpression"),
        "ScheduleExpressionTimezone": sfn.JsonPath.string_at(f"{wanted}.ScheduleExpressionTimezone"),
        "Description": sfn.JsonPath.string_at(f"{wanted}.Description"),
        "State": state,
        # Exactly on time: a window would only move the run by minutes, not save anything.
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": sfn.JsonPath.string_at(f"{wanted}.Target.Arn"),
            "RoleArn": sfn.JsonPath.string_at(f"{wanted}.Target.RoleArn"),
            "Input": sfn.JsonPath.string_at(f"{wanted}.Target.Input"),
        },
    }


def _same_schedule() -> sfn.Condition:
    """The schedule found starts this workflow, with the same input, role, expression and time zone."""
    current, wanted = "$.Schedule.Current", "$.Schedule.Wanted"
    return sfn.Condition.and_(
        *(
            sfn.Condition.string_equals_json_path(f"{current}.{member}", f"{wanted}.{member}")
            for member in (
                "ScheduleExpression",
                "ScheduleExpressionTimezone",
                "Target.Arn",
                "Target.RoleArn",
                "Target.Input",
            )
        ),
    )
