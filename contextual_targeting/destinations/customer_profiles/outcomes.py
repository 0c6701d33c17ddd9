"""Every way a Customer Profiles upload can end, and the tail they all go through.

One `Report` object per outcome: the tail removes the upload file (it holds contact data), publishes the
report as a `Customer Profiles Segment State Change` event, emails it, and fails the execution when the
report says FAILED. The outcome states are made in one place, so their texts read together.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import report_outcome
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.destinations.customer_profiles.workflow_inputs import STATE_FILES, WorkflowSettings
from contextual_targeting.destinations.kit import Reports, not_finished

DETAIL_KEYS = [
    "SegmentName",
    "SegmentDefinitionName",
    "SegmentDefinitionArn",
    "UploadJobId",
    "Status",
    "UserCount",
    "ProfilesUploaded",
    "ProfilesFailed",
    "UsersWithoutContact",
    "MembersRemoved",
    "FailureReason",
]
UPLOAD_FAILED = "CustomerProfiles.UploadFailed"


SEGMENT_NAME = sfn.JsonPath.string_at("$.Segment.SegmentName")
# Once the upload job exists.
UPLOAD_JOB_ID = sfn.JsonPath.string_at("$.Job.JobId")


class UploadOutcomes:
    """The report states of the upload workflow, made before the steps that lead to them."""

    def __init__(
        self,
        scope: Construct,
        *,
        settings: WorkflowSettings,
        state_objects_arn: str,
        bus: events.IEventBus,
        topic: sns.ITopic,
    ) -> None:
        self._reports = Reports(
            scope,
            tail=_tail(scope, state_objects_arn=state_objects_arn, bus=bus, topic=topic),
            not_done="Segment {} was not uploaded to Customer Profiles: ",
            subject=[SEGMENT_NAME],
            base={
                "SegmentName": SEGMENT_NAME,
                "SegmentDefinitionName": "",
                "SegmentDefinitionArn": "",
                "UploadJobId": "",
                "UserCount": sfn.JsonPath.number_at("$.Segment.UserCount"),
                "ProfilesUploaded": 0,
                "ProfilesFailed": 0,
                "UsersWithoutContact": 0,
                "MembersRemoved": 0,
                "FailureReason": "",
            },
        )
        # The order the reports are made in is the order the definition lists them.
        self.no_slot = self._no_slot(settings)
        self._rejections()
        self._successes()
        self._failures(settings)

    def call_failed(self, construct_id: str, state_name: str, *, job_created: bool = False) -> sfn.Chain:
        """The report of a call that failed after its retries (the catcher puts the error under `$.Error`)."""
        # Once the upload job exists, its id lets an operator look it up in Customer Profiles.
        job = {"UploadJobId": UPLOAD_JOB_ID} if job_created else {}
        return self._reports.call_failed(construct_id, state_name, error=UPLOAD_FAILED, fields=job)

    def _no_slot(self, settings: WorkflowSettings) -> sfn.Chain:
        reason = (
            f"no upload slot became free within {settings.slot_checks} minutes "
            f"(at most {settings.max_concurrent_uploads} uploads at a time)"
        )
        return self._reports.failed(
            "No slot",
            "Report that no upload slot became free",
            error="CustomerProfiles.NoUploadSlot",
            reason=reason,
        )

    def _rejections(self) -> None:
        """Segments there is nothing to upload for."""
        self.empty = self._reports.rejected(
            "Empty segment",
            "Report the empty segment",
            reason="the segment file lists no user",
            fields=_upload_counts(),
        )
        no_contact_reason = sfn.JsonPath.format(
            "none of the {} users has contact data in {}",
            sfn.JsonPath.string_at("$.Upload.UserCount"),
            sfn.JsonPath.string_at("$.Upload.ContactsKey"),
        )
        self.no_contacts = self._reports.rejected(
            "No contacts",
            "Report the segment without contact data",
            reason=no_contact_reason,
            fields=_upload_counts(),
        )

    def _successes(self) -> None:
        """The upload job ended SUCCEEDED or PARTIALLY_SUCCEEDED, and the members are kept."""
        summary = [
            sfn.JsonPath.string_at("$.Upload.Definition.Name"),
            sfn.JsonPath.string_at("$.Definition.Arn"),
            SEGMENT_NAME,
            sfn.JsonPath.string_at("$.Outcome.Uploaded"),
            sfn.JsonPath.string_at("$.Upload.Members"),
            sfn.JsonPath.string_at("$.Upload.MembersRemoved"),
            sfn.JsonPath.string_at("$.Outcome.Failed"),
            sfn.JsonPath.string_at("$.Upload.UsersWithoutContact"),
            sfn.JsonPath.string_at("$.Upload.UserCount"),
            sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.Upload.SampleUsersWithoutContact")),
            sfn.JsonPath.string_at("$.Upload.FileCount"),
            UPLOAD_JOB_ID,
        ]
        summary_format = (
            "Customer Profiles segment {} ({}) updated from {}: {} profiles uploaded ({} members, {} removed "
            "members set to false), {} failed. {} of {} users have no contact data (first ones: {}). "
            "{} upload jobs, the last {}."
        )
        self.succeeded = self._reports.report(
            "Succeeded",
            "Report the updated segment",
            {
                **_job_outcome(),
                "Status": "SUCCEEDED",
                "Message": sfn.JsonPath.format(summary_format, *summary),
            },
        )
        partial_reason = sfn.JsonPath.format(
            "{} records failed ({})",
            sfn.JsonPath.string_at("$.Outcome.Failed"),
            sfn.JsonPath.string_at("$.Outcome.StatusReason"),
        )
        self.partial = self._reports.report(
            "Partial",
            "Report the partial upload",
            {
                **_job_outcome(),
                "Status": "PARTIALLY_SUCCEEDED",
                "FailureReason": partial_reason,
                "Message": sfn.JsonPath.format("PARTIAL upload: " + summary_format, *summary),
            },
        )

    def _failures(self, settings: WorkflowSettings) -> None:
        """The upload job failed, or did not finish in time."""
        job_failed_reason = sfn.JsonPath.format(
            "upload job {} ended {}: {}",
            UPLOAD_JOB_ID,
            sfn.JsonPath.string_at("$.Outcome.Status"),
            sfn.JsonPath.string_at("$.Outcome.StatusReason"),
        )
        self.job_failed = self._reports.failed(
            "Job failed",
            "Report the failed upload job",
            error=UPLOAD_FAILED,
            reason=job_failed_reason,
            fields=_job_outcome(),
        )
        timeout_reason = not_finished(
            "upload job", UPLOAD_JOB_ID, settings.upload_schedule, may_complete_in="Customer Profiles"
        )
        self.timed_out = self._reports.failed(
            "Job timed out",
            "Report the upload job that never finished",
            error="CustomerProfiles.UploadTimedOut",
            reason=timeout_reason,
            fields={
                **_upload_counts(),
                "SegmentDefinitionArn": sfn.JsonPath.string_at("$.Definition.Arn"),
                "UploadJobId": UPLOAD_JOB_ID,
            },
        )


def _upload_counts() -> dict[str, Any]:
    """Report fields the upload file's Lambda counted."""
    return {
        "UserCount": sfn.JsonPath.number_at("$.Upload.UserCount"),
        "UsersWithoutContact": sfn.JsonPath.number_at("$.Upload.UsersWithoutContact"),
        "MembersRemoved": sfn.JsonPath.number_at("$.Upload.MembersRemoved"),
        "SegmentDefinitionName": sfn.JsonPath.string_at("$.Upload.Definition.Name"),
    }


