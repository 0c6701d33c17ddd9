"""The Customer Profiles upload workflow run locally (local harness) against scripted answers and moto S3.

The upload-file state runs the real Lambda code against moto, so a run covers the definition and the join/diff
together; Customer Profiles, the gate, the send Lambda, EventBridge and SNS are scripted. S3 SDK tasks (copy,
delete) are applied to moto too, so a second run sees what the first one kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import botocore.session
import pytest
from aws_cdk.assertions import Template
from moto import mock_aws

from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.destinations.customer_profiles.importer import (
    DEFAULT_SLOT_TIMEOUT,
)
from contextual_targeting.destinations.customer_profiles.workflow import upload_schedule
from contextual_targeting.local import Outbox
from contextual_targeting.local.harness import (
    AwsError,
    Execution,
    TaskCall,
    definition_from_template,
    run_workflow,
    script,
)
from tests.destinations.customer_profiles.test_importer import probe
from tests.destinations.customer_profiles.test_lambdas import (
    COLUMNS,
    EVENTS,
    STATE_PREFIX,
    upload_file_handler,
)

pytestmark = pytest.mark.slow

DOMAIN = "amazon-connect-test"
FOLDER = f"{STATE_PREFIX}bingewatch/genres-action/"
DEFINITION_ARN = (
    f"arn:aws:profile:eu-central-1:123456789012:domains/{DOMAIN}/segment-definitions/bingewatch-genres-action"
)
JOB_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def template() -> Template:
    """Template of the bare stack."""
    return Template.from_stack(probe()[0])


@pytest.fixture(scope="module")
def definition(template: Template) -> dict[str, Any]:
    """The upload workflow's runnable definition, the created domain named DOMAIN."""
    return definition_from_template(
        template.to_json(), "CustomerProfilesUploadWorkflow", {"CustomerProfilesDomain": DOMAIN}
    )


@pytest.fixture
def s3_client() -> Iterator[Any]:
    """moto S3 with the data bucket, the sample segment and the training users file."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        key = json.loads((EVENTS / "segment_ready.json").read_text())["detail"]["Key"]
        client.put_object(Bucket="data-bucket", Key=key, Body=(EVENTS / "segment.csv").read_bytes())
        client.put_object(
            Bucket="data-bucket", Key="train/bingewatch/users.csv", Body=(EVENTS / "users.csv").read_bytes()
        )
        yield client


def s3_handlers(client: Any) -> dict[str, Callable[[TaskCall], Any]]:
    """CopyObject and DeleteObjects applied to moto, as the aws-sdk integration would."""

    def copy(call: TaskCall) -> Any:
        p = call.parameters
        source_bucket, _, source_key = p["CopySource"].partition("/")
        client.copy_object(
            Bucket=p["Bucket"],
            Key=p["Key"],
            CopySource={"Bucket": source_bucket, "Key": source_key},
            TaggingDirective=p.get("TaggingDirective", "COPY"),
        )
        return {"CopyObjectResult": {}}

    def delete(call: TaskCall) -> Any:
        p = call.parameters
        client.delete_objects(Bucket=p["Bucket"], Delete=p["Delete"])
        return {"Deleted": p["Delete"]["Objects"]}

    return {"aws-sdk:s3:copyObject": copy, "aws-sdk:s3:deleteObjects": delete}


def real_upload_file(client: Any) -> Callable[[TaskCall], Any]:
    """The upload-file Lambda's code against moto."""
    return lambda call: upload_file_handler.build_upload(
        call.parameters,
        client,
        state_prefix=STATE_PREFIX,
        contacts_key="train/{dataset_group}/users.csv",
        columns=COLUMNS,
    )


def job_status(*answers: dict[str, Any] | str) -> Callable[[TaskCall], Any]:
    """GetUploadJob answering in order (a status or a full answer), then the last answer forever."""
    seen: list[Any] = []

    def get(call: TaskCall) -> Any:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(answer)
        job = {"Status": answer} if isinstance(answer, str) else answer
        return {"JobId": JOB_ID, "DisplayName": "x", "UniqueKey": "UserId", **job}

    return get


