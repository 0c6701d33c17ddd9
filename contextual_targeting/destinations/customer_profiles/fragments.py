"""The steps of the Customer Profiles upload workflow, in the order an execution takes them.

Each step is a `StateMachineFragment`: its start state is where the step begins, its end states lead to the
next step; every other way out goes to a report of `UploadOutcomes`. Steps that end in a Choice end in a
`ChoiceExit`, so `a.next(b)` reads the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry, lambda_task
from contextual_targeting.destinations.customer_profiles.outcomes import (
    SEGMENT_NAME,
    UPLOAD_JOB_ID,
    UploadOutcomes,
)
from contextual_targeting.destinations.customer_profiles.workflow_inputs import (
    STATE_FILES,
    ProfilesTarget,
    WorkflowFunctions,
    WorkflowSettings,
)
from contextual_targeting.destinations.kit import (
    WAY_ON,
    ChoiceExit,
    Step,
    count_and_wait,
    merge_defaults,
    poll_job,
    until_or_give_up,
)

DEFINITION_NOT_FOUND = ["CustomerProfiles.ResourceNotFoundException"]
# The upload file's unique key column: one profile per user id (upload_file.HEADER_USER_ID).
UNIQUE_KEY = "UserId"
# GetUploadJob omits ResultsSummary (and its members) until the job has counted something: the workflow
# carries these defaults from its first state (`$.Defaults`) and merges the answers over them.
RESULTS_DEFAULTS = {"CreatedRecords": 0, "UpdatedRecords": 0, "FailedRecords": 0}
JOB_DEFAULTS = {"ResultsSummary": RESULTS_DEFAULTS, "StatusReason": "none given"}
UPLOAD_ENDED = ("SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True, kw_only=True)
class Upload:
    """What the steps of one upload workflow work with."""

    target: ProfilesTarget
    """The domain and its API."""
    functions: WorkflowFunctions
    """The Lambdas."""
    settings: WorkflowSettings
    """The bounds."""
    state_objects_arn: str
    """Member and upload files (the state prefix of the data bucket)."""
    outcomes: UploadOutcomes
    """The reports every way out leads to."""


class SlotGate(Step):
    """Ask for an upload slot once a minute; go on when one is free, report after `slot_checks` asks."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        settings = upload.settings
        ask = lambda_task(
            self,
            "Ask for slot",
            state_name="Ask for an upload slot",
            function=upload.functions.gate,
            payload={
                "StateMachineArn": sfn.JsonPath.state_machine_id,
                "ExecutionArn": sfn.JsonPath.execution_id,
                "StartTime": sfn.JsonPath.execution_start_time,
                "Limit": settings.max_concurrent_uploads,
                "ExecutionName": sfn.JsonPath.execution_name,
            },
            result_selector={
                "Ahead": sfn.JsonPath.number_at("$.Ahead"),
                "Proceed": sfn.JsonPath.string_at("$.Proceed"),
            },
            result_path="$.Slot.Answer",
        )
        ask.add_catch(
            upload.outcomes.call_failed("Slot call failed", "Report the failed slot request"),
            result_path="$.Error",
        )
        slot_free = sfn.Choice(self, "Slot free", state_name="Is an upload slot free?")
        self._ends = until_or_give_up(
            slot_free,
            until=[(sfn.Condition.boolean_equals("$.Slot.Answer.Proceed", True), WAY_ON)],
            attempt="$.Slot.Attempt",
            limit=settings.slot_checks,
            gave_up=upload.outcomes.no_slot,
            again=count_and_wait(
                self,
                "$.Slot.Attempt",
                count=("Count slot request", "Count the slot requests"),
                wait=("Wait for slot", "Wait for an upload slot"),
                every=cdk.Duration.minutes(1),
            ).next(ask),
        )
        ask.next(slot_free)
        self._start = ask


