"""The Customer Profiles destination's workflow: a ready segment -> upload job -> segment definition.

One execution per `Segment Ready` event: wait for an upload slot, write the upload file (join with the contact
file, diff with the previous members), make sure the query's segment definition exists, create the upload job,
send the file, start and poll the job, keep the members for the next run. Every outcome goes through one
`Report` object and one cleanup/publish/email tail, so the event and the email never disagree, and a FAILED
report always fails the execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import LAMBDA_THROTTLED, add_sdk_retry, backoff_schedule
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.destinations.kit import (
    Reports,
    ServiceApi,
    poll_job,
    read_segment_ready,
    report_outcome,
    until_or_give_up,
)

# The SDK service is `customerprofiles`, the IAM prefix `profile`; the errors are those the customer-profiles
# API model declares for throttling and transient faults.
PROFILES = ServiceApi(
    service="customerprofiles",
    iam_prefix="profile",
    retryable=["CustomerProfiles.ThrottlingException", "CustomerProfiles.InternalServerException"],
)
DEFINITION_NOT_FOUND = ["CustomerProfiles.ResourceNotFoundException"]
# The upload file's unique key column: one profile per user id (upload_file.HEADER_USER_ID).
UNIQUE_KEY = "UserId"

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
# GetUploadJob omits ResultsSummary (and its members) until the job has counted something.
_RESULTS_DEFAULTS = {"CreatedRecords": 0, "UpdatedRecords": 0, "FailedRecords": 0}
_JOB_DEFAULTS = {"ResultsSummary": _RESULTS_DEFAULTS, "StatusReason": "none given"}


def upload_schedule(bound: cdk.Duration) -> list[int]:
    """Waits between upload-job checks: uploads of millions of profiles take many minutes, so from 30 s."""
    return backoff_schedule(bound, first=30, cap=600)


@dataclass(frozen=True, kw_only=True)
class ProfilesTarget:
    """The Customer Profiles domain the workflow uploads into, and the upload settings."""

    domain_name: str
    """Name of the Customer Profiles domain."""
    domain_arn: str
    """`arn:<partition>:profile:<region>:<account>:domains/<name>`."""
    data_expiry_days: int
    """Days the uploaded profile data is kept (CreateUploadJob `DataExpiry`)."""

    @property
    def api(self) -> ServiceApi:
        """Customer Profiles calls on this domain."""
        return PROFILES.scoped(DomainName=self.domain_name)


@dataclass(frozen=True, kw_only=True)
class WorkflowFunctions:
    """The Lambdas the workflow invokes."""

    gate: lambda_.IFunction
    """Decides whether an upload slot is free."""
    upload_file: lambda_.IFunction
    """Writes the upload file and the next member file."""
    send: lambda_.IFunction
    """Streams the upload file to the upload job's presigned URL."""


@dataclass(frozen=True, kw_only=True)
class WorkflowSettings:
    """Bounds of the workflow."""

    max_concurrent_uploads: int
    """At most this many executions upload (or wait for their job) at a time."""
    slot_checks: int
    """How many minutes an execution waits for an upload slot, asking once a minute, before giving up."""
    upload_schedule: Sequence[int]
    """Wait seconds before each upload job status check."""


