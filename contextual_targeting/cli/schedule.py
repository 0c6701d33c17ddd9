"""`schedule`: each dataset group's retraining schedule, its next run and its last run; pause and resume.

The training workflow creates one EventBridge Scheduler schedule per dataset group whose config has a
`schedule` block, in the stack's schedule group (output `TrainingScheduleGroupName`), named after the
dataset group. Pausing sets the schedule's State to DISABLED; the workflow keeps that State when a later
config changes the schedule.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import ClientError

from contextual_targeting.cli.executions import aware, describe, recent_executions, source_key
from contextual_targeting.cli.stack_outputs import CliError

# UpdateSchedule replaces the whole schedule: every member GetSchedule returns that UpdateSchedule takes.
UPDATE_MEMBERS = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "StartDate",
    "EndDate",
    "Description",
    "ScheduleExpressionTimezone",
    "State",
    "KmsKeyArn",
    "Target",
    "FlexibleTimeWindow",
    "ActionAfterCompletion",
)
ENABLED, DISABLED = "ENABLED", "DISABLED"
# The training runs looked at for each dataset group's last run (newest first).
LAST_RUN_LOOKBACK = timedelta(days=90)
MAX_RUNS = 200
_RATE = re.compile(r"^rate\((?P<value>[0-9]+) (?P<unit>minute|hour|day)s?\)$")
_AT = re.compile(r"^at\((?P<when>[0-9T:-]+)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]+)\)$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True, kw_only=True)
class ScheduleRow:
    """One dataset group's schedule, as the `schedule` command shows it."""

    dataset_group: str
    expression: str
    timezone: str
    state: str
    next_run: str | None
    """ISO 8601 in the schedule's time zone; None when paused, past its end, or not computable."""
    last_run: str | None
    """`<status> <start time> (<trigger>)` of the dataset group's latest training run."""
    last_run_arn: str | None
    config: str | None

    def document(self) -> dict[str, Any]:
        """The row as JSON (the `--json` output)."""
        return asdict(self)


def _paginate_schedules(scheduler: Any, group_name: str) -> Iterable[dict[str, Any]]:
    kwargs: dict[str, Any] = {"GroupName": group_name}
    while True:
        page = scheduler.list_schedules(**kwargs)
        yield from page.get("Schedules", [])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def read_schedules(scheduler: Any, group_name: str) -> list[dict[str, Any]]:
    """Every schedule of the group, whole (ListSchedules returns no expressions), by name."""
    names = sorted(str(s["Name"]) for s in _paginate_schedules(scheduler, group_name))
    return [scheduler.get_schedule(Name=name, GroupName=group_name) for name in names]


