"""Audiences that stay fresh, end to end on the local workflow harness: an upload's run, then a scheduled run
on new data, each through its batch segment job, the post-processing workflow with the real split function
and the Customer Profiles workflow with the real upload-file function, all against one moto bucket; then a
scheduled run on unchanged data that leads to nothing downstream.

Personalize, Customer Profiles, EventBridge and SNS are scripted; the batch segment job's output is written
where the training run told Personalize to write it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
import segment_names
from aws_cdk.assertions import Template
from moto import mock_aws

from contextual_targeting.contracts.events import (
    BATCH_SEGMENT_JOB_STATE_CHANGE,
    CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE,
    EVENT_SOURCE,
    SEGMENT_READY,
    TRAINING_RUN_STATE_CHANGE,
)
from contextual_targeting.contracts.layout import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE
from contextual_targeting.local import Execution, Outbox, TaskCall, definition_from_template, run_workflow
from tests.destinations.customer_profiles.test_run_file_expiry import tagged_upload_file
from tests.destinations.customer_profiles.test_workflow import (
    DEFINITION_ARN,
    JOB_ID,
    NOT_FOUND,
    SUCCEEDED,
    job_status,
    s3_handlers,
)
from tests.segments.support import handler_module as split_handler
from tests.training.fakes import CONFIG_KEY, START, FakeAws, demo_files, scheduled_input, upload_input

pytestmark = pytest.mark.slow

BUCKET = "data-bucket"
REGION = "eu-central-1"
DOMAIN = "amazon-connect-test"
# Names as the pipeline derives them from (dataset group, query) (lambda/shared/python/segment_names.py).
ACTION_SLUG = segment_names.query_slug('ITEMS.genres = "Action"')
ACTION_DEFINITION = segment_names.segment_name("bingewatch", ACTION_SLUG)
STATE = f"destinations/customer-profiles/bingewatch/{ACTION_SLUG}/"
INSTANT = dict.fromkeys(
    ("DatasetGroup", "Dataset", "DatasetImportJob", "Solution", "SolutionVersion", "BatchSegmentJob"), 0
)
EXPIRE = {"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}
# What Personalize ranks for each query, per run: the second run drops users 2 and 4 from Action.
RANKED = [
    {"Action": ["1", "2", "3", "4"], "Comedy": ["5", "6"]},
    {"Action": ["1", "3", "5"], "Comedy": ["5", "6"]},
]


class MotoBucket:
    """The training fakes' S3 (`get_object`, `put`) over the moto bucket the other functions use."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.now = 0.0

    def get_object(self, **kwargs: Any) -> Any:
        return self.client.get_object(**kwargs)

    def put(self, key: str, body: bytes) -> str:
        return str(self.client.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"])


@pytest.fixture(scope="module")
def definitions(template: Template) -> dict[str, dict[str, Any]]:
    """The three workflows of the deployed default stack."""
    tpl = template.to_json()
    return {
        "training": definition_from_template(tpl, "TrainingTrainingWorkflow"),
        "segments": definition_from_template(tpl, "SegmentPostprocessorWorkflow"),
        "profiles": definition_from_template(
            tpl, "CustomerProfilesUploadWorkflow", {"CustomerProfilesDomain": DOMAIN}
        ),
    }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A versioned moto bucket: the demo data, a weekly schedule in the config; the functions' settings."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SEGMENTS_BUCKET": BUCKET,
        "SEGMENTS_PREFIX": "segments/",
        "EXPIRY_TAG": f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        files = demo_files()
        config = json.loads(files[CONFIG_KEY])
        config["schedule"] = {"expression": "cron(0 3 ? * MON *)", "timezone": "Europe/Berlin"}
        files[CONFIG_KEY] = json.dumps(config).encode()
        for key, body in files.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield client


def _train(
    definitions: dict[str, Any], fake: FakeAws, run_input: dict[str, Any], start: datetime
) -> Execution:
    execution = run_workflow(
        definitions["training"],
        run_input,
        fake.handlers(),
        context={"Execution": {"StartTime": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "Name": "training"}},
        timeout=120,
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    return execution


def _personalize_writes_the_job_output(s3: Any, job: dict[str, Any], ranked: dict[str, list[str]]) -> None:
    """What the batch segment job writes: one line per query of the job's input file."""
    queries = [json.loads(line) for line in demo_files()[_input_key()].decode().splitlines() if line.strip()]
    lines = []
    for query in queries:
        genre = query["itemAttributes"].split('"')[1]
        lines.append(
            json.dumps({"input": query, "output": {"usersList": ranked.get(genre, [])}, "error": None})
        )
    prefix = job["OutputS3Uri"].removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}job_config.json.out", Body=("\n".join(lines) + "\n").encode())


def _input_key() -> str:
    return "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"


def _split(definitions: dict[str, Any], job: dict[str, Any]) -> tuple[Execution, Outbox]:
    """The post-processing workflow on the job's ACTIVE event, with the real split function."""
    outbox = Outbox(SEGMENT_READY)

    def split(call: TaskCall) -> Any:
        return {"StatusCode": 200, "Payload": split_handler.handler(call.parameters["Payload"], None)}

    describe = {
        "BatchSegmentJob": {
            "BatchSegmentJobArn": job["Arn"],
            "JobName": job["JobName"],
            "Status": "ACTIVE",
            "JobOutput": {"S3DataDestination": {"Path": job["OutputS3Uri"]}},
        }
    }
    event = {"detail-type": BATCH_SEGMENT_JOB_STATE_CHANGE, "source": EVENT_SOURCE, "detail": job}
    execution = run_workflow(
        definitions["segments"],
        event,
        {
            **outbox.handlers(),
            "aws-sdk:personalize:describeBatchSegmentJob": describe,
            "Split the job output into segments": split,
        },
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    return execution, outbox


def _deliver(definitions: dict[str, Any], s3: Any, ready: dict[str, Any], run_id: str) -> Outbox:
    """The Customer Profiles workflow on one `Segment Ready` event, with the real upload-file function."""
    outbox = Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE)
    seen: dict[str, Any] = {}
    exists = bool(s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{STATE}members.csv").get("KeyCount"))
    definition = {"SegmentDefinitionName": ACTION_DEFINITION, "SegmentDefinitionArn": DEFINITION_ARN}
    execution = run_workflow(
        definitions["profiles"],
        {"detail-type": SEGMENT_READY, "source": EVENT_SOURCE, "detail": ready},
        {
            **outbox.handlers(),
            **s3_handlers(s3),
            "Ask for an upload slot": {"Proceed": True, "Ahead": 0},
            "Write the upload file": tagged_upload_file(s3, seen),
            "aws-sdk:customerprofiles:getSegmentDefinition": definition if exists else NOT_FOUND,
            "aws-sdk:customerprofiles:createSegmentDefinition": definition,
            "aws-sdk:customerprofiles:createUploadJob": {"JobId": JOB_ID},
            "Send the upload file": {"Bytes": 123, "HttpStatus": 200},
            "aws-sdk:customerprofiles:startUploadJob": {},
            "aws-sdk:customerprofiles:getUploadJob": job_status("IN_PROGRESS", SUCCEEDED),
        },
        context={"Execution": {"Name": run_id}},
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    return outbox


def _upload(s3: Any) -> dict[str, Any]:
    """The run the config upload starts: at the config's object version."""
    return upload_input(version=s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["VersionId"])


def _active_job(fake: FakeAws, since: int) -> dict[str, Any]:
    (job,) = [
        e["Detail"]
        for e in fake.events[since:]
        if e["DetailType"] == BATCH_SEGMENT_JOB_STATE_CHANGE and e["Detail"]["Status"] == "ACTIVE"
    ]
    return dict(job)


def _action(outbox: Outbox) -> dict[str, Any]:
    (ready,) = [e["Detail"] for e in outbox.events if e["Detail"].get("Query") == 'ITEMS.genres = "Action"']
    return dict(ready)


def _members(s3: Any) -> list[str]:
    body = s3.get_object(Bucket=BUCKET, Key=f"{STATE}members.csv")["Body"].read().decode()
    return body.split()[1:]


def _tags(s3: Any, key: str) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    return tags


def test_a_scheduled_run_refreshes_the_audience_in_place(definitions: dict[str, Any], s3: Any) -> None:
    fake = FakeAws(MotoBucket(s3), durations=dict(INSTANT))  # type: ignore[arg-type]

    # GIVEN the config upload's run, its segments, and its audience in Customer Profiles
    _train(definitions, fake, _upload(s3), START)
    first_job = _active_job(fake, 0)
    _personalize_writes_the_job_output(s3, first_job, RANKED[0])
    _, first_segments = _split(definitions, first_job)
    first = _deliver(definitions, s3, _action(first_segments), "profiles-1")
    assert first.detail["Status"] == "SUCCEEDED"
    assert _members(s3) == ["1", "2", "3", "4"]
    assert fake.scheduler.get("bingewatch") is not None

    # WHEN new interactions arrive and the schedule fires a week later
    s3.put_object(
        Bucket=BUCKET,
        Key="train/bingewatch/interactions.csv",
        Body=demo_files()["train/bingewatch/interactions.csv"],
    )
    since = len(fake.events)
    _train(definitions, fake, scheduled_input(), START + timedelta(days=7))
    second_job = _active_job(fake, since)
    _personalize_writes_the_job_output(s3, second_job, RANKED[1])
    _, second_segments = _split(definitions, second_job)
    second = _deliver(definitions, s3, _action(second_segments), "profiles-2")

    # THEN the scheduled run trained a new solution version and segment job, said it was scheduled,
    assert second_job["JobName"] == "bingewatch-genres-20260108T000000"
    assert fake.events_of(TRAINING_RUN_STATE_CHANGE)[-1]["Trigger"] == "schedule"
    # its segments are new files under the new job's folder,
    action = _action(second_segments)
    assert action["Key"] == f"segments/bingewatch/{second_job['JobName']}/{ACTION_SLUG}.csv"
    assert action["UserCount"] == 3
    # the audience was updated in place: the same segment definition, users 2 and 4 flipped off,
    assert second.detail["Status"] == "SUCCEEDED"
    assert second.detail["SegmentDefinitionArn"] == first.detail["SegmentDefinitionArn"] == DEFINITION_ARN
    assert second.detail["MembersRemoved"] == 2
    assert _members(s3) == ["1", "3", "5"]
    # and the first run's job output and segments are tagged to expire; the latest run's, the query file
    # and the member list the next run needs are not
    first_keys = [
        o["Key"]
        for prefix in (
            first_job["OutputS3Uri"].removeprefix(f"s3://{BUCKET}/"),
            f"segments/bingewatch/{first_job['JobName']}/",
        )
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    ]
    assert first_keys
    assert all(_tags(s3, key) == [EXPIRE] for key in first_keys)
    assert _tags(s3, action["Key"]) == []
    assert _tags(s3, _input_key()) == []
    assert _tags(s3, f"{STATE}members.csv") == []


def test_a_scheduled_run_without_new_data_leads_to_nothing_downstream(
    definitions: dict[str, Any], s3: Any
) -> None:
    # GIVEN the upload's run succeeded and nothing was uploaded since
    fake = FakeAws(MotoBucket(s3), durations=dict(INSTANT))  # type: ignore[arg-type]
    _train(definitions, fake, _upload(s3), START)
    since, creates = len(fake.events), len(fake.creates)
    # WHEN the schedule fires
    execution = _train(definitions, fake, scheduled_input(), START + timedelta(days=7))
    # THEN no batch segment job becomes ACTIVE, so no post-processing and no upload starts
    assert execution.output["Status"] == "SKIPPED"
    assert fake.creates[creates:] == []
    assert [e["DetailType"] for e in fake.events[since:]] == [TRAINING_RUN_STATE_CHANGE]