class WriteUploadFile(Step):
    """Join the segment with the contact file and the previous members; go on when anyone can be uploaded."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        outcomes = upload.outcomes
        strings = ("Bucket", "PendingKey", "MembersKey", "ContactsKey", "Definition")
        numbers = ("UserCount", "Members", "UsersWithoutContact", "MembersRemoved", "Rows", "FileCount")
        lists = ("SampleUsersWithoutContact", "Files", "RunFiles")
        write = lambda_task(
            self,
            "Write upload file",
            state_name="Write the upload file",
            function=upload.functions.upload_file,
            payload={
                "Bucket": sfn.JsonPath.string_at("$.Segment.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Segment.Key"),
                "SegmentName": SEGMENT_NAME,
                "Query": sfn.JsonPath.string_at("$.Segment.Query"),
                "DatasetGroupName": sfn.JsonPath.string_at("$.Segment.DatasetGroupName"),
                "RunId": sfn.JsonPath.execution_name,
                "ExecutionName": sfn.JsonPath.execution_name,
            },
            result_selector={key: sfn.JsonPath.string_at(f"$.{key}") for key in strings}
            | {key: sfn.JsonPath.number_at(f"$.{key}") for key in numbers}
            | {key: sfn.JsonPath.list_at(f"$.{key}") for key in lists},
            result_path="$.Upload",
        )
        write.add_catch(
            outcomes.call_failed("Write call failed", "Report the unwritable upload file"),
            result_path="$.Error",
        )
        uploadable = sfn.Choice(self, "Uploadable", state_name="Does any member have contact data?")
        write.next(uploadable)
        self._start = write
        self._ends = [
            ChoiceExit(
                uploadable,
                [
                    (sfn.Condition.number_greater_than("$.Upload.Members", 0), WAY_ON),
                    (sfn.Condition.number_equals("$.Upload.UserCount", 0), outcomes.empty),
                ],
                otherwise=outcomes.no_contacts,
            )
        ]


class EnsureSegmentDefinition(Step):
    """Find the query's segment definition, or create it on the first run: its ARN stays the same."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        target, outcomes = upload.target, upload.outcomes
        resources = [target.domain_arn, f"{target.domain_arn}/segment-definitions/*"]
        name = sfn.JsonPath.string_at("$.Upload.Definition.Name")
        find = target.api.call(
            self,
            "Get definition",
            state_name="Find the segment definition",
            action="getSegmentDefinition",
            resources=resources,
            parameters={"SegmentDefinitionName": name},
            result_selector={"Arn": sfn.JsonPath.string_at("$.SegmentDefinitionArn"), "Created": False},
            result_path="$.Definition",
        )
        create = target.api.call(
            self,
            "Create definition",
            state_name="Create the segment definition",
            action="createSegmentDefinition",
            resources=resources,
            parameters={
                "SegmentDefinitionName": name,
                "DisplayName": sfn.JsonPath.string_at("$.Upload.Definition.DisplayName"),
                "Description": sfn.JsonPath.string_at("$.Upload.Definition.Description"),
                "SegmentGroups": sfn.JsonPath.object_at("$.Upload.Definition.SegmentGroups"),
            },
            result_selector={"Arn": sfn.JsonPath.string_at("$.SegmentDefinitionArn"), "Created": True},
            result_path="$.Definition",
        )
        find.add_catch(create, errors=DEFINITION_NOT_FOUND, result_path="$.Error")
        find.add_catch(
            outcomes.call_failed("Definition call failed", "Report the failed segment definition call"),
            result_path="$.Error",
        )
        create.add_catch(
            outcomes.call_failed(
                "Create definition failed", "Report the segment definition that could not be created"
            ),
            result_path="$.Error",
        )
        self._start = find
        self._ends = [create, find]


