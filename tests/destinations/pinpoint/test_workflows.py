"""The Pinpoint workflows executed locally (local harness) against scripted Pinpoint answers and moto S3.

The Lambda states run the real handlers (loaded by tests/destinations/pinpoint/test_lambdas.py) against moto,
so a run covers the definition, the join and the inspector together; only Pinpoint, EventBridge and SNS are
scripted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import Duration
from aws_cdk.assertions import Template
from moto import mock_aws

from contextual_targeting.common.workflow_kit import backoff_schedule
from contextual_targeting.contracts.events import PINPOINT_IMPORT_STATE_CHANGE
from contextual_targeting.local import Outbox
from contextual_targeting.local.harness import (
    AwsError,
    Execution,
    TaskCall,
    definition_from_template,
    run_workflow,
    script,
)
from tests.destinations.pinpoint.test_lambdas import EVENTS, inspect_handler, join_handler
from tests.helpers import REPO

pytestmark = pytest.mark.slow

IMPORT_BUCKET = "import-bucket"
SUBSTITUTIONS = {"PinpointSegmentImportBucket": IMPORT_BUCKET}


@pytest.fixture(scope="module")
def definitions(full_template: Template) -> dict[str, dict[str, Any]]:
    """The prepare and import definitions of the synthesized stack (the dispatcher: test_object_trigger)."""
    tpl = full_template.to_json()
    return {
        name: definition_from_template(tpl, f"Pinpoint{name}Workflow", SUBSTITUTIONS)
        for name in ("Prepare", "Import")
    }


@pytest.fixture
def s3() -> Iterator[Any]:
    """moto S3 with the data bucket and the versioned segment-import bucket."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        client.create_bucket(Bucket=IMPORT_BUCKET)
        client.put_bucket_versioning(Bucket=IMPORT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


# ---------------------------------------------------------------------------------------------------------
# Prepare


def segment_ready(key: str = "segments/bingewatch/bw-job-1/action.csv") -> dict[str, Any]:
    """The sample `Segment Ready` event pointing at `key` in the data bucket."""
    event: dict[str, Any] = json.loads((EVENTS / "segment_ready.json").read_text())
    event["detail"]["Key"] = key
    return event


def exporting(s3: Any, parts: list[bytes]) -> Callable[[TaskCall], Any]:
    """CreateExportJob writing `parts` as gzip objects under the requested S3UrlPrefix, as Pinpoint does."""

    def create(call: TaskCall) -> Any:
        request = call.parameters["ExportJobRequest"]
        bucket, _, prefix = request["S3UrlPrefix"].removeprefix("s3://").partition("/")
        for number, data in enumerate(parts):
            s3.put_object(Bucket=bucket, Key=f"{prefix}exp-1/part-{number}.gz", Body=gzip.compress(data))
        return {"ExportJobResponse": {"Id": "exp-1", "JobStatus": "CREATED", "ApplicationId": "app-1"}}

    return create


def export_status(*statuses: str) -> Callable[[TaskCall], Any]:
    """GetExportJob answering the statuses in order, then the last one forever."""
    seen: list[str] = []

    def get(call: TaskCall) -> Any:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        job: dict[str, Any] = {"Id": "exp-1", "JobStatus": status, "ApplicationId": "app-1", "Type": "EXPORT"}
        if status == "FAILED":
            job["Failures"] = ["Access denied to s3://import-bucket/exports/"]
        return {"ExportJobResponse": job}

    return get


def real_join(s3: Any, channels: str = "") -> Callable[[TaskCall], Any]:
    """The join handler itself, against moto."""
    return lambda call: join_handler.join_segment(
        call.parameters, s3, import_bucket=IMPORT_BUCKET, import_prefix="pinpoint/", channels=channels
    )


def run_prepare(
    definitions: dict[str, Any], s3: Any, outbox: Outbox, segment_csv: bytes, **handlers: Any
) -> Execution:
    """Run the prepare workflow on the sample event with the segment file in the data bucket."""
    s3.put_object(Bucket="data-bucket", Key="segments/bingewatch/bw-job-1/action.csv", Body=segment_csv)
    scripted = {**outbox.handlers(), "Find the users' endpoints": real_join(s3), **handlers}
    return run_workflow(definitions["Prepare"], segment_ready(), scripted)


def test_prepare_writes_the_id_file_and_reports_users_without_endpoints(
    definitions: dict[str, Any], s3: Any
) -> None:
    # GIVEN an export that completes after two checks, with endpoints for 3 of the 4 users
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        (EVENTS / "segment.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, [(EVENTS / "export_part.jsonl").read_bytes()]),
            "aws-sdk:pinpoint:getExportJob": export_status("PROCESSING", "COMPLETED"),
        },
    )
    # THEN the import file is written and the event + email say how many users have no endpoint
    assert execution.status == "SUCCEEDED", execution.summary()
    body = s3.get_object(Bucket=IMPORT_BUCKET, Key="pinpoint/bingewatch-action-20261120-100000.csv")["Body"]
    assert body.read().decode().splitlines() == ["Id", "email-1", "sms-1", "push-2", "email-c"]
    assert outbox.detail == {
        "Stage": "Prepare",
        "Status": "PREPARED",
        "SegmentName": "bingewatch-action-20261120-100000",
        "Key": "pinpoint/bingewatch-action-20261120-100000.csv",
        "UserCount": 4,
        "EndpointCount": 4,
        "UsersWithoutEndpoints": 1,
        "FailureReason": "",
    }
    assert len(outbox.emails) == 1
    assert "1 users have no endpoint" in outbox.emails[0]["Message"]
    assert '["404"]' in outbox.emails[0]["Message"]
    # The export request went to this run's prefix in the segment-import bucket, with the import/export role.
    request = execution.calls_to("aws-sdk:pinpoint:createExportJob")[0].parameters
    assert request["ExportJobRequest"]["S3UrlPrefix"] == f"s3://{IMPORT_BUCKET}/exports/local-execution/"
    assert request["ApplicationId"]
    assert execution.max_payload_bytes < 8 * 1024  # user lists never enter the state payload


