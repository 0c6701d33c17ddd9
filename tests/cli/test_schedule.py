"""`contextual-targeting schedule`: list the retraining schedules with their next and last run, pause and
resume one (moto's EventBridge Scheduler, scripted Step Functions, a virtual clock); `watch` on a skipped
scheduled run; `cleanup` deleting the schedule; when schedules fire next."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.cli.schedule import UPDATE_MEMBERS, next_cron, next_run
from tests.cli.support import (
    BUCKET,
    REGION,
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
    use_clients,
)
from tests.cli.test_cleanup import deletions, inventory

__all__ = ["aws", "clock"]  # fixtures

GROUP = "TrainingSchedulesGroup-abc"
CONFIG = "train/bingewatch/bingewatch_config.json"
RUN_INPUT = json.dumps({"Source": {"Bucket": BUCKET, "Key": CONFIG}, "Trigger": "schedule"})
ROLE = "arn:aws:iam::123456789012:role/TrainingSchedulesRole"
BERLIN_WEEKLY = {"ScheduleExpression": "cron(0 3 ? * MON *)", "ScheduleExpressionTimezone": "Europe/Berlin"}


def create_schedule(name: str, *, state: str = "ENABLED", **overrides: Any) -> None:
    boto3.client("scheduler", region_name=REGION).create_schedule(
        **{
            "Name": name,
            "GroupName": GROUP,
            **BERLIN_WEEKLY,
            "Description": f"Retrains dataset group {name}",
            "State": state,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": TRAINING, "RoleArn": ROLE, "Input": RUN_INPUT.replace("bingewatch", name)},
            **overrides,
        }
    )


@pytest.fixture
def stack(aws: None, clock: Clock) -> None:
    """A deployed stack with its schedule group."""
    create_buckets(BUCKET)
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.TRAINING_STATE_MACHINE: TRAINING,
            keys.TRAINING_SCHEDULE_GROUP: GROUP,
        }
    )
    boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=GROUP)


def scheduled_runs() -> FakeStepFunctions:
    """The newest bingewatch run was scheduled and skipped; shop's last run was an upload that failed."""
    return FakeStepFunctions(
        FakeExecution(
            arn=exec_arn("Training", "weekly"),
            machine=TRAINING,
            status="SUCCEEDED",
            start=-3600,
            stop=-3590,
            input={"Source": {"Bucket": BUCKET, "Key": CONFIG}, "Trigger": "schedule"},
            output={"Status": "SKIPPED", "Detail": {"LastSuccessfulRun": exec_arn("Training", "upload")}},
        ),
        FakeExecution(
            arn=exec_arn("Training", "upload"),
            machine=TRAINING,
            status="SUCCEEDED",
            start=-7 * 86400,
            stop=-7 * 86400 + 6000,
            input={"Source": {"Bucket": BUCKET, "Key": CONFIG, "VersionId": "v1"}},
        ),
        FakeExecution(
            arn=exec_arn("Training", "shop-upload"),
            machine=TRAINING,
            status="FAILED",
            start=-86400,
            stop=-86000,
            input={"Source": {"Bucket": BUCKET, "Key": "train/shop/shop_config.json", "VersionId": "v3"}},
        ),
    )


