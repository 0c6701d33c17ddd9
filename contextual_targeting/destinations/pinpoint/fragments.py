"""The steps of the Pinpoint workflows, in the order an execution takes them.

Prepare: `ExportEndpoints` (one endpoint export of the project, polled), then `FindEndpoints` (the streaming
join writes the `Id` import file). Import: `InspectFile` (can Pinpoint import it, and how), then
`RunImportJob` (`CreateImportJob` with `DefineSegment`, polled to its verdict). Every other way out of a step
goes to a report of `PrepareOutcomes` or `ImportOutcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import lambda_task
from contextual_targeting.destinations.kit import WAY_ON, ChoiceExit, Step, merge_defaults, poll_job
from contextual_targeting.destinations.pinpoint.outcomes import (
    EXPORT_JOB_ID,
    IMPORT_JOB_ID,
    ImportOutcomes,
    PrepareOutcomes,
)
from contextual_targeting.destinations.pinpoint.target import PinpointTarget

# Missing members of a job response (Pinpoint omits some until the job has run) read as these: the import
# workflow carries them from its first state (`$.Defaults`) and merges the answers over them.
JOB_DEFAULTS = {"TotalProcessed": 0, "TotalFailures": 0, "FailedPieces": 0, "Failures": []}
DEFINITION_DEFAULTS = {"SegmentId": ""}


@dataclass(frozen=True, kw_only=True)
class Preparation:
    """What the steps of one prepare workflow work with."""

    target: PinpointTarget
    """The project, its API and the role Pinpoint assumes."""
    export_bucket: str
    """Bucket the endpoint exports land in (the segment-import bucket)."""
    join_function: lambda_.IFunction
    """The streaming join Lambda."""
    schedule: Sequence[int]
    """Wait seconds before each export status check."""
    outcomes: PrepareOutcomes
    """The reports every way out leads to."""


@dataclass(frozen=True, kw_only=True)
class Import:
    """What the steps of one import workflow work with."""

    target: PinpointTarget
    """The project, its API and the role Pinpoint assumes."""
    inspect_function: lambda_.IFunction
    """The import-file inspector Lambda."""
    schedule: Sequence[int]
    """Wait seconds before each import job status check."""
    outcomes: ImportOutcomes
    """The reports every way out leads to."""


class ExportEndpoints(Step):
    """Export the project's endpoints under this run's prefix; go on when the export completed."""

    def __init__(self, scope: Construct, construct_id: str, prepare: Preparation) -> None:
        super().__init__(scope, construct_id)
        target, outcomes = prepare.target, prepare.outcomes
        export = target.api.call(
            self,
            "Create export",
            state_name="Export the project's endpoints",
            action="createExportJob",
            resources=target.resources(),
            parameters={
                "ExportJobRequest": {
                    "RoleArn": target.role.role_arn,
                    "S3UrlPrefix": sfn.JsonPath.format(
                        f"s3://{prepare.export_bucket}/{{}}", sfn.JsonPath.string_at("$.ExportPrefix")
                    ),
                }
            },
            result_selector={"JobId": sfn.JsonPath.string_at("$.ExportJobResponse.Id")},
            result_path="$.Export",
        )
        check = target.api.call(
            self,
            "Get export",
            state_name="Check the export",
            action="getExportJob",
            resources=target.resources("export"),
            parameters={"JobId": EXPORT_JOB_ID},
            result_selector={"Job": sfn.JsonPath.object_at("$.ExportJobResponse")},
            result_path="$.Export.Job",
        )
        for task in (export, check):
            task.add_catch(outcomes.call_failed, result_path="$.Error")
        status = "$.Export.Job.Job.JobStatus"
        polling = poll_job(
            self,
            "export",
            check=check,
            schedule=prepare.schedule,
            outcomes=[
                (sfn.Condition.string_equals(status, "COMPLETED"), WAY_ON),
                (sfn.Condition.string_equals(status, "FAILED"), outcomes.export_failed),
            ],
            gave_up=outcomes.export_timed_out,
        )
        export.next(polling)
        self._start = export
        self._ends = polling.end_states


class FindEndpoints(Step):
    """Resolve the segment's users to endpoint ids (streaming join) and write the import file; then report."""

    def __init__(self, scope: Construct, construct_id: str, prepare: Preparation) -> None:
        super().__init__(scope, construct_id)
        outcomes = prepare.outcomes
        join = lambda_task(
            self,
            "Join",
            state_name="Find the users' endpoints",
            function=prepare.join_function,
            payload={
                "SegmentBucket": sfn.JsonPath.string_at("$.Segment.Bucket"),
                "SegmentKey": sfn.JsonPath.string_at("$.Segment.Key"),
                "SegmentName": sfn.JsonPath.string_at("$.Segment.SegmentName"),
                "ExportBucket": prepare.export_bucket,
                "ExportPrefix": sfn.JsonPath.string_at("$.ExportPrefix"),
                "ExecutionName": sfn.JsonPath.execution_name,
            },
            result_selector={
                "ImportKey": sfn.JsonPath.string_at("$.ImportKey"),
                "UserCount": sfn.JsonPath.number_at("$.UserCount"),
                "EndpointCount": sfn.JsonPath.number_at("$.EndpointCount"),
                "UsersWithoutEndpoints": sfn.JsonPath.number_at("$.UsersWithoutEndpoints"),
                "SampleUsersWithoutEndpoints": sfn.JsonPath.list_at("$.SampleUsersWithoutEndpoints"),
            },
            result_path="$.Join",
        )
        join.add_catch(outcomes.call_failed, result_path="$.Error")
        join.next(
            sfn.Choice(self, "Any endpoints", state_name="Did any user have an endpoint?")
            .when(sfn.Condition.number_greater_than("$.Join.EndpointCount", 0), outcomes.prepared)
            .otherwise(outcomes.no_endpoints)
        )
        self._start = join


