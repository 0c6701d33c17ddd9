"""The training config validator Lambda: its rules, its plan, its S3 reads, and its agreement with the
published JSON Schema."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import botocore.session
import jsonschema
import pytest
from moto import mock_aws

from tests.helpers import REPO
from tests.training.fakes import (
    BUCKET,
    CONFIG_KEY,
    ROLE_ARN,
    MemoryS3,
    demo_files,
    load_validator,
)

SCHEMA = json.loads((REPO / "contextual_targeting" / "contracts" / "training-config.schema.json").read_text())
EVENTS = REPO / "tests" / "events" / "training"
DEMO_CONFIG: dict[str, Any] = json.loads((REPO / "data/personalize" / CONFIG_KEY).read_text())
START = "2026-01-01T12:34:56.789Z"

tc = load_validator()


def _target(bucket: str = BUCKET) -> Any:
    return tc.Target(
        partition="aws", region="eu-central-1", account="123456789012", bucket=bucket, role_arn=ROLE_ARN
    )


def _edit(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    config = copy.deepcopy(DEMO_CONFIG)
    change(config)
    return config


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()
ITEMS_SCHEMA = "datasets.items.schema.serviceConfig.schema"

# Structural mistakes: the Python rules and the JSON Schema must both refuse each of them.
BAD_CONFIGS: dict[str, dict[str, Any]] = {
    "unknown top-level key": _edit(_set("extra", 1)),
    "unknown key in a serviceConfig": _edit(
        _set("datasetGroup.serviceConfig.roleArn", "arn:aws:iam::1:role/x")
    ),
    "no items dataset": _edit(_set("datasets.items", _DELETE)),
    "unknown dataset type": _edit(_set("datasets.actions", DEMO_CONFIG["datasets"]["users"])),
    "a recipe that makes no segments": _edit(
        _set("solutions.0.serviceConfig.recipeArn", "arn:aws:personalize:::recipe/aws-user-personalization")
    ),
    "a name with a space": _edit(_set("datasetGroup.serviceConfig.name", "binge watch")),
    "a name starting with a dash": _edit(_set("datasets.users.dataset.serviceConfig.name", "-users")),
    "a 64-character name": _edit(_set("datasets.users.schema.serviceConfig.name", "s" * 64)),
    "a job name too long for the run suffix": _edit(
        _set("solutions.0.batchSegmentJobs.0.serviceConfig.jobName", "j" * 48)
    ),
    "numResults above 5 million": _edit(
        _set("solutions.0.batchSegmentJobs.0.serviceConfig.numResults", 5_000_001)
    ),
    "numResults as a string": _edit(_set("solutions.0.batchSegmentJobs.0.serviceConfig.numResults", "50")),
    "an unknown domain": _edit(_set("datasetGroup.serviceConfig.domain", "RETAIL")),
    "performAutoTraining as a string": _edit(_set("solutions.0.serviceConfig.performAutoTraining", "false")),
    "no solutions": _edit(_set("solutions", [])),
    "an unknown training mode": _edit(
        _set("solutions.0.solutionVersion", {"serviceConfig": {"trainingMode": "AUTOTRAIN"}})
    ),
    # CreateSolutionVersion takes UPDATE only for User-Personalization and HRNN-Coldstart.
    "training mode UPDATE on a segmentation recipe": _edit(
        _set("solutions.0.solutionVersion", {"serviceConfig": {"trainingMode": "UPDATE"}})
    ),
    "an Avro schema that is no record": _edit(_set(f"{ITEMS_SCHEMA}.type", "enum")),
    "an Avro field without type": _edit(_set(f"{ITEMS_SCHEMA}.fields.0", {"name": "ITEM_ID"})),
    "a filterArn that is no filter": _edit(
        _set("solutions.0.batchSegmentJobs.0.serviceConfig.filterArn", "arn:aws:s3:::bucket")
    ),
    "not an object": [],  # type: ignore[dict-item]
    "a schedule without an expression": _edit(_set("schedule", {"timezone": "UTC"})),
    "a schedule with an unknown key": _edit(
        _set("schedule", {"expression": "rate(7 days)", "enabled": True})
    ),
    "a schedule expression that is no Scheduler expression": _edit(
        _set("schedule", {"expression": "every monday"})
    ),
    "a cron expression with five fields": _edit(_set("schedule", {"expression": "cron(0 3 * * MON)"})),
    "a schedule more often than daily": _edit(_set("schedule", {"expression": "rate(12 hours)"})),
    "a cron schedule every 15 minutes": _edit(_set("schedule", {"expression": "cron(0/15 * * * ? *)"})),
    "allowMoreOftenThanDaily as a string": _edit(
        _set("schedule", {"expression": "rate(1 day)", "allowMoreOftenThanDaily": "yes"})
    ),
    "a time zone with spaces": _edit(
        _set("schedule", {"expression": "rate(7 days)", "timezone": "Central European Time"})
    ),
}

GOOD_CONFIGS: dict[str, dict[str, Any]] = {
    "the demo config": DEMO_CONFIG,
    "no users, no domain, a filter and a training mode": _edit(
        lambda c: (
            c["datasets"].pop("users"),
            c["datasetGroup"]["serviceConfig"].pop("domain"),
            c["solutions"][0]["batchSegmentJobs"][0]["serviceConfig"].update(
                filterArn="arn:aws:personalize:eu-central-1:123456789012:filter/adults"
            ),
            c["solutions"][0].update(solutionVersion={"serviceConfig": {"trainingMode": "FULL"}}),
        )
    ),
    "a weekly schedule in Berlin time": _edit(
        _set("schedule", {"expression": "cron(0 3 ? * MON *)", "timezone": "Europe/Berlin"})
    ),
    "an hourly schedule, explicitly allowed": _edit(
        _set("schedule", {"expression": "rate(1 hour)", "allowMoreOftenThanDaily": True})
    ),
    "a one-time schedule": _edit(_set("schedule", {"expression": "at(2027-01-04T03:00:00)"})),
}


@pytest.mark.parametrize("name", sorted(GOOD_CONFIGS))
def test_python_rules_and_json_schema_accept_good_configs(name: str) -> None:
    config = GOOD_CONFIGS[name]
    jsonschema.validate(config, SCHEMA)
    assert tc.check_structure(config).errors == []


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_python_rules_and_json_schema_refuse_bad_configs(name: str) -> None:
    config = BAD_CONFIGS[name]
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(config)), f"JSON Schema accepts {name}"
    assert tc.check_structure(config).errors, f"Python rules accept {name}"


def test_published_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_training_mode_update_is_refused_saying_why() -> None:
    config = BAD_CONFIGS["training mode UPDATE on a segmentation recipe"]
    (error,) = tc.check_structure(config).errors
    assert error.startswith("solutions[0].solutionVersion.serviceConfig.trainingMode: must be FULL")
    assert "User-Personalization and HRNN-Coldstart" in error


# ---- the whole validation against files


def _validate(files: dict[str, bytes], key: str = CONFIG_KEY) -> dict[str, Any]:
    s3 = MemoryS3(files)
    result: dict[str, Any] = tc.validate_upload(s3, _target(), key, START)
    return result


def _with_config(config: Any) -> dict[str, bytes]:
    files = demo_files()
    files[CONFIG_KEY] = json.dumps(config).encode()
    return files


def test_demo_upload_is_valid_and_planned() -> None:
    result = _validate(demo_files())
    assert result["Valid"], result["Errors"]
    assert result["Missing"] == []
    plan = result["Plan"]
    assert plan["Run"] == {
        "DatasetGroupName": "bingewatch",
        "DatasetGroupArn": "arn:aws:personalize:eu-central-1:123456789012:dataset-group/bingewatch",
    }
    assert [d["Type"] for d in plan["Datasets"]] == ["INTERACTIONS", "ITEMS", "USERS"]
    interactions = plan["Datasets"][0]
    assert (
        interactions["Dataset"]["Arn"]
        == "arn:aws:personalize:eu-central-1:123456789012:dataset/bingewatch/INTERACTIONS"
    )
    assert interactions["ImportJob"]["Request"] == {
        "JobName": "bingewatch-interactions-20260101T123456",
        "DatasetArn": interactions["Dataset"]["Arn"],
        "DataSource": {"DataLocation": f"s3://{BUCKET}/train/bingewatch/interactions.csv"},
        "RoleArn": ROLE_ARN,
        "ImportMode": "FULL",
    }
    assert json.loads(interactions["Schema"]["Request"]["Schema"])["name"] == "Interactions"
    solution = plan["Solutions"][0]
    assert solution["Request"]["PerformAutoTraining"] is False
    assert solution["Version"]["Request"]["TrainingMode"] == "FULL"
    job = solution["Jobs"][0]
    output = (
        f"s3://{BUCKET}/batch/bingewatch/bw_aws-item-attribute-affinity/bingewatch-genres-20260101T123456/"
    )
    assert job["OutputS3Uri"] == output
    assert job["Request"] == {
        "JobName": "bingewatch-genres-20260101T123456",
        "NumResults": 50,
        "JobInput": {
            "S3DataSource": {
                "Path": f"s3://{BUCKET}/batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"
            }
        },
        "JobOutput": {"S3DataDestination": {"Path": output}},
        "RoleArn": ROLE_ARN,
    }
    assert len(json.dumps(result)) < 20_000, "the plan travels in the state payload"


def test_csv_headers_are_read_with_a_range_request() -> None:
    s3 = MemoryS3(demo_files())
    tc.validate_upload(s3, _target(), CONFIG_KEY, START)
    csv_reads = [(key, rng) for key, rng in s3.ranges if key.endswith(".csv")]
    assert len(csv_reads) == 3
    assert all(rng == f"bytes=0-{tc.CSV_HEADER_BYTES - 1}" for _, rng in csv_reads)


def _errors(files: dict[str, bytes], key: str = CONFIG_KEY) -> str:
    result = _validate(files, key)
    assert not result["Valid"]
    assert "Plan" not in result
    return "\n".join(result["Errors"])


def test_csv_header_that_does_not_match_the_schema_is_an_error() -> None:
    files = demo_files()
    files["train/bingewatch/users.csv"] = b"USER_ID,GENDER,EMAIL,AGE\n1,Male,a@b.c,30\n"
    errors = _errors(files)
    assert "CSV columns not in the schema: EMAIL" in errors
    assert "schema fields missing from the CSV header: E_MAIL" in errors


QUERIES_KEY = "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"


def test_an_empty_csv_is_named() -> None:
    # GIVEN items.csv uploaded with no bytes (S3 answers the ranged GET with InvalidRange)
    files = demo_files()
    files["train/bingewatch/items.csv"] = b""
    # WHEN the upload is validated, THEN the file is named, not a crash
    assert "train/bingewatch/items.csv is empty (no header line)" in _errors(files)


def test_a_column_named_twice_is_an_error() -> None:
    files = demo_files()
    files["train/bingewatch/items.csv"] = (
        b"ITEM_ID,ITEM_ID,TITLE,RELEASE_YEAR,CREATION_TIMESTAMP,GENRES\n1,1,T,2005,1135382400,Drama\n"
    )
    assert "CSV columns named more than once in the header: ITEM_ID" in _errors(files)


@pytest.mark.parametrize("prefix", ["items", "Items", "iTEMS"])
def test_a_query_prefix_not_in_capitals_is_an_error(prefix: str) -> None:
    files = demo_files()
    files[QUERIES_KEY] = b'{"itemAttributes": "ITEMS.genres = \\"Action\\""}\n' + (
        b'{"itemAttributes": "%s.genres = \\"Comedy\\""}\n' % prefix.encode()
    )
    errors = _errors(files)
    expected = f"{QUERIES_KEY} line 2: {prefix}.genres: write the dataset prefix in capitals, ITEMS.genres"
    assert expected in errors
    assert "line 1" not in errors


def test_a_query_on_another_dataset_is_an_error() -> None:
    files = demo_files()
    files[QUERIES_KEY] = b'{"itemAttributes": "ITEMS.genres = \\"Action\\" AND USERS.AGE = \\"30\\""}\n'
    assert f"{QUERIES_KEY} line 1: USERS.AGE: a batch segment query names Items fields only" in _errors(files)


def test_a_query_without_an_item_attribute_is_an_error() -> None:
    files = demo_files()
    files[QUERIES_KEY] = b'{"itemAttributes": "genres = \\"Action\\""}\n'
    assert f'{QUERIES_KEY} line 1: names no item attribute: write ITEMS.<field> = "<value>"' in _errors(files)


def test_dataset_prefixes_inside_quoted_values_are_data() -> None:
    files = demo_files()
    files[QUERIES_KEY] = (
        b'{"itemAttributes": "ITEMS.genres = \\"items.csv\\" AND ITEMS.genres = \\"ITEMS.x\\""}\n'
    )
    result = _validate(files)
    assert result["Valid"], result["Errors"]


def test_query_lines_are_physical_lines_split_at_newlines_only() -> None:
    # GIVEN a blank line, then a query whose value holds U+2028 (a line separator to str.splitlines)
    files = demo_files()
    files[QUERIES_KEY] = (
        '\n{"itemAttributes": "ITEMS.genres = \\"A\u2028B\\""}\n{"itemAttributes": "ITEMS.mood = \\"x\\""}\n'
    ).encode()
    # THEN the query with U+2028 is one valid query, and the unknown field is reported on line 3
    errors = _errors(files)
    assert errors == f"{QUERIES_KEY} line 3: ITEMS.mood is not a field of the Items schema"


def test_a_query_file_that_is_not_utf8_is_named_with_its_line() -> None:
    files = demo_files()
    files[QUERIES_KEY] = b'{"itemAttributes": "ITEMS.genres = \\"Action\\""}\n{"itemAttributes": "\xff"}\n'
    assert f"{QUERIES_KEY} line 2: is not valid UTF-8 (byte 0xff)" in _errors(files)


# ---- the answer fits the state payload, whatever the upload


def _answer_bytes(result: dict[str, Any]) -> int:
    """The answer's size in the larger of the two JSON encodings (\\u escapes or raw UTF-8)."""
    return max(len(json.dumps(result).encode()), len(json.dumps(result, ensure_ascii=False).encode()))