class StartUploadJob(Step):
    """Take the next upload file; create its upload job, send it the file, start it."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        target = upload.target
        pick = sfn.Pass(
            self,
            "Pick upload file",
            state_name="Take the next upload file",
            parameters={
                "File": sfn.JsonPath.array_get_item(
                    sfn.JsonPath.list_at("$.Upload.Files"), sfn.JsonPath.number_at("$.Progress.Index")
                )
            },
            result_path="$.Current",
        )
        create = target.api.call(
            self,
            "Create upload job",
            state_name="Create the upload job",
            action="createUploadJob",
            resources=[target.domain_arn],
            parameters={
                "DisplayName": SEGMENT_NAME,
                # Only the columns this file has: no mapped cell is ever blank.
                "Fields": sfn.JsonPath.object_at("$.Current.File.Fields"),
                "UniqueKey": UNIQUE_KEY,
                "DataExpiry": target.data_expiry_days,
            },
            result_selector={"JobId": sfn.JsonPath.string_at("$.JobId")},
            result_path="$.Job",
        )
        send = lambda_task(
            self,
            "Send upload file",
            state_name="Send the upload file",
            function=upload.functions.send,
            payload={
                "DomainName": target.domain_name,
                "JobId": UPLOAD_JOB_ID,
                "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Current.File.Key"),
                "ExecutionName": sfn.JsonPath.execution_name,
                "SegmentName": SEGMENT_NAME,
                "DatasetGroupName": sfn.JsonPath.string_at("$.Segment.DatasetGroupName"),
            },
            result_selector={"Bytes": sfn.JsonPath.number_at("$.Bytes")},
            result_path="$.Job.Sent",
        )
        start = target.api.call(
            self,
            "Start upload job",
            state_name="Start the upload job",
            action="startUploadJob",
            resources=[target.domain_arn],
            parameters={"JobId": UPLOAD_JOB_ID},
            result_path=sfn.JsonPath.DISCARD,
        )
        for task, report_id, state_name, job_created in (
            (create, "Job call failed", "Report the upload job that could not be created", False),
            (send, "Send failed", "Report the upload file that could not be sent", True),
            (start, "Start failed", "Report the upload job that could not start", True),
        ):
            task.add_catch(
                upload.outcomes.call_failed(report_id, state_name, job_created=job_created),
                result_path="$.Error",
            )
        pick.next(create).next(send).next(start)
        self._start = pick
        self._ends = [start]


class WaitForUploadJob(Step):
    """Poll the upload job with backoff until it ends; go on when it uploaded (all or some) records."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        target, outcomes = upload.target, upload.outcomes
        check = target.api.call(
            self,
            "Get upload job",
            state_name="Check the upload job",
            action="getUploadJob",
            resources=[target.domain_arn],
            parameters={"JobId": UPLOAD_JOB_ID},
            result_selector={"Job": sfn.JsonPath.object_at("$")},
            result_path="$.Job.Check",
        )
        check.add_catch(
            outcomes.call_failed(
                "Check failed", "Report the upload job that could not be checked", job_created=True
            ),
            result_path="$.Error",
        )
        finished = sfn.Choice(self, "Finished", state_name="How did the upload job end?")
        uploaded = ("SUCCEEDED", "PARTIALLY_SUCCEEDED")
        self._ends = [
            ChoiceExit(
                finished,
                [(sfn.Condition.or_(*(_status_is("$.Outcome.Status", s) for s in uploaded)), WAY_ON)],
                otherwise=outcomes.job_failed,
            )
        ]
        summary = _summarize_job(self).next(finished)
        ended = sfn.Condition.or_(*(_status_is("$.Job.Check.Job.Status", s) for s in UPLOAD_ENDED))
        polling = poll_job(
            self,
            "upload job",
            check=check,
            schedule=upload.settings.upload_schedule,
            outcomes=[(ended, summary)],
            gave_up=outcomes.timed_out,
        )
        self._start = polling.start_state


