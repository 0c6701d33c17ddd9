"""ContextualTargetingStack: composes the components and wires them together."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from contextual_targeting.common.notifications import Notifications
from contextual_targeting.common.storage import access_log_bucket
from contextual_targeting.common.workflow_kit import FullWorkflowLogs
from contextual_targeting.destinations import SharedResources, StackOutput
from contextual_targeting.destinations.registry import DESTINATIONS
from contextual_targeting.operations.operations import PipelineOperations, PipelineOperationsProps
from contextual_targeting.segments.postprocessor import SegmentPostprocessor, SegmentPostprocessorProps
from contextual_targeting.settings import ContextualTargetingSettings
from contextual_targeting.training.pipeline import (
    PersonalizeTrainingPipeline,
    PersonalizeTrainingPipelineProps,
)

# The settings moved to contextual_targeting/settings.py; app.py and the tests import them from here.
__all__ = ["ContextualTargetingSettings", "ContextualTargetingStack"]


class ContextualTargetingStack(cdk.Stack):
    """Personalize training, segment post-processing and the chosen destinations, in one stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ContextualTargetingSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if settings.workflow_log_level == "ALL":
            cdk.Aspects.of(self).add(FullWorkflowLogs())

        access_logs = access_log_bucket(self, "AccessLogsBucket")
        notifications = Notifications(self, "Notifications", email=settings.email)

        training = PersonalizeTrainingPipeline(
            self,
            "Training",
            props=PersonalizeTrainingPipelineProps(
                access_logs_bucket=access_logs,
                notification_topic=notifications.topic,
                noncurrent_version_retention=cdk.Duration.days(settings.noncurrent_version_retention_days),
                run_output_retention=cdk.Duration.days(settings.run_output_retention_days),
                queue_wait=cdk.Duration.hours(settings.training_queue_wait_hours),
            ),
        )
        self._outputs(
            StackOutput("PersonalizeBucketName", training.bucket.bucket_name, "Upload training data here"),
            StackOutput(
                "TrainingStateMachineArn",
                training.state_machine.state_machine_arn,
                "Runs once per train/<dataset-group>/<name>_config.json object version",
            ),
            StackOutput(
                "TrainingDispatchStateMachineArn",
                training.dispatch_state_machine.state_machine_arn,
                "Config Object Created -> one training run per object version",
            ),
            StackOutput(
                "TrainingScheduleGroupName",
                training.schedule_group_name,
                "EventBridge Scheduler group of the dataset groups' retraining schedules",
            ),
            StackOutput("EventBusArn", training.event_bus.event_bus_arn, "Pipeline state-change events"),
            StackOutput("EventBusName", training.event_bus.event_bus_name, "Pipeline state-change events"),
            StackOutput("NotificationTopicArn", notifications.topic.topic_arn, "Run summaries"),
        )

        postprocessor = SegmentPostprocessor(
            self,
            "SegmentPostprocessor",
            props=SegmentPostprocessorProps(
                bucket=training.bucket,
                event_bus=training.event_bus,
                notification_topic=notifications.topic,
            ),
        )
        self._outputs(
            StackOutput(
                "SegmentPostprocessorStateMachineArn",
                postprocessor.state_machine.state_machine_arn,
                "Splits finished batch segment jobs into segments",
            )
        )

        # Every destination subscribes to the Segment Ready events the post-processor publishes.
        shared = SharedResources(
            segments_bucket=training.bucket,
            event_bus=training.event_bus,
            notification_topic=notifications.topic,
            access_logs_bucket=access_logs,
            settings=settings,
        )
        for destination in DESTINATIONS:
            if settings.wants(destination.name):
                self._outputs(*destination.build(self, shared).outputs)

        # Operations last: it watches every workflow and function above.
        operations = PipelineOperations(
            self,
            "Operations",
            props=PipelineOperationsProps(
                topic=notifications.topic,
                topic_key=notifications.key,
                event_bus=training.event_bus,
                customer_profiles=settings.wants("customer-profiles"),
            ),
        )
        self._outputs(
            StackOutput("DeadLetterQueueUrl", operations.dead_letter_queue.queue_url, "Undelivered events"),
            StackOutput("DashboardName", operations.dashboard_name, "CloudWatch dashboard of the pipeline"),
        )

    def _outputs(self, *outputs: StackOutput) -> None:
        """Stack outputs under stable names: the CLI and the README look outputs up by them."""
        for output in outputs:
            cdk.CfnOutput(self, output.name, value=output.value, description=output.description)
