"""The Pinpoint destination's workflows: prepare (users -> endpoint ids) and import (file -> segment).

Each builder returns a chain, so tests can render and run a workflow alone. Every outcome goes through one
`Report` object ({Stage, Status, ..., Message}) and one publish/email tail, so the event and the email can
never disagree, and a FAILED report always fails the execution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import LAMBDA_THROTTLED, add_sdk_retry, poll_job, report_outcome
from contextual_targeting.contracts.events import PINPOINT_IMPORT_STATE_CHANGE

PINPOINT_SERVICE = "pinpoint"
PINPOINT_IAM_PREFIX = "mobiletargeting"
# Errors the pinpoint API model declares for throttling and transient faults.
PINPOINT_RETRYABLE = ["Pinpoint.TooManyRequestsException", "Pinpoint.InternalServerErrorException"]

STAGE_PREPARE = "Prepare"
STAGE_IMPORT = "Import"

# Missing members of a job response (Pinpoint omits some until the job has run) read as these.
_JOB_DEFAULTS = {"TotalProcessed": 0, "TotalFailures": 0, "FailedPieces": 0, "Failures": []}
_DEFINITION_DEFAULTS = {"SegmentId": ""}


@dataclass(frozen=True, kw_only=True)
class PinpointTarget:
    """The Pinpoint project the workflows work on, and the role Pinpoint assumes to read and write S3."""

    application_id: str
    """Pinpoint project (application) id."""
    application_arn: str
    """`arn:<partition>:mobiletargeting:<region>:<account>:apps/<id>`."""
    role: iam.IRole
    """Import/export role that Pinpoint assumes."""


def _pinpoint_call(
    scope: Construct,
    construct_id: str,
    *,
    state_name: str,
    action: str,
    target: PinpointTarget,
    job_kind: str | None,
    parameters: Mapping[str, Any],
    result_selector: Mapping[str, Any],
    result_path: str,
) -> tasks.CallAwsService:
    """Direct Pinpoint SDK call scoped to this project (and its import or export jobs), throttling retried."""
    resources = [target.application_arn]
    if job_kind:
        resources.append(f"{target.application_arn}/jobs/{job_kind}/*")
    task = tasks.CallAwsService(
        scope,
        construct_id,
        state_name=state_name,
        service=PINPOINT_SERVICE,
        action=action,
        # The SDK service is `pinpoint`, the IAM prefix `mobiletargeting` (this CDK version has no
        # `iam_action_prefix`, so the action is named in full).
        iam_action=f"{PINPOINT_IAM_PREFIX}:{action[0].upper()}{action[1:]}",
        iam_resources=resources,
        parameters={"ApplicationId": target.application_id, **parameters},
        result_selector=result_selector,
        result_path=result_path,
    )
    add_sdk_retry(task, PINPOINT_RETRYABLE)
    return task


def _report(scope: Construct, construct_id: str, state_name: str, fields: Mapping[str, Any]) -> sfn.Pass:
    """Pass state that records the outcome under `$.Report` for the publish/email tail."""
    return sfn.Pass(
        scope, construct_id, state_name=state_name, parameters=dict(fields), result_path="$.Report"
    )


# ---------------------------------------------------------------------------------------------------------
# Prepare: `Segment Ready` -> endpoint export -> join -> `Id` file under the import prefix.

PREPARE_DETAIL = [
    "Stage",
    "Status",
    "SegmentName",
    "Key",
    "UserCount",
    "EndpointCount",
    "UsersWithoutEndpoints",
    "FailureReason",
]


def prepare_workflow(
    scope: Construct,
    *,
    target: PinpointTarget,
    export_bucket: str,
    export_prefix: str,
    join_function: lambda_.IFunction,
    bus: events.IEventBus,
    topic: sns.ITopic,
    export_schedule: Sequence[int],
) -> sfn.Chain:
    """Prepare workflow: export the project's endpoints, join them with the segment, write the import file."""
    tail = report_outcome(
        scope,
        STAGE_PREPARE.lower(),
        bus=bus,
        topic=topic,
        detail_type=PINPOINT_IMPORT_STATE_CHANGE,
        detail_keys=PREPARE_DETAIL,
        subject="Pinpoint segment prepare",
        # A clean preparation is followed by its import, which emails: only problems are worth a mail.
        quiet=sfn.Condition.and_(
            sfn.Condition.string_equals("$.Report.Status", "PREPARED"),
            sfn.Condition.number_equals("$.Report.UsersWithoutEndpoints", 0),
        ),
    )
    segment = "$.Segment.SegmentName"

    def failure(construct_id: str, state_name: str, error: str, reason: str) -> sfn.Chain:
        return _report(
            scope,
            construct_id,
            state_name,
            {
                "Stage": STAGE_PREPARE,
                "Status": "FAILED",
                "Error": error,
                "SegmentName": sfn.JsonPath.string_at(segment),
                "Key": "",
                "UserCount": sfn.JsonPath.number_at("$.Segment.UserCount"),
                "EndpointCount": 0,
                "UsersWithoutEndpoints": 0,
                "FailureReason": reason,
                "Message": sfn.JsonPath.format(
                    "Segment {} was not imported into Pinpoint: {}", sfn.JsonPath.string_at(segment), reason
                ),
            },
        ).next(tail)

    read = sfn.Pass(
        scope,
        "Read segment",
        state_name="Read the ready segment",
        parameters={
            "Segment": {
                "SegmentName": sfn.JsonPath.string_at("$.detail.SegmentName"),
                "Bucket": sfn.JsonPath.string_at("$.detail.Bucket"),
                "Key": sfn.JsonPath.string_at("$.detail.Key"),
                "UserCount": sfn.JsonPath.number_at("$.detail.UserCount"),
            },
            # One export per execution, under a prefix no other run writes to.
            "ExportPrefix": sfn.JsonPath.format(export_prefix + "{}/", sfn.JsonPath.execution_name),
        },
    )
    export = _pinpoint_call(
        scope,
        "Create export",
        state_name="Export the project's endpoints",
        action="createExportJob",
        target=target,
        job_kind=None,
        parameters={
            "ExportJobRequest": {
                "RoleArn": target.role.role_arn,
                "S3UrlPrefix": sfn.JsonPath.format(
                    f"s3://{export_bucket}/{{}}", sfn.JsonPath.string_at("$.ExportPrefix")
                ),
            }
        },
        result_selector={"JobId": sfn.JsonPath.string_at("$.ExportJobResponse.Id")},
        result_path="$.Export",
    )
    check = _pinpoint_call(
        scope,
        "Get export",
        state_name="Check the export",
        action="getExportJob",
        target=target,
        job_kind="export",
        parameters={"JobId": sfn.JsonPath.string_at("$.Export.JobId")},
        result_selector={"Job": sfn.JsonPath.object_at("$.ExportJobResponse")},
        result_path="$.Export.Job",
    )
    export_failed = failure(
        "Export failed",
        "Report the failed export",
        "Pinpoint.ExportFailed",
        sfn.JsonPath.format(
            "endpoint export {} ended FAILED: {}",
            sfn.JsonPath.string_at("$.Export.JobId"),
            sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.Export.Job.Job")),
        ),
    )
    export_timed_out = failure(
        "Export timed out",
        "Report the export that never finished",
        "Pinpoint.ExportTimedOut",
        sfn.JsonPath.format(
            f"endpoint export {{}} did not finish within {sum(export_schedule)} seconds",
            sfn.JsonPath.string_at("$.Export.JobId"),
        ),
    )
    call_failed = failure(
        "Prepare call failed",
        "Report the failed call",
        "Pinpoint.PrepareFailed",
        sfn.JsonPath.format(
            "{}: {}", sfn.JsonPath.string_at("$.Error.Error"), sfn.JsonPath.string_at("$.Error.Cause")
        ),
    )
    join = tasks.LambdaInvoke(
        scope,
        "Join",
        state_name="Find the users' endpoints",
        lambda_function=join_function,
        payload_response_only=True,
        payload=sfn.TaskInput.from_object(
            {
                "SegmentBucket": sfn.JsonPath.string_at("$.Segment.Bucket"),
                "SegmentKey": sfn.JsonPath.string_at("$.Segment.Key"),
                "SegmentName": sfn.JsonPath.string_at(segment),
                "ExportBucket": export_bucket,
                "ExportPrefix": sfn.JsonPath.string_at("$.ExportPrefix"),
                "ExecutionName": sfn.JsonPath.execution_name,
            }
        ),
        result_selector={
            "ImportKey": sfn.JsonPath.string_at("$.ImportKey"),
            "UserCount": sfn.JsonPath.number_at("$.UserCount"),
            "EndpointCount": sfn.JsonPath.number_at("$.EndpointCount"),
            "UsersWithoutEndpoints": sfn.JsonPath.number_at("$.UsersWithoutEndpoints"),
            "SampleUsersWithoutEndpoints": sfn.JsonPath.list_at("$.SampleUsersWithoutEndpoints"),
        },
        result_path="$.Join",
    )
    add_sdk_retry(join, LAMBDA_THROTTLED)
    counts = {
        "Stage": STAGE_PREPARE,
        "SegmentName": sfn.JsonPath.string_at(segment),
        "Key": sfn.JsonPath.string_at("$.Join.ImportKey"),
        "UserCount": sfn.JsonPath.number_at("$.Join.UserCount"),
        "EndpointCount": sfn.JsonPath.number_at("$.Join.EndpointCount"),
        "UsersWithoutEndpoints": sfn.JsonPath.number_at("$.Join.UsersWithoutEndpoints"),
    }
    prepared = _report(
        scope,
        "Prepared",
        "Report the import file",
        {
            **counts,
            "Status": "PREPARED",
            "FailureReason": "",
            "Message": sfn.JsonPath.format(
                "Segment {}: {} endpoints of {} users written to {} for import. {} users have no endpoint "
                "that can receive messages (first ones: {}).",
                sfn.JsonPath.string_at(segment),
                sfn.JsonPath.string_at("$.Join.EndpointCount"),
                sfn.JsonPath.string_at("$.Join.UserCount"),
                sfn.JsonPath.string_at("$.Join.ImportKey"),
                sfn.JsonPath.string_at("$.Join.UsersWithoutEndpoints"),
                sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.Join.SampleUsersWithoutEndpoints")),
            ),
        },
    ).next(tail)
    empty_reason = sfn.JsonPath.format(
        "none of the {} users has an endpoint that can receive messages",
        sfn.JsonPath.string_at("$.Join.UserCount"),
    )
    empty = _report(
        scope,
        "No endpoints",
        "Report the segment without endpoints",
        {
            **counts,
            "Status": "REJECTED",
            "FailureReason": empty_reason,
            "Message": sfn.JsonPath.format(
                "Segment {} was not imported into Pinpoint: {}.",
                sfn.JsonPath.string_at(segment),
                empty_reason,
            ),
        },
    ).next(tail)
    any_endpoints = (
        sfn.Choice(scope, "Any endpoints", state_name="Did any user have an endpoint?")
        .when(sfn.Condition.number_greater_than("$.Join.EndpointCount", 0), prepared)
        .otherwise(empty)
    )
    for task in (export, check, join):
        task.add_catch(call_failed, result_path="$.Error")
    export_status = "$.Export.Job.Job.JobStatus"
    polling = poll_job(
        scope,
        "export",
        check=check,
        schedule=export_schedule,
        outcomes=[
            (sfn.Condition.string_equals(export_status, "COMPLETED"), join.next(any_endpoints)),
            (sfn.Condition.string_equals(export_status, "FAILED"), export_failed),
        ],
        gave_up=export_timed_out,
    )
    return read.next(export).next(polling)


