"""The Pinpoint destination as the stack deploys it (opt-in: Amazon Pinpoint reached end of support)."""

from __future__ import annotations

from constructs import Construct

from contextual_targeting.destinations import (
    DeployedDestination,
    Destination,
    SharedResources,
    StackOutput,
)
from contextual_targeting.destinations.pinpoint.importer import (
    PinpointSegmentImporter,
    PinpointSegmentImporterProps,
)


def build(scope: Construct, shared: SharedResources) -> DeployedDestination:
    """The importer under `Pinpoint`, importing into the configured project or one of its own."""
    props = PinpointSegmentImporterProps(
        access_logs_bucket=shared.access_logs_bucket,
        event_bus=shared.event_bus,
        notification_topic=shared.notification_topic,
        project_name=shared.settings.pinpoint_project_name,
        application_id=shared.settings.pinpoint_application_id,
        segments_bucket=shared.segments_bucket,
    )
    importer = PinpointSegmentImporter(scope, "Pinpoint", props=props)
    return DeployedDestination(
        construct=importer,
        outputs=[
            StackOutput("SegmentImportBucketName", importer.bucket.bucket_name, "Pinpoint import files"),
            StackOutput("PinpointApplicationId", importer.application_id, "Pinpoint project"),
            StackOutput(
                "PinpointPrepareStateMachineArn",
                importer.prepare_state_machine.state_machine_arn,
                "Segment Ready -> Pinpoint import file",
            ),
            StackOutput(
                "PinpointImportStateMachineArn",
                importer.import_state_machine.state_machine_arn,
                "Import file -> Pinpoint segment",
            ),
            StackOutput(
                "PinpointDispatchStateMachineArn",
                importer.dispatch_state_machine.state_machine_arn,
                "S3 Object Created -> one import per object version",
            ),
        ],
    )


DESTINATION = Destination(name="pinpoint", build=build)
