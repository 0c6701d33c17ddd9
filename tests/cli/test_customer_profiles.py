"""`watch` and `segments` with the default destination: Customer Profiles upload runs, one per Segment Ready
event, followed to their end and reported per segment from their report (scripted Step Functions, moto S3)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from contextual_targeting.cli import main
from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from tests.cli.support import (
    BUCKET,
    POSTPROCESSING,
    T0,
    TRAINING,
    Clock,
    FakeExecution,
    FakeStepFunctions,
    aws,
    clock,
    create_buckets,
    deploy_stack,
    exec_arn,
    invoke,
    machine_arn,
    put_event,
    use_clients,
)
from tests.cli.test_segments import put_manifests
from tests.cli.test_watch import (
    ACTION,
    COMEDY,
    MANIFEST,
    MANIFEST_KEY,
    postprocessing_run,
    training_run,
)

__all__ = ["aws", "clock"]  # fixtures

PROFILES = machine_arn("CustomerProfiles")
EMPTY = MANIFEST["Segments"][2]


def report(segment: str, **fields: Any) -> dict[str, Any]:
    """The upload workflow's report (its output when it succeeds, its event's detail always)."""
    base = {
        "SegmentName": segment,
        "SegmentDefinitionName": f"bingewatch-{segment.split('-')[2]}",
        "SegmentDefinitionArn": "arn:aws:profile:eu-central-1:123456789012:domains/d/segment-definitions/x",
        "UploadJobId": "job-1",
        "Status": "SUCCEEDED",
        "UserCount": 50,
        "ProfilesUploaded": 47,
        "ProfilesFailed": 0,
        "UsersWithoutContact": 5,
        "MembersRemoved": 2,
        "FailureReason": "",
    }
    return base | fields


def upload_run(number: int, segment: str, status: str = "SUCCEEDED", **fields: Any) -> FakeExecution:
    """An upload run started by the segment's Segment Ready event, a few seconds after post-processing."""
    detail = report(segment, **fields)
    failed = status == "FAILED"
    return FakeExecution(
        arn=exec_arn("CustomerProfiles", f"cp-{number}"),
        machine=PROFILES,
        status=status,
        start=2965 + number,
        stop=None if status == "RUNNING" else 3100 + number,
        input={"detail-type": "Segment Ready", "detail": {"SegmentName": segment}},
        output=detail if status == "SUCCEEDED" else None,
        error="CustomerProfiles.UploadFailed" if failed else None,
        cause=detail["FailureReason"] if failed else None,
        events=[put_event(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE, detail, 3090 + number)]
        if status != "RUNNING"
        else [],
    )


@pytest.fixture
def stack(aws: None) -> None:
    """The default stack: Customer Profiles is its destination."""
    s3 = create_buckets(BUCKET)
    s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(MANIFEST).encode())
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.TRAINING_STATE_MACHINE: TRAINING,
            keys.POSTPROCESSOR_STATE_MACHINE: POSTPROCESSING,
            keys.CUSTOMER_PROFILES_STATE_MACHINE: PROFILES,
        }
    )


# ---- watch