WELL_UNDER = 64 * 1024  # a quarter of the 256 KiB above which Step Functions fails the run, uncatchably
ASTRAL = "\U0001f600"  # 4 bytes in UTF-8, 12 as a JSON escape


def _header_line(prefix: str) -> bytes:
    """A CSV header of the 64 KiB the validator reads: hundreds of long columns of 4-byte characters."""
    column = prefix + ASTRAL * 300
    columns = ",".join(f"{column}{i}" for i in range(100)).encode()
    return columns[: tc.CSV_HEADER_BYTES - 1] + b"\n1\n"


def test_hostile_csv_headers_and_queries_give_a_small_answer_counting_the_rest() -> None:
    # GIVEN three CSVs whose 64 KiB header lines are all unknown columns, and 10 queries on unknown fields
    files = demo_files()
    for kind in ("interactions", "items", "users"):
        files[f"train/bingewatch/{kind}.csv"] = _header_line(kind.upper())
    fields = "".join(f' AND ITEMS.{"F" * 2000}{i} = \\"x\\"' for i in range(40))
    files[QUERIES_KEY] = b"".join(
        b'{"itemAttributes": "ITEMS.genres = \\"a\\"%s"}\n' % fields.encode() for _ in range(10)
    )
    # WHEN the upload is validated
    result = _validate(files)
    # THEN the answer is far below the limit, every echoed value is cut, and the rest is counted
    assert not result["Valid"]
    assert _answer_bytes(result) < WELL_UNDER
    assert all(len(error) <= tc.LINE_CHARS + 30 for error in result["Errors"])
    assert result["Errors"][0].startswith("datasets.interactions (train/bingewatch/interactions.csv): CSV")
    assert "characters)" in result["Errors"][0]
    assert result["Errors"][-1].startswith("... and ")
    assert result["Errors"][-1].endswith(" more problem(s)")
    assert result["Message"].endswith(result["Errors"][-1])


