"""The Pinpoint destination's workflows: prepare (users -> endpoint ids) and import (file -> segment).

Each builder returns a chain, so tests can render and run a workflow alone. Every outcome goes through one
`Report` object ({Stage, Status, ..., Message}) and one publish/email tail, so the event and the email can
never disagree, and a FAILED report always fails the execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import LAMBDA_THROTTLED, add_sdk_retry
from contextual_targeting.contracts.events import PINPOINT_IMPORT_STATE_CHANGE
from contextual_targeting.destinations.kit import (
    Reports,
    ServiceApi,
    caught_error,
    poll_job,
    read_segment_ready,
    report_outcome,
)

# The SDK service is `pinpoint`, the IAM prefix `mobiletargeting`; the errors are those the pinpoint API
# model declares for throttling and transient faults.
PINPOINT = ServiceApi(
    service="pinpoint",
    iam_prefix="mobiletargeting",
    retryable=["Pinpoint.TooManyRequestsException", "Pinpoint.InternalServerErrorException"],
)

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

    @property
    def api(self) -> ServiceApi:
        """Pinpoint calls on this project."""
        return PINPOINT.scoped(ApplicationId=self.application_id)

    def resources(self, job_kind: str | None = None) -> list[str]:
        """The project, and its import or export jobs when `job_kind` names them."""
        jobs = [f"{self.application_arn}/jobs/{job_kind}/*"] if job_kind else []
        return [self.application_arn, *jobs]


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
    reports = Reports(
        scope,
        tail=tail,
        not_done="Segment {} was not imported into Pinpoint: ",
        subject=[sfn.JsonPath.string_at(segment)],
    )

    def failure(construct_id: str, state_name: str, error: str, reason: str) -> sfn.Chain:
        return reports.report(
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
                "Message": reports.not_done(reason),
            },
        )

    read = read_segment_ready(
        scope,
        fields=["SegmentName", "Bucket", "Key", "UserCount"],
        # One export per execution, under a prefix no other run writes to.
        ExportPrefix=sfn.JsonPath.format(export_prefix + "{}/", sfn.JsonPath.execution_name),
    )
    export = target.api.call(
        scope,
        "Create export",
        state_name="Export the project's endpoints",
        action="createExportJob",
        resources=target.resources(),
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
    check = target.api.call(
        scope,
        "Get export",
        state_name="Check the export",
        action="getExportJob",
        resources=target.resources("export"),
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
        "Prepare call failed", "Report the failed call", "Pinpoint.PrepareFailed", caught_error()
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
    prepared = reports.report(
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
    )
    empty_reason = sfn.JsonPath.format(
        "none of the {} users has an endpoint that can receive messages",
        sfn.JsonPath.string_at("$.Join.UserCount"),
    )
    empty = reports.rejected(
        "No endpoints", "Report the segment without endpoints", reason=empty_reason, fields=counts
    )
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

    reports = Reports(
        scope,
        tail=tail,
        not_done="{} was not imported into Pinpoint: ",
        subject=[key],
        base={
            "Stage": STAGE_IMPORT,
            "SegmentName": name,
            "SegmentId": "",
            "ImportJobId": "",
            "TotalProcessed": 0,
            "TotalFailures": 0,
            "FailedPieces": 0,
            "Key": key,
            "FailureReason": "",
        },
    )
    report = reports.report

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
            }
        ),
        result_path="$.File",
    )
    add_sdk_retry(inspect, LAMBDA_THROTTLED)
    rejected = reports.rejected(
        "Rejected", "Report the rejected file", reason=sfn.JsonPath.string_at("$.File.Reason")
    )
    create = target.api.call(
        scope,
        "Create import",
        state_name="Import the file as a segment",
        action="createImportJob",
        resources=target.resources(),
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
    check = target.api.call(
        scope,
        "Get import",
        state_name="Check the import",
        action="getImportJob",
        resources=target.resources("import"),
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
    failed = reports.failed(
        "Import failed",
        "Report the failed import",
        error="Pinpoint.ImportFailed",
        reason=failed_reason,
        fields=outcome,
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
    timed_out = reports.failed(
        "Import timed out",
        "Report the import that never finished",
        error="Pinpoint.ImportTimedOut",
        reason=timeout_reason,
        fields={"ImportJobId": job_id},
    )
    create_failed = reports.call_failed(
        "Import call failed", "Report the import job that could not be created", error="Pinpoint.ImportFailed"
    )
    # Once the import job exists, its id lets an operator look it up in Pinpoint.
    check_failed = reports.call_failed(
        "Import check failed",
        "Report the import job that could not be checked",
        error="Pinpoint.ImportFailed",
        fields={"ImportJobId": job_id},
    )
    call_reason = caught_error()
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
