"""Validate a training config and its files, and turn it into the workflow's run plan (stdlib + an S3 client).

The Lambda runtime has boto3 but not jsonschema, so the rules are plain Python. They mirror
`contextual_targeting/contracts/training-config.schema.json`; a test keeps both in agreement.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

TRAIN_PREFIX = "train/"
BATCH_PREFIX = "batch/"
CONFIG_SUFFIX = "_config.json"
BATCH_INPUT_NAME = "job_config.json"

# Personalize's rule for every resource name (schemas, dataset groups, datasets, solutions, jobs).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$")
NAME_MAX = 63
RUN_SUFFIX_LENGTH = len("-20260101T000000")
DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")
# Recipes that produce user segments (batch segment jobs accept only these).
SEGMENTATION_RECIPES = (
    "arn:aws:personalize:::recipe/aws-item-attribute-affinity",
    "arn:aws:personalize:::recipe/aws-item-affinity",
)
# CreateSolutionVersion accepts UPDATE only for User-Personalization and HRNN-Coldstart solutions
# (https://docs.aws.amazon.com/personalize/latest/dg/API_CreateSolutionVersion.html, trainingMode): a
# segmentation recipe trains FULL only.
TRAINING_MODES = ("FULL",)
DATASET_TYPES = {"interactions": "INTERACTIONS", "items": "ITEMS", "users": "USERS"}
REQUIRED_DATASETS = ("interactions", "items")
REQUIRED_FIELDS = {
    "interactions": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "items": ("ITEM_ID",),
    "users": ("USER_ID",),
}
MAX_QUERIES = 10
MAX_NUM_RESULTS = 5_000_000
DEFAULT_NUM_RESULTS = 25
CSV_HEADER_BYTES = 64 * 1024
# Any `<dataset>.<field>` reference in a query: `ITEMS.genres`, and also `items.genres` to refuse it.
QUERY_REFERENCE = re.compile(r"\b([A-Za-z]+)\.([A-Za-z0-9_]+)")
# Quoted values are data, not references: `ITEMS.title = "items.csv"` names one field.
QUERY_VALUE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')

# A Step Functions state's input and output are capped at 256 KiB, and a larger Lambda result fails the
# run with States.DataLimitExceeded, which no Catch handles
# (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html): every value
# echoed from the upload is cut, the error and missing-file lists keep what fits a budget and count the
# rest, and a plan too big for the workflow's state is refused. Sizes are JSON with \u escapes, the
# larger encoding.
ECHO_CHARS = 60
"""Longest echoed value (a key, a name, a column) before it is cut."""
ECHO_ITEMS = 5
"""Most values listed in one message (columns, fields) before the rest are counted."""
LINE_CHARS = 600
"""Longest single error line."""
LIST_BYTES = 12 * 1024
"""Budget of the errors (the Message repeats them) and of the missing files, each."""
RESULT_BYTES = 96 * 1024
"""Largest answer, plan included: the run's state also carries its input, poll results and summaries."""
FILTER_ARN = re.compile(r"^arn:aws[a-z-]*:personalize:[a-z0-9-]+:\d{12}:filter/[a-zA-Z0-9][a-zA-Z0-9\-_]*$")


class S3Reader(Protocol):
    """The two S3 calls the validator makes (a boto3 S3 client satisfies it)."""

    def get_object(self, **kwargs: Any) -> Any: ...  # pragma: no cover


class MissingObjectError(Exception):
    """The object does not exist (yet)."""


class EmptyObjectError(Exception):
    """The object has no bytes (S3 refuses a ranged GET on it with InvalidRange)."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the run creates its resources: account, region, partition, bucket and the Personalize role."""

    partition: str
    region: str
    account: str
    bucket: str
    role_arn: str

    def arn(self, resource: str) -> str:
        """Deterministic Personalize ARN, e.g. `dataset-group/bingewatch`."""
        return f"arn:{self.partition}:personalize:{self.region}:{self.account}:{resource}"


@dataclass
class Report:
    """What validation found: errors make the config invalid; missing files may still arrive."""

    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        """Record one problem, prefixed with the config path it concerns."""
        self.errors.append(f"{where}: {message}")


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """A value from the upload as a message shows it: cut to `limit` characters, saying how long it was."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def shown_list(values: Sequence[object]) -> str:
    """Comma-separated values, each cut, at most ECHO_ITEMS of them and a count of the rest."""
    listed = ", ".join(shown(v) for v in values[:ECHO_ITEMS])
    rest = len(values) - ECHO_ITEMS
    return f"{listed} and {rest:,} more" if rest > 0 else listed


def _json_size(value: Any) -> int:
    """Bytes of `value` as JSON with \\u escapes (never fewer than its UTF-8 form)."""
    return len(json.dumps(value))


def within_budget(lines: Sequence[str], noun: str, budget: int = LIST_BYTES) -> list[str]:
    """The first lines (each cut to LINE_CHARS) that fit `budget` bytes, then one line counting the rest."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        line = shown(line, LINE_CHARS)
        size = _json_size(line) + 2
        if used + size > budget:
            kept.append(f"... and {len(lines) - index:,} more {noun}")
            break
        kept.append(line)
        used += size
    return kept