def test_schedule_lists_each_dataset_groups_schedule_with_next_and_last_run(
    stack: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a weekly schedule (Mondays 03:00 Berlin), a paused daily one; now: Saturday 2026-11-28 10:00 UTC
    create_schedule("bingewatch")
    create_schedule(
        "shop", state="DISABLED", ScheduleExpression="rate(1 day)", ScheduleExpressionTimezone="UTC"
    )
    use_clients(monkeypatch, stepfunctions=scheduled_runs())
    # WHEN the schedules are listed
    result = invoke("schedule", "--json")
    # THEN each shows its next run in its own time zone and the dataset group's newest run
    assert result.exit_code == 0, result.output
    rows = {row["dataset_group"]: row for row in json.loads(result.output)}
    assert rows["bingewatch"]["expression"] == "cron(0 3 ? * MON *)"
    assert rows["bingewatch"]["timezone"] == "Europe/Berlin"
    assert rows["bingewatch"]["state"] == "ENABLED"
    assert rows["bingewatch"]["next_run"] == "2026-11-30T03:00:00+01:00"
    assert rows["bingewatch"]["last_run"] == "SKIPPED (no new data) 2026-11-28 09:00 UTC (schedule)"
    assert rows["bingewatch"]["last_run_arn"] == exec_arn("Training", "weekly")
    assert rows["bingewatch"]["config"] == f"s3://{BUCKET}/{CONFIG}"
    assert rows["shop"]["state"] == "DISABLED"
    assert rows["shop"]["next_run"] is None
    assert rows["shop"]["last_run"] == "FAILED 2026-11-27 10:00 UTC (upload)"


def test_the_table_says_paused(stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    create_schedule("shop", state="DISABLED")
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions())
    result = invoke("schedule")
    assert result.exit_code == 0, result.output
    assert "shop" in result.output
    assert "paused" in result.output


def test_no_schedules_says_how_to_get_one(stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions())
    result = invoke("schedule")
    assert result.exit_code == 0, result.output
    assert 'add a "schedule" block to a training config' in result.output


def test_pause_and_resume_keep_the_rest_of_the_schedule(stack: None) -> None:
    # GIVEN the weekly schedule the training workflow created
    create_schedule("bingewatch")
    scheduler = boto3.client("scheduler", region_name=REGION)
    before = scheduler.get_schedule(Name="bingewatch", GroupName=GROUP)
    # WHEN it is paused (UpdateSchedule replaces the whole schedule)
    paused = invoke("schedule", "bingewatch", "--pause")
    after_pause = scheduler.get_schedule(Name="bingewatch", GroupName=GROUP)
    again = invoke("schedule", "bingewatch", "--pause")
    resumed = invoke("schedule", "bingewatch", "--resume")
    after_resume = scheduler.get_schedule(Name="bingewatch", GroupName=GROUP)
    # THEN only the State changed, each time
    assert paused.exit_code == again.exit_code == resumed.exit_code == 0, paused.output
    assert "schedule of bingewatch paused" in paused.output
    assert "schedule of bingewatch was paused" in again.output
    assert "schedule of bingewatch resumed" in resumed.output
    assert after_pause["State"] == "DISABLED"
    assert after_resume["State"] == "ENABLED"
    for member in ("ScheduleExpression", "ScheduleExpressionTimezone", "Description", "FlexibleTimeWindow"):
        assert after_pause[member] == after_resume[member] == before[member], member
    assert after_pause["Target"] == after_resume["Target"] == before["Target"]


class RecordingScheduler:
    """GetSchedule with every member Scheduler can return; UpdateSchedule recorded."""

    def __init__(self, schedule: dict[str, Any]) -> None:
        self.schedule = schedule
        self.updates: list[dict[str, Any]] = []

    def get_schedule(self, **_: Any) -> dict[str, Any]:
        return dict(self.schedule)

    def update_schedule(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return {"ScheduleArn": self.schedule["Arn"]}


def test_pause_sends_back_every_member_of_the_schedule(stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a schedule with start and end dates, a KMS key and an after-completion action
    full = {
        "Arn": f"arn:aws:scheduler:{REGION}:123456789012:schedule/{GROUP}/bingewatch",
        "Name": "bingewatch",
        "GroupName": GROUP,
        **BERLIN_WEEKLY,
        "StartDate": datetime(2026, 1, 1, tzinfo=UTC),
        "EndDate": datetime(2027, 1, 1, tzinfo=UTC),
        "Description": "Retrains dataset group bingewatch",
        "State": "ENABLED",
        "KmsKeyArn": "arn:aws:kms:eu-central-1:123456789012:key/k",
        "Target": {"Arn": TRAINING, "RoleArn": ROLE, "Input": RUN_INPUT},
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "NONE",
        "CreationDate": datetime(2026, 1, 1, tzinfo=UTC),
        "LastModificationDate": datetime(2026, 1, 2, tzinfo=UTC),
    }
    fake = RecordingScheduler(full)
    use_clients(monkeypatch, scheduler=fake)
    # WHEN it is paused
    assert invoke("schedule", "bingewatch", "--pause").exit_code == 0
    # THEN the update repeats every member UpdateSchedule takes, with only the State changed
    (update,) = fake.updates
    assert update == {k: v for k, v in full.items() if k in UPDATE_MEMBERS} | {"State": "DISABLED"}


def test_the_update_members_are_the_scheduler_models() -> None:
    model = botocore.session.get_session().get_service_model("scheduler")
    members = set(model.operation_model("UpdateSchedule").input_shape.members) - {"ClientToken"}
    assert set(UPDATE_MEMBERS) == members
    assert set(UPDATE_MEMBERS) <= set(model.operation_model("GetSchedule").output_shape.members)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("schedule", "nope", "--pause"), "dataset group nope has no schedule"),
        (("schedule", "--resume"), "name the dataset group to pause or resume"),
        (("schedule", "bingewatch", "--pause", "--resume"), "--pause or --resume, not both"),
    ],
)
def test_mistakes_are_one_line(stack: None, args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {message}")


def test_a_stack_without_schedules_is_told_to_deploy(aws: None, clock: Clock) -> None:
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET, keys.TRAINING_STATE_MACHINE: TRAINING})
    result = invoke("schedule")
    assert result.exit_code == 1
    assert "has no output TrainingScheduleGroupName" in result.output


# ---- watch and cleanup know about schedules


