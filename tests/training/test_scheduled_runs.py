"""Scheduled retraining, executed locally (local harness) against the training fakes: the schedule a config
asks for is created, updated, left alone or deleted; a scheduled run skips data the last successful run
trained on and retrains on new data; a run waits for an earlier run of its dataset group, or gives up."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_cdk.assertions import Template

from contextual_targeting.contracts.events import TRAINING_RUN_STATE_CHANGE
from contextual_targeting.local import Execution, definition_from_template, run_workflow
from contextual_targeting.training.run_queue import DEFAULT_QUEUE_WAIT, queue_schedule
from tests.helpers import build_stack
from tests.training.fakes import (
    BUCKET,
    CONFIG_KEY,
    START,
    EarlierRun,
    FakeAws,
    MemoryS3,
    demo_files,
    scheduled_input,
    upload_input,
)

pytestmark = pytest.mark.slow

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:LocalStateMachine"
STATE_KEY = "state/training/bingewatch/last-success.json"
WEEKLY = {"expression": "cron(0 3 ? * MON *)", "timezone": "Europe/Berlin"}
# Every resource ACTIVE at once: these tests are about what runs, not how long Personalize takes.
INSTANT = dict.fromkeys(
    ("DatasetGroup", "Dataset", "DatasetImportJob", "Solution", "SolutionVersion", "BatchSegmentJob"), 0
)
PER_RUN_KINDS = ("DatasetImportJob", "SolutionVersion", "BatchSegmentJob")
A_RUN = ["DatasetImportJob"] * 3 + ["SolutionVersion", "BatchSegmentJob"]
"""What every training run creates afresh (one import per dataset)."""


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """The deployed definition: synthesized from the stack, tokens rendered."""
    return definition_from_template(Template.from_stack(build_stack()).to_json(), "TrainingTrainingWorkflow")


def _fake(schedule: dict[str, Any] | None = None, **kwargs: Any) -> FakeAws:
    files = demo_files()
    if schedule is not None:
        config = json.loads(files[CONFIG_KEY])
        config["schedule"] = schedule
        files[CONFIG_KEY] = json.dumps(config).encode()
    return FakeAws(MemoryS3(files), durations=dict(INSTANT), **kwargs)


def _run(
    definition: dict[str, Any], fake: FakeAws, execution_input: dict[str, Any], start: datetime = START
) -> Execution:
    return run_workflow(
        definition,
        execution_input,
        fake.handlers(),
        context={"Execution": {"StartTime": start.strftime("%Y-%m-%dT%H:%M:%S.000Z")}},
        timeout=120,
    )


def _run_status(fake: FakeAws) -> list[str]:
    return [d["Status"] for d in fake.events_of(TRAINING_RUN_STATE_CHANGE)]


def _per_run_creates(fake: FakeAws, since: int = 0) -> list[str]:
    return [kind for kind, _ in fake.creates[since:] if kind in PER_RUN_KINDS]


# ---- the schedule follows the config


def test_a_config_with_a_schedule_creates_it(definition: dict[str, Any]) -> None:
    # GIVEN a config asking for a weekly run in Berlin time, and no schedule yet
    fake = _fake(WEEKLY)
    # WHEN its upload runs the workflow
    execution = _run(definition, fake, upload_input())
    # THEN the schedule is created in the stack's group, enabled, starting this workflow on the config's
    # latest version as a scheduled run, with the scheduler role
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.scheduler.actions() == ["getSchedule", "createSchedule"]
    (created,) = fake.scheduler.schedules.values()
    assert created["Name"] == "bingewatch"
    assert "TrainingSchedulesGroup" in created["GroupName"]  # the group's Ref, rendered by the harness
    assert created["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    assert created["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert created["State"] == "ENABLED"
    assert created["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert created["Target"]["Arn"] == MACHINE
    assert "TrainingSchedulesRole" in created["Target"]["RoleArn"]
    assert json.loads(created["Target"]["Input"]) == scheduled_input()
    # The upload run trained (an upload always does) and says what started it.
    assert _per_run_creates(fake) == A_RUN
    assert fake.events_of(TRAINING_RUN_STATE_CHANGE)[-1]["Trigger"] == "upload"
    assert fake.emails[-1]["Message"]["Trigger"] == "upload"


def test_a_changed_schedule_is_updated_and_stays_paused(definition: dict[str, Any]) -> None:
    # GIVEN a weekly schedule an operator paused, and a new config version asking for a daily one
    fake = _fake({"expression": "rate(1 day)"})
    _run(definition, _fake(WEEKLY, scheduler=fake.scheduler), upload_input())
    (name, existing) = next(iter(fake.scheduler.schedules.items()))
    fake.scheduler.schedules[name] = {**existing, "State": "DISABLED"}
    fake.scheduler.calls.clear()
    # WHEN the new config's upload runs the workflow
    execution = _run(definition, fake, upload_input(version="v2"))
    # THEN the whole schedule is replaced with the new expression, keeping its State
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.scheduler.actions() == ["getSchedule", "updateSchedule"]
    updated = fake.scheduler.schedules[name]
    assert updated["ScheduleExpression"] == "rate(1 day)"
    assert updated["ScheduleExpressionTimezone"] == "UTC"
    assert updated["State"] == "DISABLED"
    assert updated["Target"] == existing["Target"]


def test_an_unchanged_schedule_is_left_alone(definition: dict[str, Any]) -> None:
    # GIVEN the schedule an earlier run of the same config created
    fake = _fake(WEEKLY)
    _run(definition, fake, upload_input())
    fake.scheduler.calls.clear()
    # WHEN the config is uploaded again unchanged
    execution = _run(definition, fake, upload_input(version="v2"), start=START + timedelta(hours=2))
    # THEN the schedule is only read: a rate schedule would otherwise restart its rhythm
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.scheduler.actions() == ["getSchedule"]
    assert "Is the schedule up to date?" in execution.states_entered()


def test_a_schedule_edited_by_hand_is_put_back(definition: dict[str, Any]) -> None:
    # GIVEN the dataset group's schedule, changed outside the workflow: no time zone, no input
    fake = _fake(WEEKLY)
    _run(definition, fake, upload_input())
    (name, existing) = next(iter(fake.scheduler.schedules.items()))
    edited = {k: v for k, v in existing.items() if k != "ScheduleExpressionTimezone"}
    edited["Target"] = {k: v for k, v in existing["Target"].items() if k != "Input"}
    fake.scheduler.schedules[name] = edited
    fake.scheduler.calls.clear()
    # WHEN the config is uploaded again
    execution = _run(definition, fake, upload_input(version="v2"), start=START + timedelta(hours=2))
    # THEN the schedule is what the config says again
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.scheduler.actions() == ["getSchedule", "updateSchedule"]
    assert fake.scheduler.schedules[name] == existing


def test_a_manual_start_that_claims_another_trigger_counts_as_an_upload(definition: dict[str, Any]) -> None:
    fake = _fake()
    _run(definition, fake, upload_input())
    creates = len(fake.creates)
    execution = _run(
        definition, fake, {**scheduled_input(), "Trigger": "cron"}, start=START + timedelta(hours=1)
    )
    assert execution.status == "SUCCEEDED", execution.summary()
    assert _per_run_creates(fake, creates) == A_RUN
    assert fake.events_of(TRAINING_RUN_STATE_CHANGE)[-1]["Trigger"] == "upload"


def test_a_config_without_the_block_deletes_the_schedule(definition: dict[str, Any]) -> None:
    # GIVEN a dataset group with a schedule, and a new config version without the block
    fake = _fake()
    _run(definition, _fake(WEEKLY, scheduler=fake.scheduler), upload_input())
    assert fake.scheduler.get("bingewatch") is not None
    fake.scheduler.calls.clear()
    # WHEN the new config's upload runs the workflow
    execution = _run(definition, fake, upload_input(version="v2"))
    # THEN the schedule is gone; without one to delete, the same run just goes on
    assert execution.status == "SUCCEEDED", execution.summary()
    assert fake.scheduler.actions() == ["deleteSchedule"]
    assert fake.scheduler.get("bingewatch") is None


def test_a_schedule_scheduler_refuses_fails_the_run_before_training(definition: dict[str, Any]) -> None:
    # GIVEN a time zone the runtime could not check and Scheduler does not know
    fake = _fake({"expression": "rate(7 days)", "timezone": "Mars/Olympus_Mons"})
    fake.scheduler.refuse = "Invalid ScheduleExpressionTimezone: Mars/Olympus_Mons"
    # WHEN its upload runs the workflow (the validator of a runtime with tzdata would have refused it)
    files = fake.s3.objects
    config = json.loads(files[CONFIG_KEY])
    assert config["schedule"]["timezone"] == "Mars/Olympus_Mons"
    handlers = fake.handlers()
    handlers["Validate config"] = _validate_without_tzdata(fake)
    execution = run_workflow(definition, upload_input(), handlers, timeout=120)
    # THEN the run fails naming Scheduler's words, and nothing is created or billed
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "Scheduler.ValidationException"
    assert "Mars/Olympus_Mons" in str(execution.cause)
    assert fake.creates == []
    assert _run_status(fake) == ["FAILED"]


def _validate_without_tzdata(fake: FakeAws) -> Any:
    def validate(call: Any) -> Any:
        tc = __import__("training_config")
        original = tc.zoneinfo.available_timezones
        tc.zoneinfo.available_timezones = set
        try:
            return fake.handlers()["Validate config"](call)
        finally:
            tc.zoneinfo.available_timezones = original

    return validate


# ---- skip unchanged data


def test_a_scheduled_run_on_unchanged_data_ends_early(definition: dict[str, Any]) -> None:
    # GIVEN an upload run that succeeded and recorded what it trained on
    fake = _fake(WEEKLY)
    first = _run(definition, fake, upload_input())
    assert first.status == "SUCCEEDED", first.summary()
    record = json.loads(fake.s3.objects[STATE_KEY])
    assert record["ExecutionArn"].endswith(":local-execution")
    assert set(record["Files"]) == {
        CONFIG_KEY,
        "train/bingewatch/interactions.csv",
        "train/bingewatch/items.csv",
        "train/bingewatch/users.csv",
        "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json",
    }
    creates, emails = len(fake.creates), len(fake.emails)
    # WHEN the schedule fires a week later and nothing was uploaded since
    second = _run(definition, fake, scheduled_input(), start=START + timedelta(days=7))
    # THEN the run ends "no new data": nothing created, one SKIPPED event and one email, both saying why
    assert second.status == "SUCCEEDED", second.summary()
    assert second.output["Status"] == "SKIPPED"
    assert fake.creates[creates:] == []
    assert not [c for c in second.calls if "personalize" in c.resource]
    skipped = fake.events_of(TRAINING_RUN_STATE_CHANGE)[-1]
    assert skipped["Status"] == "SKIPPED"
    assert skipped["Reason"] == "no new data"
    assert skipped["Trigger"] == "schedule"
    assert skipped["LastSuccessfulRun"] == record["ExecutionArn"]
    (email,) = fake.emails[emails:]
    assert email["Subject"] == "Contextual targeting: scheduled training run skipped, no new data"
    assert email["Message"]["Trigger"] == "schedule"
    assert "nothing was billed" in email["Message"]["Reason"]
    # The scheduled run read the config's latest version (its input has no VersionId).
    assert fake.s3.versions[CONFIG_KEY] is None


def test_a_scheduled_run_on_new_data_retrains(definition: dict[str, Any]) -> None:
    # GIVEN a successful run, then a new interactions.csv (a new object version)
    fake = _fake(WEEKLY)
    _run(definition, fake, upload_input())
    before = json.loads(fake.s3.objects[STATE_KEY])
    fake.s3.put("train/bingewatch/interactions.csv", fake.s3.objects["train/bingewatch/interactions.csv"])
    creates = len(fake.creates)
    # WHEN the schedule fires
    execution = _run(definition, fake, scheduled_input(), start=START + timedelta(days=7))
    # THEN it trains again (new imports, version, job) and says it was scheduled
    assert execution.status == "SUCCEEDED", execution.summary()
    assert _per_run_creates(fake, creates) == A_RUN
    finished = fake.events_of(TRAINING_RUN_STATE_CHANGE)[-1]
    assert finished["Status"] == "SUCCEEDED"
    assert finished["Trigger"] == "schedule"
    assert fake.emails[-1]["Message"]["Trigger"] == "schedule"
    # AND the record now holds the new version, for the next scheduled run
    after = json.loads(fake.s3.objects[STATE_KEY])
    assert after["Files"]["train/bingewatch/interactions.csv"] == "v2"
    assert after["Fingerprint"] != before["Fingerprint"]
    assert after["Trigger"] == "schedule"


def test_an_upload_always_trains_even_on_unchanged_data(definition: dict[str, Any]) -> None:
    fake = _fake()
    _run(definition, fake, upload_input())
    creates = len(fake.creates)
    execution = _run(definition, fake, upload_input(), start=START + timedelta(hours=3))
    assert execution.status == "SUCCEEDED", execution.summary()
    assert _per_run_creates(fake, creates) == A_RUN


def test_a_run_whose_record_cannot_be_written_still_succeeds(definition: dict[str, Any]) -> None:
    # GIVEN S3 refuses the record (the next scheduled run then just trains again)
    fake = _fake(refuse_record=True)
    execution = _run(definition, fake, upload_input())
    assert execution.status == "SUCCEEDED", execution.summary()
    assert STATE_KEY not in fake.s3.objects
    assert _run_status(fake) == ["SUCCEEDED"]


# ---- one run per dataset group at a time


def test_a_run_waits_for_an_earlier_run_of_its_dataset_group_then_goes_on(definition: dict[str, Any]) -> None:
    # GIVEN an upload's run that trains for another 50 minutes when the schedule fires
    holder = "arn:aws:states:us-east-1:123456789012:execution:LocalStateMachine:upload-run"
    fake = _fake(earlier_runs=[EarlierRun(arn=holder, until=3000)])
    # WHEN the scheduled run starts
    execution = _run(definition, fake, scheduled_input())
    # THEN it says it waits, for whom, and goes on once that run has ended: validated and trained after it
    assert execution.status == "SUCCEEDED", execution.summary()
    waiting = fake.events_of(TRAINING_RUN_STATE_CHANGE)[0]
    assert waiting["Status"] == "WAITING"
    assert waiting["HeldBy"] == holder
    assert waiting["Trigger"] == "schedule"
    assert "Wait for the earlier run" in execution.states_entered()
    assert fake.queue_looks[0] == 0
    assert 3000 <= fake.queue_looks[-1] < 3000 + 600
    assert fake.validations[0] == fake.queue_looks[-1]
    assert min(r.created_at for r in fake.resources.values()) >= 3000
    assert _run_status(fake) == ["WAITING", "SUCCEEDED"]


def test_a_run_gives_up_when_the_earlier_run_outlasts_the_bound(definition: dict[str, Any]) -> None:
    # GIVEN an earlier run that is still running long after the bound
    holder = "arn:aws:states:us-east-1:123456789012:execution:LocalStateMachine:stuck-run"
    fake = _fake(earlier_runs=[EarlierRun(arn=holder, until=10 * 24 * 3600)])
    # WHEN a config upload starts a run
    execution = _run(definition, fake, upload_input())
    # THEN it waits the bound, no longer, and fails naming the run that held its dataset group
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "DatasetGroupBusy"
    assert holder in str(execution.cause)
    assert f"after {int(DEFAULT_QUEUE_WAIT.to_minutes())} minutes" in str(execution.cause)
    assert fake.validations == []
    assert fake.creates == []
    assert execution.virtual_seconds == sum(queue_schedule(DEFAULT_QUEUE_WAIT))
    assert _run_status(fake) == ["WAITING", "FAILED"]
    (email,) = fake.emails
    assert email["Message"]["FailedStep"] == "DatasetGroupBusy"
    assert holder in email["Message"]["Reason"]


def test_the_bucket_in_the_scheduled_input_is_the_data_bucket() -> None:
    assert scheduled_input()["Source"] == {"Bucket": BUCKET, "Key": CONFIG_KEY}