class NextUploadFile(Step):
    """Add the ended job to the run's totals; take the next upload file, or go on with the totals in
    `$.Outcome` once every file is uploaded."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload, *, again: sfn.IChainable) -> None:
        super().__init__(scope, construct_id)
        progress = sfn.JsonPath.number_at
        add_up = sfn.Pass(
            self,
            "Add up job",
            state_name="Add up the upload job",
            parameters={
                "Index": sfn.JsonPath.math_add(progress("$.Progress.Index"), 1),
                "Uploaded": sfn.JsonPath.math_add(
                    progress("$.Progress.Uploaded"), progress("$.Outcome.Uploaded")
                ),
                "Failed": sfn.JsonPath.math_add(progress("$.Progress.Failed"), progress("$.Outcome.Failed")),
                "Note": sfn.JsonPath.object_at("$.Progress.Note"),
            },
            result_path="$.Progress",
        )
        # A partial job makes the whole run partial; its reason is the one reported.
        note = sfn.Pass(
            self,
            "Note partial job",
            state_name="Note the partial upload job",
            parameters={
                "Status": "PARTIALLY_SUCCEEDED",
                "StatusReason": sfn.JsonPath.string_at("$.Outcome.StatusReason"),
            },
            result_path="$.Progress.Note",
        )
        more = sfn.Choice(self, "More files", state_name="Is there another upload file?")
        total = sfn.Pass(
            self,
            "Total jobs",
            state_name="Total the upload jobs",
            parameters={
                "Uploaded": progress("$.Progress.Uploaded"),
                "Failed": progress("$.Progress.Failed"),
                "Status": sfn.JsonPath.string_at("$.Progress.Note.Status"),
                "StatusReason": sfn.JsonPath.string_at("$.Progress.Note.StatusReason"),
            },
            result_path="$.Outcome",
        )
        add_up.next(
            sfn.Choice(self, "Job partial", state_name="Did every record of this job upload?")
            .when(_status_is("$.Outcome.Status", "PARTIALLY_SUCCEEDED"), note.next(more))
            .otherwise(more)
        )
        more.when(
            sfn.Condition.number_less_than_json_path("$.Progress.Index", "$.Upload.FileCount"), again
        ).otherwise(total)
        self._start = add_up
        self._ends = [total]


class KeepMembers(Step):
    """After an upload: this run's members become the previous members of the next run; then report."""

    def __init__(self, scope: Construct, construct_id: str, upload: Upload) -> None:
        super().__init__(scope, construct_id)
        state_objects_arn, outcomes = upload.state_objects_arn, upload.outcomes
        keep = STATE_FILES.call(
            self,
            "Keep members",
            state_name="Keep the members for the next run",
            action="copyObject",
            iam_action="s3:PutObject",
            resources=[state_objects_arn],
            also_allow=[
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[state_objects_arn]),
                # REPLACE with no tags: the member list must not inherit the run file's expiry tag.
                iam.PolicyStatement(actions=["s3:PutObjectTagging"], resources=[state_objects_arn]),
            ],
            parameters={
                "Bucket": sfn.JsonPath.string_at("$.Upload.Bucket"),
                "CopySource": sfn.JsonPath.format(
                    "{}/{}",
                    sfn.JsonPath.string_at("$.Upload.Bucket"),
                    sfn.JsonPath.string_at("$.Upload.PendingKey"),
                ),
                "Key": sfn.JsonPath.string_at("$.Upload.MembersKey"),
                # The run file carries the expiry tag; the next run's member list must never expire.
                "TaggingDirective": "REPLACE",
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        # A copy is idempotent: retry whatever went wrong before giving up.
        add_sdk_retry(keep, ["States.TaskFailed"], max_attempts=3)
        keep.add_catch(
            outcomes.call_failed(
                "Keep failed", "Report the members that could not be kept", job_created=True
            ),
            result_path="$.Error",
        )
        keep.next(
            sfn.Choice(self, "Which success", state_name="Did every record upload?")
            .when(_status_is("$.Outcome.Status", "PARTIALLY_SUCCEEDED"), outcomes.partial)
            .otherwise(outcomes.succeeded)
        )
        self._start = keep


def _status_is(path: str, status: str) -> sfn.Condition:
    return sfn.Condition.string_equals(path, status)


def _summarize_job(scope: Construct) -> sfn.Chain:
    """Read the ended job's status and counts (`$.Outcome`), its missing members filled from `$.Defaults`."""
    summarize = merge_defaults(
        scope,
        "Summarize job",
        state_name="Summarize the upload job",
        fields={"Job": ("$.Defaults.Job", "$.Job.Check.Job")},
        result_path="$.Summary",
    )
    count = merge_defaults(
        scope,
        "Count records",
        state_name="Count the uploaded records",
        fields={"Counts": ("$.Defaults.Results", "$.Summary.Job.ResultsSummary")},
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
    return summarize.next(count).next(total)
