"""`contextual-targeting watch`: scripted executions (moto's history is a fixed sample), moto S3 and
CloudFormation, a virtual clock."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.cli.executions import steps
from tests.cli.support import (
    BUCKET,
    EVENTS,
    IMPORT,
    IMPORT_BUCKET,
    POSTPROCESSING,
    PREPARE,
    T0,
    TRAINING,
    Clock,
    FakeExecution,
    FakeStepFunctions,
    aws,
    clock,
    create_buckets,
    deploy_stack,
    entered,
    exec_arn,
    exited,
    invoke,
    personalize_event,
    use_clients,
)

__all__ = ["aws", "clock"]  # fixtures

MANIFEST = json.loads((EVENTS / "manifest.json").read_text())
JOB_ARN = MANIFEST["JobArn"]
JOB_NAME = MANIFEST["JobName"]
MANIFEST_KEY = f"segments/bingewatch/{JOB_NAME}/manifest.json"
GROUP_ARN = "arn:aws:personalize:eu-central-1:123456789012:dataset-group/bingewatch"
VERSION_ARN = "arn:aws:personalize:eu-central-1:123456789012:solution/bw_aws-item-attribute-affinity/abc123"
RUN = exec_arn("Training", "run-1")
ACTION = MANIFEST["Segments"][0]["SegmentName"]
COMEDY = MANIFEST["Segments"][1]["SegmentName"]


def training_run(status: str = "SUCCEEDED") -> FakeExecution:
    """A training run: validate, create, wait for training, segment job ACTIVE (seconds after T0)."""
    events = [
        entered("Start the training run", 0, "Pass"),
        exited("Start the training run", 1, "Pass"),
        entered("Validate config", 1),
        exited("Validate config", 3),
        entered("Train and segment", 3, "Parallel"),
        entered("Create dataset group", 4),
        exited("Create dataset group", 5),
        personalize_event("Dataset Group", GROUP_ARN, "ACTIVE", 10),
        personalize_event("Solution Version", VERSION_ARN, "CREATE IN_PROGRESS", 100),
        entered("Wait for training", 100, "Wait"),
    ]
    if status != "RUNNING":
        events += [
            exited("Wait for training", 2000, "Wait"),
            personalize_event("Solution Version", VERSION_ARN, "ACTIVE", 2000),
            personalize_event("Batch Segment Job", JOB_ARN, "ACTIVE", 2900, JobArn=JOB_ARN, JobName=JOB_NAME),
            exited("Train and segment", 2990, "Parallel"),
            entered("Training done", 3000, "Succeed"),
        ]
    return FakeExecution(
        arn=RUN,
        machine=TRAINING,
        status=status,
        start=0,
        stop=None if status == "RUNNING" else 3000,
        input={"Source": {"Bucket": BUCKET, "Key": "train/bingewatch/bingewatch_config.json"}},
        output={} if status == "SUCCEEDED" else None,
        events=events,
    )


def postprocessing_run(status: str = "SUCCEEDED") -> FakeExecution:
    """The post-processing run the job's ACTIVE event started."""
    return FakeExecution(
        arn=exec_arn("Postprocessing", "pp-1"),
        machine=POSTPROCESSING,
        status=status,
        start=2905,
        stop=None if status == "RUNNING" else 2960,
        input={
            "detail-type": "Personalize Batch Segment Job State Change",
            "detail": {"Arn": JOB_ARN, "JobArn": JOB_ARN},
        },
        output={"Result": {"ManifestUri": f"s3://{BUCKET}/{MANIFEST_KEY}"}}
        if status == "SUCCEEDED"
        else None,
        error="States.TaskFailed" if status == "FAILED" else None,
        cause="JobOutputMissingError: no .out object under s3://..." if status == "FAILED" else None,
        events=[
            entered("Describe the batch segment job", 2905),
            exited("Describe the batch segment job", 2906),
        ],
    )


