"""SegmentPostprocessor: a finished batch segment job becomes one segment file per query and events.

Destination-neutral: the segment file under `segments/`, the job's manifest and the `Segment Ready`
event are the contract every destination subscribes to (docs/segments.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.nag import acknowledge, objects_finding, resource_finding
from contextual_targeting.common.workflow_kit import (
    logged_state_machine,
    python_function,
)
from contextual_targeting.contracts.events import (
    BATCH_SEGMENT_JOB_STATE_CHANGE,
    EVENT_SOURCE,
)
from contextual_targeting.contracts.layout import (
    BATCH_PREFIX,
    EXPIRY_TAG_KEY,
    EXPIRY_TAG_VALUE,
    SEGMENTS_PREFIX,
)
from contextual_targeting.operations.delivery import workflow_target
from contextual_targeting.segments.workflow import build_postprocessing_workflow, describe_job_resource

COMPONENT = "segments/split"
# Measured (bench/segment_postprocessor_bench.py): ~3 M users/s on one core. Memory grows with a line's
# distinct users (the set that counts and writes each user once): 480 MB peak RSS at 5 M ids of 7 characters,
# 625 MB at 36, ~1.6 GB at Personalize's maximum of 256. 2,048 MB fits that maximum; 5 minutes leaves a wide
# margin for a job of 10 queries x 5 M users.
FUNCTION_MEMORY_MB = 2048
FUNCTION_TIMEOUT = cdk.Duration.minutes(5)
WORKFLOW_TIMEOUT = cdk.Duration.hours(1)


@dataclass(frozen=True, kw_only=True)
class SegmentPostprocessorProps:
    """What the post-processor needs from the rest of the stack."""

    bucket: s3.IBucket
    """The data bucket: job output is read under `batch_prefix`, segments written under `segments_prefix`."""
    event_bus: events.IEventBus
    """The pipeline bus: batch segment job state changes come in, `Segment Ready` and problems go out."""
    notification_topic: sns.ITopic
    """One summary email per run goes through this topic."""
    batch_prefix: str = BATCH_PREFIX
    """Key prefix of batch segment job output (default `batch/`)."""
    segments_prefix: str = SEGMENTS_PREFIX
    """Key prefix of the segment files and manifests (default `segments/`)."""


class SegmentPostprocessor(Construct):
    """Splits each finished batch segment job into per-query segment files and announces them."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SegmentPostprocessorProps) -> None:
        super().__init__(scope, construct_id)
        bucket = props.bucket

        function = python_function(
            self,
            "SplitFunction",
            component=COMPONENT,
            description="Streams batch segment job output into one CSV segment per query and a manifest",
            memory_size=FUNCTION_MEMORY_MB,
            timeout=FUNCTION_TIMEOUT,
            environment={
                "SEGMENTS_BUCKET": bucket.bucket_name,
                "SEGMENTS_PREFIX": props.segments_prefix,
                # Earlier runs of a job get this tag once a newer run is split: the bucket's lifecycle
                # then expires them (the latest run's files stay untagged).
                "EXPIRY_TAG": f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}",
            },
        )
        self.function: lambda_.IFunction = function
        _grant_split_access(function, bucket, props.batch_prefix, props.segments_prefix)

        self.state_machine: sfn.IStateMachine = logged_state_machine(
            self,
            "Workflow",
            definition=build_postprocessing_workflow(
                self, function=function, event_bus=props.event_bus, topic=props.notification_topic
            ),
            timeout=WORKFLOW_TIMEOUT,
            comment="Splits a finished batch segment job into segments and publishes Segment Ready events",
        )
        # SnsPublish grants sns:Publish only; the topic is KMS-encrypted, and grant_publish adds
        # kms:GenerateDataKey*/kms:Decrypt on its key, without which every email would fail.
        props.notification_topic.grant_publish(self.state_machine)
        acknowledge(
            self.state_machine,
            "IAM5",
            "kms:GenerateDataKey* on the notification topic's own key only, as SNS needs to encrypt a "
            "published message (granted by Topic.grant_publish).",
            findings=["Action::kms:GenerateDataKey*"],
        )
        acknowledge(
            self.state_machine,
            "IAM5",
            "lambda:InvokeFunction on the split function's versions and aliases (`<arn>:*`), as the "
            "Step Functions Lambda integration grants it.",
            findings=[resource_finding(self, function.function_arn) + ":*"],
        )
        acknowledge(
            self.state_machine,
            "IAM5",
            "DescribeBatchSegmentJob on this account's batch segment jobs: the training workflow names "
            "a fresh job per run, so the job ARN is only known from the triggering event.",
            findings=[resource_finding(self, describe_job_resource(self))],
        )

        self.rule: events.IRule = events.Rule(
            self,
            "JobActiveRule",
            description="A batch segment job became ACTIVE: split its output into segments",
            event_bus=props.event_bus,
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[BATCH_SEGMENT_JOB_STATE_CHANGE],
                detail={"Status": ["ACTIVE"]},
            ),
            targets=[workflow_target(self.state_machine)],
        )


def _grant_split_access(
    function: lambda_.Function, bucket: s3.IBucket, batch_prefix: str, segments_prefix: str
) -> None:
    """Read job output under `batch/`, write segments under `segments/`, tag superseded runs' files there."""
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{batch_prefix}*")])
    )
    # ListBucket is a bucket-level action: the prefix condition keeps listing inside the job output area.
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{batch_prefix}*", f"{segments_prefix}*"]}},
        )
    )
    # Tagging an earlier run's files for expiry (tags only: the objects themselves stay as they are).
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:GetObjectTagging", "s3:PutObjectTagging"],
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in (batch_prefix, segments_prefix)],
        )
    )
    # PutObject also authorizes CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{segments_prefix}*")],
        )
    )
    assert function.role is not None
    acknowledge(
        function.role,
        "IAM5",
        "Object wildcards are limited to the batch output prefix (read, tag) and the segments prefix (write, "
        "tag): job output and segment keys are chosen at run time.",
        findings=[
            objects_finding(bucket, f"{batch_prefix}*"),
            objects_finding(bucket, f"{segments_prefix}*"),
        ],
    )