SUCCEEDED = {
    "Status": "SUCCEEDED",
    "ResultsSummary": {"CreatedRecords": 2, "UpdatedRecords": 1, "FailedRecords": 0},
}
NOT_FOUND = AwsError("CustomerProfiles.ResourceNotFoundException", "Segment definition not found")


def run(
    definition: dict[str, Any], client: Any, outbox: Outbox, run_id: str = "run-1", /, **handlers: Any
) -> Execution:
    """Run the workflow on the sample `Segment Ready` event with default answers, overridable per call."""
    scripted: dict[str, Any] = {
        **outbox.handlers(),
        **s3_handlers(client),
        "Ask for an upload slot": {"Proceed": True, "Ahead": 0},
        "Write the upload file": real_upload_file(client),
        "aws-sdk:customerprofiles:getSegmentDefinition": NOT_FOUND,
        "aws-sdk:customerprofiles:createSegmentDefinition": {
            "SegmentDefinitionName": "bingewatch-genres-action",
            "SegmentDefinitionArn": DEFINITION_ARN,
        },
        "aws-sdk:customerprofiles:createUploadJob": {"JobId": JOB_ID},
        "Send the upload file": {"Bytes": 123, "HttpStatus": 200},
        "aws-sdk:customerprofiles:startUploadJob": {},
        "aws-sdk:customerprofiles:getUploadJob": job_status("CREATED", "IN_PROGRESS", SUCCEEDED),
        **handlers,
    }
    event = json.loads((EVENTS / "segment_ready.json").read_text())
    return run_workflow(definition, event, scripted, context={"Execution": {"Name": run_id}})


def keys(client: Any) -> list[str]:
    """Every key under the state prefix."""
    return [
        o["Key"]
        for o in client.list_objects_v2(Bucket="data-bucket", Prefix=STATE_PREFIX).get("Contents", [])
    ]


