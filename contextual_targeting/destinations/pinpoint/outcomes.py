"""Every way a Pinpoint preparation or import can end, and the tail they go through.

Both workflows report one `Report` object ({Stage, Status, ..., Message}) that one publish/email tail turns
into a `Pinpoint Segment Import State Change` event and an email, so the two can never disagree; a FAILED
report fails the execution. The outcome states are made in one place per workflow, so their texts read
together, and before the steps that lead to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import report_outcome
from contextual_targeting.contracts.events import PINPOINT_IMPORT_STATE_CHANGE
from contextual_targeting.destinations.kit import Reports, caught_error, not_finished

STAGE_PREPARE = "Prepare"
STAGE_IMPORT = "Import"
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


# Paths the reports read: the ready segment (prepare), the inspected file (import), the jobs once they exist.
SEGMENT_NAME = sfn.JsonPath.string_at("$.Segment.SegmentName")
FILE_SEGMENT_NAME = sfn.JsonPath.string_at("$.File.SegmentName")
FILE_KEY = sfn.JsonPath.string_at("$.File.Key")
EXPORT_JOB_ID = sfn.JsonPath.string_at("$.Export.JobId")
IMPORT_JOB_ID = sfn.JsonPath.string_at("$.Import.JobId")


class PrepareOutcomes:
    """The report states of the prepare workflow (`Segment Ready` -> import file)."""

    def __init__(
        self, scope: Construct, *, export_schedule: Sequence[int], bus: events.IEventBus, topic: sns.ITopic
    ) -> None:
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
        self._reports = Reports(
            scope,
            tail=tail,
            not_done="Segment {} was not imported into Pinpoint: ",
            subject=[SEGMENT_NAME],
        )
        # The order the reports are made in is the order the definition lists them.
        self.export_failed = self._failed(
            "Export failed",
            "Report the failed export",
            "Pinpoint.ExportFailed",
            sfn.JsonPath.format(
                "endpoint export {} ended FAILED: {}",
                EXPORT_JOB_ID,
                sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.Export.Job.Job")),
            ),
        )
        self.export_timed_out = self._failed(
            "Export timed out",
            "Report the export that never finished",
            "Pinpoint.ExportTimedOut",
            not_finished("endpoint export", EXPORT_JOB_ID, export_schedule),
        )
        self.call_failed = self._failed(
            "Prepare call failed", "Report the failed call", "Pinpoint.PrepareFailed", caught_error()
        )
        self._joined()

    def _failed(self, construct_id: str, state_name: str, error: str, reason: str) -> sfn.Chain:
        """A FAILED report before the import file exists."""
        return self._reports.report(
            construct_id,
            state_name,
            {
                "Stage": STAGE_PREPARE,
                "Status": "FAILED",
                "Error": error,
                "SegmentName": SEGMENT_NAME,
                "Key": "",
                "UserCount": sfn.JsonPath.number_at("$.Segment.UserCount"),
                "EndpointCount": 0,
                "UsersWithoutEndpoints": 0,
                "FailureReason": reason,
                "Message": self._reports.not_done(reason),
            },
        )

    def _joined(self) -> None:
        """The join found the users' endpoints (and wrote the import file), or found none."""
        counts = {
            "Stage": STAGE_PREPARE,
            "SegmentName": SEGMENT_NAME,
            "Key": sfn.JsonPath.string_at("$.Join.ImportKey"),
            "UserCount": sfn.JsonPath.number_at("$.Join.UserCount"),
            "EndpointCount": sfn.JsonPath.number_at("$.Join.EndpointCount"),
            "UsersWithoutEndpoints": sfn.JsonPath.number_at("$.Join.UsersWithoutEndpoints"),
        }
        self.prepared = self._reports.report(
            "Prepared",
            "Report the import file",
            {
                **counts,
                "Status": "PREPARED",
                "FailureReason": "",
                "Message": sfn.JsonPath.format(
                    "Segment {}: {} endpoints of {} users written to {} for import. {} users have no "
                    "endpoint that can receive messages (first ones: {}).",
                    SEGMENT_NAME,
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
        self.no_endpoints = self._reports.rejected(
            "No endpoints", "Report the segment without endpoints", reason=empty_reason, fields=counts
        )


class ImportOutcomes:
    """The report states of the import workflow (import file -> static segment)."""

    def __init__(
        self, scope: Construct, *, import_schedule: Sequence[int], bus: events.IEventBus, topic: sns.ITopic
    ) -> None:
        tail = report_outcome(
            scope,
            STAGE_IMPORT.lower(),
            bus=bus,
            topic=topic,
            detail_type=PINPOINT_IMPORT_STATE_CHANGE,
            detail_keys=IMPORT_DETAIL,
            subject="Pinpoint segment import",
        )
        self._reports = Reports(
            scope,
            tail=tail,
            not_done="{} was not imported into Pinpoint: ",
            subject=[FILE_KEY],
            base={
                "Stage": STAGE_IMPORT,
                "SegmentName": FILE_SEGMENT_NAME,
                "SegmentId": "",
                "ImportJobId": "",
                "TotalProcessed": 0,
                "TotalFailures": 0,
                "FailedPieces": 0,
                "Key": FILE_KEY,
                "FailureReason": "",
            },
        )
        # The order the reports are made in is the order the definition lists them.
        self.rejected = self._reports.rejected(
            "Rejected", "Report the rejected file", reason=sfn.JsonPath.string_at("$.File.Reason")
        )
        self._job_ended()
        self._job_not_ended(import_schedule)

    def _job_ended(self) -> None:
        """The import job ended: every record imported, some failed, or the job failed."""
        summary = _import_summary()
        counts_text = [
            sfn.JsonPath.string_at("$.Import.Summary.Counts.TotalProcessed"),
            sfn.JsonPath.string_at("$.Import.Summary.Counts.TotalFailures"),
        ]
        segment = [FILE_SEGMENT_NAME, sfn.JsonPath.string_at("$.Import.Summary.Definition.SegmentId")]
        self.completed = self._reports.report(
            "Completed",
            "Report the imported segment",
            {
                **summary,
                "Status": "COMPLETED",
                "Message": sfn.JsonPath.format(
                    "Pinpoint segment {} ({}) imported from {}: {} records processed, {} failed "
                    "(import job {}).",
                    *segment,
                    FILE_KEY,
                    *counts_text,
                    IMPORT_JOB_ID,
                ),
            },
        )
        failures = sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.Import.Summary.Counts.Failures"))
        self.partial = self._reports.report(
            "Partial",
            "Report the partial import",
            {
                **summary,
                "Status": "COMPLETED_WITH_FAILURES",
                "FailureReason": failures,
                "Message": sfn.JsonPath.format(
                    "PARTIAL import: Pinpoint segment {} ({}) from {}: {} records processed, {} failed "
                    "(import job {}). Failures: {}",
                    *segment,
                    FILE_KEY,
                    *counts_text,
                    IMPORT_JOB_ID,
                    failures,
                ),
            },
        )
        self.failed = self._reports.failed(
            "Import failed",
            "Report the failed import",
            error="Pinpoint.ImportFailed",
            reason=sfn.JsonPath.format("import job {} ended FAILED: {}", IMPORT_JOB_ID, failures),
            fields=summary,
        )

    def _job_not_ended(self, import_schedule: Sequence[int]) -> None:
        """The import job did not end in time, or a call failed after its retries."""
        timeout_reason = not_finished(
            "import job", IMPORT_JOB_ID, import_schedule, may_complete_in="Pinpoint"
        )
        self.timed_out = self._reports.failed(
            "Import timed out",
            "Report the import that never finished",
            error="Pinpoint.ImportTimedOut",
            reason=timeout_reason,
            fields={"ImportJobId": IMPORT_JOB_ID},
        )
        self.create_failed = self._reports.call_failed(
            "Import call failed",
            "Report the import job that could not be created",
            error="Pinpoint.ImportFailed",
        )
        # Once the import job exists, its id lets an operator look it up in Pinpoint.
        self.check_failed = self._reports.call_failed(
            "Import check failed",
            "Report the import job that could not be checked",
            error="Pinpoint.ImportFailed",
            fields={"ImportJobId": IMPORT_JOB_ID},
        )
        # Without the inspector's answer there is no `$.File`: the report names the object from the input.
        self.inspect_failed = self._reports.report(
            "Inspect failed",
            "Report the file that could not be inspected",
            {
                "SegmentName": "",
                "Key": sfn.JsonPath.string_at("$.Key"),
                "Status": "FAILED",
                "Error": "Pinpoint.InspectFailed",
                "FailureReason": caught_error(),
                "Message": sfn.JsonPath.format(
                    "{} was not imported into Pinpoint: the file could not be inspected: {}",
                    sfn.JsonPath.string_at("$.Key"),
                    caught_error(),
                ),
            },
        )


def _import_summary() -> dict[str, Any]:
    """Report fields of an import job that ended."""
    return {
        "SegmentId": sfn.JsonPath.string_at("$.Import.Summary.Definition.SegmentId"),
        "ImportJobId": IMPORT_JOB_ID,
        "TotalProcessed": sfn.JsonPath.number_at("$.Import.Summary.Counts.TotalProcessed"),
        "TotalFailures": sfn.JsonPath.number_at("$.Import.Summary.Counts.TotalFailures"),
        "FailedPieces": sfn.JsonPath.number_at("$.Import.Summary.Counts.FailedPieces"),
    }