def test_a_config_of_thousands_of_long_unknown_keys_gives_a_small_answer() -> None:
    # GIVEN a config of nearly 1 MiB: thousands of unknown keys, each long and of 4-byte characters
    config = copy.deepcopy(DEMO_CONFIG)
    config.update({f"{ASTRAL * 40}{i}": 1 for i in range(6000)})
    files = demo_files()
    files[CONFIG_KEY] = json.dumps(config, ensure_ascii=False).encode()
    assert len(files[CONFIG_KEY]) < 1024 * 1024
    # WHEN it is validated
    result = _validate(files)
    # THEN the answer keeps the first problems, cut, and counts the others
    assert _answer_bytes(result) < WELL_UNDER
    assert len(result["Errors"]) > 5
    assert result["Errors"][-1].startswith("... and ")
    assert int(result["Errors"][-1].split()[2].replace(",", "")) > 5000


def _solutions(count: int) -> dict[str, Any]:
    """The demo config with `count` solutions, each with a batch segment job."""
    config = copy.deepcopy(DEMO_CONFIG)
    template = config["solutions"][0]
    config["solutions"] = []
    for i in range(count):
        solution = copy.deepcopy(template)
        solution["serviceConfig"]["name"] = f"solution-{i:05d}-{'s' * 30}"
        solution["batchSegmentJobs"][0]["serviceConfig"]["jobName"] = f"job-{i:05d}"
        config["solutions"].append(solution)
    return config


