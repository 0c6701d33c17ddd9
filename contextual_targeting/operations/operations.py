"""PipelineOperations: failure alerts, dead letters, alarms and the dashboard for everything in the stack.

Built last in the stack: it finds the stack's state machines and Lambda functions itself, so a new component
(a destination, say) is watched without being named here.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from contextual_targeting.common.object_trigger import OncePerObjectVersion
from contextual_targeting.common.workflow_kit import python_function
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE, EVENT_SOURCE
from contextual_targeting.operations.delivery import (
    MAX_EVENT_AGE,
    RETRY_ATTEMPTS,
    dead_letter_queue,
)
from contextual_targeting.operations.failures import (
    WatchedWorkflow,
    WorkflowFailureAlerts,
    WorkflowFailureAlertsProps,
)
from contextual_targeting.operations.monitoring import (
    PipelineMonitoring,
    PipelineMonitoringProps,
    WatchedFunction,
)


@dataclass(frozen=True, kw_only=True)
class PipelineOperationsProps:
    """What operations needs from the stack."""

    topic: sns.ITopic
    """The run-summary topic: failure emails and alarm notifications."""
    topic_key: kms.IKey
    """The topic's KMS key: CloudWatch alarms need to use it to publish."""
    event_bus: events.IEventBus
    """The pipeline bus: `Workflow Failed` goes there, destination reports come from there."""
    customer_profiles: bool
    """Whether the Customer Profiles destination is deployed (its figures and failed-records alarm)."""


def readable_name(construct: IConstruct) -> str:
    """`Training/TrainingWorkflow`: the construct path below the stack."""
    stack_path = cdk.Stack.of(construct).node.path
    return construct.node.path.removeprefix(stack_path + "/")


def _watched(scope: Construct) -> tuple[list[WatchedWorkflow], list[WatchedFunction]]:
    """Every state machine and Lambda function of the stack so far, in construct order."""
    found = cdk.Stack.of(scope).node.find_all()
    workflows = [
        WatchedWorkflow(
            name=readable_name(c),
            machine=c,
            # The dispatchers start a run or end quietly: nothing in them reports a failure.
            reports_failures=not isinstance(c.node.scope, OncePerObjectVersion),
        )
        for c in found
        if isinstance(c, sfn.StateMachine)
    ]
    functions = [
        WatchedFunction(name=readable_name(c), function=c) for c in found if isinstance(c, lambda_.Function)
    ]
    return workflows, functions


class PipelineOperations(Construct):
    """Every bad ending reaches a person, no event is lost, and the pipeline shows on one dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PipelineOperationsProps) -> None:
        super().__init__(scope, construct_id)
        workflows, functions = _watched(self)
        self.dead_letter_queue: sqs.IQueue = dead_letter_queue(self)
        alerts = WorkflowFailureAlerts(
            self,
            "FailureAlerts",
            props=WorkflowFailureAlertsProps(
                workflows=workflows, topic=props.topic, event_bus=props.event_bus
            ),
        )
        if props.customer_profiles:
            functions.append(
                WatchedFunction(
                    name=readable_name(self) + "/ReportMetrics", function=self._report_metrics(props)
                )
            )
        monitoring = PipelineMonitoring(
            self,
            "Monitoring",
            props=PipelineMonitoringProps(
                workflows=[
                    *workflows,
                    WatchedWorkflow(
                        name=readable_name(alerts.publisher), machine=alerts.publisher, reports_failures=False
                    ),
                ],
                functions=functions,
                dead_letter_queue=self.dead_letter_queue,
                topic=props.topic,
                customer_profiles=props.customer_profiles,
            ),
        )
        self.dashboard_name: str = monitoring.dashboard.dashboard_name
        self._let_alarms_publish(props)

    def _let_alarms_publish(self, props: PipelineOperationsProps) -> None:
        """Alarm actions publish as CloudWatch: the topic's policy and key allow this account's alarms."""
        stack = cdk.Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name="*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        cloudwatch = iam.ServicePrincipal(
            "cloudwatch.amazonaws.com",
            conditions={
                "ArnLike": {"aws:SourceArn": alarms},
                "StringEquals": {"aws:SourceAccount": stack.account},
            },
        )
        props.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch], actions=["sns:Publish"], resources=[props.topic.topic_arn]
            )
        )
        props.topic_key.grant(cloudwatch, "kms:Decrypt", "kms:GenerateDataKey*")

    def _report_metrics(self, props: PipelineOperationsProps) -> lambda_.IFunction:
        """Customer Profiles reports -> ProfilesUploaded / ProfilesFailed metrics."""
        function = python_function(
            self,
            "ReportMetrics",
            component="operations/report_metrics",
            description="Files the profiles uploaded and failed of each Customer Profiles report as metrics",
            memory_size=128,
            timeout=cdk.Duration.seconds(10),
        )
        events.Rule(
            self,
            "ProfilesReportRule",
            description="Customer Profiles segment reports -> business metrics",
            event_bus=props.event_bus,
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE], detail_type=[CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE]
            ),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=dead_letter_queue(self),
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=MAX_EVENT_AGE,
                )
            ],
        )
        return function
