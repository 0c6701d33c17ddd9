"""Validate a training config and its files, and turn it into the workflow's run plan (stdlib + an S3 client).

The Lambda runtime has boto3 but not jsonschema, so the rules are plain Python. They mirror
`contextual_targeting/schemas/training-config.schema.json`; a test keeps both in agreement.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
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
TRAINING_MODES = ("FULL", "UPDATE")
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
QUERY_FIELD = re.compile(r"ITEMS\.([A-Za-z0-9_]+)")
FILTER_ARN = re.compile(r"^arn:aws[a-z-]*:personalize:[a-z0-9-]+:\d{12}:filter/[a-zA-Z0-9][a-zA-Z0-9\-_]*$")


class S3Reader(Protocol):
    """The two S3 calls the validator makes (a boto3 S3 client satisfies it)."""

    def get_object(self, **kwargs: Any) -> Any: ...  # pragma: no cover


class MissingObjectError(Exception):
    """The object does not exist (yet)."""


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
            report.error(where, f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
    return True


def _name(report: Report, where: str, value: Any, *, max_length: int = NAME_MAX) -> None:
    """A Personalize resource name: letters, digits, "-" and "_", starting with a letter or digit."""
    if not isinstance(value, str):
        report.error(where, "must be a string")
    elif not NAME_PATTERN.fullmatch(value) or len(value) > max_length:
        report.error(
            where,
            f"'{value}' breaks Personalize's naming rule (1-{max_length} characters: letters, digits, "
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
    if not _keys(report, "config", config, ("datasetGroup", "datasets", "solutions")):
        return report
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
                    f"must be one of {', '.join(TRAINING_MODES)}",
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
        return None, f"'{key}' is not at train/<dataset-group>/<name>{CONFIG_SUFFIX}"
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
        raise
    head = response["Body"].read(CSV_HEADER_BYTES)
    return head.decode("utf-8-sig", errors="replace").splitlines()[0] if head else ""


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
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def check_csv_header(report: Report, kind: str, key: str, header_line: str, entry: Mapping[str, Any]) -> None:
    """Every CSV column must be a schema field and every non-nullable schema field a CSV column."""
    columns = next(csv.reader(io.StringIO(header_line)), [])
    columns = [c.strip() for c in columns]
    fields = _fields(entry)
    where = f"datasets.{kind} ({key})"
    if not columns or columns == [""]:
        report.error(where, "the CSV has no header line")
        return
    extra = [c for c in columns if c not in fields]
    absent = [name for name, spec in fields.items() if name not in columns and not _nullable(spec)]
    if extra:
        report.error(where, f"CSV columns not in the schema: {', '.join(extra)}")
    if absent:
        report.error(where, f"schema fields missing from the CSV header: {', '.join(absent)}")


def check_queries(report: Report, key: str, text: str, item_fields: Iterable[str]) -> None:
    """Batch segment input: JSON lines of {"itemAttributes": "ITEMS.<field> = ..."}, at most 10."""
    known = {f.upper() for f in item_fields}
    # JSON lines end at \n only (Personalize's reading): `splitlines` would also cut at a U+2028 in a value.
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        report.error(key, "has no queries")
    if len(lines) > MAX_QUERIES:
        report.error(key, f"has {len(lines)} queries; a batch segment job takes at most {MAX_QUERIES}")
    for number, line in enumerate(lines, start=1):
        try:
            query = json.loads(line)
        except json.JSONDecodeError:
            report.error(f"{key} line {number}", "is not JSON")
            continue
        attributes = query.get("itemAttributes") if isinstance(query, dict) else None
        if not isinstance(attributes, str) or not attributes.strip():
            report.error(f"{key} line {number}", 'needs "itemAttributes", e.g. ITEMS.genres = "Action"')
            continue
        for name in QUERY_FIELD.findall(attributes):
            if name.upper() not in known:
                report.error(f"{key} line {number}", f"ITEMS.{name} is not a field of the Items schema")


# ---------------------------------------------------------------------------------------------------------
# Plan


def run_suffix(start_time: str) -> str:
    """`-yyyymmddThhmmss` from the execution's start time: fresh names for this run's jobs and versions."""
    stamp = datetime.fromisoformat(start_time.replace("Z", "+00:00")).astimezone(UTC)
    return "-" + stamp.strftime("%Y%m%dT%H%M%S")


def _poll() -> dict[str, int]:
    """Initial polling state of a resource the workflow waits for (see contextual_targeting/polling.py)."""
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
        except (ValueError, UnicodeDecodeError) as err:
            report.errors.append(f"{key} is not valid JSON: {err}")

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

    result: dict[str, Any] = {
        "Valid": not report.errors,
        "Errors": report.errors,
        "Missing": report.missing,
        "DatasetGroupName": group_name,
        "Message": _message(key, report),
    }
    if not report.errors and not report.missing:
        result["Plan"] = build_plan(config, target, start_time)
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
        check_queries(report, key, text, item_fields)


def _message(key: str, report: Report) -> str:
    """The text the failure email shows."""
    if report.errors:
        return f"The training config {key} is invalid:\n- " + "\n- ".join(report.errors)
    if report.missing:
        return f"The training config {key} needs files that are not in the bucket:\n- " + "\n- ".join(
            report.missing
        )
    return f"The training config {key} is valid."