# ---------------------------------------------------------------------------------------------------------
# Structure (the part the JSON Schema also expresses)


def _keys(
    report: Report, where: str, value: Any, required: Iterable[str], optional: Iterable[str] = ()
) -> bool:
    """Check an object's keys: all required present, nothing unknown. False when `value` is no object."""
    if not isinstance(value, dict):
        report.error(where, "must be an object")
        return False
    required = tuple(required)
    allowed = set(required) | set(optional)
    for key in required:
        if key not in value:
            report.error(where, f"missing required key '{key}'")
    for key in value:
        if key not in allowed:
            report.error(where, f"unknown key '{shown(key)}' (allowed: {', '.join(sorted(allowed))})")
    return True


def _name(report: Report, where: str, value: Any, *, max_length: int = NAME_MAX) -> None:
    """A Personalize resource name: letters, digits, "-" and "_", starting with a letter or digit."""
    if not isinstance(value, str):
        report.error(where, "must be a string")
    elif not NAME_PATTERN.fullmatch(value) or len(value) > max_length:
        report.error(
            where,
            f"'{shown(value)}' breaks Personalize's naming rule (1-{max_length} characters: letters, digits, "
            "'-', '_'; starting with a letter or digit)",
        )


def _avro_schema(report: Report, where: str, schema: Any) -> None:
    """The Avro record Personalize expects: type record, a name, a list of named, typed fields."""
    if not _keys(report, where, schema, ("type", "name", "fields"), ("namespace", "version")):
        return
    if schema.get("type") != "record":
        report.error(f"{where}.type", "must be 'record'")
    for key in ("name", "namespace", "version"):
        if key in schema and not isinstance(schema[key], str):
            report.error(f"{where}.{key}", "must be a string")
    fields = schema.get("fields")
    if not isinstance(fields, list) or not fields:
        report.error(f"{where}.fields", "must be a non-empty list")
        return
    for i, item in enumerate(fields):
        here = f"{where}.fields[{i}]"
        if _keys(report, here, item, ("name", "type"), ("categorical", "textual", "default")):
            if not isinstance(item.get("name"), str) or not item["name"]:
                report.error(f"{here}.name", "must be a non-empty string")
            kind = item.get("type")
            if not (
                isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(k, str) for k in kind))
            ):
                report.error(f"{here}.type", "must be an Avro type name or a union (list) of them")
            for flag in ("categorical", "textual"):
                if flag in item and not isinstance(item[flag], bool):
                    report.error(f"{here}.{flag}", "must be true or false")