class InspectFile(Step):
    """Ask the inspector whether and how Pinpoint can import the file; go on when it can."""

    def __init__(self, scope: Construct, construct_id: str, job: Import) -> None:
        super().__init__(scope, construct_id)
        outcomes = job.outcomes
        inspect = lambda_task(
            self,
            "Inspect",
            state_name="Inspect the import file",
            function=job.inspect_function,
            payload={
                "Bucket": sfn.JsonPath.string_at("$.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Key"),
                "VersionId": sfn.JsonPath.string_at("$.VersionId"),
                "ExecutionName": sfn.JsonPath.execution_name,
            },
            result_path="$.File",
        )
        inspect.add_catch(outcomes.inspect_failed, result_path="$.Error")
        importable = sfn.Choice(self, "Importable", state_name="Can Pinpoint import the file?")
        inspect.next(importable)
        self._start = inspect
        self._ends = [
            ChoiceExit(
                importable,
                [(sfn.Condition.boolean_equals("$.File.Accepted", True), WAY_ON)],
                otherwise=outcomes.rejected,
            )
        ]


class RunImportJob(Step):
    """Import the file as a static segment, poll the job to its end, report its verdict."""

    def __init__(self, scope: Construct, construct_id: str, job: Import) -> None:
        super().__init__(scope, construct_id)
        target, outcomes = job.target, job.outcomes
        create = target.api.call(
            self,
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
                    "SegmentName": sfn.JsonPath.string_at("$.File.SegmentName"),
                    "RegisterEndpoints": sfn.JsonPath.string_at("$.File.RegisterEndpoints"),
                }
            },
            result_selector={"JobId": sfn.JsonPath.string_at("$.ImportJobResponse.Id")},
            result_path="$.Import",
        )
        check = target.api.call(
            self,
            "Get import",
            state_name="Check the import",
            action="getImportJob",
            resources=target.resources("import"),
            parameters={"JobId": IMPORT_JOB_ID},
            result_selector={"Job": sfn.JsonPath.object_at("$.ImportJobResponse")},
            result_path="$.Import.Job",
        )
        create.add_catch(outcomes.create_failed, result_path="$.Error")
        check.add_catch(outcomes.check_failed, result_path="$.Error")
        status = "$.Import.Job.Job.JobStatus"
        ended = sfn.Condition.or_(*(sfn.Condition.string_equals(status, s) for s in ("COMPLETED", "FAILED")))
        create.next(
            poll_job(
                self,
                "import",
                check=check,
                schedule=job.schedule,
                outcomes=[(ended, _import_verdict(self, outcomes))],
                gave_up=outcomes.timed_out,
            )
        )
        self._start = create


def _import_verdict(scope: Construct, outcomes: ImportOutcomes) -> sfn.Chain:
    """Read the ended job's counts and segment (missing members from `$.Defaults`), then report them."""
    summarize = merge_defaults(
        scope,
        "Summarize import",
        state_name="Summarize the import job",
        fields={
            "Counts": ("$.Defaults.Job", "$.Import.Job.Job"),
            "Definition": ("$.Defaults.Definition", "$.Import.Job.Job.Definition"),
        },
        result_path="$.Import.Summary",
    )
    return summarize.next(
        sfn.Choice(scope, "Import verdict", state_name="Did every record import?")
        .when(sfn.Condition.string_equals("$.Import.Summary.Counts.JobStatus", "FAILED"), outcomes.failed)
        .when(sfn.Condition.number_greater_than("$.Import.Summary.Counts.TotalFailures", 0), outcomes.partial)
        .otherwise(outcomes.completed)
    )