def test_thousands_of_missing_query_files_give_a_small_answer() -> None:
    # GIVEN a config with 3,000 solutions whose query files are not uploaded yet
    files = _with_config(_solutions(3000))
    # WHEN it is validated
    result = _validate(files)
    # THEN it is valid, waits for the files, and lists the first ones and a count of the rest
    assert result["Valid"], result["Errors"][:3]
    assert _answer_bytes(result) < WELL_UNDER
    assert result["Missing"][0] == f"batch/bingewatch/solution-00000-{'s' * 30}/job_config.json"
    assert result["Missing"][-1].startswith("... and ")
    assert result["Missing"][-1].endswith(" more file(s)")


def test_a_plan_too_big_for_the_state_is_refused_saying_why() -> None:
    # GIVEN a valid config of 400 solutions, every query file uploaded
    config = _solutions(400)
    files = _with_config(config)
    for solution in config["solutions"]:
        name = solution["serviceConfig"]["name"]
        files[f"batch/bingewatch/{name}/job_config.json"] = files[QUERIES_KEY]
    # WHEN it is validated
    result = _validate(files)
    # THEN the plan, hundreds of KiB, is not returned: the config is refused with the reason
    assert not result["Valid"]
    assert "Plan" not in result
    assert _answer_bytes(result) < WELL_UNDER
    (error,) = result["Errors"]
    assert error.startswith("the run plan is ")
    assert "split the solutions or batch segment jobs over several configs" in error