def _job_outcome() -> dict[str, Any]:
    """Report fields of an upload job that ended."""
    return {
        **_upload_counts(),
        "SegmentDefinitionArn": sfn.JsonPath.string_at("$.Definition.Arn"),
        "UploadJobId": UPLOAD_JOB_ID,
        "ProfilesUploaded": sfn.JsonPath.number_at("$.Outcome.Uploaded"),
        "ProfilesFailed": sfn.JsonPath.number_at("$.Outcome.Failed"),
    }


def _tail(
    scope: Construct, *, state_objects_arn: str, bus: events.IEventBus, topic: sns.ITopic
) -> sfn.IChainable:
    """Remove the upload file if there is one, then publish, email and end as the report says."""
    publish = report_outcome(
        scope,
        "upload",
        bus=bus,
        topic=topic,
        detail_type=CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE,
        detail_keys=DETAIL_KEYS,
        subject="Customer Profiles segment upload",
    )
    remove = STATE_FILES.call(
        scope,
        "Remove upload file",
        state_name="Remove the upload file",
        action="deleteObjects",
        iam_action="s3:DeleteObject",
        resources=[state_objects_arn],
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
            "Delete": {"Objects": sfn.JsonPath.list_at("$.Upload.RunFiles"), "Quiet": True},
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    # The upload file holds contact data: remove it whatever happened; a failed removal must not hide the
    # outcome (the bucket's lifecycle expires the noncurrent version).
    remove.add_catch(publish, result_path="$.RemoveError")
    remove.next(publish)
    return (
        sfn.Choice(scope, "Wrote files", state_name="Is there an upload file to remove?")
        .when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.Upload.PendingKey"),
                sfn.Condition.not_(sfn.Condition.string_equals("$.Upload.PendingKey", "")),
            ),
            remove,
        )
        .otherwise(publish)
    )
