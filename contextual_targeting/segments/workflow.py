"""The post-processing workflow: a finished batch segment job -> one segment file per query -> events.

Input: the `Personalize Batch Segment Job State Change` event. User ids never enter the state: the split
function returns one small entry per query (at most 10), so transitions are constant per query. Read top-down:

    describe the job -> is it ACTIVE? -> split its output -> announce each segment -> report the run
                               `-> no, or any step failed: report the failure
    report: one run-level event and one email (`report_outcome`), then the execution succeeds or fails
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import (
    LAMBDA_THROTTLED,
    add_sdk_retry,
    put_event,
    report_outcome,
)
from contextual_targeting.contracts.events import SEGMENT_POSTPROCESSING_STATE_CHANGE, SEGMENT_READY

MAX_QUERIES = 10
"""A batch segment job answers at most 10 queries (one line each): the announce Map runs them all at once."""


def build_postprocessing_workflow(
    scope: Construct, *, function: lambda_.IFunction, event_bus: events.IEventBus, topic: sns.ITopic
) -> sfn.IChainable:
    """Describe the job, split its output (Lambda), announce each segment, report the run (event + email)."""
    report = report_outcome(
        scope,
        "post-processing",
        bus=event_bus,
        topic=topic,
        detail_type=SEGMENT_POSTPROCESSING_STATE_CHANGE,
    )
    failure = _failure_report(scope).next(report)
    describe = _describe_job(scope, failure)
    split = _split_job(scope, function, failure)
    announce = _announce_segments(scope, event_bus, failure)
    return describe.next(
        sfn.Choice(scope, "IsJobActive", state_name="Is the job active?")
        .when(
            sfn.Condition.string_equals("$.Job.Status", "ACTIVE"),
            split.next(announce).next(_run_report(scope)).next(report),
        )
        .otherwise(_job_not_active(scope).next(failure))
    )


def describe_job_resource(scope: Construct) -> str:
    """ARN pattern of this account's batch segment jobs (job names are fresh per run)."""
    return cdk.Stack.of(scope).format_arn(
        service="personalize", resource="batch-segment-job", resource_name="*"
    )


def _describe_job(scope: Construct, failure: sfn.IChainable) -> tasks.CallAwsService:
    """The job's name, status and output location, from the ARN in the event."""
    describe = tasks.CallAwsService(
        scope,
        "DescribeJob",
        state_name="Describe the batch segment job",
        service="personalize",
        action="describeBatchSegmentJob",
        parameters={"BatchSegmentJobArn": sfn.JsonPath.string_at("$.detail.Arn")},
        iam_resources=[describe_job_resource(scope)],
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
    return describe


def _job_not_active(scope: Construct) -> sfn.Pass:
    """The failure of a job that did not end ACTIVE (the rule only lets ACTIVE through: a replayed event)."""
    return sfn.Pass(
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
    )


def _split_job(scope: Construct, function: lambda_.IFunction, failure: sfn.IChainable) -> tasks.LambdaInvoke:
    """The split Lambda streams the job output into segment files and returns one small entry per query."""
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
                "ExecutionName": sfn.JsonPath.execution_name,
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
    return split


def _announce_segments(scope: Construct, event_bus: events.IEventBus, failure: sfn.IChainable) -> sfn.Map:
    """One iteration per query: `Segment Ready`, or a problem event naming the query's line."""
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
    return announce


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


def _run_report(scope: Construct) -> sfn.Pass:
    """The finished run's report: how many segments are ready, how many queries had a problem."""
    return sfn.Pass(
        scope,
        "ReportRun",
        state_name="Report the finished run",
        parameters={
            "Status": sfn.JsonPath.string_at("$.Result.Status"),
            "Detail": {
                "Status": sfn.JsonPath.string_at("$.Result.Status"),
                "JobArn": sfn.JsonPath.string_at("$.Job.JobArn"),
                "JobName": sfn.JsonPath.string_at("$.Job.JobName"),
                "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
                "ManifestUri": sfn.JsonPath.string_at("$.Result.ManifestUri"),
                "SegmentCount": sfn.JsonPath.number_at("$.Result.SegmentCount"),
                "ProblemCount": sfn.JsonPath.number_at("$.Result.ProblemCount"),
            },
            "Subject": "contextual-targeting: segments from a batch segment job",
            "Message": sfn.JsonPath.string_at("$.Result.Summary"),
        },
        result_path="$.Report",
    )


def _failure_report(scope: Construct) -> sfn.Pass:
    """`$.Failure` = {Error, Cause} of the step that failed becomes the run's FAILED report."""
    return sfn.Pass(
        scope,
        "ReportFailure",
        state_name="Report the failed run",
        parameters={
            "Status": "FAILED",
            "Error": sfn.JsonPath.string_at("$.Failure.Error"),
            "FailureReason": sfn.JsonPath.string_at("$.Failure.Cause"),
            "Detail": {
                "Status": "FAILED",
                "JobArn": sfn.JsonPath.string_at("$.detail.Arn"),
                "JobName": sfn.JsonPath.string_at("$.detail.JobName"),
                "DatasetGroupName": sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
                "Error": sfn.JsonPath.string_at("$.Failure.Error"),
                "Cause": sfn.JsonPath.string_at("$.Failure.Cause"),
            },
            "Subject": "contextual-targeting: segment post-processing FAILED",
            "Message": sfn.JsonPath.format(
                "Post-processing of batch segment job {} (dataset group {}) failed.\n\nError: {}\nCause: {}",
                sfn.JsonPath.string_at("$.detail.JobName"),
                sfn.JsonPath.string_at("$.detail.DatasetGroupName"),
                sfn.JsonPath.string_at("$.Failure.Error"),
                sfn.JsonPath.string_at("$.Failure.Cause"),
            ),
        },
        result_path="$.Report",
    )