def test_more_than_ten_queries_is_an_error() -> None:
    files = demo_files()
    key = "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"
    files[key] = b"".join(b'{"itemAttributes": "ITEMS.genres = \\"G%d\\""}\n' % i for i in range(11))
    assert "has 11 queries; a batch segment job takes at most 10" in _errors(files)


def test_query_on_an_unknown_item_field_is_an_error() -> None:
    files = demo_files()
    key = "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"
    files[key] = b'{"itemAttributes": "ITEMS.director = \\"Kubrick\\""}\n'
    assert "ITEMS.director is not a field of the Items schema" in _errors(files)


def test_items_without_a_categorical_field_is_an_error() -> None:
    config = _edit(
        lambda c: [
            f.pop("categorical", None)
            for f in c["datasets"]["items"]["schema"]["serviceConfig"]["schema"]["fields"]
        ]
    )
    assert "needs at least one categorical field" in _errors(_with_config(config))


def test_missing_required_field_and_duplicate_names_are_errors() -> None:
    config = _edit(
        lambda c: (
            c["datasets"]["interactions"]["schema"]["serviceConfig"]["schema"]["fields"].pop(0),
            c["datasets"]["users"]["dataset"]["serviceConfig"].update(name="bingewatch-items"),
        )
    )
    errors = _errors(_with_config(config))
    assert "datasets.interactions.schema: needs a field named USER_ID" in errors
    assert "dataset name 'bingewatch-items' is used for more than one dataset" in errors


