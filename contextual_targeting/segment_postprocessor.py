"""SegmentPostprocessor: a finished batch segment job becomes one segment file per query and events.

Destination-neutral: the segment file under `segments/`, the job's manifest and the `Segment Ready`
event are the contract every destination subscribes to (see the README, "Segments").
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.events_contract import (
    BATCH_SEGMENT_JOB_STATE_CHANGE,
    EVENT_SOURCE,
    SEGMENT_POSTPROCESSING_STATE_CHANGE,
    SEGMENT_READY,
)
from contextual_targeting.layout import BATCH_PREFIX, SEGMENTS_PREFIX
from contextual_targeting.nag import acknowledge, objects_finding, resource_finding
from contextual_targeting.workflow_kit import (
    LAMBDA_THROTTLED,
    add_sdk_retry,
    logged_state_machine,
    notify,
    put_event,
    python_function,
)

COMPONENT = "segment_postprocessor"
# Measured (bench/segment_postprocessor_bench.py): ~3 M users/s on one core. Memory grows with a line's
# distinct users (the set that counts and writes each user once): 480 MB peak RSS at 5 M ids of 7 characters,
# 625 MB at 36, ~1.6 GB at Personalize's maximum of 256. 2,048 MB fits that maximum; 5 minutes leaves a wide
# margin for a job of 10 queries x 5 M users.
FUNCTION_MEMORY_MB = 2048
FUNCTION_TIMEOUT = cdk.Duration.minutes(5)
WORKFLOW_TIMEOUT = cdk.Duration.hours(1)
MAX_QUERIES = 10


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
            environment={"SEGMENTS_BUCKET": bucket.bucket_name, "SEGMENTS_PREFIX": props.segments_prefix},
        )
        self.function: lambda_.IFunction = function
        acknowledge(
            function,
            "L1",
            "python3.13 is the project's pinned Lambda runtime (workflow_kit.LAMBDA_RUNTIME), the one the "
            "handler is tested on; the split function uses only the standard library and boto3.",
        )
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
            findings=[resource_finding(self, _describe_resource(self))],
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
            targets=[targets.SfnStateMachine(self.state_machine)],
        )


def _grant_split_access(
    function: lambda_.Function, bucket: s3.IBucket, batch_prefix: str, segments_prefix: str
) -> None:
    """Read job output under `batch/`, write segments under `segments/`, nothing else."""
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{batch_prefix}*")])
    )
    # ListBucket is a bucket-level action: the prefix condition keeps listing inside the job output area.
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{batch_prefix}*"]}},
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
        "Object wildcards are limited to the batch output prefix (read) and the segments prefix (write): "
        "job output and segment keys are chosen at run time.",
        findings=[
            objects_finding(bucket, f"{batch_prefix}*"),
            objects_finding(bucket, f"{segments_prefix}*"),
        ],
    )


def build_postprocessing_workflow(
    scope: Construct, *, function: lambda_.IFunction, event_bus: events.IEventBus, topic: sns.ITopic
) -> sfn.IChainable:
    """Describe the job, split its output (Lambda), announce each segment, email one summary.

    Input: the `Personalize Batch Segment Job State Change` event. User ids never enter the state:
    the split function returns one small entry per query (at most 10), so transitions are constant
    per query.
    """
    failure = _failure_chain(scope, event_bus=event_bus, topic=topic)

    describe = tasks.CallAwsService(
        scope,
        "DescribeJob",
        state_name="Describe the batch segment job",
        service="personalize",
        action="describeBatchSegmentJob",
        parameters={"BatchSegmentJobArn": sfn.JsonPath.string_at("$.detail.Arn")},
        iam_resources=[_describe_resource(scope)],
        iam_action="personalize:DescribeBatchSegmentJob",
        result_selector={
            "JobArn": sfn.JsonPath.string_at("$.BatchSegmentJob.BatchSegmentJobArn"),
            "JobName": sfn.JsonPath.string_at("$.BatchSegmentJob.JobName"),
            "Status": sfn.JsonPath.string_at("$.BatchSegmentJob.Status"),
            # The API member is jobOutput.s3DataDestination.path.
            "OutputUri": sfn.JsonPath.string_at("$.BatchSegmentJob.JobOutput.S3DataDestination.Path"),
        },
        result_path="$.Job",
    )
    # Personalize declares no throttling error: a throttled call arrives as PersonalizeException.
    add_sdk_retry(describe, ["Personalize.PersonalizeException"])
    describe.add_catch(failure, errors=[sfn.Errors.ALL], result_path="$.Failure")

    not_active = sfn.Pass(
        scope,
        "JobNotActive",
        state_name="Note that the job is not active",
        parameters={
            "Error": "JobNotActive",
            "Cause": sfn.JsonPath.format(
                "Batch segment job {} is {}, not ACTIVE",
                sfn.JsonPath.string_at("$.Job.JobArn"),
                sfn.JsonPath.string_at("$.Job.Status"),
            ),
        },
        result_path="$.Failure",
    ).next(failure)

    split = tasks.LambdaInvoke(
        scope,
        "Split",
        state_name="Split the job output into segments",
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "JobArn": sfn.JsonPath.string_at("$.Job.JobArn"),
                "JobName": sfn.JsonPath.string_at("$.Job.JobName"),
                "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
                "OutputUri": sfn.JsonPath.string_at("$.Job.OutputUri"),
            }
        ),
        # Only the function's small summary is kept: no Lambda response metadata, never user ids.
        result_selector={
            "Status": sfn.JsonPath.string_at("$.Payload.Status"),
            "ManifestUri": sfn.JsonPath.string_at("$.Payload.ManifestUri"),
            "SegmentCount": sfn.JsonPath.number_at("$.Payload.SegmentCount"),
            "ProblemCount": sfn.JsonPath.number_at("$.Payload.ProblemCount"),
            "Summary": sfn.JsonPath.string_at("$.Payload.Summary"),
            "Segments": sfn.JsonPath.list_at("$.Payload.Segments"),
        },
        result_path="$.Result",
    )
    add_sdk_retry(split, LAMBDA_THROTTLED)
    split.add_catch(failure, errors=[sfn.Errors.ALL], result_path="$.Failure")

    announce = sfn.Map(
        scope,
        "AnnounceSegments",
        state_name="Announce each segment",
        items_path="$.Result.Segments",
        item_selector={
            "Segment": sfn.JsonPath.object_at("$$.Map.Item.Value"),
            "JobArn": sfn.JsonPath.string_at("$.Job.JobArn"),
            "JobName": sfn.JsonPath.string_at("$.Job.JobName"),
            "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
            "ManifestUri": sfn.JsonPath.string_at("$.Result.ManifestUri"),
        },
        max_concurrency=MAX_QUERIES,
        result_path=sfn.JsonPath.DISCARD,
    )
    announce.item_processor(_announce_one(scope, event_bus))
    announce.add_catch(failure, errors=[sfn.Errors.ALL], result_path="$.Failure")

    report = put_event(
        scope,
        "ReportRun",
        state_name="Report the finished run",
        bus=event_bus,
        detail_type=SEGMENT_POSTPROCESSING_STATE_CHANGE,
        detail={
            "Status": sfn.JsonPath.string_at("$.Result.Status"),
            "JobArn": sfn.JsonPath.string_at("$.Job.JobArn"),
            "JobName": sfn.JsonPath.string_at("$.Job.JobName"),
            "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
            "ManifestUri": sfn.JsonPath.string_at("$.Result.ManifestUri"),
            "SegmentCount": sfn.JsonPath.number_at("$.Result.SegmentCount"),
            "ProblemCount": sfn.JsonPath.number_at("$.Result.ProblemCount"),
        },
    )
    report.add_catch(failure, errors=[sfn.Errors.ALL], result_path="$.Failure")
    email = notify(
        scope,
        "EmailSummary",
        state_name="Email the run summary",
        topic=topic,
        subject="contextual-targeting: segments from a batch segment job",
        message=sfn.TaskInput.from_json_path_at("$.Result.Summary"),
    )

    return describe.next(
        sfn.Choice(scope, "IsJobActive", state_name="Is the job active?")
        .when(
            sfn.Condition.string_equals("$.Job.Status", "ACTIVE"),
            split.next(announce)
            .next(report)
            .next(email)
            .next(sfn.Succeed(scope, "Done", state_name="Segments announced")),
        )
        .otherwise(not_active)
    )


def _announce_one(scope: Construct, event_bus: events.IEventBus) -> sfn.IChainable:
    """One query: `Segment Ready` when its segment is ready, otherwise a problem event naming the line."""
    common = {
        "JobArn": sfn.JsonPath.string_at("$.JobArn"),
        "JobName": sfn.JsonPath.string_at("$.JobName"),
        "DatasetGroupName": sfn.JsonPath.string_at("$.DatasetGroupName"),
        "ManifestUri": sfn.JsonPath.string_at("$.ManifestUri"),
        "Query": sfn.JsonPath.string_at("$.Segment.Query"),
    }
    ready = put_event(
        scope,
        "AnnounceReady",
        state_name="Announce the ready segment",
        bus=event_bus,
        detail_type=SEGMENT_READY,
        detail={
            "SegmentName": sfn.JsonPath.string_at("$.Segment.SegmentName"),
            "SegmentUri": sfn.JsonPath.string_at("$.Segment.SegmentUri"),
            "Bucket": sfn.JsonPath.string_at("$.Segment.Bucket"),
            "Key": sfn.JsonPath.string_at("$.Segment.Key"),
            "UserCount": sfn.JsonPath.number_at("$.Segment.UserCount"),
            **common,
        },
    )
    problem = put_event(
        scope,
        "ReportQueryProblem",
        state_name="Report the query problem",
        bus=event_bus,
        detail_type=SEGMENT_POSTPROCESSING_STATE_CHANGE,
        detail={
            "Status": sfn.JsonPath.format("QUERY {}", sfn.JsonPath.string_at("$.Segment.Status")),
            "Source": sfn.JsonPath.string_at("$.Segment.Source"),
            "Line": sfn.JsonPath.number_at("$.Segment.Line"),
            "Error": sfn.JsonPath.string_at("$.Segment.Error"),
            **common,
        },
    )
    return (
        sfn.Choice(scope, "IsSegmentReady", state_name="Is the segment ready?")
        .when(sfn.Condition.string_equals("$.Segment.Status", "READY"), ready)
        .otherwise(problem)
    )


def _failure_chain(scope: Construct, *, event_bus: events.IEventBus, topic: sns.ITopic) -> sfn.IChainable:
    """Report the failed run (event + email), then fail the execution with the original error."""
    report = put_event(
        scope,
        "ReportFailure",
        state_name="Report the failed run",
        bus=event_bus,
        detail_type=SEGMENT_POSTPROCESSING_STATE_CHANGE,
        detail={
            "Status": "FAILED",
            "JobArn": sfn.JsonPath.string_at("$.detail.Arn"),
            "JobName": sfn.JsonPath.string_at("$.detail.JobName"),
            "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
            "Error": sfn.JsonPath.string_at("$.Failure.Error"),
            "Cause": sfn.JsonPath.string_at("$.Failure.Cause"),
        },
    )
    email = notify(
        scope,
        "EmailFailure",
        state_name="Email the failure",
        topic=topic,
        subject="contextual-targeting: segment post-processing FAILED",
        message=sfn.TaskInput.from_text(
            sfn.JsonPath.format(
                "Post-processing of batch segment job {} (dataset group {}) failed.\n\nError: {}\nCause: {}",
                sfn.JsonPath.string_at("$.detail.JobName"),
                sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
                sfn.JsonPath.string_at("$.Failure.Error"),
                sfn.JsonPath.string_at("$.Failure.Cause"),
            )
        ),
    )
    fail = sfn.Fail(
        scope,
        "Failed",
        state_name="Post-processing failed",
        error_path="$.Failure.Error",
        cause_path="$.Failure.Cause",
    )
    return report.next(email).next(fail)


def _describe_resource(scope: Construct) -> str:
    """ARN pattern of this account's batch segment jobs (job names are fresh per run)."""
    return cdk.Stack.of(scope).format_arn(
        service="personalize", resource="batch-segment-job", resource_name="*"
    )
