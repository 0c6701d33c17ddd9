"""The post-processing workflow, rendered and run locally (aws-local-stepfunctions) on scripted answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from moto import mock_aws

from contextual_targeting.common.storage import access_log_bucket, secure_bucket
from contextual_targeting.contracts.events import (
    EVENT_SOURCE,
    SEGMENT_POSTPROCESSING_STATE_CHANGE,
    SEGMENT_READY,
)
from contextual_targeting.local import (
    PAYLOAD_LIMIT_BYTES,
    AwsError,
    Execution,
    TaskCall,
    run_workflow,
    script,
)
from contextual_targeting.segments.postprocessor import SegmentPostprocessor, SegmentPostprocessorProps
from tests.helpers import CDK_CONTEXT, TEST_ENV
from tests.segments.support import (
    BUCKET,
    JOB_PREFIX,
    create_bucket,
    event,
    handler_module,
    job_line,
    job_output,
    read_csv,
    user_ids,
)

pytestmark = pytest.mark.slow

JOB_EVENT = event("batch_segment_job_active.json")
DETAIL = JOB_EVENT["detail"]
OUTPUT_URI = f"s3://{BUCKET}/{JOB_PREFIX}"
SPLIT = "Split the job output into segments"
DESCRIBE = "aws-sdk:personalize:describeBatchSegmentJob"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """The deployed definition of the construct's state machine, from a synthesized bare stack."""
    from contextual_targeting.local import definition_from_template

    app = cdk.App(context=CDK_CONTEXT)
    stack = cdk.Stack(app, "Test", env=TEST_ENV)
    bucket = secure_bucket(stack, "Data", access_logs=access_log_bucket(stack, "Logs"), log_prefix="d/")
    topic = sns.Topic(
        stack, "Topic", master_key=kms.Key(stack, "Key", enable_key_rotation=True), enforce_ssl=True
    )
    SegmentPostprocessor(
        stack,
        "SegmentPostprocessor",
        props=SegmentPostprocessorProps(
            bucket=bucket, event_bus=events.EventBus(stack, "Bus"), notification_topic=topic
        ),
    )
    return definition_from_template(Template.from_stack(stack).to_json(), "SegmentPostprocessorWorkflow")


def describe_answer(status: str = "ACTIVE") -> dict[str, Any]:
    """DescribeBatchSegmentJob as the aws-sdk integration returns it (PascalCase)."""
    return {
        "BatchSegmentJob": {
            "BatchSegmentJobArn": DETAIL["Arn"],
            "JobName": DETAIL["JobName"],
            "Status": status,
            "NumResults": 5000000,
            "JobInput": {
                "S3DataSource": {"Path": "s3://personalize-data/batch/bingewatch/bw/job_config.json"}
            },
            "JobOutput": {"S3DataDestination": {"Path": OUTPUT_URI}},
            "SolutionVersionArn": DETAIL["SolutionVersionArn"],
        }
    }


def segment(line: int, status: str = "READY", users: int = 3, slug: str | None = None) -> dict[str, Any]:
    """One entry of the split function's summary."""
    slug = slug or f"genres-g{line}"
    key = f"segments/bingewatch/{DETAIL['JobName']}/{slug}.csv"
    ready = status == "READY"
    return {
        "Source": f"{JOB_PREFIX}job_config.json.out",
        "Line": line,
        "Query": f'ITEMS.genres = "G{line}"',
        "Status": status,
        "SegmentName": f"bingewatch-{slug}-genres-20261128T101500Z" if ready else None,
        "Bucket": BUCKET if ready else None,
        "Key": key if ready else None,
        "SegmentUri": f"s3://{BUCKET}/{key}" if ready else None,
        "UserCount": users if ready else 0,
        "Error": None if ready else f"line {line}: the query matched no users",
    }


