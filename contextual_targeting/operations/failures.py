"""WorkflowFailureAlerts: every execution that ends badly reaches a person, once.

The workflows report their own failures: a Catch leads to a report tail that publishes an event and emails
the summary, then a Fail state ends the execution. What no Catch sees is covered here, by one rule per state
machine on the default bus (where Step Functions sends "Execution Status Change" events):

- TIMED_OUT and ABORTED executions (no state of the workflow runs any more);
- FAILED with `States.Runtime` or `States.DataLimitExceeded`, which `States.ALL` does not catch;
- FAILED with an `SNS.` or `EventBridge.` error: the report tail itself (or an uncaught announcement) could
  not publish, so no email went out;
- every FAILED execution of a workflow that reports nothing itself (the once-per-object dispatchers).

A FAILED execution with any other error went through its report tail, which emailed it: the rule does not
match it, so no one gets the failure twice. `tests/operations/test_failures.py` checks every workflow's
definition against this list.

Each match is emailed through the notification topic (an input transformer, no code) and published as
`Workflow Failed` on the pipeline bus by a one-task publisher workflow that takes the original event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import logged_state_machine, put_event
from contextual_targeting.contracts.events import WORKFLOW_FAILED
from contextual_targeting.operations.delivery import (
    MAX_EVENT_AGE,
    RETRY_ATTEMPTS,
    dead_letter_queue,
    workflow_target,
)

EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
ENDED_BADLY = ["FAILED", "TIMED_OUT", "ABORTED"]
# Errors no Catch with States.ALL handles: the workflow never reaches its report tail.
UNCATCHABLE_ERRORS = ["States.Runtime", "States.DataLimitExceeded"]
# Errors of the report tail's own tasks (SnsPublish, EventBridgePutEvents): the report did not go out.
REPORT_ERROR_PREFIXES = ["SNS.", "EventBridge."]
PUBLISH_TIMEOUT = cdk.Duration.minutes(5)


@dataclass(frozen=True, kw_only=True)
class WatchedWorkflow:
    """A state machine whose bad endings must reach a person."""

    name: str
    """Readable name for the email, e.g. `Training/TrainingWorkflow`."""
    machine: sfn.IStateMachine
    reports_failures: bool
    """Whether its FAILED executions already published and emailed their failure (a report tail)."""


@dataclass(frozen=True, kw_only=True)
class WorkflowFailureAlertsProps:
    """What the alerts need from the stack."""

    workflows: Sequence[WatchedWorkflow]
    topic: sns.ITopic
    """The notification topic: one email per unreported bad ending."""
    event_bus: events.IEventBus
    """The pipeline bus: `Workflow Failed` goes there."""


def failure_detail(machine_arn: str, *, reports_failures: bool) -> dict[str, object]:
    """The `detail` pattern of the status changes the workflow's own report does not cover."""
    if not reports_failures:
        return {"stateMachineArn": [machine_arn], "status": list(ENDED_BADLY)}
    return {
        "stateMachineArn": [machine_arn],
        "$or": [
            {"status": ["TIMED_OUT", "ABORTED"]},
            {
                "status": ["FAILED"],
                "error": [*UNCATCHABLE_ERRORS, *({"prefix": p} for p in REPORT_ERROR_PREFIXES)],
            },
        ],
    }


def failure_email(workflow: str) -> events.RuleTargetInput:
    """The email for one bad ending: what ended, how, why, and where to look."""
    region = events.EventField.region
    execution_arn = events.EventField.from_path("$.detail.executionArn")
    return events.RuleTargetInput.from_object(
        {
            "Result": f"contextual-targeting: a {workflow} run ended badly",
            "Workflow": workflow,
            "Execution": events.EventField.from_path("$.detail.name"),
            "Status": events.EventField.from_path("$.detail.status"),
            "Error": events.EventField.from_path("$.detail.error"),
            "Cause": events.EventField.from_path("$.detail.cause"),
            "Started": events.EventField.from_path("$.detail.startDate"),
            "Console": (
                f"https://{region}.console.aws.amazon.com/states/home?region={region}"
                f"#/v2/executions/details/{execution_arn}"
            ),
            "Next": "docs/operations.md: rerun the execution once the cause is fixed",
        }
    )


class WorkflowFailureAlerts(Construct):
    """One rule per workflow on `aws.states` status changes: email + `Workflow Failed` for unreported ends."""

    def __init__(self, scope: Construct, construct_id: str, *, props: WorkflowFailureAlertsProps) -> None:
        super().__init__(scope, construct_id)
        publisher = logged_state_machine(
            self,
            "PublishWorkflowFailed",
            definition=build_publish_workflow(self, bus=props.event_bus),
            timeout=PUBLISH_TIMEOUT,
            comment="Execution Status Change (FAILED, TIMED_OUT, ABORTED) -> Workflow Failed on the bus",
        )
        self.publisher: sfn.IStateMachine = publisher
        self.rules: list[events.IRule] = []
        watched = [
            *props.workflows,
            # Its own failures are emailed, never published again (a broken bus would loop).
            WatchedWorkflow(name="PublishWorkflowFailed", machine=publisher, reports_failures=False),
        ]
        for index, workflow in enumerate(watched):
            rule_targets: list[events.IRuleTarget] = [
                targets.SnsTopic(
                    props.topic,
                    message=failure_email(workflow.name),
                    dead_letter_queue=dead_letter_queue(self),
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=MAX_EVENT_AGE,
                )
            ]
            if workflow.machine is not publisher:
                rule_targets.append(workflow_target(publisher))
            self.rules.append(
                events.Rule(
                    self,
                    f"Failed{index}",
                    description=f"{workflow.name}: bad endings its own report does not cover"[:512],
                    event_pattern=events.EventPattern(
                        source=["aws.states"],
                        detail_type=[EXECUTION_STATUS_CHANGE],
                        detail=failure_detail(
                            workflow.machine.state_machine_arn, reports_failures=workflow.reports_failures
                        ),
                    ),
                    targets=rule_targets,
                )
            )


def build_publish_workflow(scope: Construct, *, bus: events.IEventBus) -> sfn.IChainable:
    """Input: the `aws.states` status-change event as EventBridge delivers it (so a redrive can start it)."""
    read = sfn.Pass(
        scope,
        "Read status change",
        state_name="Read the status change",
        # Status changes of executions that did not fail carry no error or cause: default them.
        parameters={
            "Defaults": {"error": "none", "cause": "none"},
            "Detail": sfn.JsonPath.object_at("$.detail"),
        },
    )
    merge = sfn.Pass(
        scope,
        "Complete status change",
        state_name="Complete the status change",
        parameters={
            "Change": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Defaults"), sfn.JsonPath.object_at("$.Detail")
            )
        },
    )
    publish = put_event(
        scope,
        "Publish workflow failed",
        state_name="Publish Workflow Failed",
        bus=bus,
        detail_type=WORKFLOW_FAILED,
        detail={
            "StateMachineArn": sfn.JsonPath.string_at("$.Change.stateMachineArn"),
            "ExecutionArn": sfn.JsonPath.string_at("$.Change.executionArn"),
            "ExecutionName": sfn.JsonPath.string_at("$.Change.name"),
            "Status": sfn.JsonPath.string_at("$.Change.status"),
            "Error": sfn.JsonPath.string_at("$.Change.error"),
            "Cause": sfn.JsonPath.string_at("$.Change.cause"),
        },
    )
    done = sfn.Succeed(scope, "Published", state_name="Workflow Failed published")
    return read.next(merge).next(publish).next(done)