def upload_workflow(
    scope: Construct,
    *,
    target: ProfilesTarget,
    functions: WorkflowFunctions,
    settings: WorkflowSettings,
    state_objects_arn: str,
    bus: events.IEventBus,
    topic: sns.ITopic,
) -> sfn.Chain:
    """Upload workflow: `Segment Ready` in, one Customer Profiles upload job and segment definition out."""
    segment = sfn.JsonPath.string_at("$.Segment.SegmentName")
    definitions_arn = f"{target.domain_arn}/segment-definitions/*"

    # ---- the tail every outcome goes through --------------------------------------------------------------
    publish = report_outcome(
        scope,
        "upload",
        bus=bus,
        topic=topic,
        detail_type=CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE,
        detail_keys=DETAIL_KEYS,
        subject="Customer Profiles segment upload",
    )
    remove = tasks.CallAwsService(
        scope,
        "Remove upload file",
        state_name="Remove the upload file",
        service="s3",
        action="deleteObjects",
        iam_action="s3:DeleteObject",
        iam_resources=[state_objects_arn],
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
            "Delete": {
                "Objects": [
                    {"Key": sfn.JsonPath.string_at("$.Upload.UploadKey")},
                    {"Key": sfn.JsonPath.string_at("$.Upload.PendingKey")},
                ],
                "Quiet": True,
            },
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    # The upload file holds contact data: remove it whatever happened; a failed removal must not hide the
    # outcome (the bucket's lifecycle expires the noncurrent version).
    remove.add_catch(publish, result_path="$.RemoveError")
    remove.next(publish)
    wrote_files = (
        sfn.Choice(scope, "Wrote files", state_name="Is there an upload file to remove?")
        .when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.Upload.UploadKey"),
                sfn.Condition.not_(sfn.Condition.string_equals("$.Upload.UploadKey", "")),
            ),
            remove,
        )
        .otherwise(publish)
    )

    reports = Reports(
        scope,
        tail=wrote_files,
        not_done="Segment {} was not uploaded to Customer Profiles: ",
        subject=[segment],
        base={
            "SegmentName": segment,
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
    report = reports.report

    def call_failed_report(construct_id: str, state_name: str, *, job_created: bool) -> sfn.Chain:
        # Once the upload job exists, its id lets an operator look it up in Customer Profiles.
        job = {"UploadJobId": sfn.JsonPath.string_at("$.Job.JobId")} if job_created else {}
        return reports.call_failed(
            construct_id, state_name, error="CustomerProfiles.UploadFailed", fields=job
        )

    # ---- read the event, wait for a slot -------------------------------------------------------------------
    read = read_segment_ready(
        scope,
        fields=["SegmentName", "Query", "Bucket", "Key", "UserCount", "DatasetGroupName"],
        Defaults={"Job": _JOB_DEFAULTS, "Results": _RESULTS_DEFAULTS},
        Slot={"Attempt": 0},
    )
    ask = tasks.LambdaInvoke(
        scope,
        "Ask for slot",
        state_name="Ask for an upload slot",
        lambda_function=functions.gate,
        payload_response_only=True,
        payload=sfn.TaskInput.from_object(
            {
                "StateMachineArn": sfn.JsonPath.state_machine_id,
                "ExecutionArn": sfn.JsonPath.execution_id,
                "StartTime": sfn.JsonPath.execution_start_time,
                "Limit": settings.max_concurrent_uploads,
            }
        ),
        result_selector={
            "Ahead": sfn.JsonPath.number_at("$.Ahead"),
            "Proceed": sfn.JsonPath.string_at("$.Proceed"),
        },
        result_path="$.Slot.Answer",
    )
    add_sdk_retry(ask, LAMBDA_THROTTLED)
    count_slot = sfn.Pass(
        scope,
        "Count slot request",
        state_name="Count the slot requests",
        parameters={"Attempt": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.Slot.Attempt"), 1)},
        result_path="$.Slot",
    )
    wait_slot = sfn.Wait(
        scope,
        "Wait for slot",
        state_name="Wait for an upload slot",
        time=sfn.WaitTime.duration(cdk.Duration.minutes(1)),
    )
    no_slot_reason = (
        f"no upload slot became free within {settings.slot_checks} minutes "
        f"(at most {settings.max_concurrent_uploads} uploads at a time)"
    )
    no_slot = reports.failed(
        "No slot",
        "Report that no upload slot became free",
        error="CustomerProfiles.NoUploadSlot",
        reason=no_slot_reason,
    )

    # ---- the upload file ---------------------------------------------------------------------------------
    write = tasks.LambdaInvoke(
        scope,
        "Write upload file",
        state_name="Write the upload file",
        lambda_function=functions.upload_file,
        payload_response_only=True,
        payload=sfn.TaskInput.from_object(
            {
                "Bucket": sfn.JsonPath.string_at("$.Segment.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Segment.Key"),
                "SegmentName": segment,
                "Query": sfn.JsonPath.string_at("$.Segment.Query"),
                "DatasetGroupName": sfn.JsonPath.string_at("$.Segment.DatasetGroupName"),
                "RunId": sfn.JsonPath.execution_name,
            }
        ),
        result_selector={
            key: sfn.JsonPath.string_at(f"$.{key}")
            for key in (
                "Bucket",
                "UploadKey",
                "PendingKey",
                "MembersKey",
                "ContactsKey",
                "Definition",
                "Fields",
            )
        }
        | {
            key: sfn.JsonPath.number_at(f"$.{key}")
            for key in ("UserCount", "Members", "UsersWithoutContact", "MembersRemoved", "Rows")
        }
        | {"SampleUsersWithoutContact": sfn.JsonPath.list_at("$.SampleUsersWithoutContact")},
        result_path="$.Upload",
    )
    add_sdk_retry(write, LAMBDA_THROTTLED)
    upload_counts = {
        "UserCount": sfn.JsonPath.number_at("$.Upload.UserCount"),
        "UsersWithoutContact": sfn.JsonPath.number_at("$.Upload.UsersWithoutContact"),
        "MembersRemoved": sfn.JsonPath.number_at("$.Upload.MembersRemoved"),
        "SegmentDefinitionName": sfn.JsonPath.string_at("$.Upload.Definition.Name"),
    }
    empty = reports.rejected(
        "Empty segment",
        "Report the empty segment",
        reason="the segment file lists no user",
        fields=upload_counts,
    )
    no_contact_reason = sfn.JsonPath.format(
        "none of the {} users has contact data in {}",
        sfn.JsonPath.string_at("$.Upload.UserCount"),
        sfn.JsonPath.string_at("$.Upload.ContactsKey"),
    )
    no_contacts = reports.rejected(
        "No contacts",
        "Report the segment without contact data",
        reason=no_contact_reason,
        fields=upload_counts,
    )
    uploadable = sfn.Choice(scope, "Uploadable", state_name="Does any member have contact data?")

    # ---- the segment definition: created once per query, then reused ---------------------------------------
    definition_name = sfn.JsonPath.string_at("$.Upload.Definition.Name")
    find = target.api.call(
        scope,
        "Get definition",
        state_name="Find the segment definition",
        action="getSegmentDefinition",
        resources=[target.domain_arn, definitions_arn],
        parameters={"SegmentDefinitionName": definition_name},
        result_selector={"Arn": sfn.JsonPath.string_at("$.SegmentDefinitionArn"), "Created": False},
        result_path="$.Definition",
    )
    create = target.api.call(
        scope,
        "Create definition",
        state_name="Create the segment definition",
        action="createSegmentDefinition",
        resources=[target.domain_arn, definitions_arn],
        parameters={
            "SegmentDefinitionName": definition_name,
            "DisplayName": sfn.JsonPath.string_at("$.Upload.Definition.DisplayName"),
            "Description": sfn.JsonPath.string_at("$.Upload.Definition.Description"),
            "SegmentGroups": sfn.JsonPath.object_at("$.Upload.Definition.SegmentGroups"),
        },
        result_selector={"Arn": sfn.JsonPath.string_at("$.SegmentDefinitionArn"), "Created": True},
        result_path="$.Definition",
    )
    find.add_catch(create, errors=DEFINITION_NOT_FOUND, result_path="$.Error")

    # ---- the upload job ----------------------------------------------------------------------------------
    job_id = sfn.JsonPath.string_at("$.Job.JobId")
    create_job = target.api.call(
        scope,
        "Create upload job",
        state_name="Create the upload job",
        action="createUploadJob",
        resources=[target.domain_arn],
        parameters={
            "DisplayName": segment,
            "Fields": sfn.JsonPath.object_at("$.Upload.Fields"),
            "UniqueKey": UNIQUE_KEY,
            "DataExpiry": target.data_expiry_days,
        },
        result_selector={"JobId": sfn.JsonPath.string_at("$.JobId")},
        result_path="$.Job",
    )
    send = tasks.LambdaInvoke(
        scope,
        "Send upload file",
        state_name="Send the upload file",
        lambda_function=functions.send,
        payload_response_only=True,
        payload=sfn.TaskInput.from_object(
            {
                "DomainName": target.domain_name,
                "JobId": job_id,
                "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Upload.UploadKey"),
            }
        ),
        result_selector={"Bytes": sfn.JsonPath.number_at("$.Bytes")},
        result_path="$.Job.Sent",
    )
    add_sdk_retry(send, LAMBDA_THROTTLED)
    start_job = target.api.call(
        scope,
        "Start upload job",
        state_name="Start the upload job",
        action="startUploadJob",
        resources=[target.domain_arn],
        parameters={"JobId": job_id},
        result_path=sfn.JsonPath.DISCARD,
    )
    check = target.api.call(
        scope,
        "Get upload job",
        state_name="Check the upload job",
        action="getUploadJob",
        resources=[target.domain_arn],
        parameters={"JobId": job_id},
        result_selector={"Job": sfn.JsonPath.object_at("$")},
        result_path="$.Job.Check",
    )
    summarize = sfn.Pass(
        scope,
        "Summarize job",
        state_name="Summarize the upload job",
        parameters={
            "Job": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Defaults.Job"), sfn.JsonPath.object_at("$.Job.Check.Job")
            )
        },
        result_path="$.Summary",
    )
    count = sfn.Pass(
        scope,
        "Count records",
        state_name="Count the uploaded records",
        parameters={
            "Counts": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Defaults.Results"),
                sfn.JsonPath.object_at("$.Summary.Job.ResultsSummary"),
            ),
        },
        result_path="$.Summary.Results",
    )
    total = sfn.Pass(
        scope,
        "Total records",
        state_name="Add up the uploaded profiles",
        parameters={
            "Uploaded": sfn.JsonPath.math_add(
                sfn.JsonPath.number_at("$.Summary.Results.Counts.CreatedRecords"),
                sfn.JsonPath.number_at("$.Summary.Results.Counts.UpdatedRecords"),
            ),
            "Failed": sfn.JsonPath.number_at("$.Summary.Results.Counts.FailedRecords"),
            "Status": sfn.JsonPath.string_at("$.Summary.Job.Status"),
            "StatusReason": sfn.JsonPath.string_at("$.Summary.Job.StatusReason"),
        },
        result_path="$.Outcome",
    )
    outcome_fields = {
        **upload_counts,
        "SegmentDefinitionArn": sfn.JsonPath.string_at("$.Definition.Arn"),
        "UploadJobId": job_id,
        "ProfilesUploaded": sfn.JsonPath.number_at("$.Outcome.Uploaded"),
        "ProfilesFailed": sfn.JsonPath.number_at("$.Outcome.Failed"),
    }
    summary_text = [
        sfn.JsonPath.string_at("$.Upload.Definition.Name"),
        sfn.JsonPath.string_at("$.Definition.Arn"),
        segment,
        sfn.JsonPath.string_at("$.Outcome.Uploaded"),
        sfn.JsonPath.string_at("$.Upload.Members"),
        sfn.JsonPath.string_at("$.Upload.MembersRemoved"),
        sfn.JsonPath.string_at("$.Outcome.Failed"),
        sfn.JsonPath.string_at("$.Upload.UsersWithoutContact"),
        sfn.JsonPath.string_at("$.Upload.UserCount"),
        sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.Upload.SampleUsersWithoutContact")),
        job_id,
    ]
    summary_format = (
        "Customer Profiles segment {} ({}) updated from {}: {} profiles uploaded ({} members, {} removed "
        "members set to false), {} failed. {} of {} users have no contact data (first ones: {}). "
        "Upload job {}."
    )
    succeeded = report(
        "Succeeded",
        "Report the updated segment",
        {
            **outcome_fields,
            "Status": "SUCCEEDED",
            "Message": sfn.JsonPath.format(summary_format, *summary_text),
        },
    )
    partial_reason = sfn.JsonPath.format(
        "{} records failed ({})",
        sfn.JsonPath.string_at("$.Outcome.Failed"),
        sfn.JsonPath.string_at("$.Outcome.StatusReason"),
    )
    partial = report(
        "Partial",
        "Report the partial upload",
        {
            **outcome_fields,
            "Status": "PARTIALLY_SUCCEEDED",
            "FailureReason": partial_reason,
            "Message": sfn.JsonPath.format("PARTIAL upload: " + summary_format, *summary_text),
        },
    )
    job_failed_reason = sfn.JsonPath.format(
        "upload job {} ended {}: {}",
        job_id,
        sfn.JsonPath.string_at("$.Outcome.Status"),
        sfn.JsonPath.string_at("$.Outcome.StatusReason"),
    )
    job_failed = reports.failed(
        "Job failed",
        "Report the failed upload job",
        error="CustomerProfiles.UploadFailed",
        reason=job_failed_reason,
        fields=outcome_fields,
    )
    timeout_reason = sfn.JsonPath.format(
        f"upload job {{}} did not finish within {sum(settings.upload_schedule)} seconds; "
        "it may still complete in Customer Profiles",
        job_id,
    )
    timed_out = reports.failed(
        "Job timed out",
        "Report the upload job that never finished",
        error="CustomerProfiles.UploadTimedOut",
        reason=timeout_reason,
        fields={
            **upload_counts,
            "SegmentDefinitionArn": sfn.JsonPath.string_at("$.Definition.Arn"),
            "UploadJobId": job_id,
        },
    )

    # ---- after success: this run's members become the previous members of the next run --------------------
    keep_members = tasks.CallAwsService(
        scope,
        "Keep members",
        state_name="Keep the members for the next run",
        service="s3",
        action="copyObject",
        iam_action="s3:PutObject",
        iam_resources=[state_objects_arn],
        additional_iam_statements=[
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[state_objects_arn])
        ],
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
            "CopySource": sfn.JsonPath.format(
                "{}/{}",
                sfn.JsonPath.string_at("$.Upload.Bucket"),
                sfn.JsonPath.string_at("$.Upload.PendingKey"),
            ),
            "Key": sfn.JsonPath.string_at("$.Upload.MembersKey"),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    # A copy is idempotent: retry whatever went wrong before giving up.
    add_sdk_retry(keep_members, ["States.TaskFailed"], max_attempts=3)
    keep_partial = sfn.Choice(scope, "Which success", state_name="Did every record upload?")
    keep_members.next(keep_partial)
    keep_partial.when(sfn.Condition.string_equals("$.Outcome.Status", "PARTIALLY_SUCCEEDED"), partial)
    keep_partial.otherwise(succeeded)

    # ---- polling -----------------------------------------------------------------------------------------
    finished = sfn.Choice(scope, "Finished", state_name="How did the upload job end?")
    finished.when(
        sfn.Condition.or_(
            sfn.Condition.string_equals("$.Outcome.Status", "SUCCEEDED"),
            sfn.Condition.string_equals("$.Outcome.Status", "PARTIALLY_SUCCEEDED"),
        ),
        keep_members,
    )
    finished.otherwise(job_failed)
    summarize.next(count).next(total).next(finished)
    status = "$.Job.Check.Job.Status"
    polling = poll_job(
        scope,
        "upload job",
        check=check,
        schedule=settings.upload_schedule,
        outcomes=[
            (
                sfn.Condition.or_(
                    *(
                        sfn.Condition.string_equals(status, s)
                        for s in ("SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "STOPPED")
                    )
                ),
                summarize,
            )
        ],
        gave_up=timed_out,
    )

    # ---- wiring ------------------------------------------------------------------------------------------
    for task, construct_id, state_name, job_created in (
        (ask, "Slot call failed", "Report the failed slot request", False),
        (write, "Write call failed", "Report the unwritable upload file", False),
        (find, "Definition call failed", "Report the failed segment definition call", False),
        (
            create,
            "Create definition failed",
            "Report the segment definition that could not be created",
            False,
        ),
        (create_job, "Job call failed", "Report the upload job that could not be created", False),
        (send, "Send failed", "Report the upload file that could not be sent", True),
        (start_job, "Start failed", "Report the upload job that could not start", True),
        (check, "Check failed", "Report the upload job that could not be checked", True),
        (keep_members, "Keep failed", "Report the members that could not be kept", True),
    ):
        task.add_catch(
            call_failed_report(construct_id, state_name, job_created=job_created), result_path="$.Error"
        )
    slot_free = sfn.Choice(scope, "Slot free", state_name="Is an upload slot free?")
    until_or_give_up(
        slot_free,
        until=[(sfn.Condition.boolean_equals("$.Slot.Answer.Proceed", True), write)],
        attempt="$.Slot.Attempt",
        limit=settings.slot_checks,
        gave_up=no_slot,
        again=count_slot.next(wait_slot).next(ask),
    )
    uploadable.when(sfn.Condition.number_greater_than("$.Upload.Members", 0), find)
    uploadable.when(sfn.Condition.number_equals("$.Upload.UserCount", 0), empty)
    uploadable.otherwise(no_contacts)
    write.next(uploadable)
    create.next(create_job)
    find.next(create_job)
    create_job.next(send).next(start_job).next(polling)
    return read.next(ask).next(slot_free)