@pytest.fixture
def stack(aws: None) -> None:
    """The data bucket with the job's manifest, and the stack's outputs (no Pinpoint)."""
    s3 = create_buckets(BUCKET)
    s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(MANIFEST).encode())
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.TRAINING_STATE_MACHINE: TRAINING,
            keys.POSTPROCESSOR_STATE_MACHINE: POSTPROCESSING,
        }
    )


def test_a_finished_run_shows_steps_personalize_status_and_the_segments(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a training run and its post-processing, both finished an hour ago
    clock.now_value = T0 + timedelta(hours=2)
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions(training_run(), postprocessing_run()))

    # WHEN the latest run is watched
    result = invoke("watch")

    # THEN it reports the steps, the Personalize statuses and the segments with their user counts, at once
    assert result.exit_code == 0, result.output
    assert clock.sleeps == []
    output = result.output
    assert "Training run-1: SUCCEEDED" in output
    assert "Training > Wait for training" in output
    assert "Personalize Solution Version abc123: ACTIVE" in output
    assert "Post-processing pp-1: SUCCEEDED" in output
    assert ACTION in output
    assert "50" in output
    assert "48" in output
    assert "training run run-1 succeeded" in output


def test_a_failed_run_exits_non_zero_with_the_reason(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = training_run("FAILED")
    failed.error, failed.cause = (
        "InvalidConfig",
        "The training config train/bingewatch/x_config.json is invalid",
    )
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions(failed))

    result = invoke("watch", "run-1")

    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: training run run-1 FAILED: InvalidConfig: The training config train/bingewatch/x_config.json "
        "is invalid"
    )


def test_a_failed_post_processing_run_exits_non_zero(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions(training_run(), postprocessing_run("FAILED")))

    result = invoke("watch", RUN)

    assert result.exit_code == 1
    assert "error: post-processing run pp-1 FAILED: States.TaskFailed: JobOutputMissingError" in result.output


def test_a_running_run_is_followed_until_its_segments_are_ready(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run still training; AWS moves on while the command sleeps
    sfn = FakeStepFunctions(training_run("RUNNING"))
    clock.now_value = T0 + timedelta(seconds=1500)

    def training_ends() -> None:
        sfn.add(training_run())
        sfn.add(postprocessing_run("RUNNING"))

    def postprocessing_ends() -> None:
        sfn.add(postprocessing_run())

    progress = iter([training_ends, postprocessing_ends])
    clock.on_sleep.append(lambda: next(progress, lambda: None)())
    use_clients(monkeypatch, stepfunctions=sfn)

    # WHEN it is watched every 60 seconds
    result = invoke("watch", "--interval", "60")

    # THEN it looked three times, saw the step in progress, and ends with the segments
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [60, 60]
    assert "Training run-1: RUNNING" in result.output
    assert "Post-processing pp-1: RUNNING" in result.output
    assert COMEDY in result.output


def test_waiting_for_a_post_processing_run_that_never_starts_is_bounded(
    stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now_value = T0 + timedelta(seconds=3000)
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions(training_run()))

    result = invoke("watch", "--interval", "30")

    assert result.exit_code == 1
    assert sum(clock.sleeps) == 300
    assert f"error: no run started for: post-processing of {JOB_NAME}" in result.output


def test_the_pinpoint_runs_are_followed_too(aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stack with the Pinpoint destination: each ready segment is prepared, then imported
    s3 = create_buckets(BUCKET, IMPORT_BUCKET)
    s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(MANIFEST).encode())
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.TRAINING_STATE_MACHINE: TRAINING,
            keys.POSTPROCESSOR_STATE_MACHINE: POSTPROCESSING,
            keys.SEGMENT_IMPORT_BUCKET: IMPORT_BUCKET,
            keys.PINPOINT_PREPARE_STATE_MACHINE: PREPARE,
            keys.PINPOINT_IMPORT_STATE_MACHINE: IMPORT,
        }
    )
    sfn = FakeStepFunctions(training_run(), postprocessing_run())
    for number, name in enumerate((ACTION, COMEDY)):
        key = f"pinpoint/{name}.csv"
        sfn.add(
            FakeExecution(
                arn=exec_arn("PinpointPrepare", f"prep-{number}"),
                machine=PREPARE,
                status="SUCCEEDED",
                start=2970 + number,
                stop=3100,
                input={"detail": {"SegmentName": name, "JobArn": JOB_ARN}},
                output={
                    "Stage": "Prepare",
                    "Status": "PREPARED",
                    "SegmentName": name,
                    "Key": key,
                    "EndpointCount": 60,
                },
            )
        )
        sfn.add(
            FakeExecution(
                arn=exec_arn("PinpointImport", f"imp-{number}"),
                machine=IMPORT,
                status="SUCCEEDED" if number == 0 else "FAILED",
                start=3110 + number,
                stop=3300,
                input={"Source": {"Bucket": IMPORT_BUCKET, "Key": key, "VersionId": "v1"}},
                output={"Stage": "Import", "Status": "COMPLETED", "SegmentName": name}
                if number == 0
                else None,
                error=None if number == 0 else "Pinpoint.ImportFailed",
                cause=None if number == 0 else "import job 42 ended FAILED: []",
            )
        )
    clock.now_value = T0 + timedelta(hours=1)
    use_clients(monkeypatch, stepfunctions=sfn)

    result = invoke("watch")

    # THEN both segments' runs are shown, and the failed import makes the command fail with its reason
    assert result.exit_code == 1
    assert f"Pinpoint import {ACTION} imp-0: SUCCEEDED" in result.output
    assert f"Pinpoint prepare {COMEDY} prep-1: SUCCEEDED" in result.output
    assert (
        "error: Pinpoint import run imp-1 FAILED: Pinpoint.ImportFailed: import job 42 ended FAILED"
        in result.output
    )