def test_watch_says_when_a_scheduled_run_found_no_new_data(
    stack: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = exec_arn("Training", "weekly")
    skipped = FakeExecution(
        arn=run,
        machine=TRAINING,
        status="SUCCEEDED",
        start=0,
        stop=4,
        input={"Source": {"Bucket": BUCKET, "Key": CONFIG}, "Trigger": "schedule"},
        output={"Status": "SKIPPED", "Detail": {"LastSuccessfulRun": "arn:previous"}},
        events=[
            entered("Start the training run", 0, "Pass"),
            exited("Start the training run", 1, "Pass"),
            entered("Report no new data", 2, "Pass"),
            exited("Report no new data", 3, "Pass"),
        ],
    )
    use_clients(monkeypatch, stepfunctions=FakeStepFunctions(skipped))
    result = invoke("watch")
    assert result.exit_code == 0, result.output
    assert "training run weekly: no new data since arn:previous, nothing trained" in result.output


@pytest.fixture
def personalize_with_schedule(stack: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("personalize", region_name=REGION)
    use_clients(monkeypatch, personalize=client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_cleanup_deletes_the_dataset_groups_schedule_first(personalize_with_schedule: Stubber) -> None:
    # GIVEN a dataset group with a retraining schedule
    create_schedule("bingewatch")
    create_schedule("shop")
    inventory(personalize_with_schedule)
    deletions(personalize_with_schedule)
    # WHEN it is cleaned up
    result = invoke("cleanup", "bingewatch", "--yes")
    # THEN its schedule is gone (it would recreate the group and bill a training), the other stays
    assert result.exit_code == 0, result.output
    assert "retraining schedule bingewatch deleted" in result.output
    names = [s["Name"] for s in boto3.client("scheduler", region_name=REGION).list_schedules()["Schedules"]]
    assert names == ["shop"]


# ---- when schedules fire


def _at(text: str, zone: str = "UTC") -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("fields", "now", "expected"),
    [
        ("0 3 ? * MON *", "2026-11-28T10:00", "2026-11-30T03:00"),
        ("0 3 ? * MON *", "2026-11-30T02:59", "2026-11-30T03:00"),
        ("0 3 ? * MON *", "2026-11-30T03:00", "2026-12-07T03:00"),
        ("30 23 * * ? *", "2026-11-28T23:45", "2026-11-29T23:30"),
        ("0 6 L * ? *", "2026-02-03T00:00", "2026-02-28T06:00"),
        ("0 6 LW * ? *", "2026-05-01T00:00", "2026-05-29T06:00"),  # May 31 is a Sunday
        ("0 6 15W * ? *", "2026-08-01T00:00", "2026-08-14T06:00"),  # Aug 15 is a Saturday
        ("0 6 ? * 6#3 *", "2026-11-01T00:00", "2026-11-20T06:00"),  # third Friday
        ("0 6 ? * 2L *", "2026-11-01T00:00", "2026-11-30T06:00"),  # last Monday
        ("0/15 9-10 * * ? *", "2026-11-28T10:50", "2026-11-29T09:00"),
        ("0 12 1 JAN,JUL ? 2027", "2026-11-28T10:00", "2027-01-01T12:00"),
        ("0 12 1 JAN ? 2025", "2026-11-28T10:00", None),
    ],
)
def test_next_cron(fields: str, now: str, expected: str | None) -> None:
    found = next_cron(fields.split(" "), _at(now))
    assert (found.strftime("%Y-%m-%dT%H:%M") if found else None) == expected


def test_next_run_follows_the_time_zone_across_a_clock_change() -> None:
    # Berlin leaves summer time on 2026-10-25: 03:00 local is 02:00 UTC afterwards
    schedule = {"ScheduleExpression": "cron(0 3 * * ? *)", "ScheduleExpressionTimezone": "Europe/Berlin"}
    found = next_run(schedule, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    assert found is not None
    assert found.astimezone(UTC) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


def test_a_rate_counts_from_its_last_change_and_an_at_fires_once() -> None:
    changed = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    rate = {"ScheduleExpression": "rate(7 days)", "LastModificationDate": changed}
    assert next_run(rate, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)) == datetime(
        2026, 12, 4, 8, 0, tzinfo=UTC
    )
    assert next_run(rate, datetime(2026, 11, 19, 10, 0, tzinfo=UTC)) == changed
    at = {"ScheduleExpression": "at(2027-01-04T03:00:00)", "ScheduleExpressionTimezone": "Europe/Berlin"}
    assert next_run(at, datetime(2026, 11, 28, tzinfo=UTC)) == _at("2027-01-04T03:00", "Europe/Berlin")
    assert next_run(at, datetime(2027, 2, 1, tzinfo=UTC)) is None


def test_a_schedule_past_its_end_date_has_no_next_run() -> None:
    schedule = {"ScheduleExpression": "cron(0 3 * * ? *)", "EndDate": datetime(2026, 11, 28, tzinfo=UTC)}
    assert next_run(schedule, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)) is None