def test_watch_follows_each_segments_upload_run_to_its_end(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a finished run whose Action upload is done and whose Comedy upload is still going
    reason = "none of the 48 users has contact data in train/bingewatch/users.csv"
    sfn = FakeStepFunctions(
        training_run(), postprocessing_run(), upload_run(0, ACTION), upload_run(1, COMEDY, "RUNNING")
    )
    clock.now_value = T0 + timedelta(seconds=3050)
    clock.on_sleep.append(
        lambda: sfn.add(
            upload_run(1, COMEDY, Status="REJECTED", FailureReason=reason, UsersWithoutContact=48)
        )
    )
    use_clients(monkeypatch, stepfunctions=sfn)

    # WHEN the run is watched
    result = invoke("watch", "--interval", "30")

    # THEN it waits for the Comedy upload, then shows each segment's upload outcome
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [30]
    output = result.output
    assert f"Customer Profiles {COMEDY} cp-1: RUNNING" in output
    assert f"Customer Profiles {ACTION} cp-0: SUCCEEDED" in output
    assert (
        "Customer Profiles: bingewatch-action: 45 members, 47 profiles uploaded, 0 failed, "
        "5 users without contact data"
    ) in output
    assert f"Customer Profiles: REJECTED: {reason}" in output
    # No upload run for the empty query: there is no segment to upload.
    assert output.count("Customer Profiles:") == 2
    assert EMPTY["Status"] == "EMPTY"


def test_watch_fails_with_the_reason_of_a_failed_upload_run(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "CustomerProfiles.ThrottlingException: Rate exceeded"
    sfn = FakeStepFunctions(
        training_run(),
        postprocessing_run(),
        upload_run(0, ACTION),
        upload_run(1, COMEDY, "FAILED", Status="FAILED", FailureReason=reason),
    )
    clock.now_value = T0 + timedelta(hours=2)
    use_clients(monkeypatch, stepfunctions=sfn)

    result = invoke("watch")

    assert result.exit_code == 1
    assert (
        f"error: Customer Profiles upload run cp-1 FAILED: CustomerProfiles.UploadFailed: {reason}"
        in result.output
    )


def test_watch_gives_up_on_an_upload_run_that_never_starts(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now_value = T0 + timedelta(seconds=3000)
    use_clients(
        monkeypatch,
        stepfunctions=FakeStepFunctions(training_run(), postprocessing_run(), upload_run(0, ACTION)),
    )

    result = invoke("watch", "--interval", "60")

    assert result.exit_code == 1
    assert f"error: no run started for: Customer Profiles upload of {COMEDY}" in result.output


# ---- segments


def test_segments_show_each_segments_customer_profiles_report(
    aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Action uploaded (after an older failed attempt), Comedy failed, and the stack's outputs
    put_manifests()
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET, keys.CUSTOMER_PROFILES_STATE_MACHINE: PROFILES})
    older = upload_run(0, ACTION, "FAILED", Status="FAILED", FailureReason="old")
    older.arn, older.start = exec_arn("CustomerProfiles", "cp-old"), 100
    sfn = FakeStepFunctions(
        older,
        upload_run(1, ACTION, ProfilesFailed=3, Status="PARTIALLY_SUCCEEDED", ProfilesUploaded=44),
        upload_run(2, COMEDY, "FAILED", Status="FAILED", FailureReason="upload job job-1 ended FAILED: bad"),
    )
    use_clients(monkeypatch, stepfunctions=sfn)

    # WHEN the segments are listed as JSON
    result = invoke("segments", "--json")

    # THEN each segment carries its newest upload run's report
    assert result.exit_code == 0, result.output
    rows = {(r["dataset_group"], r["segment"]): r for r in json.loads(result.output)}
    action = rows["bingewatch", ACTION]
    assert {k: v for k, v in action.items() if k.startswith(("profiles_", "users_without"))} == {
        "profiles_status": "PARTIALLY_SUCCEEDED",
        "profiles_definition": "bingewatch-action",
        "profiles_members": 45,
        "profiles_uploaded": 44,
        "profiles_failed": 3,
        "users_without_contact": 5,
    }
    comedy = rows["bingewatch", COMEDY]
    assert (comedy["profiles_status"], comedy["profiles_uploaded"]) == ("FAILED", 47)
    assert rows["bingewatch", None]["profiles_status"] is None  # the empty query

    # AND the table command adds a Customer Profiles table with one row per segment (in a wide terminal)
    monkeypatch.setattr(main.console, "width", 200)
    table = invoke("segments")
    assert table.exit_code == 0, table.output
    profiles = table.output.split("Customer Profiles", 1)[1]
    for text in ("definition", "members", "uploaded", "failed", "PARTIALLY_SUCCEEDED", "FAILED", "44", "45"):
        assert text in profiles