def test_first_run_creates_the_definition_uploads_and_keeps_the_members(
    definition: dict[str, Any], s3_client: Any
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(definition, s3_client, outbox)
    assert execution.status == "SUCCEEDED", execution.summary()
    # The definition was looked up, not found, and created with the attribute the upload sets.
    create = execution.calls_to("aws-sdk:customerprofiles:createSegmentDefinition")[0].parameters
    assert create["DomainName"] == DOMAIN
    assert create["SegmentDefinitionName"] == "bingewatch-genres-action"
    attributes = create["SegmentGroups"]["Groups"][0]["Dimensions"][0]["ProfileAttributes"]["Attributes"]
    assert attributes == {
        "segment_bingewatch_genres_action": {"DimensionType": "INCLUSIVE", "Values": ["true"]}
    }
    job = execution.calls_to("aws-sdk:customerprofiles:createUploadJob")[0].parameters
    assert job["UniqueKey"] == "UserId"
    assert job["DataExpiry"] == 14
    assert job["DisplayName"] == "bingewatch-genres-action-genres-20261128T101500"
    assert job["Fields"]["Member"]["Target"] == "_profile.Attributes.segment_bingewatch_genres_action"
    # The send Lambda gets the job and the file, never a token; the job is started after the file is sent.
    send = execution.calls_to("Send the upload file")[0].parameters
    assert send == {
        "DomainName": DOMAIN,
        "JobId": JOB_ID,
        "Bucket": "data-bucket",
        "Key": f"{FOLDER}runs/run-1/upload-email-1.csv",
        "ExecutionName": "run-1",
        "SegmentName": "bingewatch-genres-action-genres-20261128T101500",
        "DatasetGroupName": "bingewatch",
    }
    order = [c.state for c in execution.calls if c.state.startswith(("Send", "Start", "Check"))]
    assert order[:3] == ["Send the upload file", "Start the upload job", "Check the upload job"]
    assert execution.calls_to("aws-sdk:customerprofiles:startUploadJob")[0].parameters == {
        "DomainName": DOMAIN,
        "JobId": JOB_ID,
    }
    # The members are kept for the next run; the run's upload and pending files are gone.
    assert keys(s3_client) == [f"{FOLDER}members.csv"]
    body = s3_client.get_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv")["Body"].read()
    assert body.decode().splitlines() == ["UserId", "1", "3", '"a,b"']
    assert outbox.detail == {
        "SegmentName": "bingewatch-genres-action-genres-20261128T101500",
        "SegmentDefinitionName": "bingewatch-genres-action",
        "SegmentDefinitionArn": DEFINITION_ARN,
        "UploadJobId": JOB_ID,
        "Status": "SUCCEEDED",
        "UserCount": 4,
        "ProfilesUploaded": 3,
        "ProfilesFailed": 0,
        "UsersWithoutContact": 1,
        "MembersRemoved": 0,
        "FailureReason": "",
    }
    (email,) = outbox.emails
    assert "3 profiles uploaded (3 members, 0 removed members set to false)" in email["Message"]
    assert '1 of 4 users have no contact data (first ones: ["404"])' in email["Message"]
    assert execution.output["Status"] == "SUCCEEDED"
    assert execution.max_payload_bytes < 16 * 1024  # user lists and contact data never enter the payload


def test_second_run_reuses_the_definition_and_sets_dropped_members_false(
    definition: dict[str, Any], s3_client: Any
) -> None:
    # GIVEN a first run whose members were 1, 2 and 3
    s3_client.put_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv", Body=b"UserId\n1\n2\n3\n")
    uploaded: list[str] = []

    def send(call: TaskCall) -> Any:
        body = s3_client.get_object(Bucket=call.parameters["Bucket"], Key=call.parameters["Key"])[
            "Body"
        ].read()
        uploaded.extend(body.decode().splitlines())
        return {"Bytes": len(body), "HttpStatus": 200}

    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    # WHEN the next run finds the definition
    execution = run(
        definition,
        s3_client,
        outbox,
        "run-2",
        **{
            "aws-sdk:customerprofiles:getSegmentDefinition": {
                "SegmentDefinitionName": "bingewatch-genres-action",
                "SegmentDefinitionArn": DEFINITION_ARN,
            },
            "aws-sdk:customerprofiles:createSegmentDefinition": script(),  # must not be called
            "Send the upload file": send,
        },
    )
    # THEN it is reused, user 2 (dropped) is uploaded as false, and the member file follows the new segment
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.calls_to("aws-sdk:customerprofiles:createSegmentDefinition") == []
    assert "1,success+1@simulator.amazonses.com,true" in uploaded
    # The membership change goes up in a job of its own, mapping the key and the flag only: no blank cells.
    assert uploaded[-2:] == ["UserId,Member", "2,false"]
    jobs = [c.parameters for c in execution.calls_to("aws-sdk:customerprofiles:createUploadJob")]
    assert [list(job["Fields"]) for job in jobs] == [["UserId", "Email", "Member"], ["UserId", "Member"]]
    assert len(execution.calls_to("aws-sdk:customerprofiles:startUploadJob")) == 2
    assert outbox.detail["ProfilesUploaded"] == 6  # both jobs' counts (3 each in the scripted answer)
    assert "2 upload jobs, the last" in outbox.emails[0]["Message"]
    assert outbox.detail["MembersRemoved"] == 1
    assert outbox.detail["SegmentDefinitionArn"] == DEFINITION_ARN
    body = s3_client.get_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv")["Body"].read()
    assert body.decode().splitlines() == ["UserId", "1", "3", '"a,b"']


def test_partially_succeeded_is_reported_with_counts(definition: dict[str, Any], s3_client: Any) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    partial = {
        "Status": "PARTIALLY_SUCCEEDED",
        "StatusReason": "VALIDATION_FAILURE",
        "ResultsSummary": {"CreatedRecords": 2, "FailedRecords": 1},  # UpdatedRecords omitted
    }
    execution = run(
        definition,
        s3_client,
        outbox,
        **{"aws-sdk:customerprofiles:getUploadJob": job_status("IN_PROGRESS", partial)},
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    detail = outbox.detail
    assert (detail["Status"], detail["ProfilesUploaded"], detail["ProfilesFailed"]) == (
        "PARTIALLY_SUCCEEDED",
        2,
        1,
    )
    assert detail["FailureReason"] == "1 records failed (VALIDATION_FAILURE)"
    assert outbox.emails[0]["Message"].startswith("PARTIAL upload")
    assert f"{FOLDER}members.csv" in keys(s3_client)  # the members uploaded are kept


@pytest.mark.parametrize("status", ["FAILED", "STOPPED"])
def test_failed_or_stopped_job_fails_the_execution(
    definition: dict[str, Any], s3_client: Any, status: str
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(
        definition,
        s3_client,
        outbox,
        **{
            "aws-sdk:customerprofiles:getUploadJob": job_status(
                "IN_PROGRESS", {"Status": status, "StatusReason": "VALIDATION_FAILURE"}
            )
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "CustomerProfiles.UploadFailed"
    assert execution.cause == f"upload job {JOB_ID} ended {status}: VALIDATION_FAILURE"
    assert outbox.detail["Status"] == "FAILED"
    assert outbox.detail["ProfilesUploaded"] == 0  # missing counters read as 0
    assert len(outbox.emails) == 1
    # Nothing is kept from a failed run, and the upload file with contact data is removed.
    assert keys(s3_client) == []


def test_throttled_calls_are_retried(definition: dict[str, Any], s3_client: Any) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    throttled = AwsError("CustomerProfiles.ThrottlingException", "Rate exceeded")
    execution = run(
        definition,
        s3_client,
        outbox,
        **{
            "aws-sdk:customerprofiles:createUploadJob": script(throttled, throttled, {"JobId": JOB_ID}),
            "aws-sdk:customerprofiles:getUploadJob": script(throttled, SUCCEEDED),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert len(execution.calls_to("aws-sdk:customerprofiles:createUploadJob")) == 3
    assert execution.elapsed_for("Create the upload job") > 0  # backed off between attempts
    assert outbox.detail["Status"] == "SUCCEEDED"


def test_users_without_contact_data_are_counted(definition: dict[str, Any], s3_client: Any) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    key = json.loads((EVENTS / "segment_ready.json").read_text())["detail"]["Key"]
    s3_client.put_object(Bucket="data-bucket", Key=key, Body=b"UserId\n1\n5\nghost\n")  # 5 has no email
    execution = run(definition, s3_client, outbox)
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail["UsersWithoutContact"] == 2
    assert '2 of 3 users have no contact data (first ones: ["5","ghost"])' in outbox.emails[0]["Message"]


def test_segment_without_contacts_is_rejected_and_nothing_uploaded(
    definition: dict[str, Any], s3_client: Any
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    key = json.loads((EVENTS / "segment_ready.json").read_text())["detail"]["Key"]
    s3_client.put_object(Bucket="data-bucket", Key=key, Body=b"UserId\nghost-1\nghost-2\n")
    execution = run(definition, s3_client, outbox, **{"aws-sdk:customerprofiles:createUploadJob": script()})
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.output["Status"] == "REJECTED"
    assert (
        outbox.detail["FailureReason"] == "none of the 2 users has contact data in train/bingewatch/users.csv"
    )
    assert execution.calls_to("aws-sdk:customerprofiles:createUploadJob") == []
    assert keys(s3_client) == []
    assert len(outbox.emails) == 1


def test_empty_segment_is_rejected(definition: dict[str, Any], s3_client: Any) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    key = json.loads((EVENTS / "segment_ready.json").read_text())["detail"]["Key"]
    s3_client.put_object(Bucket="data-bucket", Key=key, Body=b"UserId\n")
    execution = run(
        definition, s3_client, outbox, **{"aws-sdk:customerprofiles:getSegmentDefinition": script()}
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail["Status"] == "REJECTED"
    assert outbox.detail["FailureReason"] == "the segment file lists no user"


def test_waits_for_a_slot_then_uploads(definition: dict[str, Any], s3_client: Any) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(
        definition,
        s3_client,
        outbox,
        **{
            "Ask for an upload slot": script(
                {"Proceed": False, "Ahead": 2}, {"Proceed": False, "Ahead": 2}, {"Proceed": True, "Ahead": 1}
            )
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.elapsed_for("Wait for an upload slot") == 120
    ask = execution.calls_to("Ask for an upload slot")[0].parameters
    assert ask["Limit"] == 2
    assert ask["StateMachineArn"].endswith(":stateMachine:LocalStateMachine")
    assert ask["ExecutionArn"].endswith(":execution:LocalStateMachine:local-execution")


def test_upload_job_that_never_finishes_fails_within_the_bound(
    definition: dict[str, Any], s3_client: Any
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(
        definition, s3_client, outbox, **{"aws-sdk:customerprofiles:getUploadJob": job_status("IN_PROGRESS")}
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "CustomerProfiles.UploadTimedOut"
    schedule = upload_schedule(cdk.Duration.hours(6))
    assert len(execution.calls_to("Check the upload job")) == len(schedule)
    assert execution.elapsed_for("Wait for the upload job") == sum(schedule)
    assert schedule[:3] == [30, 60, 120]
    assert max(schedule) == 600
    assert outbox.detail["UploadJobId"] == JOB_ID
    assert keys(s3_client) == []


def test_failed_send_fails_the_execution_with_the_lambda_error(
    definition: dict[str, Any], s3_client: Any
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(
        definition,
        s3_client,
        outbox,
        **{
            "Send the upload file": AwsError("UploadRejectedError", "upload URL answered HTTP 403"),
            "aws-sdk:customerprofiles:startUploadJob": script(),
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "CustomerProfiles.UploadFailed"
    assert execution.cause == "UploadRejectedError: upload URL answered HTTP 403"
    assert outbox.detail["Status"] == "FAILED"


SEGMENT = "bingewatch-genres-action-genres-20261128T101500"
PREVIOUS_MEMBERS = b"UserId\n1\n2\n3\n"
KEEP = "Keep the members for the next run"
# The Tasks of the outcome tail: their failures are not reported (they are the reporting).
TAIL_TASKS = {"Remove the upload file", "Publish the upload outcome", "Email the upload outcome"}
# Each Task of the workflow, an error no retrier of it matches, and the state that reports the failure.
TASK_FAILURES = [
    (
        "Ask for an upload slot",
        AwsError("Lambda.ResourceNotFoundException", "Function not found: upload gate"),
        "Report the failed slot request",
    ),
    (
        "Write the upload file",
        AwsError("Lambda.KMSAccessDeniedException", "Lambda was unable to decrypt the environment variables"),
        "Report the unwritable upload file",
    ),
    (
        "Find the segment definition",
        AwsError("CustomerProfiles.AccessDeniedException", "not authorized to perform GetSegmentDefinition"),
        "Report the failed segment definition call",
    ),
    (
        "Create the segment definition",
        AwsError("CustomerProfiles.BadRequestException", "Invalid SegmentGroups"),
        "Report the segment definition that could not be created",
    ),
    (
        "Create the upload job",
        AwsError("CustomerProfiles.BadRequestException", "Invalid Fields"),
        "Report the upload job that could not be created",
    ),
    (
        "Send the upload file",
        AwsError(
            "Lambda.ResourceConflictException", "The function is currently in the following state: Pending"
        ),
        "Report the upload file that could not be sent",
    ),
    (
        "Start the upload job",
        AwsError("CustomerProfiles.BadRequestException", "The upload job is not in CREATED state"),
        "Report the upload job that could not start",
    ),
    (
        "Check the upload job",
        AwsError("CustomerProfiles.ResourceNotFoundException", "Upload job not found"),
        "Report the upload job that could not be checked",
    ),
    (
        KEEP,
        AwsError("S3.NoSuchKeyException", "The specified key does not exist."),
        "Report the members that could not be kept",
    ),
]


def test_every_task_failure_is_caught_by_its_report(definition: dict[str, Any]) -> None:
    caught = {
        name: [c["Next"] for c in state.get("Catch", []) if c["ErrorEquals"] == ["States.ALL"]]
        for name, state in definition["States"].items()
        if state["Type"] == "Task" and name not in TAIL_TASKS
    }
    assert caught == {state: [report] for state, _, report in TASK_FAILURES}


JOB_CREATED_STATES = {
    "Send the upload file",
    "Start the upload job",
    "Check the upload job",
    "Keep the members for the next run",
}


@pytest.mark.parametrize(("state", "error", "report"), TASK_FAILURES, ids=[t[0] for t in TASK_FAILURES])
def test_each_task_failing_with_a_non_retryable_error_is_reported(
    definition: dict[str, Any], s3_client: Any, state: str, error: AwsError, report: str
) -> None:
    # GIVEN the members of a previous run
    members_key = f"{FOLDER}members.csv"
    s3_client.put_object(Bucket="data-bucket", Key=members_key, Body=PREVIOUS_MEMBERS)
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    # WHEN one Task fails with an error no retrier matches, everything else answering as on the happy path
    execution = run(definition, s3_client, outbox, **{state: error})
    # THEN the execution fails naming the call, after one FAILED event and one email that say so
    reason = f"{error.name}: {error.cause}"
    assert execution.status == "FAILED", execution.summary()
    assert (execution.error, execution.cause) == ("CustomerProfiles.UploadFailed", reason)
    detail = outbox.detail
    assert (detail["Status"], detail["FailureReason"], detail["SegmentName"]) == ("FAILED", reason, SEGMENT)
    # Once the upload job exists, the report names it.
    job_created = state in JOB_CREATED_STATES
    assert detail["UploadJobId"] == (JOB_ID if job_created else "")
    (email,) = outbox.emails
    assert email["Message"] == f"Segment {SEGMENT} was not uploaded to Customer Profiles: {reason}"
    # Nothing is done after the failure but the report, removing the upload file (once written), the tail.
    entered = execution.states_entered()
    after = entered[len(entered) - entered[::-1].index(state) :]
    wrote = state not in ("Ask for an upload slot", "Write the upload file")
    assert after == [
        report,
        "Is there an upload file to remove?",
        *(["Remove the upload file"] if wrote else []),
        "Publish the upload outcome",
        "Email the upload outcome",
        "Did the upload fail?",
        "The upload failed",
    ], execution.summary()
    # The member copy retries any error (it is idempotent); the other calls give up at once.
    assert len(execution.calls_to(state)) == (4 if state == KEEP else 1)
    # The previous members stay as they were; the run's upload and pending files are gone.
    assert keys(s3_client) == [members_key]
    assert s3_client.get_object(Bucket="data-bucket", Key=members_key)["Body"].read() == PREVIOUS_MEMBERS


def test_no_upload_slot_within_the_bound_is_reported_and_nothing_uploaded(
    definition: dict[str, Any], s3_client: Any
) -> None:
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    execution = run(
        definition,
        s3_client,
        outbox,
        **{
            "Ask for an upload slot": {"Proceed": False, "Ahead": 5},  # never a free slot
            "Write the upload file": script(),  # must not be called
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "CustomerProfiles.NoUploadSlot"
    minutes = int(DEFAULT_SLOT_TIMEOUT.to_minutes())
    reason = f"no upload slot became free within {minutes} minutes (at most 2 uploads at a time)"
    assert execution.cause == reason
    # It asked once a minute for the whole bound (the construct's default slot timeout), then gave up.
    assert execution.elapsed_for("Wait for an upload slot") == minutes * 60
    assert len(execution.calls_to("Ask for an upload slot")) == minutes + 1
    assert (outbox.detail["Status"], outbox.detail["FailureReason"]) == ("FAILED", reason)
    (email,) = outbox.emails
    assert email["Message"] == f"Segment {SEGMENT} was not uploaded to Customer Profiles: {reason}"
    assert execution.states_entered()[-7:] == [
        "Is an upload slot free?",
        "Report that no upload slot became free",
        "Is there an upload file to remove?",
        "Publish the upload outcome",
        "Email the upload outcome",
        "Did the upload fail?",
        "The upload failed",
    ]
    assert keys(s3_client) == []


def test_sdk_parameters_are_those_of_the_customer_profiles_model(definition: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("customer-profiles")
    operations = {op[0].lower() + op[1:]: op for op in model.operation_names}
    seen = set()
    for state in _states(definition):
        resource = state.get("Resource", "")
        if not resource.startswith("arn:aws:states:::aws-sdk:customerprofiles:"):
            continue
        action = resource.rsplit(":", 1)[-1]
        members = model.operation_model(operations[action]).input_shape.members
        names = {key.removesuffix(".$") for key in state["Parameters"]}
        assert names <= set(members), (action, names - set(members))
        seen.add(action)
    assert seen == {
        "getSegmentDefinition",
        "createSegmentDefinition",
        "createUploadJob",
        "startUploadJob",
        "getUploadJob",
    }


def _states(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in definition["States"].values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch)


def test_fixture_files_exist() -> None:
    assert Path(EVENTS / "segment_ready.json").exists()


def _second_run_with_two_jobs(
    definition: dict[str, Any], s3_client: Any, outbox: Outbox, *job_answers: dict[str, Any]
) -> Execution:
    """A run after members 1, 2, 3: one job for the members, one for user 2's `false`, answered in order."""
    s3_client.put_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv", Body=b"UserId\n1\n2\n3\n")
    return run(
        definition,
        s3_client,
        outbox,
        "run-2",
        **{"aws-sdk:customerprofiles:getUploadJob": job_status(*job_answers)},
    )


def test_a_later_job_that_fails_fails_the_run_and_keeps_the_previous_members(
    definition: dict[str, Any], s3_client: Any
) -> None:
    # GIVEN a run of two upload jobs whose first succeeds and whose second ends FAILED
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    failed = {"Status": "FAILED", "StatusReason": "INTERNAL_FAILURE"}
    # WHEN it runs
    execution = _second_run_with_two_jobs(definition, s3_client, outbox, SUCCEEDED, failed)
    # THEN the execution fails on the second job, reports it, and the member list is still the previous one,
    # so the next run uploads everything again (nothing reports success when a step failed)
    assert execution.status == "FAILED", execution.summary()
    assert len(execution.calls_to("aws-sdk:customerprofiles:startUploadJob")) == 2
    assert outbox.detail["Status"] == "FAILED"
    assert "INTERNAL_FAILURE" in outbox.detail["FailureReason"]
    body = s3_client.get_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv")["Body"].read()
    assert body.decode().splitlines() == ["UserId", "1", "2", "3"]


def test_a_partial_first_job_makes_the_whole_run_partial_with_every_jobs_counts(
    definition: dict[str, Any], s3_client: Any
) -> None:
    # GIVEN a run of two upload jobs whose first is PARTIALLY_SUCCEEDED and whose second SUCCEEDED
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    partial = {
        "Status": "PARTIALLY_SUCCEEDED",
        "StatusReason": "VALIDATION_FAILURE",
        "ResultsSummary": {"CreatedRecords": 2, "FailedRecords": 1},
    }
    # WHEN it runs
    execution = _second_run_with_two_jobs(definition, s3_client, outbox, partial, SUCCEEDED)
    # THEN the run is partial, not succeeded, and its counts add up both jobs
    assert execution.status == "SUCCEEDED", execution.summary()
    detail = outbox.detail
    assert (detail["Status"], detail["ProfilesUploaded"], detail["ProfilesFailed"]) == (
        "PARTIALLY_SUCCEEDED",
        2 + 3,
        1,
    )
    assert outbox.emails[0]["Message"].startswith("PARTIAL upload")