def test_an_unknown_execution_is_one_line(stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions())

    result = invoke("watch", "nope")

    assert result.exit_code == 1
    assert result.output.strip() == "error: no training run nope in eu-central-1"


def test_no_run_yet_is_one_line(stack: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions())

    result = invoke("watch")

    assert result.exit_code == 1
    assert "error: no training run found: upload a training config first" in result.output


def test_elapsed_time_counts_parallel_iterations_once_and_retry_loops_in_full() -> None:
    # GIVEN two Map iterations of one state overlapping, and a wait state entered twice
    events = [
        entered("Import dataset", 0),
        entered("Import dataset", 10),
        exited("Import dataset", 60),
        exited("Import dataset", 70),
        entered("Wait", 100, "Wait"),
        exited("Wait", 130, "Wait"),
        entered("Wait", 200, "Wait"),
    ]
    for event in events:
        event["timestamp"] = T0 + timedelta(seconds=event.pop("at"))

    found = {s.name: s for s in steps(events, T0 + timedelta(seconds=250))}

    assert (
        found["Import dataset"].runs,
        found["Import dataset"].elapsed,
        found["Import dataset"].running,
    ) == (
        2,
        70.0,
        0,
    )
    assert (found["Wait"].runs, found["Wait"].elapsed, found["Wait"].running) == (2, 80.0, 1)


def test_the_live_view_shows_the_running_step_its_elapsed_time_and_personalize_statuses() -> None:
    from rich.console import Console

    from contextual_targeting.cli.executions import describe
    from contextual_targeting.cli.main import render_state
    from contextual_targeting.cli.watch import WatchState

    view = describe(FakeStepFunctions(training_run("RUNNING")), RUN, now=T0 + timedelta(seconds=1500))
    console = Console(record=True, width=120)

    console.print(render_state(WatchState(training=view, waiting_for=["post-processing of j"])))

    text = console.export_text()
    assert "Training: run-1 RUNNING" in text
    wait_row = next(line for line in text.splitlines() if "Wait for training" in line)
    assert [cell.strip() for cell in wait_row.split("│")[2:5]] == ["1", "23:20", "running"]
    assert "CREATE IN_PROGRESS" in text
    assert "waiting for: post-processing of j" in text