def test_config_outside_its_dataset_group_folder_is_an_error() -> None:
    files = demo_files()
    files["train/other/bingewatch_config.json"] = files[CONFIG_KEY]
    assert "must match the folder the config is in (train/other/)" in _errors(
        files, "train/other/bingewatch_config.json"
    )


def test_config_that_is_not_json_is_an_error() -> None:
    files = demo_files()
    files[CONFIG_KEY] = b"{not json"
    assert "is not valid JSON" in _errors(files)


def test_files_not_there_yet_are_missing_not_errors() -> None:
    files = demo_files()
    del files["train/bingewatch/users.csv"]
    del files["batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"]
    result = _validate(files)
    assert result["Valid"]
    assert result["Errors"] == []
    assert result["Missing"] == [
        "train/bingewatch/users.csv",
        "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json",
    ]
    assert "Plan" not in result
    assert "train/bingewatch/users.csv" in result["Message"]


# ---- the plan's requests against the Personalize API model


def _check_shape(shape: Any, value: Any, where: str) -> list[str]:
    """PascalCase keys of `value` against a botocore shape, recursively; lists the mismatches."""
    problems: list[str] = []
    if shape.type_name == "structure":
        members = {name[0].upper() + name[1:]: member for name, member in shape.members.items()}
        required = {name[0].upper() + name[1:] for name in shape.required_members}
        for key, item in value.items():
            if key not in members:
                problems.append(f"{where}.{key} is not a member of {shape.name}")
            else:
                problems += _check_shape(members[key], item, f"{where}.{key}")
        problems += [f"{where}.{key} is required" for key in required - set(value)]
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            problems += _check_shape(shape.member, item, f"{where}[{i}]")
    return problems


@pytest.mark.parametrize("name", sorted(GOOD_CONFIGS))
def test_every_planned_request_matches_the_personalize_api_model(name: str) -> None:
    model = botocore.session.get_session().get_service_model("personalize")
    plan = _validate(_with_config(GOOD_CONFIGS[name]))["Plan"]
    requests = [("CreateDatasetGroup", plan["DatasetGroup"]["Request"])]
    for dataset in plan["Datasets"]:
        requests += [
            ("CreateSchema", dataset["Schema"]["Request"]),
            ("CreateDataset", dataset["Dataset"]["Request"]),
            ("CreateDatasetImportJob", dataset["ImportJob"]["Request"]),
        ]
    for solution in plan["Solutions"]:
        requests += [
            ("CreateSolution", solution["Request"]),
            ("CreateSolutionVersion", solution["Version"]["Request"]),
        ]
        # The workflow adds the solution version's ARN when it is known.
        arn = {"SolutionVersionArn": "arn:aws:personalize:eu-central-1:123456789012:solution/s/1"}
        requests += [("CreateBatchSegmentJob", {**job["Request"], **arn}) for job in solution["Jobs"]]
    problems = [
        p
        for op, request in requests
        for p in _check_shape(model.operation_model(op).input_shape, request, op)
    ]
    assert problems == []


# ---- the handler, against moto


@pytest.fixture
def bucket() -> Iterator[str]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-central-1")
        name = "contextual-targeting-data"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        for key, body in demo_files().items():
            s3.put_object(Bucket=name, Key=key, Body=body)
        yield name