def test_prepare_without_missing_users_sends_no_email(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        b"UserId\n1\n",
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, [(EVENTS / "export_part.jsonl").read_bytes()]),
            "aws-sdk:pinpoint:getExportJob": export_status("COMPLETED"),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail["Status"] == "PREPARED"
    assert outbox.detail["UsersWithoutEndpoints"] == 0
    assert outbox.emails == []


def test_segment_without_endpoints_is_reported_and_not_imported(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        b"UserId\nghost-1\nghost-2\n",
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, [(EVENTS / "export_part.jsonl").read_bytes()]),
            "aws-sdk:pinpoint:getExportJob": export_status("COMPLETED"),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail["Status"] == "REJECTED"
    assert outbox.detail["FailureReason"] == "none of the 2 users has an endpoint that can receive messages"
    assert len(outbox.emails) == 1
    assert "was not imported" in outbox.emails[0]["Message"]
    assert "Contents" not in s3.list_objects_v2(Bucket=IMPORT_BUCKET, Prefix="pinpoint/")


def test_failed_export_fails_the_execution_with_event_and_email(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        (EVENTS / "segment.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, []),
            "aws-sdk:pinpoint:getExportJob": export_status("PROCESSING", "FAILED"),
            "Find the users' endpoints": script(),  # never called
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "Pinpoint.ExportFailed"
    assert "exp-1 ended FAILED" in (execution.cause or "")
    assert "Access denied" in (execution.cause or "")
    assert outbox.detail["Status"] == "FAILED"
    assert len(outbox.emails) == 1


def test_export_that_never_finishes_fails_within_the_bound(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        (EVENTS / "segment.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, []),
            "aws-sdk:pinpoint:getExportJob": export_status("PROCESSING"),
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "Pinpoint.ExportTimedOut"
    schedule = backoff_schedule(Duration.hours(1))  # the construct's default export bound
    assert f"did not finish within {sum(schedule)} seconds" in (execution.cause or "")
    # Bounded, with backoff: one check per scheduled wait, 15 s doubling to 5 min, about an hour in all.
    assert len(execution.calls_to("Check the export")) == len(schedule)
    assert schedule[:3] == [15, 30, 60]
    assert max(schedule) == 300
    assert execution.elapsed_for("Wait for the export") == sum(schedule)
    assert 3600 <= sum(schedule) < 3600 + 300
    assert outbox.detail["Status"] == "FAILED"
    assert len(outbox.emails) == 1


PREPARE_SEGMENT = "bingewatch-action-20261120-100000"
# Each Task of the prepare workflow (before its outcome tail) and an error no retrier of it matches.
PREPARE_FAILURES = [
    ("Export the project's endpoints", AwsError("Pinpoint.ForbiddenException", "Missing iam:PassRole")),
    ("Check the export", AwsError("Pinpoint.NotFoundException", "Export job not found")),
    ("Find the users' endpoints", AwsError("Lambda.ResourceNotFoundException", "Function not found: join")),
]


def tasks_and_catchers(definition: dict[str, Any], tail: set[str]) -> dict[str, list[str]]:
    """Each Task outside the outcome tail, with the states its `States.ALL` catchers go to."""
    return {
        name: [c["Next"] for c in state.get("Catch", []) if c["ErrorEquals"] == ["States.ALL"]]
        for name, state in definition["States"].items()
        if state["Type"] == "Task" and name not in tail
    }


def test_every_prepare_task_failure_is_reported(definitions: dict[str, Any]) -> None:
    tail = {"Publish the prepare outcome", "Email the prepare outcome"}
    assert tasks_and_catchers(definitions["Prepare"], tail) == {
        state: ["Report the failed call"] for state, _ in PREPARE_FAILURES
    }


@pytest.mark.parametrize(("state", "error"), PREPARE_FAILURES, ids=[state for state, _ in PREPARE_FAILURES])
def test_each_prepare_task_failing_with_a_non_retryable_error_is_reported(
    definitions: dict[str, Any], s3: Any, state: str, error: AwsError
) -> None:
    # GIVEN a prepare run where one Task fails with an error no retrier matches, the rest as on the happy path
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_prepare(
        definitions,
        s3,
        outbox,
        (EVENTS / "segment.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createExportJob": exporting(s3, [(EVENTS / "export_part.jsonl").read_bytes()]),
            "aws-sdk:pinpoint:getExportJob": export_status("COMPLETED"),
            state: error,
        },
    )
    # THEN the execution fails naming the call, after one FAILED event and one email that say so
    reason = f"{error.name}: {error.cause}"
    assert execution.status == "FAILED", execution.summary()
    assert (execution.error, execution.cause) == ("Pinpoint.PrepareFailed", reason)
    detail = outbox.detail
    assert (detail["Stage"], detail["Status"], detail["FailureReason"]) == ("Prepare", "FAILED", reason)
    assert (detail["SegmentName"], detail["Key"]) == (PREPARE_SEGMENT, "")
    (email,) = outbox.emails
    assert email["Message"] == f"Segment {PREPARE_SEGMENT} was not imported into Pinpoint: {reason}"
    # Nothing is done after the failure but the report and the tail: no later call, no import file.
    entered = execution.states_entered()
    assert entered[entered.index(state) + 1 :] == [
        "Report the failed call",
        "Publish the prepare outcome",
        "Is the prepare outcome worth an email?",
        "Email the prepare outcome",
        "Did the prepare fail?",
        "The prepare failed",
    ], execution.summary()
    assert len(execution.calls_to(state)) == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=IMPORT_BUCKET, Prefix="pinpoint/")


# ---------------------------------------------------------------------------------------------------------
# Import


def import_status(*answers: dict[str, Any] | str) -> Callable[[TaskCall], Any]:
    """GetImportJob answering in order (a status or a full job), then the last answer forever."""
    seen: list[Any] = []

    def get(call: TaskCall) -> Any:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(answer)
        job = {"JobStatus": answer} if isinstance(answer, str) else answer
        return {
            "ImportJobResponse": {
                "Id": "imp-1",
                "ApplicationId": "app-1",
                "Type": "IMPORT",
                "Definition": {},
                **job,
            }
        }

    return get


def run_import(
    definitions: dict[str, Any], s3: Any, outbox: Outbox, key: str, body: bytes, **handlers: Any
) -> Execution:
    """Upload `body` under `key` and run the import workflow on the object, with the real inspector."""
    version = s3.put_object(Bucket=IMPORT_BUCKET, Key=key, Body=body)["VersionId"]
    scripted = {
        **outbox.handlers(),
        "Inspect the import file": lambda call: inspect_handler.inspect_file(
            call.parameters, s3, prefix="pinpoint/"
        ),
        **handlers,
    }
    # The input the dispatcher (object_trigger.OncePerObjectVersion) starts the import with.
    source = {"Bucket": IMPORT_BUCKET, "Key": key, "VersionId": version, "ETag": "etag-1", "Size": len(body)}
    return run_workflow(definitions["Import"], {"Source": source}, scripted)


COMPLETED = {
    "JobStatus": "COMPLETED",
    "Definition": {"SegmentId": "seg-1"},
    "TotalProcessed": 815,
    "TotalFailures": 0,
    "FailedPieces": 0,
}


def test_endpoints_file_registers_endpoints_and_defines_the_endpoints_segment(
    definitions: dict[str, Any], s3: Any
) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/endpoints.csv",
        (REPO / "data" / "pinpoint" / "endpoints.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status("INITIALIZING", "PROCESSING", COMPLETED),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    request = execution.calls_to("aws-sdk:pinpoint:createImportJob")[0].parameters
    assert request["ImportJobRequest"] == {
        "S3Url": f"s3://{IMPORT_BUCKET}/pinpoint/endpoints.csv",
        "RoleArn": request["ImportJobRequest"]["RoleArn"],
        "Format": "CSV",
        "DefineSegment": True,
        "SegmentName": "endpoints",
        "RegisterEndpoints": True,
    }
    assert "PinpointPinpointRole" in request["ImportJobRequest"]["RoleArn"]
    assert outbox.detail == {
        "Stage": "Import",
        "Status": "COMPLETED",
        "SegmentName": "endpoints",
        "SegmentId": "seg-1",
        "ImportJobId": "imp-1",
        "TotalProcessed": 815,
        "TotalFailures": 0,
        "FailedPieces": 0,
        "Key": "pinpoint/endpoints.csv",
        "FailureReason": "",
    }
    assert len(outbox.emails) == 1
    assert "Pinpoint segment endpoints (seg-1) imported" in outbox.emails[0]["Message"]
    assert execution.output["Status"] == "COMPLETED"


def test_id_only_file_references_existing_endpoints(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    key = "pinpoint/Action fans Müller.csv"  # spaces and non-ASCII, as EventBridge delivers them
    execution = run_import(
        definitions,
        s3,
        outbox,
        key,
        b"Id\nemail-1\nsms-2\n",
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status(COMPLETED),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    request = execution.calls_to("aws-sdk:pinpoint:createImportJob")[0].parameters["ImportJobRequest"]
    assert request["RegisterEndpoints"] is False
    assert request["SegmentName"] == "Action fans Müller"
    assert request["S3Url"] == f"s3://{IMPORT_BUCKET}/{key}"
    assert outbox.detail["Status"] == "COMPLETED"
    assert outbox.detail["Key"] == key


def test_completed_with_failures_is_a_reported_partial_import(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    partial = {
        **COMPLETED,
        "TotalProcessed": 800,
        "TotalFailures": 15,
        "FailedPieces": 1,
        "Failures": ["15 rows: bad Address"],
    }
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/endpoints.csv",
        (REPO / "data" / "pinpoint" / "endpoints.csv").read_bytes(),
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status(partial),
        },
    )
    # The execution succeeds but says so: status, counts and failures in output, event and email.
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.output["Status"] == "COMPLETED_WITH_FAILURES"
    detail = outbox.detail
    assert (detail["Status"], detail["TotalProcessed"], detail["TotalFailures"], detail["FailedPieces"]) == (
        "COMPLETED_WITH_FAILURES",
        800,
        15,
        1,
    )
    assert "bad Address" in detail["FailureReason"]
    assert outbox.emails[0]["Message"].startswith("PARTIAL import")


def test_failed_import_fails_the_execution(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    failed = {"JobStatus": "FAILED", "Failures": ["The file is not a valid CSV"], "FailedPieces": 1}
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/bw-action.csv",
        b"Id\ne1\n",
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status("PROCESSING", failed),
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "Pinpoint.ImportFailed"
    assert "imp-1 ended FAILED" in (execution.cause or "")
    assert "not a valid CSV" in (execution.cause or "")
    assert outbox.detail["Status"] == "FAILED"
    assert outbox.detail["TotalProcessed"] == 0  # missing counters read as 0, not a runtime error
    assert len(outbox.emails) == 1


def test_throttled_create_import_job_is_retried(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    throttled = AwsError("Pinpoint.TooManyRequestsException", "Too many requests")
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/bw-action.csv",
        b"Id\ne1\n",
        **{
            "aws-sdk:pinpoint:createImportJob": script(
                throttled, throttled, {"ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}}
            ),
            "aws-sdk:pinpoint:getImportJob": import_status(COMPLETED),
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert len(execution.calls_to("aws-sdk:pinpoint:createImportJob")) == 3
    assert execution.elapsed_for("Import the file as a segment") > 0  # backed off between attempts
    assert outbox.detail["Status"] == "COMPLETED"


def test_import_that_never_finishes_fails_with_a_clear_cause(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/bw-action.csv",
        b"Id\ne1\n",
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status("PROCESSING"),
        },
    )
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "Pinpoint.ImportTimedOut"
    schedule = backoff_schedule(Duration.hours(2))  # the construct's default import bound
    assert execution.cause == (
        f"import job imp-1 did not finish within {sum(schedule)} seconds; it may still complete in Pinpoint"
    )
    assert len(execution.calls_to("Check the import")) == len(schedule)
    assert execution.virtual_seconds < 2 * 3600 + 300
    assert outbox.detail["Status"] == "FAILED"
    assert outbox.detail["ImportJobId"] == "imp-1"
    assert len(outbox.emails) == 1


def test_unsupported_file_type_is_rejected_without_an_import(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_import(
        definitions,
        s3,
        outbox,
        "pinpoint/segment.xlsx",
        b"PK\x03\x04",
        **{"aws-sdk:pinpoint:createImportJob": script()},  # must not be called
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.output["Status"] == "REJECTED"
    assert outbox.detail["Status"] == "REJECTED"
    assert (
        outbox.detail["FailureReason"]
        == "unsupported file type .xlsx: Pinpoint imports .csv, .json or .jsonl"
    )
    assert len(outbox.emails) == 1
    assert execution.calls_to("aws-sdk:pinpoint:createImportJob") == []


def test_empty_import_file_is_rejected(definitions: dict[str, Any], s3: Any) -> None:
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    execution = run_import(definitions, s3, outbox, "pinpoint/empty.csv", b"")
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail["Status"] == "REJECTED"
    assert outbox.detail["FailureReason"] == "the file is empty"
    assert len(outbox.emails) == 1


# Each Task of the import workflow (before its outcome tail), an error no retrier of it matches, the error
# the execution then fails with, and the state that reports the failure.
IMPORT_FAILURES = [
    (
        "Inspect the import file",
        AwsError("ClientError", "An error occurred (AccessDenied) when calling the HeadObject operation"),
        "Pinpoint.InspectFailed",
        "Report the file that could not be inspected",
    ),
    (
        "Import the file as a segment",
        AwsError("Pinpoint.BadRequestException", "Pinpoint cannot assume the role"),
        "Pinpoint.ImportFailed",
        "Report the import job that could not be created",
    ),
    (
        "Check the import",
        AwsError("Pinpoint.NotFoundException", "Import job not found"),
        "Pinpoint.ImportFailed",
        "Report the import job that could not be checked",
    ),
]


def test_every_import_task_failure_is_reported(definitions: dict[str, Any]) -> None:
    tail = {"Publish the import outcome", "Email the import outcome"}
    assert tasks_and_catchers(definitions["Import"], tail) == {
        state: [report] for state, _, _, report in IMPORT_FAILURES
    }


@pytest.mark.parametrize(
    ("state", "error", "failed_with", "report"), IMPORT_FAILURES, ids=[t[0] for t in IMPORT_FAILURES]
)
def test_each_import_task_failing_with_a_non_retryable_error_is_reported(
    definitions: dict[str, Any], s3: Any, state: str, error: AwsError, failed_with: str, report: str
) -> None:
    # GIVEN an import run where one Task fails with an error no retrier matches, the rest as on the happy path
    outbox = Outbox(PINPOINT_IMPORT_STATE_CHANGE)
    key = "pinpoint/bw-action.csv"
    execution = run_import(
        definitions,
        s3,
        outbox,
        key,
        b"Id\ne1\n",
        **{
            "aws-sdk:pinpoint:createImportJob": {
                "ImportJobResponse": {"Id": "imp-1", "JobStatus": "CREATED"}
            },
            "aws-sdk:pinpoint:getImportJob": import_status(COMPLETED),
            state: error,
        },
    )
    # THEN the execution fails naming the call, after one FAILED event and one email that say so
    reason = f"{error.name}: {error.cause}"
    assert execution.status == "FAILED", execution.summary()
    assert (execution.error, execution.cause) == (failed_with, reason)
    detail = outbox.detail
    assert (detail["Stage"], detail["Status"], detail["FailureReason"]) == ("Import", "FAILED", reason)
    assert detail["Key"] == key
    # The segment name comes from the inspector: unknown when it failed.
    assert detail["SegmentName"] == ("" if state == "Inspect the import file" else "bw-action")
    # Once the import job exists, the report names it.
    assert detail["ImportJobId"] == ("imp-1" if state == "Check the import" else "")
    (email,) = outbox.emails
    assert email["Message"].startswith(f"{key} was not imported into Pinpoint: ")
    assert email["Message"].endswith(reason)
    # Nothing is done after the failure but the report and the tail: no import job created or checked.
    entered = execution.states_entered()
    assert entered[entered.index(state) + 1 :] == [
        report,
        "Publish the import outcome",
        "Email the import outcome",
        "Did the import fail?",
        "The import failed",
    ], execution.summary()
    assert len(execution.calls_to(state)) == 1


def test_fixture_files_are_those_the_docs_describe() -> None:
    assert Path(EVENTS / "segment_ready.json").exists()
    assert json.loads((EVENTS / "segment_ready.json").read_text())["detail-type"] == "Segment Ready"
