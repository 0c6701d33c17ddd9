"""One training run per dataset group at a time: the fragment that waits for earlier runs of the same group.

A schedule can fire while an upload's run still trains, and a config can be uploaded twice in a minute; two
runs of one dataset group would race for its datasets and solutions. So a run first asks the run-queue
Lambda (`lambda/training/run_queue`) whether an earlier run of its dataset group is still RUNNING. It waits
for it with a bounded backoff (visible as "Wait for the earlier run" in `watch` and the console, and
announced once with a `WAITING` run event), then goes on; past the bound it fails naming the run that held
it. Nothing needs releasing: an execution that ended, however it ended, no longer holds its turn (why this
rather than a lock object: see `lambda/training/run_queue/run_queue.py`).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.loops import poll_job
from contextual_targeting.common.workflow_kit import (
    LAMBDA_THROTTLED,
    add_sdk_retry,
    backoff_schedule,
    put_event,
)
from contextual_targeting.contracts.events import TRAINING_RUN_STATE_CHANGE

DEFAULT_QUEUE_WAIT = cdk.Duration.hours(12)
"""How long a run waits for an earlier run of its dataset group (the demo run takes under 2 hours)."""
BUSY = "DatasetGroupBusy"


def queue_schedule(bound: cdk.Duration) -> list[int]:
    """Waits between two looks: from one minute, doubling to ten, for at least `bound` in total."""
    return backoff_schedule(bound, first=60, cap=600)


def wait_for_earlier_runs(
    scope: Construct,
    *,
    function: lambda_.IFunction,
    bus: events.IEventBus,
    bound: cdk.Duration,
    then: sfn.IChainable,
    failed: sfn.IChainable,
) -> sfn.IChainable:
    """Go on to `then` once no earlier run of the dataset group is running; `failed` past `bound`."""
    look = _look(scope, "LookForEarlierRun", "Look for an earlier run of the dataset group", function, failed)
    look_again = _look(scope, "LookAgainForEarlierRun", "Look again for the earlier run", function, failed)
    proceed = sfn.Condition.boolean_equals("$.Queue.Proceed", True)
    announce = put_event(
        scope,
        "AnnounceWaiting",
        state_name="Announce the wait for the earlier run",
        bus=bus,
        detail_type=TRAINING_RUN_STATE_CHANGE,
        detail={
            "Status": "WAITING",
            "DatasetGroupName": sfn.JsonPath.string_at("$.Queue.DatasetGroupName"),
            "ConfigKey": sfn.JsonPath.string_at("$.Source.Key"),
            "ExecutionArn": sfn.JsonPath.execution_id,
            "Trigger": sfn.JsonPath.string_at("$.Trigger"),
            "HeldBy": sfn.JsonPath.string_at("$.Queue.HeldBy"),
            "HeldSince": sfn.JsonPath.string_at("$.Queue.HeldSince"),
            "RunsAhead": sfn.JsonPath.number_at("$.Queue.Ahead"),
        },
    )
    minutes = int(bound.to_minutes())
    give_up = sfn.Pass(
        scope,
        "GiveUpWaiting",
        state_name="Give up waiting for the earlier run",
        parameters={
            "Error": BUSY,
            "Cause": sfn.JsonPath.format(
                f"Run {{}} of dataset group {{}} (started {{}}) was still in progress after {minutes} "
                "minutes of waiting, so this run stopped before creating anything. Upload the config again "
                "(or start the run again) once that run has finished.",
                sfn.JsonPath.string_at("$.Queue.HeldBy"),
                sfn.JsonPath.string_at("$.Queue.DatasetGroupName"),
                sfn.JsonPath.string_at("$.Queue.HeldSince"),
            ),
        },
        result_path="$.Failure",
    )
    wait = poll_job(
        scope,
        "earlier run",
        check=look_again,
        schedule=queue_schedule(bound),
        outcomes=[(proceed, then)],
        gave_up=give_up.next(failed),
    )
    return look.next(
        sfn.Choice(
            scope, "EarlierRunInProgress", state_name="Is an earlier run of the dataset group running?"
        )
        .when(proceed, then)
        .otherwise(announce.next(wait))
    )


def _look(
    scope: Construct, construct_id: str, state_name: str, function: lambda_.IFunction, failed: sfn.IChainable
) -> tasks.LambdaInvoke:
    """Ask the run-queue Lambda about this execution: `$.Queue` = {Proceed, Ahead, HeldBy, HeldSince, ...}."""
    look = tasks.LambdaInvoke(
        scope,
        construct_id,
        state_name=state_name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "StateMachineArn": sfn.JsonPath.state_machine_id,
                "ExecutionArn": sfn.JsonPath.execution_id,
                "StartTime": sfn.JsonPath.execution_start_time,
                "Key": sfn.JsonPath.string_at("$.Source.Key"),
                "ExecutionName": sfn.JsonPath.execution_name,
            }
        ),
        payload_response_only=True,
        result_path="$.Queue",
    )
    add_sdk_retry(look, LAMBDA_THROTTLED)
    look.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.Failure")
    return look