def check_structure(config: Any) -> Report:
    """Structural rules of the config format (what the published JSON Schema states, and nothing more)."""
    report = Report()
    if not _keys(report, "config", config, ("datasetGroup", "datasets", "solutions"), ("schedule",)):
        return report
    if "schedule" in config:
        check_schedule_structure(report, config["schedule"])
    group = config.get("datasetGroup")
    if _keys(report, "datasetGroup", group, ("serviceConfig",)):
        service = group.get("serviceConfig")
        if _keys(report, "datasetGroup.serviceConfig", service, ("name",), ("domain",)):
            _name(report, "datasetGroup.serviceConfig.name", service.get("name"))
            if "domain" in service and service["domain"] not in DOMAINS:
                report.error("datasetGroup.serviceConfig.domain", f"must be one of {', '.join(DOMAINS)}")

    datasets = config.get("datasets")
    if _keys(report, "datasets", datasets, REQUIRED_DATASETS, ("users",)):
        for kind in DATASET_TYPES:
            if kind not in datasets:
                continue
            here = f"datasets.{kind}"
            entry = datasets[kind]
            if not _keys(report, here, entry, ("dataset", "schema")):
                continue
            if _keys(report, f"{here}.dataset", entry.get("dataset"), ("serviceConfig",)):
                service = entry["dataset"].get("serviceConfig")
                if _keys(report, f"{here}.dataset.serviceConfig", service, ("name",)):
                    _name(report, f"{here}.dataset.serviceConfig.name", service.get("name"))
            if _keys(report, f"{here}.schema", entry.get("schema"), ("serviceConfig",)):
                service = entry["schema"].get("serviceConfig")
                if _keys(report, f"{here}.schema.serviceConfig", service, ("name", "schema"), ("domain",)):
                    _name(report, f"{here}.schema.serviceConfig.name", service.get("name"))
                    if "domain" in service and service["domain"] not in DOMAINS:
                        report.error(
                            f"{here}.schema.serviceConfig.domain", f"must be one of {', '.join(DOMAINS)}"
                        )
                    _avro_schema(report, f"{here}.schema.serviceConfig.schema", service.get("schema"))

    solutions = config.get("solutions")
    if not isinstance(solutions, list) or not solutions:
        report.error("solutions", "must be a non-empty list")
        return report
    for i, solution in enumerate(solutions):
        here = f"solutions[{i}]"
        if not _keys(report, here, solution, ("serviceConfig",), ("solutionVersion", "batchSegmentJobs")):
            continue
        service = solution.get("serviceConfig")
        if _keys(report, f"{here}.serviceConfig", service, ("name", "recipeArn"), ("performAutoTraining",)):
            _name(
                report,
                f"{here}.serviceConfig.name",
                service.get("name"),
                max_length=NAME_MAX - RUN_SUFFIX_LENGTH,
            )
            if service.get("recipeArn") not in SEGMENTATION_RECIPES:
                report.error(
                    f"{here}.serviceConfig.recipeArn",
                    f"must be a user-segmentation recipe ({', '.join(SEGMENTATION_RECIPES)})",
                )
            if "performAutoTraining" in service and not isinstance(service["performAutoTraining"], bool):
                report.error(f"{here}.serviceConfig.performAutoTraining", "must be true or false")
        if "solutionVersion" in solution and _keys(
            report, f"{here}.solutionVersion", solution["solutionVersion"], ("serviceConfig",)
        ):
            version = solution["solutionVersion"].get("serviceConfig")
            if (
                _keys(report, f"{here}.solutionVersion.serviceConfig", version, (), ("trainingMode",))
                and "trainingMode" in version
                and version["trainingMode"] not in TRAINING_MODES
            ):
                report.error(
                    f"{here}.solutionVersion.serviceConfig.trainingMode",
                    "must be FULL: Personalize trains UPDATE only for User-Personalization and "
                    "HRNN-Coldstart solutions, not for the segmentation recipes",
                )
        jobs = solution.get("batchSegmentJobs", [])
        if not isinstance(jobs, list):
            report.error(f"{here}.batchSegmentJobs", "must be a list")
            continue
        for j, job in enumerate(jobs):
            where = f"{here}.batchSegmentJobs[{j}]"
            if not _keys(report, where, job, ("serviceConfig",)):
                continue
            service = job.get("serviceConfig")
            if not _keys(
                report, f"{where}.serviceConfig", service, ("jobName",), ("numResults", "filterArn")
            ):
                continue
            _name(
                report,
                f"{where}.serviceConfig.jobName",
                service.get("jobName"),
                max_length=NAME_MAX - RUN_SUFFIX_LENGTH,
            )
            if "numResults" in service:
                num = service["numResults"]
                if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_NUM_RESULTS:
                    report.error(
                        f"{where}.serviceConfig.numResults",
                        f"must be an integer from 1 to {MAX_NUM_RESULTS:,}",
                    )
            if "filterArn" in service and not (
                isinstance(service["filterArn"], str) and FILTER_ARN.fullmatch(service["filterArn"])
            ):
                report.error(f"{where}.serviceConfig.filterArn", "must be a Personalize filter ARN")
    return report


# ---------------------------------------------------------------------------------------------------------
# Meaning (rules that need more than one place of the config)


