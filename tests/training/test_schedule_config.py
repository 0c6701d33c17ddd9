"""The training config's optional `schedule` block: EventBridge Scheduler expression rules, the once-a-day
guard, IANA time zones, the schedule the plan asks for, and the published schema's agreement with them."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tests.helpers import REPO
from tests.training.fakes import BUCKET, CONFIG_KEY, ROLE_ARN, MemoryS3, demo_files, load_validator

tc = load_validator()
SCHEMA = json.loads((REPO / "contextual_targeting" / "contracts" / "training-config.schema.json").read_text())
DEMO: dict[str, Any] = json.loads(demo_files()[CONFIG_KEY])
START = "2026-01-01T12:34:56.789Z"


def _with_schedule(schedule: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEMO)
    config["schedule"] = schedule
    return config


def _problems(schedule: Any) -> list[str]:
    """Structure and meaning, as the validator checks a config (meaning only on a well-formed one)."""
    config = _with_schedule(schedule)
    report = tc.check_structure(config)
    if not report.errors:
        tc.check_semantics(config, report)
    return [e for e in report.errors if e.startswith("schedule")]


def _schema_accepts(schedule: Any) -> bool:
    return not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(_with_schedule(schedule)))


def test_the_schema_carries_the_validators_patterns() -> None:
    block = SCHEMA["properties"]["schedule"]
    assert block["properties"]["expression"]["pattern"] == tc.SCHEDULE_EXPRESSION_PATTERN
    assert block["properties"]["expression"]["maxLength"] == tc.SCHEDULE_EXPRESSION_MAX
    assert block["properties"]["timezone"]["pattern"] == tc.TIMEZONE_PATTERN
    assert block["properties"]["timezone"]["maxLength"] == tc.TIMEZONE_MAX
    assert block["then"]["properties"]["expression"]["pattern"] == tc.AT_MOST_DAILY_PATTERN


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 day)",
        "rate(7 days)",
        "rate(24 hours)",
        "rate(1440 minutes)",
        "cron(0 3 ? * MON *)",
        "cron(30 23 * * ? *)",
        "cron(0 6 L * ? *)",
        "cron(0 6 15W * ? 2027)",
        "cron(15 4 ? JAN-MAR 6#3 *)",
        "cron(0 12 1,15 * ? *)",
        "at(2027-01-04T03:00:00)",
    ],
)
def test_expressions_at_most_once_a_day_are_accepted(expression: str) -> None:
    assert _problems({"expression": expression}) == []
    assert _schema_accepts({"expression": expression})


@pytest.mark.parametrize(
    "expression",
    ["rate(23 hours)", "rate(1439 minutes)", "rate(1 hour)", "cron(0/30 * * * ? *)", "cron(0 3,15 * * ? *)"],
)
def test_more_often_than_daily_needs_the_explicit_switch(expression: str) -> None:
    # GIVEN an expression that can start more than one run a day
    # WHEN it comes without, then with allowMoreOftenThanDaily
    refused = _problems({"expression": expression})
    allowed = _problems({"expression": expression, "allowMoreOftenThanDaily": True})
    # THEN both the rules and the schema refuse it first and accept it then
    assert len(refused) == 1
    assert "more often than once a day" in refused[0]
    assert "allowMoreOftenThanDaily" in refused[0]
    assert not _schema_accepts({"expression": expression})
    assert allowed == []
    assert _schema_accepts({"expression": expression, "allowMoreOftenThanDaily": True})


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("rate(1 days)", "write rate(1 day)"),
        ("rate(2 day)", "write rate(2 days)"),
        ("cron(60 3 * * ? *)", "minutes field '60'"),
        ("cron(0 24 * * ? *)", "hours field '24'"),
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 ? * FUNDAY *)", "day-of-week field 'FUNDAY'"),
        ("cron(0 3 ? 13 MON *)", "month field '13'"),
        ("cron(0 3 ? * MON 1969)", "year field '1969'"),
        ("cron(0 3 5-2 * ? *)", "day-of-month field '5-2'"),
        ("at(2027-02-30T03:00:00)", "not a valid date and time"),
    ],
)
def test_what_the_pattern_cannot_say_is_checked_by_meaning(expression: str, problem: str) -> None:
    problems = _problems({"expression": expression})
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_time_zones_must_be_iana_names() -> None:
    assert _problems({"expression": "rate(7 days)", "timezone": "Europe/Berlin"}) == []
    assert _problems({"expression": "rate(7 days)", "timezone": "UTC"}) == []
    (problem,) = _problems({"expression": "rate(7 days)", "timezone": "Europe/Atlantis"})
    assert "'Europe/Atlantis' is not an IANA time zone name" in problem


def test_without_a_time_zone_database_the_name_is_left_to_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a runtime without tzdata (zoneinfo finds no zones)
    monkeypatch.setattr(tc.zoneinfo, "available_timezones", set)
    # THEN names are only checked for their form; EventBridge Scheduler refuses unknown ones at creation
    assert tc.known_timezone("Europe/Atlantis")
    assert not tc.known_timezone("Central European Time")


def _plan(config: dict[str, Any]) -> dict[str, Any]:
    files = demo_files()
    files[CONFIG_KEY] = json.dumps(config).encode()
    target = tc.Target(
        partition="aws", region="eu-central-1", account="123456789012", bucket=BUCKET, role_arn=ROLE_ARN
    )
    result = tc.validate_upload(MemoryS3(files), target, CONFIG_KEY, START)
    assert result["Valid"], result["Errors"]
    plan: dict[str, Any] = result["Plan"]
    return plan


def test_the_plan_names_the_schedule_and_the_input_of_a_scheduled_run() -> None:
    plan = _plan(_with_schedule({"expression": "cron(0 3 ? * MON *)", "timezone": "Europe/Berlin"}))
    schedule = plan["Schedule"]
    assert schedule["Name"] == "bingewatch"
    assert schedule["Expression"] == "cron(0 3 ? * MON *)"
    assert schedule["Timezone"] == "Europe/Berlin"
    # The scheduled run reads the config's latest version: no VersionId, and it says it was scheduled.
    assert json.loads(schedule["Input"]) == {
        "Source": {"Bucket": BUCKET, "Key": CONFIG_KEY},
        "Trigger": "schedule",
    }
    compact = json.dumps(json.loads(schedule["Input"]), separators=(",", ":"), sort_keys=True)
    assert schedule["Input"] == compact


def test_the_time_zone_defaults_to_utc_and_no_block_means_no_schedule() -> None:
    assert _plan(_with_schedule({"expression": "rate(7 days)"}))["Schedule"]["Timezone"] == "UTC"
    assert "Schedule" not in _plan(copy.deepcopy(DEMO))