def get_schedule(scheduler: Any, group_name: str, dataset_group: str) -> dict[str, Any]:
    """The dataset group's schedule, or a CliError saying how to get one."""
    try:
        found: dict[str, Any] = scheduler.get_schedule(Name=dataset_group, GroupName=group_name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise CliError(
                f'dataset group {dataset_group} has no schedule: add a "schedule" block to its training '
                "config and upload it"
            ) from None
        raise
    return found


def set_state(scheduler: Any, group_name: str, dataset_group: str, state: str) -> bool:
    """Pause (DISABLED) or resume (ENABLED) the schedule; False when it already was in that state.

    UpdateSchedule replaces the whole schedule, so the request repeats everything GetSchedule returned."""
    current = get_schedule(scheduler, group_name, dataset_group)
    if current.get("State") == state:
        return False
    request = {key: current[key] for key in UPDATE_MEMBERS if key in current}
    request["State"] = state
    scheduler.update_schedule(**request)
    return True


def delete_schedule(scheduler: Any, group_name: str, dataset_group: str) -> bool:
    """Delete the dataset group's schedule; False when it has none."""
    try:
        scheduler.delete_schedule(Name=dataset_group, GroupName=group_name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise
    return True


def last_runs(sfn: Any, machine: str, *, now: datetime) -> dict[str, tuple[str, str]]:
    """By dataset group: (summary, execution ARN) of its newest training run within the lookback."""
    found: dict[str, tuple[str, str]] = {}
    for execution in recent_executions(sfn, machine, now - LAST_RUN_LOOKBACK, limit=MAX_RUNS):
        view = describe(sfn, str(execution["executionArn"]), with_history=False)
        parts = str(source_key(view.input) or "").split("/")
        if len(parts) != 3 or parts[1] in found:
            continue
        status = view.status
        if view.status == "SUCCEEDED" and view.output.get("Status") == "SKIPPED":
            status = "SKIPPED (no new data)"
        trigger = view.input.get("Trigger") if isinstance(view.input.get("Trigger"), str) else "upload"
        summary = f"{status} {view.started.strftime('%Y-%m-%d %H:%M')} UTC ({trigger})"
        found[parts[1]] = (summary, view.arn)
    return found


def schedule_rows(
    scheduler: Any, sfn: Any | None, *, group_name: str, machine: str | None, now: datetime
) -> list[ScheduleRow]:
    """One row per schedule of the group, with its next run and the dataset group's last run."""
    runs = last_runs(sfn, machine, now=now) if sfn is not None and machine else {}
    rows = []
    for schedule in read_schedules(scheduler, group_name):
        name = str(schedule["Name"])
        zone = str(schedule.get("ScheduleExpressionTimezone") or "UTC")
        state = str(schedule.get("State", ""))
        upcoming = next_run(schedule, now) if state == ENABLED else None
        config = _config_of(schedule)
        last, last_arn = runs.get(name, (None, None))
        rows.append(
            ScheduleRow(
                dataset_group=name,
                expression=str(schedule.get("ScheduleExpression", "")),
                timezone=zone,
                state=state,
                next_run=upcoming.isoformat() if upcoming else None,
                last_run=last,
                last_run_arn=last_arn,
                config=config,
            )
        )
    return rows


def _config_of(schedule: Mapping[str, Any]) -> str | None:
    """`s3://bucket/key` of the config the schedule's runs read."""
    try:
        source = json.loads(str(schedule.get("Target", {}).get("Input", ""))).get("Source", {})
    except (ValueError, AttributeError):
        return None
    if isinstance(source, dict) and source.get("Bucket") and source.get("Key"):
        return f"s3://{source['Bucket']}/{source['Key']}"
    return None


def to_json(rows: list[ScheduleRow]) -> str:
    """The rows as a JSON array."""
    return json.dumps([r.document() for r in rows], indent=2)


# ---------------------------------------------------------------------------------------------------------
# When does a schedule fire next?


def next_run(schedule: Mapping[str, Any], now: datetime) -> datetime | None:
    """The next time the schedule starts a run after `now`, in its time zone; None when unknown or over.

    cron and at() are exact; a rate counts from the schedule's start date or its last change (an update
    restarts a rate), which is what Scheduler does to within its one-minute precision."""
    expression = str(schedule.get("ScheduleExpression", ""))
    try:
        zone = ZoneInfo(str(schedule.get("ScheduleExpressionTimezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return None
    now = aware(now).astimezone(zone)
    end = schedule.get("EndDate")
    result: datetime | None
    if match := _AT.fullmatch(expression):
        at = datetime.fromisoformat(match["when"]).replace(tzinfo=zone)
        result = at if at > now else None
    elif match := _RATE.fullmatch(expression):
        unit = {"minute": 60, "hour": 3600, "day": 86400}[match["unit"]]
        step = timedelta(seconds=int(match["value"]) * unit)
        anchor_value = schedule.get("StartDate") or schedule.get("LastModificationDate")
        if not isinstance(anchor_value, datetime) or not step:
            return None
        anchor = aware(anchor_value).astimezone(zone)
        result = anchor if anchor > now else anchor + ((now - anchor) // step + 1) * step
    elif match := _CRON.fullmatch(expression):
        result = next_cron(match["fields"].split(" "), now)
    else:
        return None
    if result is not None and isinstance(end, datetime) and result > aware(end):
        return None
    return result


def next_cron(fields: list[str], now: datetime) -> datetime | None:
    """The first minute after `now` (aware, in the schedule's zone) that the 6 cron fields match."""
    if len(fields) != 6:
        return None
    try:
        minutes = _values(fields[0], 0, 59, ())
        hours = _values(fields[1], 0, 23, ())
        months = _values(fields[3], 1, 12, _MONTHS)
        years = _values(fields[5], 1970, 2199, ())
    except ValueError:
        return None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(366 * 5):
        if day.year in years and day.month in months and _day_matches(fields[2], fields[4], day):
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate > now:
                        return candidate
        day = (day + timedelta(days=1)).replace(hour=0, minute=0)
    return None


def _values(text: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    """The numbers a cron field lists: `*`, values, names, ranges, lists and steps."""
    if text in ("*", "?"):
        return set(range(low, high + 1))
    found: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        else:
            start, dash, stop = base.partition("-")
            first = _number(start, low, names)
            last = _number(stop, low, names) if dash else (high if step_text else first)
        if not (low <= first <= last <= high) or step < 1:
            raise ValueError(item)
        found.update(range(first, last + 1, step))
    return found


def _number(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return low + names.index(text.upper())
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _day_matches(day_of_month: str, day_of_week: str, day: datetime) -> bool:
    """Whether the day fits the day-of-month field (L, LW, nW too) or the day-of-week field (nL, n#k too)."""
    last = calendar.monthrange(day.year, day.month)[1]
    weekday = (day.weekday() + 1) % 7 + 1  # cron: 1 = SUN ... 7 = SAT
    if day_of_month != "?":
        if day_of_month == "L":
            return day.day == last
        if day_of_month == "LW":
            return day.day == _nearest_weekday(day, last)
        if day_of_month.endswith("W"):
            return day.day == _nearest_weekday(day, min(int(day_of_month[:-1]), last))
        try:
            return day.day in _values(day_of_month, 1, 31, ())
        except ValueError:
            return False
    if day_of_week.endswith("L") and len(day_of_week) > 1:
        target = _number(day_of_week[:-1], 1, _WEEKDAYS)
        return weekday == target and day.day + 7 > last
    if "#" in day_of_week:
        name, _, nth = day_of_week.partition("#")
        return weekday == _number(name, 1, _WEEKDAYS) and (day.day - 1) // 7 + 1 == int(nth)
    try:
        return weekday in _values(day_of_week, 1, 7, _WEEKDAYS)
    except ValueError:
        return False


def _nearest_weekday(day: datetime, target: int) -> int:
    """The weekday (Mon-Fri) of the month nearest to day `target`, never crossing into another month."""
    moment = day.replace(day=target)
    if moment.weekday() == 5:  # Saturday -> Friday, or Monday when the 1st is a Saturday
        return target - 1 if target > 1 else target + 2
    if moment.weekday() == 6:  # Sunday -> Monday, or Friday when it is the month's last day
        return target + 1 if target < calendar.monthrange(day.year, day.month)[1] else target - 2
    return target


def now_utc() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)