def check_semantics(config: Mapping[str, Any], report: Report) -> None:
    """Rules across the config: unique names, required and categorical fields (well-formed config only)."""
    if "schedule" in config:
        check_schedule_meaning(report, config["schedule"])
    datasets = config["datasets"]
    for part in ("dataset", "schema"):
        names = [entry[part]["serviceConfig"]["name"] for entry in datasets.values()]
        for name in sorted({n for n in names if names.count(n) > 1}):
            report.error("datasets", f"{part} name '{name}' is used for more than one dataset")
    for kind, entry in datasets.items():
        fields = _fields(entry)
        for required in REQUIRED_FIELDS[kind]:
            if required not in fields:
                report.error(f"datasets.{kind}.schema", f"needs a field named {required}")
    items = datasets["items"]["schema"]["serviceConfig"]["schema"]["fields"]
    if not any(f.get("categorical") is True for f in items):
        report.error(
            "datasets.items.schema",
            "Item-Attribute-Affinity needs at least one categorical field in the Items schema (e.g. GENRES)",
        )
    names = [s["serviceConfig"]["name"] for s in config["solutions"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        report.error("solutions", f"solution name '{name}' is used twice")
    jobs = [j["serviceConfig"]["jobName"] for s in config["solutions"] for j in s.get("batchSegmentJobs", [])]
    for name in sorted({n for n in jobs if jobs.count(n) > 1}):
        report.error("solutions", f"batch segment job name '{name}' is used twice")


def _fields(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The schema's fields by name."""
    return {f["name"]: f for f in entry["schema"]["serviceConfig"]["schema"]["fields"]}


def _nullable(field_spec: Mapping[str, Any]) -> bool:
    """A union with "null" may be absent from the CSV."""
    kind = field_spec.get("type")
    return isinstance(kind, list) and "null" in kind


# ---------------------------------------------------------------------------------------------------------
# Schedule (optional `schedule` block: EventBridge Scheduler retrains the dataset group)

# The published JSON Schema carries these two patterns verbatim (a test compares them): the structure of an
# EventBridge Scheduler expression, and the expressions that fire at most once a day.
SCHEDULE_EXPRESSION_PATTERN = (
    r"^(rate\([1-9][0-9]{0,8} (minutes?|hours?|days?)\)"
    r"|cron\([^ ()]+ [^ ()]+ [^ ()]+ [^ ()]+ [^ ()]+ [^ ()]+\)"
    r"|at\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\))$"
)
AT_MOST_DAILY_PATTERN = (
    r"^(rate\(([1-9][0-9]{0,8} days?"
    r"|(2[4-9]|[3-9][0-9]|[1-9][0-9]{2,8}) hours"
    r"|(14[4-9][0-9]|1[5-9][0-9]{2}|[2-9][0-9]{3}|[1-9][0-9]{4,8}) minutes)\)"
    r"|cron\([0-9]{1,2} [0-9]{1,2} [^()]+\)"
    r"|at\(.+\))$"
)
TIMEZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
SCHEDULE_EXPRESSION = re.compile(SCHEDULE_EXPRESSION_PATTERN)
AT_MOST_DAILY = re.compile(AT_MOST_DAILY_PATTERN)
TIMEZONE = re.compile(TIMEZONE_PATTERN)
SCHEDULE_EXPRESSION_MAX = 256
TIMEZONE_MAX = 50
DEFAULT_TIMEZONE = "UTC"
SCHEDULE_TRIGGER = "schedule"
_RATE = re.compile(r"^rate\((?P<value>[0-9]+) (?P<unit>[a-z]+)\)$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Cron fields of EventBridge Scheduler: (name, lowest, highest, names for the values from `lowest` on).
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _WEEKDAYS),
    ("year", 1970, 2199, ()),
)


def check_schedule_structure(report: Report, schedule: Any) -> None:
    """The `schedule` block's shape, as the JSON Schema states it (the expression's details: see meaning)."""
    where = "schedule"
    if not _keys(report, where, schedule, ("expression",), ("timezone", "allowMoreOftenThanDaily")):
        return
    expression = schedule.get("expression")
    well_formed = (
        isinstance(expression, str)
        and len(expression) <= SCHEDULE_EXPRESSION_MAX
        and SCHEDULE_EXPRESSION.fullmatch(expression) is not None
    )
    if not well_formed:
        report.error(
            f"{where}.expression",
            "must be an EventBridge Scheduler expression: rate(<value> <unit>), cron(<6 fields>) or "
            "at(yyyy-mm-ddThh:mm:ss), e.g. rate(7 days) or cron(0 3 ? * MON *)",
        )
    allow = schedule.get("allowMoreOftenThanDaily", False)
    if not isinstance(allow, bool):
        report.error(f"{where}.allowMoreOftenThanDaily", "must be true or false")
    elif well_formed and not allow and not AT_MOST_DAILY.fullmatch(expression):
        report.error(
            f"{where}.expression",
            f"'{expression}' can start a run more often than once a day, and every run bills Personalize "
            "training hours: use at least rate(1 day) (cron: one minute and one hour value), or set "
            '"allowMoreOftenThanDaily": true',
        )
    if "timezone" in schedule:
        zone = schedule["timezone"]
        if not isinstance(zone, str) or not 1 <= len(zone) <= TIMEZONE_MAX or not TIMEZONE.fullmatch(zone):
            report.error(f"{where}.timezone", "must be an IANA time zone name, e.g. Europe/Berlin")


def check_schedule_meaning(report: Report, schedule: Mapping[str, Any]) -> None:
    """What the pattern cannot say: rate units, cron field values, at() dates, a time zone that exists."""
    expression = str(schedule["expression"])
    where = "schedule.expression"
    if expression.startswith("rate("):
        match = _RATE.fullmatch(expression)
        assert match is not None  # the structure check passed
        value, unit = int(match["value"]), match["unit"]
        if (value == 1) != (not unit.endswith("s")):
            expected = unit.rstrip("s") if value == 1 else unit + ("" if unit.endswith("s") else "s")
            report.error(where, f"'{expression}': write rate({value} {expected}) (singular only for 1)")
    elif expression.startswith("cron("):
        for problem in _cron_problems(expression[len("cron(") : -1].split(" ")):
            report.error(where, f"'{expression}': {problem}")
    else:
        try:
            datetime.strptime(expression[len("at(") : -1], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            report.error(where, f"'{expression}' is not a valid date and time")
    zone = schedule.get("timezone")
    if zone is not None and not known_timezone(str(zone)):
        report.error("schedule.timezone", f"'{zone}' is not an IANA time zone name (e.g. Europe/Berlin, UTC)")


def known_timezone(name: str) -> bool:
    """Whether the IANA time zone database knows the name.

    Without a time zone database on the machine (zoneinfo finds none), the name is accepted as written and
    EventBridge Scheduler checks it when the workflow creates the schedule (the run then fails naming it).
    """
    zones = zoneinfo.available_timezones()
    return name in zones if zones else TIMEZONE.fullmatch(name) is not None


def _cron_problems(fields: list[str]) -> list[str]:
    """Each cron field against EventBridge Scheduler's rules; day-of-month or day-of-week must be `?`."""
    problems = []
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        if not _cron_field_ok(text, name, low, high, names):
            problems.append(f"the {name} field '{text}' is not valid (values {low}-{high})")
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        problems.append("exactly one of day-of-month and day-of-week must be '?'")
    return problems


def _cron_field_ok(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """One cron field: `*`, `?` (day fields), values, ranges, lists, steps, and L/W/# where allowed."""
    if text == "?":
        return name in ("day-of-month", "day-of-week")
    if name == "day-of-month" and re.fullmatch(r"L|LW|L-[0-9]{1,2}|[0-9]{1,2}W", text):
        return all(low <= int(n) <= high for n in re.findall(r"[0-9]+", text))
    if name == "day-of-week" and re.fullmatch(r"[1-7A-Za-z]{1,3}(L|#[1-5])", text):
        return _cron_value(re.split(r"L|#", text)[0], low, high, names) is not None

    def item_ok(item: str) -> bool:
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and 1 <= int(step) <= high):
            return False
        if base == "*":
            return True
        first, dash, last = base.partition("-")
        start = _cron_value(first, low, high, names)
        end = _cron_value(last, low, high, names) if dash else start
        return start is not None and end is not None and start <= end

    return all(item_ok(item) for item in text.split(","))


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    """A cron value as a number (names like MON or JAN allowed), or None when it is out of range."""
    if text.upper() in names:
        return low + names.index(text.upper())
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def schedule_plan(config: Mapping[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """The schedule the workflow creates or updates: named after the dataset group, starting a run on the
    config's latest version (the execution input has no VersionId) marked as scheduled."""
    schedule = config["schedule"]
    group = config["datasetGroup"]["serviceConfig"]["name"]
    run_input = {"Source": {"Bucket": bucket, "Key": key}, "Trigger": SCHEDULE_TRIGGER}
    return {
        "Name": group,
        "Expression": schedule["expression"],
        "Timezone": schedule.get("timezone", DEFAULT_TIMEZONE),
        # Compact and key-sorted: the workflow compares it with the schedule's current input as a string.
        "Input": json.dumps(run_input, separators=(",", ":"), sort_keys=True),
        "Description": f"Retrains dataset group {group} from s3://{bucket}/{key}"[:512],
    }


# ---------------------------------------------------------------------------------------------------------
# Files


def config_location(key: str) -> tuple[str | None, str | None]:
    """(dataset-group folder, error) for a key `train/<dataset-group>/<name>_config.json`."""
    parts = key.split("/")
    if (
        len(parts) != 3
        or parts[0] + "/" != TRAIN_PREFIX
        or not parts[2].endswith(CONFIG_SUFFIX)
        or not parts[1]
    ):
        return None, f"'{shown(key)}' is not at train/<dataset-group>/<name>{CONFIG_SUFFIX}"
    return parts[1], None


def csv_key(group: str, kind: str) -> str:
    """Where the CSV of a dataset lives."""
    return f"{TRAIN_PREFIX}{group}/{kind}.csv"


def batch_input_key(group: str, solution: str) -> str:
    """Where the batch segment queries of a solution live."""
    return f"{BATCH_PREFIX}{group}/{solution}/{BATCH_INPUT_NAME}"


def read_first_line(s3: S3Reader, bucket: str, key: str) -> str:
    """The first line of an object, read with a ranged GET so a multi-GB CSV is never downloaded."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{CSV_HEADER_BYTES - 1}")
    except Exception as err:
        if _is_missing(err):
            raise MissingObjectError(key) from err
        if _error_code(err) == "InvalidRange":
            raise EmptyObjectError(key) from err
        raise
    head: bytes = response["Body"].read(CSV_HEADER_BYTES)
    if not head:
        raise EmptyObjectError(key)
    # Lines end at "\n" only: str.splitlines would also split at U+2028 and other separators.
    return head.decode("utf-8-sig", errors="replace").split("\n", 1)[0].rstrip("\r")


def read_text(
    s3: S3Reader, bucket: str, key: str, limit: int = 1024 * 1024, version_id: str | None = None
) -> str:
    """A small text object (a config or a query file), refusing anything larger than `limit` bytes."""
    # The config is read at the version that started the run: a newer upload starts its own run.
    version = {"VersionId": version_id} if version_id else {}
    try:
        response = s3.get_object(Bucket=bucket, Key=key, **version)
    except Exception as err:
        if _is_missing(err):
            raise MissingObjectError(key) from err
        raise
    body = response["Body"].read(limit + 1)
    if len(body) > limit:
        raise ValueError(f"{key} is larger than {limit} bytes")
    return str(body.decode("utf-8-sig"))


def _is_missing(err: Exception) -> bool:
    """botocore's ClientError for a missing key (404 / NoSuchKey), without importing botocore here."""
    return _error_code(err) in ("NoSuchKey", "404", "NotFound")


def _error_code(err: Exception) -> str:
    """The error code of botocore's ClientError ("" for anything else)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def check_csv_header(report: Report, kind: str, key: str, header_line: str, entry: Mapping[str, Any]) -> None:
    """Every CSV column must be a schema field and every non-nullable schema field a CSV column."""
    columns = next(csv.reader(io.StringIO(header_line)), [])
    columns = [c.strip() for c in columns]
    fields = _fields(entry)
    where = f"datasets.{kind} ({key})"
    if not columns or columns == [""]:
        report.error(where, "the CSV has no header line")
        return
    # Personalize maps columns to schema fields by name: a repeated name is ambiguous.
    repeated = [name for name, count in Counter(columns).items() if count > 1]
    present = set(columns)
    extra = [c for c in dict.fromkeys(columns) if c not in fields]
    absent = [name for name, spec in fields.items() if name not in present and not _nullable(spec)]
    if repeated:
        report.error(where, f"CSV columns named more than once in the header: {shown_list(repeated)}")
    if extra:
        report.error(where, f"CSV columns not in the schema: {shown_list(extra)}")
    if absent:
        report.error(where, f"schema fields missing from the CSV header: {shown_list(absent)}")


def check_queries(report: Report, key: str, text: str, item_fields: Iterable[str]) -> None:
    """Batch segment input: JSON lines of {"itemAttributes": "ITEMS.<field> = ..."}, at most 10."""
    known = {f.upper() for f in item_fields}
    # Physical line numbers; lines end at "\n" only (Personalize's reading): `splitlines` would also cut at a
    # U+2028 in a JSON string value.
    lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        report.error(key, "has no queries")
    if len(lines) > MAX_QUERIES:
        report.error(key, f"has {len(lines)} queries; a batch segment job takes at most {MAX_QUERIES}")
    for number, line in lines:
        try:
            query = json.loads(line)
        except json.JSONDecodeError:
            report.error(f"{key} line {number}", "is not JSON")
            continue
        attributes = query.get("itemAttributes") if isinstance(query, dict) else None
        if not isinstance(attributes, str) or not attributes.strip():
            report.error(f"{key} line {number}", 'needs "itemAttributes", e.g. ITEMS.genres = "Action"')
            continue
        for problem in query_problems(attributes, known):
            report.error(f"{key} line {number}", problem)


def query_problems(attributes: str, known: set[str]) -> list[str]:
    """What is wrong with one `itemAttributes` expression, given the Items fields in capitals."""
    # Personalize documents the dataset prefix in capitals only (`ITEMS.genres = "Comedy"`,
    # https://docs.aws.amazon.com/personalize/latest/dg/prepare-input-data-user-segment.html) and, for the
    # same `dataset.field` identifiers in filter expressions, ignores case only when matching event types
    # (https://docs.aws.amazon.com/personalize/latest/dg/filter-expressions.html): `items.` is refused.
    # Field names are matched without regard to case, as the documented `ITEMS.genres` for `GENRES` shows.
    problems = []
    references = QUERY_REFERENCE.findall(QUERY_VALUE.sub('""', attributes))
    for dataset, name in references:
        if dataset != "ITEMS" and dataset.upper() == "ITEMS":
            problems.append(
                f"{shown(dataset)}.{shown(name)}: write the dataset prefix in capitals, ITEMS.{shown(name)} "
                "(Personalize's batch segment query syntax)"
            )
        elif dataset != "ITEMS":
            problems.append(f"{shown(dataset)}.{shown(name)}: a batch segment query names Items fields only")
        elif name.upper() not in known:
            problems.append(f"ITEMS.{shown(name)} is not a field of the Items schema")
    if not any(dataset.upper() == "ITEMS" for dataset, _ in references):
        problems.append('names no item attribute: write ITEMS.<field> = "<value>"')
    return problems


# ---------------------------------------------------------------------------------------------------------
# Plan


def run_suffix(start_time: str) -> str:
    """`-yyyymmddThhmmss` from the execution's start time: fresh names for this run's jobs and versions."""
    stamp = datetime.fromisoformat(start_time.replace("Z", "+00:00")).astimezone(UTC)
    return "-" + stamp.strftime("%Y%m%dT%H%M%S")


def _poll() -> dict[str, int]:
    """Initial polling state of a resource the workflow waits for (see training/create_and_wait.py)."""
    return {"Index": 0, "Elapsed": 0}


def build_plan(config: Mapping[str, Any], target: Target, start_time: str) -> dict[str, Any]:
    """The run plan: PascalCase SDK requests, ARNs of reusable resources, fresh run-scoped names."""
    suffix = run_suffix(start_time)
    group_config = config["datasetGroup"]["serviceConfig"]
    group = group_config["name"]
    group_arn = target.arn(f"dataset-group/{group}")
    bucket = f"s3://{target.bucket}"

    group_request: dict[str, Any] = {"Name": group}
    if "domain" in group_config:
        group_request["Domain"] = group_config["domain"]

    datasets = []
    for kind, dataset_type in DATASET_TYPES.items():
        if kind not in config["datasets"]:
            continue
        entry = config["datasets"][kind]
        schema_config = entry["schema"]["serviceConfig"]
        schema_arn = target.arn(f"schema/{schema_config['name']}")
        schema_request: dict[str, Any] = {
            "Name": schema_config["name"],
            "Schema": json.dumps(schema_config["schema"], separators=(",", ":")),
        }
        if "domain" in schema_config:
            schema_request["Domain"] = schema_config["domain"]
        dataset_name = entry["dataset"]["serviceConfig"]["name"]
        # Dataset ARNs are named after their group and type, not their name: dataset/<group>/<TYPE>.
        dataset_arn = target.arn(f"dataset/{group}/{dataset_type}")
        job_name = f"{dataset_name[: NAME_MAX - len(suffix)]}{suffix}"
        datasets.append(
            {
                "Type": dataset_type,
                "Schema": {"Name": schema_config["name"], "Arn": schema_arn, "Request": schema_request},
                "Dataset": {
                    "Name": dataset_name,
                    "Arn": dataset_arn,
                    "Request": {
                        "Name": dataset_name,
                        "SchemaArn": schema_arn,
                        "DatasetGroupArn": group_arn,
                        "DatasetType": dataset_type,
                    },
                    "Poll": _poll(),
                },
                "ImportJob": {
                    "Name": job_name,
                    "Request": {
                        "JobName": job_name,
                        "DatasetArn": dataset_arn,
                        "DataSource": {"DataLocation": f"{bucket}/{csv_key(group, kind)}"},
                        "RoleArn": target.role_arn,
                        "ImportMode": "FULL",
                    },
                    "Poll": _poll(),
                },
            }
        )

    solutions = []
    for solution in config["solutions"]:
        service = solution["serviceConfig"]
        name = service["name"]
        solution_arn = target.arn(f"solution/{name}")
        version_config = solution.get("solutionVersion", {}).get("serviceConfig", {})
        jobs = []
        for job in solution.get("batchSegmentJobs", []):
            job_config = job["serviceConfig"]
            job_name = f"{job_config['jobName']}{suffix}"
            output = f"{bucket}/{BATCH_PREFIX}{group}/{name}/{job_name}/"
            request: dict[str, Any] = {
                "JobName": job_name,
                "NumResults": job_config.get("numResults", DEFAULT_NUM_RESULTS),
                "JobInput": {"S3DataSource": {"Path": f"{bucket}/{batch_input_key(group, name)}"}},
                "JobOutput": {"S3DataDestination": {"Path": output}},
                "RoleArn": target.role_arn,
            }
            if "filterArn" in job_config:
                request["FilterArn"] = job_config["filterArn"]
            jobs.append({"Name": job_name, "OutputS3Uri": output, "Request": request, "Poll": _poll()})
        solutions.append(
            {
                "Name": name,
                "Arn": solution_arn,
                "Request": {
                    "Name": name,
                    "DatasetGroupArn": group_arn,
                    "RecipeArn": service["recipeArn"],
                    # CreateSolution defaults to true: a retraining every 7 days, billed.
                    "PerformAutoTraining": service.get("performAutoTraining", False),
                },
                "Poll": _poll(),
                "Version": {
                    "Name": f"{name}{suffix}",
                    "Request": {
                        "Name": f"{name}{suffix}",
                        "SolutionArn": solution_arn,
                        "TrainingMode": version_config.get("trainingMode", "FULL"),
                    },
                    "Poll": _poll(),
                },
                "Jobs": jobs,
            }
        )

    return {
        "Run": {"DatasetGroupName": group, "DatasetGroupArn": group_arn},
        "DatasetGroup": {"Name": group, "Arn": group_arn, "Request": group_request, "Poll": _poll()},
        "Datasets": datasets,
        "Solutions": solutions,
    }


# ---------------------------------------------------------------------------------------------------------
# The whole check


def validate_upload(
    s3: S3Reader, target: Target, key: str, start_time: str, version_id: str | None = None
) -> dict[str, Any]:
    """Validate the uploaded config (at `version_id` when given) and the files it needs."""
    report = Report()
    folder, location_error = config_location(key)
    group_name = folder or ""
    config: Any = None
    if location_error:
        report.errors.append(location_error)
    else:
        try:
            config = json.loads(read_text(s3, target.bucket, key, version_id=version_id))
        except MissingObjectError:
            report.errors.append(f"{key} does not exist (deleted after upload?)")
        except UnicodeDecodeError as err:
            report.errors.append(not_utf8(key, err))
        except ValueError as err:
            report.errors.append(f"{key} is not valid JSON: {shown(err, LINE_CHARS)}")

    if config is not None:
        structure = check_structure(config)
        report.errors.extend(structure.errors)
        if not structure.errors:
            check_semantics(config, report)
            group_name = config["datasetGroup"]["serviceConfig"]["name"]
            if group_name != folder:
                report.error(
                    "datasetGroup.serviceConfig.name",
                    f"'{group_name}' must match the folder the config is in (train/{folder}/)",
                )
        if not report.errors:
            _check_files(s3, target.bucket, config, report)

    if not report.errors and not report.missing:
        plan = build_plan(config, target, start_time)
        if "schedule" in config:
            plan["Schedule"] = schedule_plan(config, target.bucket, key)
        result = _result(key, report, group_name, plan)
        if _json_size(result) <= RESULT_BYTES:
            return result
        report.errors.append(
            f"the run plan is {_json_size(plan):,} bytes, more than the {RESULT_BYTES:,} a training run "
            "carries in its state (Step Functions caps it at 256 KiB): split the solutions or batch segment "
            "jobs over several configs"
        )
    return _result(key, report, group_name)


def _result(
    key: str, report: Report, group_name: str, plan: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Lambda's answer: errors and missing files within their budgets, the plan when there is one."""
    bounded = Report(
        errors=within_budget(report.errors, "problem(s)"), missing=within_budget(report.missing, "file(s)")
    )
    result: dict[str, Any] = {
        "Valid": not report.errors,
        "Errors": bounded.errors,
        "Missing": bounded.missing,
        "DatasetGroupName": group_name,
        "Message": _message(key, bounded),
    }
    if plan is not None:
        result["Plan"] = plan
    return result


def _check_files(s3: S3Reader, bucket: str, config: Mapping[str, Any], report: Report) -> None:
    """CSV headers against the schemas, and the batch query files; absent files go to `missing`."""
    group = config["datasetGroup"]["serviceConfig"]["name"]
    for kind, entry in config["datasets"].items():
        key = csv_key(group, kind)
        try:
            header = read_first_line(s3, bucket, key)
        except MissingObjectError:
            report.missing.append(key)
            continue
        except EmptyObjectError:
            report.errors.append(f"{key} is empty (no header line)")
            continue
        check_csv_header(report, kind, key, header, entry)
    item_fields = _fields(config["datasets"]["items"]).keys()
    for solution in config["solutions"]:
        if not solution.get("batchSegmentJobs"):
            continue
        key = batch_input_key(group, solution["serviceConfig"]["name"])
        try:
            text = read_text(s3, bucket, key)
        except MissingObjectError:
            report.missing.append(key)
            continue
        except UnicodeDecodeError as err:
            report.errors.append(not_utf8(key, err))
            continue
        except ValueError as err:
            report.errors.append(str(err))
            continue
        check_queries(report, key, text, item_fields)


def not_utf8(name: str, err: UnicodeDecodeError) -> str:
    """`<name> line <n>: ...` for bytes that are not UTF-8 (the line counted in the decoded bytes)."""
    line = bytes(err.object[: err.start]).count(b"\n") + 1
    return f"{name} line {line}: is not valid UTF-8 (byte 0x{err.object[err.start]:02x})"


def _message(key: str, report: Report) -> str:
    """The text the failure email shows."""
    if report.errors:
        return f"The training config {key} is invalid:\n- " + "\n- ".join(report.errors)
    if report.missing:
        return f"The training config {key} needs files that are not in the bucket:\n- " + "\n- ".join(
            report.missing
        )
    return f"The training config {key} is valid."
