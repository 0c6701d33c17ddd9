"""PinpointSegmentImporter: the segment-import bucket and the Amazon Pinpoint project.

Amazon Pinpoint reached end of support on 2026-10-30; the stack includes this destination only when
asked (`-c pinpoint=true`). The `Segment Ready` event and segment file stay the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_events as events
from aws_cdk import aws_pinpoint as pinpoint
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from contextual_targeting.layout import PINPOINT_IMPORT_PREFIX
from contextual_targeting.storage import secure_bucket


@dataclass(frozen=True, kw_only=True)
class PinpointSegmentImporterProps:
    """What the Pinpoint destination needs from the rest of the stack."""

    access_logs_bucket: s3.IBucket
    """Receives the segment-import bucket's server access logs."""
    event_bus: events.IEventBus
    """The pipeline bus: `Segment Ready` comes in, import state changes go out."""
    notification_topic: sns.ITopic
    """Import results are emailed through this topic."""
    project_name: str = "personalize"
    """Name of the Pinpoint project created when `application_id` is not given."""
    application_id: str | None = None
    """An existing Pinpoint project to import into instead of creating one (default: create)."""
    import_prefix: str = PINPOINT_IMPORT_PREFIX
    """Key prefix in the segment-import bucket whose new files are imported."""


class PinpointSegmentImporter(Construct):
    """Turns ready segments into Amazon Pinpoint static segments through S3-triggered imports."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PinpointSegmentImporterProps) -> None:
        super().__init__(scope, construct_id)
        self.import_prefix = props.import_prefix
        self.bucket: s3.IBucket = secure_bucket(
            self, "SegmentImportBucket", access_logs=props.access_logs_bucket, log_prefix="segment-import/"
        )
        if props.application_id:
            self.application_id: str = props.application_id
        else:
            project = pinpoint.CfnApp(self, "Project", name=props.project_name)
            self.application_id = project.ref
