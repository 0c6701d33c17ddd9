"""The training workflow, executed locally (local harness) against scripted Personalize, S3, EventBridge and
SNS: the happy path, reuse, reruns, every failure branch, late and missing files. Duplicate deliveries end in
the dispatcher before a run starts (tests/common/test_object_trigger.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_cdk.assertions import Template

from contextual_targeting.contracts.events import (
    BATCH_SEGMENT_JOB_STATE_CHANGE,
    EVENT_SOURCE,
    TRAINING_RUN_STATE_CHANGE,
    personalize_state_change,
)
from contextual_targeting.local import PAYLOAD_LIMIT_BYTES, Execution, definition_from_template, run_workflow
from contextual_targeting.training.create_and_wait import LONG, QUICK, TRAINING, PollSchedule
from contextual_targeting.training.workflow import FILE_CHECK_INTERVAL, FILE_CHECKS
from tests.helpers import build_stack
from tests.training.fakes import (
    CONFIG_KEY,
    NO_FAILURE_REASON,
    PREFIX,
    REFUSED,
    START,
    FakeAws,
    MemoryS3,
    demo_files,
    upload_input,
)

pytestmark = pytest.mark.slow

MAX_TRANSITIONS = 200
MAX_LATENESS = 0.02
USERS_CSV = "train/bingewatch/users.csv"
RESOURCE_EVENTS = (
    "Dataset Group",
    "Dataset",
    "Dataset Import Job",
    "Solution",
    "Solution Version",
    "Batch Segment Job",
)
# Every kind the workflow creates, in the order one dataset / one solution goes through them.
PIPELINE = (
    "DatasetGroup",
    "Schema",
    "Dataset",
    "DatasetImportJob",
    "Solution",
    "SolutionVersion",
    "BatchSegmentJob",
)
# Kind -> (state-name label, event name).
NAMES = {
    "DatasetGroup": ("dataset group", "Dataset Group"),
    "Schema": ("schema", "Schema"),
    "Dataset": ("dataset", "Dataset"),
    "DatasetImportJob": ("dataset import job", "Dataset Import Job"),
    "Solution": ("solution", "Solution"),
    "SolutionVersion": ("solution version", "Solution Version"),
    "BatchSegmentJob": ("batch segment job", "Batch Segment Job"),
}
# Poll schedules of the deployed workflow (TrainingWorkflowProps defaults).
SCHEDULES: dict[str, PollSchedule] = {
    "DatasetGroup": QUICK,
    "Dataset": QUICK,
    "DatasetImportJob": LONG,
    "Solution": QUICK,
    "SolutionVersion": TRAINING,
    "BatchSegmentJob": LONG,
}
# Never ACTIVE within any bound.
STUCK = 10 * 24 * 3600


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """The deployed definition: synthesized from the stack, tokens rendered."""
    return definition_from_template(Template.from_stack(build_stack()).to_json(), "TrainingTrainingWorkflow")


def _run(
    definition: dict[str, Any], fake: FakeAws, key: str = CONFIG_KEY, start: datetime = START
) -> Execution:
    return run_workflow(
        definition,
        upload_input(key),
        fake.handlers(),
        context={"Execution": {"StartTime": start.strftime("%Y-%m-%dT%H:%M:%S.000Z")}},
        timeout=120,
    )


def _fake(**kwargs: Any) -> FakeAws:
    return FakeAws(MemoryS3(demo_files(), kwargs.pop("arrivals", None)), **kwargs)


def _assert_failed_cleanly(execution: Execution, fake: FakeAws, error: str) -> dict[str, Any]:
    """Execution FAILED with `error`, one run-level FAILED event, exactly one email; returns the email."""
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == error
    runs = fake.events_of(TRAINING_RUN_STATE_CHANGE)
    assert [r["Status"] for r in runs] == ["FAILED"]
    assert runs[0]["Error"] == error
    assert runs[0]["DatasetGroupName"] == "bingewatch"
    assert runs[0]["FailureReason"] == execution.cause
    assert len(fake.emails) == 1
    email = fake.emails[0]
    assert email["Subject"] == "Contextual targeting: training run FAILED"
    assert email["Message"]["FailedStep"] == error
    assert email["Message"]["Reason"] == execution.cause
    message: dict[str, Any] = email["Message"]
    return message


def _assert_nothing_created_after(fake: FakeAws, kind: str) -> None:
    """No create of a kind that comes after `kind` (every iteration fails at the same step)."""
    later = set(PIPELINE[PIPELINE.index(kind) + 1 :])
    assert not later & set(fake.created_kinds()), fake.created_kinds()


# ---- happy path


def test_happy_path_trains_segments_and_reports(definition: dict[str, Any]) -> None:
    # GIVEN the demo data and a Personalize that takes the typical durations
    fake = _fake()
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN the run succeeds within the transition budget and sees every resource ACTIVE on time
    assert execution.status == "SUCCEEDED", execution.summary()
    print(f"\ntransitions={execution.transitions} virtual_seconds={execution.virtual_seconds:g}")
    print(f"{'resource':<64}{'created':>8}{'done':>8}{'seen':>8}{'late':>7}")
    for r in fake.resources.values():
        assert r.seen_active_at is not None, r
        late = (r.seen_active_at - r.completes_at) / max(r.duration, 1)
        name = f"{r.kind} {r.name}"
        print(f"{name:<64}{r.created_at:>8g}{r.completes_at:>8g}{r.seen_active_at:>8g}{late:>7.1%}")
        assert r.seen_active_at - r.completes_at <= MAX_LATENESS * r.duration, r
    assert execution.transitions <= MAX_TRANSITIONS
    assert execution.virtual_seconds == 5 + 600 + 5 + 3600 + 1200
    assert execution.max_payload_bytes < 64 * 1024
    # The config is read at the object version that started the run, not whatever is latest.
    assert fake.s3.versions[CONFIG_KEY] == upload_input()["Source"]["VersionId"]

    # Creates in dependency order (datasets interleave: their Map iterations run side by side); the three
    # imports start together, before any has finished.
    kinds = fake.created_kinds()
    assert kinds[0] == "DatasetGroup"
    assert sorted(kinds[1:10]) == sorted(["Schema", "Dataset", "DatasetImportJob"] * 3)
    assert kinds[10:] == ["Solution", "SolutionVersion", "BatchSegmentJob"]
    imports = [r for r in fake.resources.values() if r.kind == "DatasetImportJob"]
    assert len({r.created_at for r in imports}) == 1
    assert max(r.created_at for r in imports) < min(r.completes_at for r in imports)

    requests = dict(fake.creates)
    assert requests["Solution"]["PerformAutoTraining"] is False
    assert requests["SolutionVersion"]["TrainingMode"] == "FULL"
    job = requests["BatchSegmentJob"]
    assert job["NumResults"] == 50
    assert job["SolutionVersionArn"] == next(
        r.arn for r in fake.resources.values() if r.kind == "SolutionVersion"
    )
    assert job["JobOutput"]["S3DataDestination"]["Path"] == (
        "s3://data-bucket/batch/bingewatch/bw_aws-item-attribute-affinity/bingewatch-genres-20260101T000000/"
    )


def test_happy_path_events_cover_every_transition(definition: dict[str, Any]) -> None:
    fake = _fake()
    _run(definition, fake)
    assert {e["Source"] for e in fake.events} == {EVENT_SOURCE}
    for name in RESOURCE_EVENTS:
        statuses = [d["Status"] for d in fake.events_of(personalize_state_change(name))]
        count = 3 if name in ("Dataset", "Dataset Import Job") else 1
        assert sorted(statuses) == sorted(["CREATE PENDING", "ACTIVE"] * count), name
    assert [d["Status"] for d in fake.events_of(personalize_state_change("Schema"))] == ["ACTIVE"] * 3
    for detail in (
        d for e in fake.events for d in [e["Detail"]] if e["DetailType"] != TRAINING_RUN_STATE_CHANGE
    ):
        assert detail["DatasetGroupName"] == "bingewatch"
        assert detail["DatasetGroupArn"] == f"{PREFIX}dataset-group/bingewatch"
        assert detail["Arn"].startswith(PREFIX)

    # The SegmentPostprocessor's contract: exactly these keys on the ACTIVE batch segment job event.
    active = [d for d in fake.events_of(BATCH_SEGMENT_JOB_STATE_CHANGE) if d["Status"] == "ACTIVE"]
    assert len(active) == 1
    job_name = "bingewatch-genres-20260101T000000"
    assert active[0] == {
        "Arn": f"{PREFIX}batch-segment-job/{job_name}",
        "Status": "ACTIVE",
        "DatasetGroupName": "bingewatch",
        "DatasetGroupArn": f"{PREFIX}dataset-group/bingewatch",
        "JobName": job_name,
        "JobArn": f"{PREFIX}batch-segment-job/{job_name}",
        "OutputS3Uri": f"s3://data-bucket/batch/bingewatch/bw_aws-item-attribute-affinity/{job_name}/",
        "SolutionVersionArn": active[0]["SolutionVersionArn"],
    }
    assert active[0]["SolutionVersionArn"].startswith(f"{PREFIX}solution/bw_aws-item-attribute-affinity/")

    runs = fake.events_of(TRAINING_RUN_STATE_CHANGE)
    assert [r["Status"] for r in runs] == ["SUCCEEDED"]
    assert len(fake.emails) == 1
    message = fake.emails[0]["Message"]
    assert message["Result"] == "SUCCEEDED"
    (solution,) = message["Solutions"]
    assert solution["TrainingStarted"] == "2026-01-01T00:10:10.000Z"
    assert solution["TrainingFinished"] == "2026-01-01T01:10:10.000Z"
    assert solution["BatchSegmentJobs"][0]["JobName"] == job_name
    assert solution["BatchSegmentJobs"][0]["Finished"] == "2026-01-01T01:30:10.000Z"


# ---- reuse, retries, reruns


def test_existing_schemas_dataset_group_and_solution_are_reused(definition: dict[str, Any]) -> None:
    # GIVEN a previous run left the long-lived resources behind
    existing = {
        f"{PREFIX}dataset-group/bingewatch",
        f"{PREFIX}schema/bingewatch-interactions-schema",
        f"{PREFIX}schema/bingewatch-items-schema",
        f"{PREFIX}schema/bingewatch-users-schema",
        f"{PREFIX}dataset/bingewatch/INTERACTIONS",
        f"{PREFIX}dataset/bingewatch/ITEMS",
        f"{PREFIX}dataset/bingewatch/USERS",
        f"{PREFIX}solution/bw_aws-item-attribute-affinity",
    }
    fake = _fake(existing=existing)
    # WHEN the config is uploaded again
    execution = _run(definition, fake)
    # THEN only the per-run resources are created and the reused ones are announced ACTIVE without a create
    assert execution.status == "SUCCEEDED", execution.summary()
    assert sorted(fake.created_kinds()) == sorted(
        ["DatasetImportJob"] * 3 + ["SolutionVersion", "BatchSegmentJob"]
    )
    assert [d["Status"] for d in fake.events_of(personalize_state_change("Dataset Group"))] == ["ACTIVE"]
    assert [d["Status"] for d in fake.events_of(personalize_state_change("Solution"))] == ["ACTIVE"]
    assert [d["Status"] for d in fake.events_of(personalize_state_change("Dataset"))] == ["ACTIVE"] * 3
    assert fake.resources[f"{PREFIX}dataset/bingewatch/ITEMS"].created_at < 0
    assert execution.transitions <= MAX_TRANSITIONS


def test_throttled_describe_is_retried_and_the_run_succeeds(definition: dict[str, Any]) -> None:
    fake = _fake(throttle={"SolutionVersion": 2, "DatasetGroup": 1})
    execution = _run(definition, fake)
    assert execution.status == "SUCCEEDED", execution.summary()
    retried = [c for c in execution.calls_to("Check solution version") if c.attempt > 1]
    assert len(retried) == 2
    assert retried[0].error is None or retried[1].error is None
    assert [d["Status"] for d in fake.events_of(TRAINING_RUN_STATE_CHANGE)] == ["SUCCEEDED"]


def test_a_manual_rerun_with_the_same_input_runs_again(definition: dict[str, Any]) -> None:
    # GIVEN a run of this config version has finished (the dedupe lives in the dispatcher, not here)
    fake = _fake(
        durations={
            k: 0
            for k in (
                "DatasetGroup",
                "Dataset",
                "DatasetImportJob",
                "Solution",
                "SolutionVersion",
                "BatchSegmentJob",
            )
        }
    )
    first = _run(definition, fake)
    creates = len(fake.creates)
    # WHEN someone starts the training workflow again with the same input, an hour later
    second = _run(definition, fake, start=START + timedelta(hours=1))
    # THEN it is a full second run: validated again, fresh per-run resources, its own email
    assert first.status == second.status == "SUCCEEDED", second.summary()
    assert second.states_entered()[0] == "Start the training run"
    assert "Validate config" in second.states_entered()
    assert len(fake.validations) == 2
    rerun = [kind for kind, _ in fake.creates[creates:]]
    assert [rerun.count(k) for k in ("DatasetImportJob", "SolutionVersion", "BatchSegmentJob")] == [3, 1, 1]
    assert len(fake.emails) == 2


# ---- failures


def test_import_job_create_failed_fails_the_run_and_creates_nothing_further(
    definition: dict[str, Any],
) -> None:
    reason = "Input CSV is missing the following columns: [TIMESTAMP]"
    fake = _fake(failures={"DatasetImportJob": reason})
    execution = _run(definition, fake)
    message = _assert_failed_cleanly(execution, fake, "DatasetImportJobFailed")
    assert reason in message["Reason"]
    assert "Dataset import job bingewatch-" in message["Reason"]
    failed = [
        d
        for d in fake.events_of(personalize_state_change("Dataset Import Job"))
        if d["Status"] == "CREATE FAILED"
    ]
    assert failed
    assert failed[0]["FailureReason"] == reason
    assert "Solution" not in fake.created_kinds()


def test_solution_version_create_failed_fails_the_run_before_any_batch_job(
    definition: dict[str, Any],
) -> None:
    reason = "There are not enough interactions: 1000 are required"
    fake = _fake(failures={"SolutionVersion": reason})
    execution = _run(definition, fake)
    message = _assert_failed_cleanly(execution, fake, "SolutionVersionFailed")
    assert reason in message["Reason"]
    (failed,) = [
        d
        for d in fake.events_of(personalize_state_change("Solution Version"))
        if d["Status"] == "CREATE FAILED"
    ]
    assert failed["FailureReason"] == reason
    assert "BatchSegmentJob" not in fake.created_kinds()


def test_batch_segment_job_create_failed_is_announced_with_its_reason(definition: dict[str, Any]) -> None:
    fake = _fake(failures={"BatchSegmentJob": "Query syntax error"})
    execution = _run(definition, fake)
    _assert_failed_cleanly(execution, fake, "BatchSegmentJobFailed")
    statuses = [d["Status"] for d in fake.events_of(BATCH_SEGMENT_JOB_STATE_CHANGE)]
    assert statuses == ["CREATE PENDING", "CREATE FAILED"]


def test_invalid_config_is_rejected_before_anything_is_created(definition: dict[str, Any]) -> None:
    # GIVEN a config with a recipe that makes no segments and an unknown key
    config = json.loads(demo_files()[CONFIG_KEY])
    config["solutions"][0]["serviceConfig"]["recipeArn"] = (
        "arn:aws:personalize:::recipe/aws-user-personalization"
    )
    config["datasetGroup"]["serviceConfig"]["kmsKeyArn"] = "arn:aws:kms:eu-central-1:123456789012:key/x"
    files = demo_files()
    files[CONFIG_KEY] = json.dumps(config).encode()
    fake = FakeAws(MemoryS3(files))
    # WHEN it is uploaded
    execution = _run(definition, fake)
    # THEN the run fails fast, the email lists both reasons, and Personalize is never called
    message = _assert_failed_cleanly(execution, fake, "InvalidConfig")
    assert "must be a user-segmentation recipe" in message["Reason"]
    assert "unknown key 'kmsKeyArn'" in message["Reason"]
    assert fake.creates == []
    assert not [c for c in execution.calls if "personalize" in c.resource]
    assert execution.virtual_seconds == 0


def test_hostile_csv_headers_fail_the_run_with_an_email_not_a_payload_overflow(
    definition: dict[str, Any],
) -> None:
    # GIVEN three CSVs whose 64 KiB header lines are unknown columns (an unbounded echo made a 394 KB answer)
    files = demo_files()
    for kind in ("interactions", "items", "users"):
        columns = ",".join(f"{kind.upper()}_{'X' * 300}_{i}" for i in range(400)).encode()
        files[f"train/bingewatch/{kind}.csv"] = columns[: 64 * 1024 - 1] + b"\n1\n"
    fake = FakeAws(MemoryS3(files))
    # WHEN the config is uploaded
    execution = _run(definition, fake)
    # THEN no state comes near Step Functions' 256 KiB (States.DataLimitExceeded is uncatchable): the run
    # fails as an invalid config, with its event and one email naming the files
    assert execution.max_payload_bytes < PAYLOAD_LIMIT_BYTES // 4, execution.max_payload_at
    message = _assert_failed_cleanly(execution, fake, "InvalidConfig")
    for kind in ("interactions", "items", "users"):
        assert f"train/bingewatch/{kind}.csv" in message["Reason"]
    assert fake.creates == []


def test_csv_that_arrives_late_is_waited_for(definition: dict[str, Any]) -> None:
    # GIVEN `aws s3 sync` uploaded the config 70 seconds before users.csv
    fake = _fake(arrivals={USERS_CSV: 70})
    execution = _run(definition, fake)
    # THEN the workflow looked again every 30 s and trained once the file was there
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.validations == [0, 30, 60, 90]
    assert fake.resources[f"{PREFIX}dataset-group/bingewatch"].created_at == 90


def test_csv_that_never_arrives_fails_naming_the_file(definition: dict[str, Any]) -> None:
    files = demo_files()
    del files[USERS_CSV]
    fake = FakeAws(MemoryS3(files))
    execution = _run(definition, fake)
    message = _assert_failed_cleanly(execution, fake, "TrainingFilesMissing")
    assert USERS_CSV in message["Reason"]
    assert len(fake.validations) == FILE_CHECKS + 1
    assert execution.virtual_seconds == FILE_CHECKS * FILE_CHECK_INTERVAL
    assert fake.creates == []


def test_rejected_create_request_fails_naming_the_step(definition: dict[str, Any]) -> None:
    fake = _fake()
    handlers = fake.handlers()

    def refuse(call: Any) -> Any:
        from contextual_targeting.local import AwsError

        raise AwsError("Personalize.InvalidInputException", "Recipe not available in this region")

    handlers["aws-sdk:personalize:createSolution"] = refuse
    execution = run_workflow(
        definition,
        upload_input(),
        handlers,
        context={"Execution": {"StartTime": START.strftime("%Y-%m-%dT%H:%M:%S.000Z")}},
        timeout=120,
    )
    message = _assert_failed_cleanly(execution, fake, "SolutionRequestFailed")
    assert "Recipe not available" in message["Reason"]
    assert "SolutionVersion" not in fake.created_kinds()


def test_a_stuck_training_gives_up_after_its_bound(definition: dict[str, Any]) -> None:
    fake = _fake()
    fake.durations["SolutionVersion"] = 10 * 24 * 3600
    execution = _run(definition, fake)
    _assert_failed_cleanly(execution, fake, "SolutionVersionTimedOut")
    assert "BatchSegmentJob" not in fake.created_kinds()
    waited = execution.elapsed_for("Wait for solution version")
    assert 24 * 3600 <= waited < 24 * 3600 + 600
    print(f"\nstuck training: gave up after {waited / 3600:g} h, {execution.transitions} transitions")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("DatasetGroup", "KMS key ARN is not accessible by the Personalize service role"),
        ("Dataset", "(not reported by Personalize)"),
        ("Solution", "(not reported by Personalize)"),
    ],
    ids=["DatasetGroup", "Dataset", "Solution"],
)
def test_resource_create_failed_fails_the_run_naming_it(
    definition: dict[str, Any], kind: str, reason: str
) -> None:
    # GIVEN Personalize ends every resource of this kind CREATE FAILED (datasets and solutions say no why)
    label, event_name = NAMES[kind]
    fake = _fake(failures={kind: reason})
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN the run fails on that resource, with the reason Personalize gave or a note that it gave none
    expected = f"Personalize reports no reason for a failed {label}" if kind in NO_FAILURE_REASON else reason
    message = _assert_failed_cleanly(execution, fake, f"{kind}Failed")
    assert f"Fail on {label}" in execution.states_entered()
    assert message["Reason"].startswith(f"{label.capitalize()} ")
    assert message["Reason"].endswith(f" is CREATE FAILED: {expected}")
    failed = [
        d for d in fake.events_of(personalize_state_change(event_name)) if d["Status"] == "CREATE FAILED"
    ]
    assert failed
    assert all(d["FailureReason"] == expected for d in failed)
    assert {d["Arn"] for d in failed} <= {r.arn for r in fake.resources.values() if r.kind == kind}
    _assert_nothing_created_after(fake, kind)


@pytest.mark.parametrize(
    "kind", ["Schema", "DatasetGroup", "Dataset", "DatasetImportJob", "SolutionVersion", "BatchSegmentJob"]
)
def test_refused_create_request_fails_the_run_naming_the_step(definition: dict[str, Any], kind: str) -> None:
    # GIVEN Personalize refuses this kind's create request for good (the solution's: see above)
    label, event_name = NAMES[kind]
    cause = f"Invalid {label} request: 1 validation error detected"
    fake = _fake(rejections={kind: cause})
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN the request is not retried, the run fails naming the step and Personalize's words, and stops there
    message = _assert_failed_cleanly(execution, fake, f"{kind}RequestFailed")
    assert message["Reason"] == cause
    assert f"Fail on {label} request" in execution.states_entered()
    refused = execution.calls_to(f"Create {label}")
    assert refused
    assert all(c.error == REFUSED and c.attempt == 1 for c in refused)
    assert kind not in fake.created_kinds()
    assert fake.events_of(personalize_state_change(event_name)) == []
    _assert_nothing_created_after(fake, kind)


@pytest.mark.parametrize(
    "kind", ["DatasetGroup", "Dataset", "DatasetImportJob", "Solution", "BatchSegmentJob"]
)
def test_a_stuck_resource_gives_up_after_its_bound(definition: dict[str, Any], kind: str) -> None:
    # GIVEN this kind never leaves CREATE IN_PROGRESS (the solution version's bound: see above)
    label, event_name = NAMES[kind]
    schedule = SCHEDULES[kind]
    fake = _fake()
    fake.durations[kind] = STUCK
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN it is polled until its bound is spent, no longer, and the run fails naming it
    message = _assert_failed_cleanly(execution, fake, f"{kind}TimedOut")
    assert message["Reason"] == f"The {label} was not ACTIVE after {schedule.limit // 60} minutes of waiting"
    assert f"Give up on {label}" in execution.states_entered()
    stuck = [r for r in fake.resources.values() if r.kind == kind]
    assert stuck
    polled = [max(t for _, arn, t in fake.describes if arn == r.arn) - r.created_at for r in stuck]
    assert max(polled) >= schedule.limit
    assert all(p < schedule.limit + schedule.cap for p in polled)
    statuses = {d["Status"] for d in fake.events_of(personalize_state_change(event_name))}
    assert statuses == {"CREATE PENDING"}
    _assert_nothing_created_after(fake, kind)


# Kind -> (ARN, name in the config) of a resource the demo config reuses when it exists.
REUSED = {
    "DatasetGroup": (f"{PREFIX}dataset-group/bingewatch", "bingewatch"),
    "Dataset": (f"{PREFIX}dataset/bingewatch/ITEMS", "bingewatch-items"),
    "Solution": (f"{PREFIX}solution/bw_aws-item-attribute-affinity", "bw_aws-item-attribute-affinity"),
}


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("DatasetGroup", "DELETE PENDING", None),
        ("Dataset", "DELETE PENDING", None),
        ("Dataset", "DELETE IN_PROGRESS", None),
        ("Solution", "DELETE IN_PROGRESS", None),
        ("DatasetGroup", "CREATE FAILED", "KMS key ARN is not accessible by the Personalize service role"),
        ("Solution", "CREATE FAILED", None),
    ],
)
def test_a_reused_resource_being_deleted_or_failed_fails_the_run_at_once(
    definition: dict[str, Any], kind: str, status: str, reason: str | None
) -> None:
    # GIVEN the config names a resource that exists in this status (its create says: already exists)
    label, event_name = NAMES[kind]
    arn, name = REUSED[kind]
    fake = _fake(existing_status={arn: (status, reason)})
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN the run fails after one look, not after the 30-minute bound, saying what Personalize said
    message = _assert_failed_cleanly(execution, fake, f"{kind}Failed")
    assert len([t for _, described, t in fake.describes if described == arn]) == 1
    assert execution.elapsed_for(f"Wait for {label}") == 0
    if status.startswith("DELETE"):
        expected = "Personalize is deleting it: wait until it is gone, then upload the config again"
    elif reason is None:
        expected = f"Personalize reports no reason for a failed {label}"
    else:
        expected = reason
    assert message["Reason"] == f"{label.capitalize()} {name} is {status}: {expected}"
    (failed,) = [e for e in fake.events_of(personalize_state_change(event_name)) if e["Arn"] == arn]
    assert failed == {**failed, "Status": status, "FailureReason": expected}
    # Nothing uses it; the other datasets' iterations run side by side and may start their imports.
    assert not [r for r in fake.resources.values() if arn in r.request.values()]
    _assert_nothing_created_after(fake, "DatasetImportJob" if kind == "Dataset" else kind)


def test_a_stopped_training_without_a_reason_fails_the_run_with_its_email(definition: dict[str, Any]) -> None:
    # GIVEN someone stops the training: Describe says CREATE STOPPED and gives no failureReason
    fake = _fake()
    handlers = fake.handlers()
    describe = handlers["aws-sdk:personalize:describeSolutionVersion"]

    def stopped(call: Any) -> Any:
        answer = describe(call)
        answer["SolutionVersion"]["Status"] = "CREATE STOPPED"
        return answer

    handlers["aws-sdk:personalize:describeSolutionVersion"] = stopped
    # WHEN the run reaches the training
    execution = run_workflow(
        definition,
        upload_input(),
        handlers,
        context={"Execution": {"StartTime": START.strftime("%Y-%m-%dT%H:%M:%S.000Z")}},
        timeout=120,
    )
    # THEN it fails naming the status, with the run event and the email (no silent runtime error)
    message = _assert_failed_cleanly(execution, fake, "SolutionVersionFailed")
    assert message["Reason"].endswith(
        " is CREATE STOPPED: Personalize reports no reason for a failed solution version"
    )
    assert "BatchSegmentJob" not in fake.created_kinds()


def test_a_dataset_that_takes_a_while_is_polled_with_backoff(definition: dict[str, Any]) -> None:
    # GIVEN datasets take 12 s to become ACTIVE
    fake = _fake()
    fake.durations["Dataset"] = 12
    # WHEN the config upload runs the workflow
    execution = _run(definition, fake)
    # THEN each is looked at after 0, 5 and 15 s (QUICK backoff) and its import starts once it is ACTIVE
    assert execution.status == "SUCCEEDED", execution.summary()
    datasets = [r for r in fake.resources.values() if r.kind == "Dataset"]
    assert len(datasets) == 3
    for dataset in datasets:
        looks = [t - dataset.created_at for _, arn, t in fake.describes if arn == dataset.arn]
        assert looks == [0, 5, 15], dataset
        assert dataset.seen_active_at == dataset.created_at + 15
        (job,) = [r for r in fake.resources.values() if r.request.get("DatasetArn") == dataset.arn]
        assert job.created_at == dataset.seen_active_at
    statuses = [d["Status"] for d in fake.events_of(personalize_state_change("Dataset"))]
    assert sorted(statuses) == sorted(["CREATE PENDING", "ACTIVE"] * 3)