# ---------------------------------------------------------------------------------------------------------
# Import: a file under the import prefix -> CreateImportJob(DefineSegment) -> poll -> report.

IMPORT_DETAIL = [
    "Stage",
    "Status",
    "SegmentName",
    "SegmentId",
    "ImportJobId",
    "TotalProcessed",
    "TotalFailures",
    "FailedPieces",
    "Key",
    "FailureReason",
]


def import_workflow(
    scope: Construct,
    *,
    target: PinpointTarget,
    inspect_function: lambda_.IFunction,
    bus: events.IEventBus,
    topic: sns.ITopic,
    import_schedule: Sequence[int],
) -> sfn.Chain:
    """Import workflow: inspect the file, create a static segment from it and poll the job to its end."""
    tail = report_outcome(
        scope,
        STAGE_IMPORT.lower(),
        bus=bus,
        topic=topic,
        detail_type=PINPOINT_IMPORT_STATE_CHANGE,
        detail_keys=IMPORT_DETAIL,
        subject="Pinpoint segment import",
    )
    name = sfn.JsonPath.string_at("$.File.SegmentName")
    key = sfn.JsonPath.string_at("$.File.Key")
    job_id = sfn.JsonPath.string_at("$.Import.JobId")

    def report(construct_id: str, state_name: str, fields: Mapping[str, Any]) -> sfn.Chain:
        base = {
            "Stage": STAGE_IMPORT,
            "SegmentName": name,
            "SegmentId": "",
            "ImportJobId": "",
            "TotalProcessed": 0,
            "TotalFailures": 0,
            "FailedPieces": 0,
            "Key": key,
            "FailureReason": "",
        }
        return _report(scope, construct_id, state_name, {**base, **fields}).next(tail)

    inspect = tasks.LambdaInvoke(
        scope,
        "Inspect",
        state_name="Inspect the import file",
        lambda_function=inspect_function,
        payload_response_only=True,
        payload=sfn.TaskInput.from_object(
            {
                "Bucket": sfn.JsonPath.string_at("$.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Key"),
                "VersionId": sfn.JsonPath.string_at("$.VersionId"),
                "ExecutionName": sfn.JsonPath.execution_name,
            }
        ),
        result_path="$.File",
    )
    add_sdk_retry(inspect, LAMBDA_THROTTLED)
    rejected = report(
        "Rejected",
        "Report the rejected file",
        {
            "Status": "REJECTED",
            "FailureReason": sfn.JsonPath.string_at("$.File.Reason"),
            "Message": sfn.JsonPath.format(
                "{} was not imported into Pinpoint: {}.", key, sfn.JsonPath.string_at("$.File.Reason")
            ),
        },
    )
    create = _pinpoint_call(
        scope,
        "Create import",
        state_name="Import the file as a segment",
        action="createImportJob",
        target=target,
        job_kind=None,
        parameters={
            "ImportJobRequest": {
                "S3Url": sfn.JsonPath.string_at("$.File.S3Url"),
                "RoleArn": target.role.role_arn,
                "Format": sfn.JsonPath.string_at("$.File.Format"),
                "DefineSegment": True,
                "SegmentName": name,
                "RegisterEndpoints": sfn.JsonPath.string_at("$.File.RegisterEndpoints"),
            }
        },
        result_selector={"JobId": sfn.JsonPath.string_at("$.ImportJobResponse.Id")},
        result_path="$.Import",
    )
    check = _pinpoint_call(
        scope,
        "Get import",
        state_name="Check the import",
        action="getImportJob",
        target=target,
        job_kind="import",
        parameters={"JobId": job_id},
        result_selector={"Job": sfn.JsonPath.object_at("$.ImportJobResponse")},
        result_path="$.Import.Job",
    )
    summarize = sfn.Pass(
        scope,
        "Summarize import",
        state_name="Summarize the import job",
        parameters={
            "Counts": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Defaults.Job"), sfn.JsonPath.object_at("$.Import.Job.Job")
            ),
            "Definition": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Defaults.Definition"),
                sfn.JsonPath.object_at("$.Import.Job.Job.Definition"),
            ),
        },
        result_path="$.Import.Summary",
    )
    outcome = {
        "SegmentId": sfn.JsonPath.string_at("$.Import.Summary.Definition.SegmentId"),
        "ImportJobId": job_id,
        "TotalProcessed": sfn.JsonPath.number_at("$.Import.Summary.Counts.TotalProcessed"),
        "TotalFailures": sfn.JsonPath.number_at("$.Import.Summary.Counts.TotalFailures"),
        "FailedPieces": sfn.JsonPath.number_at("$.Import.Summary.Counts.FailedPieces"),
    }
    counts_text = [
        sfn.JsonPath.string_at("$.Import.Summary.Counts.TotalProcessed"),
        sfn.JsonPath.string_at("$.Import.Summary.Counts.TotalFailures"),
    ]
    completed = report(
        "Completed",
        "Report the imported segment",
        {
            **outcome,
            "Status": "COMPLETED",
            "Message": sfn.JsonPath.format(
                "Pinpoint segment {} ({}) imported from {}: {} records processed, {} failed (import job {}).",
                name,
                sfn.JsonPath.string_at("$.Import.Summary.Definition.SegmentId"),
                key,
                *counts_text,
                job_id,
            ),
        },
    )
    failures_text = sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.Import.Summary.Counts.Failures"))
    partial = report(
        "Partial",
        "Report the partial import",
        {
            **outcome,
            "Status": "COMPLETED_WITH_FAILURES",
            "FailureReason": failures_text,
            "Message": sfn.JsonPath.format(
                "PARTIAL import: Pinpoint segment {} ({}) from {}: {} records processed, {} failed "
                "(import job {}). Failures: {}",
                name,
                sfn.JsonPath.string_at("$.Import.Summary.Definition.SegmentId"),
                key,
                *counts_text,
                job_id,
                failures_text,
            ),
        },
    )
    failed_reason = sfn.JsonPath.format("import job {} ended FAILED: {}", job_id, failures_text)
    failed = report(
        "Import failed",
        "Report the failed import",
        {
            **outcome,
            "Status": "FAILED",
            "Error": "Pinpoint.ImportFailed",
            "FailureReason": failed_reason,
            "Message": sfn.JsonPath.format("{} was not imported into Pinpoint: {}", key, failed_reason),
        },
    )
    verdict = (
        sfn.Choice(scope, "Import verdict", state_name="Did every record import?")
        .when(sfn.Condition.string_equals("$.Import.Summary.Counts.JobStatus", "FAILED"), failed)
        .when(sfn.Condition.number_greater_than("$.Import.Summary.Counts.TotalFailures", 0), partial)
        .otherwise(completed)
    )
    timeout_reason = sfn.JsonPath.format(
        f"import job {{}} did not finish within {sum(import_schedule)} seconds; "
        "it may still complete in Pinpoint",
        job_id,
    )
    timed_out = report(
        "Import timed out",
        "Report the import that never finished",
        {
            "ImportJobId": job_id,
            "Status": "FAILED",
            "Error": "Pinpoint.ImportTimedOut",
            "FailureReason": timeout_reason,
            "Message": sfn.JsonPath.format("{} was not imported into Pinpoint: {}", key, timeout_reason),
        },
    )
    call_reason = sfn.JsonPath.format(
        "{}: {}", sfn.JsonPath.string_at("$.Error.Error"), sfn.JsonPath.string_at("$.Error.Cause")
    )
    call_failed = {
        "Status": "FAILED",
        "Error": "Pinpoint.ImportFailed",
        "FailureReason": call_reason,
        "Message": sfn.JsonPath.format("{} was not imported into Pinpoint: {}", key, call_reason),
    }
    create_failed = report(
        "Import call failed", "Report the import job that could not be created", call_failed
    )
    # Once the import job exists, its id lets an operator look it up in Pinpoint.
    check_failed = report(
        "Import check failed",
        "Report the import job that could not be checked",
        {**call_failed, "ImportJobId": job_id},
    )
    # Without the inspector's answer there is no `$.File`: the report names the object from the input.
    inspect_failed = report(
        "Inspect failed",
        "Report the file that could not be inspected",
        {
            "SegmentName": "",
            "Key": sfn.JsonPath.string_at("$.Key"),
            "Status": "FAILED",
            "Error": "Pinpoint.InspectFailed",
            "FailureReason": call_reason,
            "Message": sfn.JsonPath.format(
                "{} was not imported into Pinpoint: the file could not be inspected: {}",
                sfn.JsonPath.string_at("$.Key"),
                call_reason,
            ),
        },
    )
    inspect.add_catch(inspect_failed, result_path="$.Error")
    create.add_catch(create_failed, result_path="$.Error")
    check.add_catch(check_failed, result_path="$.Error")
    # The input is `{"Source": {...}}` from object_trigger.OncePerObjectVersion; the states below read the
    # object at the top level.
    defaults = sfn.Pass(
        scope,
        "Import defaults",
        state_name="Start the import",
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Source.Bucket"),
            "Key": sfn.JsonPath.string_at("$.Source.Key"),
            "VersionId": sfn.JsonPath.string_at("$.Source.VersionId"),
            "Defaults": {"Job": _JOB_DEFAULTS, "Definition": _DEFINITION_DEFAULTS},
        },
    )
    importable = (
        sfn.Choice(scope, "Importable", state_name="Can Pinpoint import the file?")
        .when(sfn.Condition.boolean_equals("$.File.Accepted", True), create)
        .otherwise(rejected)
    )
    create.next(
        poll_job(
            scope,
            "import",
            check=check,
            schedule=import_schedule,
            outcomes=[
                (
                    sfn.Condition.or_(
                        sfn.Condition.string_equals("$.Import.Job.Job.JobStatus", "COMPLETED"),
                        sfn.Condition.string_equals("$.Import.Job.Job.JobStatus", "FAILED"),
                    ),
                    summarize,
                )
            ],
            gave_up=timed_out,
        )
    )
    summarize.next(verdict)
    return defaults.next(inspect).next(importable)