def _handler_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("PERSONALIZE_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("TRAINING_STATE_PREFIX", "state/training/")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.syspath_prepend(str(REPO / "lambda" / "training" / "validate_config"))
    spec = importlib.util.spec_from_file_location(
        "training_validator_handler", REPO / "lambda/training/validate_config/handler.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("training_validator_handler", None)
    spec.loader.exec_module(module)
    return module


CONTEXT = SimpleNamespace(invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:validator")


def test_handler_validates_the_demo_upload_in_s3(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the demo data synced to the bucket and the workflow's event
    handler = _handler_module(monkeypatch)
    event = json.loads((EVENTS / "validate_demo.json").read_text())
    # WHEN the handler runs
    result = handler.handler(event, CONTEXT)
    # THEN the plan uses the bucket, the role and the account/region of the function
    assert result["Valid"], result["Errors"]
    assert (
        result["Plan"]["DatasetGroup"]["Arn"]
        == "arn:aws:personalize:eu-central-1:123456789012:dataset-group/bingewatch"
    )
    assert result["Plan"]["Datasets"][0]["ImportJob"]["Request"]["RoleArn"] == ROLE_ARN
    assert result["Plan"]["Solutions"][0]["Jobs"][0]["OutputS3Uri"].startswith(
        f"s3://{bucket}/batch/bingewatch/"
    )


def test_handler_names_an_empty_csv_in_s3(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an empty items.csv in S3, which answers the ranged GET with InvalidRange
    handler = _handler_module(monkeypatch)
    boto3.client("s3", region_name="eu-central-1").put_object(
        Bucket=bucket, Key="train/bingewatch/items.csv", Body=b""
    )
    # WHEN the handler validates the upload
    result = handler.handler(json.loads((EVENTS / "validate_demo.json").read_text()), CONTEXT)
    # THEN the file is named
    assert result["Errors"] == ["train/bingewatch/items.csv is empty (no header line)"]


def test_handler_reports_a_missing_csv_from_s3(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _handler_module(monkeypatch)
    boto3.client("s3", region_name="eu-central-1").delete_object(
        Bucket=bucket, Key="train/bingewatch/items.csv"
    )
    result = handler.handler(json.loads((EVENTS / "validate_demo.json").read_text()), CONTEXT)
    assert result["Missing"] == ["train/bingewatch/items.csv"]
    assert result["Errors"] == []


def test_handler_rejects_a_config_in_the_wrong_folder(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _handler_module(monkeypatch)
    s3 = boto3.client("s3", region_name="eu-central-1")
    s3.copy_object(
        Bucket=bucket,
        Key="train/other/bingewatch_config.json",
        CopySource={"Bucket": bucket, "Key": CONFIG_KEY},
    )
    result = handler.handler(json.loads((EVENTS / "validate_wrong_folder.json").read_text()), CONTEXT)
    assert not result["Valid"]
    assert any("train/other/" in e for e in result["Errors"])


def test_handler_reads_the_config_at_the_version_that_started_the_run(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a valid config whose key was overwritten by a broken upload after it started a run
    handler = _handler_module(monkeypatch)
    s3 = boto3.client("s3", region_name="eu-central-1")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    started = s3.put_object(Bucket=bucket, Key=CONFIG_KEY, Body=demo_files()[CONFIG_KEY])["VersionId"]
    s3.put_object(Bucket=bucket, Key=CONFIG_KEY, Body=b"{ not json")
    event = json.loads((EVENTS / "validate_demo.json").read_text())
    # WHEN the run that the first version started validates it
    at_version = handler.handler({**event, "Source": {"VersionId": started}}, CONTEXT)
    latest = handler.handler(event, CONTEXT)
    # THEN it sees its own version; only a run without a version sees the latest upload
    assert at_version["Valid"], at_version["Errors"]
    assert not latest["Valid"]
    assert any("is not valid JSON" in error for error in latest["Errors"])
