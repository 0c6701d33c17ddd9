"""ContextualTargetingStack: composes the components and wires them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from contextual_targeting.common.notifications import Notifications
from contextual_targeting.common.storage import access_log_bucket
from contextual_targeting.common.workflow_kit import FullWorkflowLogs
from contextual_targeting.destinations.customer_profiles.importer import (
    CustomerProfilesSegmentImporter,
    CustomerProfilesSegmentImporterProps,
)
from contextual_targeting.destinations.pinpoint.importer import (
    PinpointSegmentImporter,
    PinpointSegmentImporterProps,
)
from contextual_targeting.operations.operations import PipelineOperations, PipelineOperationsProps
from contextual_targeting.segments.postprocessor import SegmentPostprocessor, SegmentPostprocessorProps
from contextual_targeting.training.pipeline import (
    PersonalizeTrainingPipeline,
    PersonalizeTrainingPipelineProps,
)

DESTINATIONS = ("customer-profiles", "pinpoint")
WORKFLOW_LOG_LEVELS = ("ERROR", "ALL")


@dataclass(frozen=True, kw_only=True)
class ContextualTargetingSettings:
    """Deployment choices, read from CDK context by `app.py`."""

    email: str | None = None
    """Address that receives run summaries (subscription confirmed by email); none when omitted."""
    destinations: tuple[str, ...] = ("customer-profiles",)
    """Destinations to deploy, from DESTINATIONS. Amazon Pinpoint reached end of support on 2026-10-30
    (creating a project fails on today's accounts), so the default is Customer Profiles alone."""
    customer_profiles_domain_name: str | None = None
    """Upload into this existing Customer Profiles domain instead of creating one."""
    pinpoint_project_name: str = "personalize"
    """Name of the Pinpoint project to create."""
    pinpoint_application_id: str | None = None
    """Import into this existing Pinpoint project instead of creating one."""
    workflow_log_level: str = "ERROR"
    """ERROR: workflow logs hold errors only, without execution data (it holds user ids). ALL: every state
    with its data, for debugging."""
    noncurrent_version_retention_days: int = 30
    """Days the data bucket keeps overwritten and deleted objects as noncurrent versions."""
    run_output_retention_days: int = 30
    """Days after which superseded runs' job outputs and segment folders and the destinations' per-run
    files are deleted (counted from their creation; the latest run's files are kept)."""
    training_queue_wait_hours: int = 12
    """Hours a training run waits for an earlier run of its dataset group before it gives up."""

    def __post_init__(self) -> None:
        """Refuse a destination name the stack does not know (a typo would silently deploy nothing)."""
        unknown = sorted(set(self.destinations) - set(DESTINATIONS))
        if unknown:
            known = ", ".join(DESTINATIONS)
            raise ValueError(f"unknown destination {', '.join(unknown)}: choose from {known}")
        if self.workflow_log_level not in WORKFLOW_LOG_LEVELS:
            raise ValueError(
                f"workflowLogLevel {self.workflow_log_level!r}: choose {' or '.join(WORKFLOW_LOG_LEVELS)}"
            )
        for name in (
            "noncurrent_version_retention_days",
            "run_output_retention_days",
            "training_queue_wait_hours",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def wants(self, destination: str) -> bool:
        """Whether the stack deploys this destination."""
        return destination in self.destinations


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

        self._output("PersonalizeBucketName", training.bucket.bucket_name, "Upload training data here")
        self._output(
            "TrainingStateMachineArn",
            training.state_machine.state_machine_arn,
            "Runs once per train/<dataset-group>/<name>_config.json object version",
        )
        self._output(
            "TrainingDispatchStateMachineArn",
            training.dispatch_state_machine.state_machine_arn,
            "Config Object Created -> one training run per object version",
        )
        self._output(
            "TrainingScheduleGroupName",
            training.schedule_group_name,
            "EventBridge Scheduler group of the dataset groups' retraining schedules",
        )
        self._output("EventBusArn", training.event_bus.event_bus_arn, "Pipeline state-change events")
        self._output("EventBusName", training.event_bus.event_bus_name, "Pipeline state-change events")
        self._output("NotificationTopicArn", notifications.topic.topic_arn, "Run summaries")

        # ---- SegmentPostprocessor (wired here) ----
        postprocessor = SegmentPostprocessor(
            self,
            "SegmentPostprocessor",
            props=SegmentPostprocessorProps(
                bucket=training.bucket,
                event_bus=training.event_bus,
                notification_topic=notifications.topic,
            ),
        )
        self._output(
            "SegmentPostprocessorStateMachineArn",
            postprocessor.state_machine.state_machine_arn,
            "Splits finished batch segment jobs into segments",
        )

        if settings.wants("customer-profiles"):
            profiles = CustomerProfilesSegmentImporter(
                self,
                "CustomerProfiles",
                props=CustomerProfilesSegmentImporterProps(
                    segments_bucket=training.bucket,
                    event_bus=training.event_bus,
                    notification_topic=notifications.topic,
                    domain_name=settings.customer_profiles_domain_name,
                ),
            )
            self._output("CustomerProfilesDomainName", profiles.domain_name, "Customer Profiles domain")
            self._output(
                "CustomerProfilesStateMachineArn",
                profiles.state_machine.state_machine_arn,
                "Segment Ready -> Customer Profiles segment definition",
            )

        if settings.wants("pinpoint"):
            importer = PinpointSegmentImporter(
                self,
                "Pinpoint",
                props=PinpointSegmentImporterProps(
                    access_logs_bucket=access_logs,
                    event_bus=training.event_bus,
                    notification_topic=notifications.topic,
                    project_name=settings.pinpoint_project_name,
                    application_id=settings.pinpoint_application_id,
                    segments_bucket=training.bucket,
                ),
            )
            self._output("SegmentImportBucketName", importer.bucket.bucket_name, "Pinpoint import files")
            self._output("PinpointApplicationId", importer.application_id, "Pinpoint project")
            # ---- PinpointSegmentImporter wiring continues here ----
            self._output(
                "PinpointPrepareStateMachineArn",
                importer.prepare_state_machine.state_machine_arn,
                "Segment Ready -> Pinpoint import file",
            )
            self._output(
                "PinpointImportStateMachineArn",
                importer.import_state_machine.state_machine_arn,
                "Import file -> Pinpoint segment",
            )
            self._output(
                "PinpointDispatchStateMachineArn",
                importer.dispatch_state_machine.state_machine_arn,
                "S3 Object Created -> one import per object version",
            )

        # ---- Operations: last, as it watches every workflow and function above ----
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
        self._output("DeadLetterQueueUrl", operations.dead_letter_queue.queue_url, "Undelivered events")
        self._output("DashboardName", operations.dashboard_name, "CloudWatch dashboard of the pipeline")

    def _output(self, name: str, value: str, description: str) -> None:
        """Stack output under a stable name: the CLI and the README look outputs up by it."""
        cdk.CfnOutput(self, name, value=value, description=description)