def split_answer(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """The Lambda integration's result: the function's summary in `Payload`, plus response metadata."""
    problems = sum(s["Status"] != "READY" for s in segments)
    return {
        "ExecutedVersion": "$LATEST",
        "StatusCode": 200,
        "Payload": {
            "Status": "SUCCEEDED" if not problems else "SUCCEEDED WITH PROBLEMS",
            "Bucket": BUCKET,
            "ManifestKey": f"segments/bingewatch/{DETAIL['JobName']}/manifest.json",
            "ManifestUri": f"s3://{BUCKET}/segments/bingewatch/{DETAIL['JobName']}/manifest.json",
            "SegmentCount": len(segments) - problems,
            "ProblemCount": problems,
            "Summary": "2 segment(s) ready",
            "Segments": segments,
        },
    }


def handlers(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        DESCRIBE: describe_answer(),
        SPLIT: split_answer([segment(1), segment(2, "EMPTY")]),
        "events:putEvents": {"Entries": [{"EventId": "e"}], "FailedEntryCount": 0},
        "sns:publish": {"MessageId": "m"},
    }
    return {**base, **overrides}


def put_events(execution: Execution, detail_type: str) -> list[dict[str, Any]]:
    """Details of the events the run put with that detail-type."""
    found = []
    for call in execution.calls_to("events:putEvents"):
        for entry in call.parameters["Entries"]:
            assert entry["Source"] == EVENT_SOURCE
            if entry["DetailType"] == detail_type:
                detail = entry["Detail"]
                found.append(json.loads(detail) if isinstance(detail, str) else detail)
    return found


def emails(execution: Execution) -> list[dict[str, Any]]:
    return [c.parameters for c in execution.calls_to("sns:publish")]


def test_happy_path_announces_each_ready_segment_and_reports_the_rest(definition: dict[str, Any]) -> None:
    # WHEN the workflow runs on the job's ACTIVE event
    execution = run_workflow(definition, JOB_EVENT, handlers())

    # THEN it describes the job, splits it once, and succeeds
    assert execution.status == "SUCCEEDED", execution.summary()
    [describe] = execution.calls_to(DESCRIBE)
    assert describe.parameters == {"BatchSegmentJobArn": DETAIL["Arn"]}
    [split] = execution.calls_to(SPLIT)
    assert split.parameters["Payload"] == {
        "JobArn": DETAIL["Arn"],
        "JobName": DETAIL["JobName"],
        "DatasetGroupName": "bingewatch",
        "OutputUri": OUTPUT_URI,
        "ExecutionName": "local-execution",
    }

    # AND publishes one Segment Ready per ready segment, with the documented detail
    assert put_events(execution, SEGMENT_READY) == [
        {
            "SegmentName": "bingewatch-genres-g1-genres-20261128T101500Z",
            "Query": 'ITEMS.genres = "G1"',
            "SegmentUri": f"s3://{BUCKET}/segments/bingewatch/{DETAIL['JobName']}/genres-g1.csv",
            "Bucket": BUCKET,
            "Key": f"segments/bingewatch/{DETAIL['JobName']}/genres-g1.csv",
            "UserCount": 3,
            "JobArn": DETAIL["Arn"],
            "JobName": DETAIL["JobName"],
            "DatasetGroupName": "bingewatch",
            "ManifestUri": f"s3://{BUCKET}/segments/bingewatch/{DETAIL['JobName']}/manifest.json",
        }
    ]
    # AND a problem event naming the empty query's line, then the run's own event
    problems = put_events(execution, SEGMENT_POSTPROCESSING_STATE_CHANGE)
    assert problems[0]["Status"] == "QUERY EMPTY"
    assert (problems[0]["Line"], problems[0]["Query"]) == (2, 'ITEMS.genres = "G2"')
    assert problems[0]["Error"] == "line 2: the query matched no users"
    assert problems[1]["Status"] == "SUCCEEDED WITH PROBLEMS"
    assert (problems[1]["SegmentCount"], problems[1]["ProblemCount"]) == (1, 1)
    # AND one email with the function's summary
    [email] = emails(execution)
    assert email["Message"] == "2 segment(s) ready"


def test_throttled_describe_is_retried(definition: dict[str, Any]) -> None:
    # Personalize declares no throttling error: throttling arrives as PersonalizeException.
    throttled = AwsError(
        "Personalize.PersonalizeException", "Rate exceeded (Service: Personalize, ThrottlingException)"
    )
    execution = run_workflow(
        definition, JOB_EVENT, handlers(**{DESCRIBE: script(throttled, throttled, describe_answer())})
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert len(execution.calls_to(DESCRIBE)) == 3
    assert len(execution.calls_to(SPLIT)) == 1


def test_throttled_split_function_is_retried(definition: dict[str, Any]) -> None:
    # Several jobs finishing together can hit the account's Lambda concurrency: throttling is transient.
    throttled = AwsError("Lambda.TooManyRequestsException", "Rate Exceeded.")
    answer = split_answer([segment(1)])
    execution = run_workflow(definition, JOB_EVENT, handlers(**{SPLIT: script(throttled, throttled, answer)}))
    assert execution.status == "SUCCEEDED", execution.summary()
    assert len(execution.calls_to(SPLIT)) == 3
    assert len(put_events(execution, SEGMENT_READY)) == 1


def assert_reported_failure(execution: Execution, error: str) -> None:
    """FAILED with the error, a FAILED event naming the job and the error, and an email."""
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == error
    [failed] = put_events(execution, SEGMENT_POSTPROCESSING_STATE_CHANGE)
    assert (failed["Status"], failed["Error"], failed["JobName"]) == ("FAILED", error, DETAIL["JobName"])
    [email] = emails(execution)
    assert "FAILED" in email["Subject"]
    assert error in email["Message"]
    assert DETAIL["JobName"] in email["Message"]
    assert put_events(execution, SEGMENT_READY) == []


def test_describe_failing_for_good_fails_the_run_with_event_and_email(definition: dict[str, Any]) -> None:
    gone = AwsError("Personalize.ResourceNotFoundException", "no such batch segment job")
    execution = run_workflow(definition, JOB_EVENT, handlers(**{DESCRIBE: gone}))
    assert_reported_failure(execution, "Personalize.ResourceNotFoundException")
    assert execution.calls_to(SPLIT) == []


def test_job_not_active_fails_the_run(definition: dict[str, Any]) -> None:
    execution = run_workflow(definition, JOB_EVENT, handlers(**{DESCRIBE: describe_answer("CREATE FAILED")}))
    assert_reported_failure(execution, "JobNotActive")
    assert "CREATE FAILED" in execution.cause


def test_lambda_failing_fails_the_run_with_event_and_email(definition: dict[str, Any]) -> None:
    # GIVEN a function that keeps failing with a service error (retried), then for good
    service = AwsError("Lambda.ServiceException", "internal error")
    execution = run_workflow(
        definition, JOB_EVENT, handlers(**{SPLIT: lambda call: (_ for _ in ()).throw(service)})
    )
    # THEN it was retried, then the run failed, was reported and emailed
    assert len(execution.calls_to(SPLIT)) > 1
    assert_reported_failure(execution, "Lambda.ServiceException")


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SEGMENTS_BUCKET", BUCKET)
    monkeypatch.setenv("SEGMENTS_PREFIX", "segments/")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        create_bucket(client)
        yield client


def real_function(call: TaskCall) -> dict[str, Any]:
    """Answer the Lambda task by running the real handler (against moto S3), as Lambda would."""
    try:
        payload = handler_module.handler(call.parameters["Payload"], None)
    except Exception as error:  # a function error: Step Functions names it after the exception type
        name = type(error).__name__
        raise AwsError(name, json.dumps({"errorType": name, "errorMessage": str(error)})) from error
    return {"ExecutedVersion": "$LATEST", "StatusCode": 200, "Payload": payload}


def test_job_output_missing_fails_the_run_with_event_and_email(
    definition: dict[str, Any], moto_s3: Any
) -> None:
    # GIVEN no *.out object under the job's output location
    execution = run_workflow(definition, JOB_EVENT, handlers(**{SPLIT: real_function}))
    assert_reported_failure(execution, "JobOutputMissingError")
    assert "no .out object under" in execution.cause


def test_200k_user_segment_passes_with_every_payload_under_256_kb(
    definition: dict[str, Any], moto_s3: Any
) -> None:
    # GIVEN a job output with a 200,000-user query and a second query (the real function splits it in moto S3)
    users = user_ids(200_000)
    assert len(json.dumps(users)) > 8 * PAYLOAD_LIMIT_BYTES  # far beyond the limit if it ever entered a state
    moto_s3.put_object(
        Bucket=BUCKET,
        Key=f"{JOB_PREFIX}job_config.json.out",
        Body=job_output(
            job_line('ITEMS.genres = "Action"', users), job_line('ITEMS.genres = "Comedy"', users[:5])
        ),
    )

    # WHEN the workflow runs
    execution = run_workflow(definition, JOB_EVENT, handlers(**{SPLIT: real_function}))

    # THEN it succeeds, every state input/output/parameter/result stayed small, and the file holds every user
    assert execution.status == "SUCCEEDED", execution.summary()
    print(f"largest state payload: {execution.max_payload_bytes} bytes at {execution.max_payload_at}")
    assert execution.max_payload_bytes < 16 * 1024 < PAYLOAD_LIMIT_BYTES, execution.max_payload_at
    [action, _] = put_events(execution, SEGMENT_READY)
    assert action["UserCount"] == 200_000
    rows = read_csv(moto_s3, action["Key"])
    assert rows[0] == ["UserId"]
    assert [r[0] for r in rows[1:]] == users


def test_transitions_are_constant_per_query(definition: dict[str, Any]) -> None:
    # The number of users never shows in the state machine; each query adds the same few transitions.
    def transitions(queries: int) -> int:
        answer = split_answer([segment(i + 1, users=5_000_000) for i in range(queries)])
        execution = run_workflow(definition, JOB_EVENT, handlers(**{SPLIT: answer}))
        assert execution.status == "SUCCEEDED", execution.summary()
        return execution.transitions

    one, two, ten = transitions(1), transitions(2), transitions(10)
    print(f"state transitions: 1 query {one}, 2 queries {two}, 10 queries {ten}")
    per_query = two - one
    assert per_query <= 4
    assert ten == one + 9 * per_query
    assert ten < 60


def all_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in machine["States"].items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from all_states(processor)
        for branch in state.get("Branches", []):
            yield from all_states(branch)


def test_user_lists_never_enter_the_state_and_no_per_user_map(definition: dict[str, Any]) -> None:
    states = dict(all_states(definition))
    text = json.dumps(definition)
    # No path into a user list, no Distributed Map reading a segment file, no whole Lambda response kept.
    for forbidden in ("usersList", "recommendedUsers", "ItemReader", "UserIds", '"$.Payload"'):
        assert forbidden not in text, forbidden
    maps = {name: state for name, state in states.items() if state["Type"] == "Map"}
    assert list(maps) == ["Announce each segment"]
    assert maps["Announce each segment"]["ItemsPath"] == "$.Result.Segments"
    # The split task keeps only the summary fields of the function's answer.
    assert sorted(states[SPLIT]["ResultSelector"]) == sorted(
        f"{key}.$" for key in ("Status", "ManifestUri", "SegmentCount", "ProblemCount", "Summary", "Segments")
    )
    assert states[SPLIT]["ResultPath"] == "$.Result"
