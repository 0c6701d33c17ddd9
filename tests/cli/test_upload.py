"""`contextual-targeting upload` against moto: validation first, safe order, skipping, the started run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from contextual_targeting.cli import main
from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.cli.upload import PART_SIZE, local_etag
from tests.cli.support import (
    BUCKET,
    IMPORT_BUCKET,
    REGION,
    Clock,
    aws,
    clock,
    copy_data,
    create_buckets,
    deploy_stack,
    invoke,
)

__all__ = ["aws", "clock"]  # fixtures

CONFIG_KEY = "train/bingewatch/bingewatch_config.json"
SAFE_ORDER = [
    "pinpoint/endpoints.csv",
    "train/bingewatch/interactions.csv",
    "train/bingewatch/items.csv",
    "train/bingewatch/users.csv",
    "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json",
    CONFIG_KEY,
]


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys in the order the command uploads them (PutObject or CreateMultipartUpload)."""
    recorded: list[str] = []
    original = main.Aws.client

    def client(self: main.Aws, service: str) -> Any:
        made = original(self, service)
        if service == "s3":
            for operation in ("PutObject", "CreateMultipartUpload"):
                made.meta.events.register(
                    f"provide-client-params.s3.{operation}",
                    lambda params, **_: recorded.append(f"{params['Bucket']}/{params['Key']}"),
                )
        return made

    monkeypatch.setattr(main.Aws, "client", client)
    return recorded


def training_machine() -> str:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return str(
        sfn.create_state_machine(
            name="Training", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
    )


def trigger_on_config(clock: Clock, machine: str) -> None:
    """What S3 + EventBridge do: a config upload starts the training workflow with the object version."""
    s3 = boto3.client("s3", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    started: set[str] = set()

    def trigger() -> None:
        try:
            head = s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)
        except s3.exceptions.ClientError:
            return
        if head["VersionId"] not in started:
            started.add(head["VersionId"])
            source = {
                "Bucket": BUCKET,
                "Key": CONFIG_KEY,
                "VersionId": head["VersionId"],
                "ETag": head["ETag"],
            }
            sfn.start_execution(stateMachineArn=machine, name="run-1", input=json.dumps({"Source": source}))

    clock.on_sleep.append(trigger)


@pytest.fixture
def stack(aws: None) -> str:
    """Buckets, a training state machine and the stack's outputs, with the Pinpoint destination."""
    create_buckets(BUCKET, IMPORT_BUCKET)
    machine = training_machine()
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.SEGMENT_IMPORT_BUCKET: IMPORT_BUCKET,
            keys.TRAINING_STATE_MACHINE: machine,
        }
    )
    return machine


def test_upload_goes_in_safe_order_config_last_and_prints_the_run_it_started(
    stack: str, clock: Clock, puts: list[str], tmp_path: Path
) -> None:
    # GIVEN the demo data and a stack with the Pinpoint destination, whose trigger starts a run
    data = copy_data(tmp_path)
    trigger_on_config(clock, stack)

    # WHEN the data is uploaded
    result = invoke("upload", str(data))

    # THEN endpoints, CSVs, queries go first and the config (the trigger) last, each to its bucket
    assert result.exit_code == 0, result.output
    assert puts == [f"{IMPORT_BUCKET}/{SAFE_ORDER[0]}"] + [f"{BUCKET}/{key}" for key in SAFE_ORDER[1:]]
    assert (
        "training run started: arn:aws:states:eu-central-1:123456789012:execution:Training:run-1"
        in result.output
    )
    assert "contextual-targeting watch run-1" in result.output
    # and the wait for the run was short and bounded by the virtual clock
    assert 0 < sum(clock.sleeps) <= 60


def test_a_second_upload_skips_unchanged_files_and_starts_nothing(
    stack: str, clock: Clock, puts: list[str], tmp_path: Path
) -> None:
    # GIVEN data uploaded once
    data = copy_data(tmp_path)
    trigger_on_config(clock, stack)
    assert invoke("upload", str(data)).exit_code == 0
    puts.clear()

    # WHEN it is uploaded again, then once more after one CSV changed
    again = invoke("upload", str(data))
    users = data / "personalize" / "train" / "bingewatch" / "users.csv"
    users.write_text(users.read_text().replace(",66\n", ",67\n", 1))
    changed = invoke("upload", str(data))

    # THEN the second upload sends nothing, the third only the changed CSV; neither starts a run
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output
    assert "no run started" in again.output
    assert puts == [f"{BUCKET}/train/bingewatch/users.csv"]
    assert changed.exit_code == 0, changed.output
    assert "no run started" in changed.output


def test_dry_run_validates_and_lists_without_uploading(stack: str, clock: Clock, tmp_path: Path) -> None:
    result = invoke("upload", str(copy_data(tmp_path)), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Would upload" in result.output
    for key in SAFE_ORDER[1:]:
        assert f"s3://{BUCKET}/{key}" in result.output
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_endpoints_are_skipped_without_the_pinpoint_destination(
    aws: None, clock: Clock, tmp_path: Path
) -> None:
    create_buckets(BUCKET)
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET})

    result = invoke("upload", str(copy_data(tmp_path)), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "skipping pinpoint/*.csv" in result.output
    assert "endpoints.csv" not in result.output


def test_a_type_error_is_reported_with_file_and_line_and_nothing_is_uploaded(
    stack: str, clock: Clock, tmp_path: Path
) -> None:
    # GIVEN an interactions file whose third line has a timestamp that is not a long
    data = copy_data(tmp_path)
    interactions = data / "personalize" / "train" / "bingewatch" / "interactions.csv"
    lines = interactions.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",yesterday\n"
    interactions.write_text("".join(lines))

    result = invoke("upload", str(data))

    assert result.exit_code == 1
    assert "interactions.csv:3: TIMESTAMP 'yesterday' is not long" in result.output
    assert "nothing uploaded" in result.output
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_config_syntax_error_is_reported_with_line_and_column(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    config = data / "personalize" / "train" / "bingewatch" / "bingewatch_config.json"
    config.write_text(config.read_text().replace('"bingewatch-items"', '"bingewatch-items",', 1))

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "bingewatch_config.json:54:9: not valid JSON" in result.output


def test_too_many_queries_and_unknown_fields_are_refused(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    queries = (
        data / "personalize" / "batch" / "bingewatch" / "bw_aws-item-attribute-affinity" / "job_config.json"
    )
    lines = [json.dumps({"itemAttributes": f'ITEMS.genres = "G{i}"'}) for i in range(11)]
    lines[3] = json.dumps({"itemAttributes": 'ITEMS.mood = "Dark"'})
    queries.write_text("\n".join(lines) + "\n")

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "has 11 queries; a batch segment job takes at most 10" in result.output
    assert "job_config.json:4: ITEMS.mood is not a field of the Items schema" in result.output


def _bingewatch(data: Path, name: str) -> Path:
    if name == "job_config.json":
        return data / "personalize" / "batch" / "bingewatch" / "bw_aws-item-attribute-affinity" / name
    return data / "personalize" / "train" / "bingewatch" / name


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("interactions.csv", 1),
        ("interactions.csv", 3),
        ("items.csv", 40),
        ("job_config.json", 2),
        ("bingewatch_config.json", 5),
    ],
)
def test_bytes_that_are_not_utf8_are_reported_as_file_and_line(
    aws: None, tmp_path: Path, name: str, line: int
) -> None:
    # GIVEN a data file with a Latin-1 byte on one line
    data = copy_data(tmp_path)
    path = _bingewatch(data, name)
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1][:1] + b"\xe9" + lines[line - 1][1:]
    path.write_bytes(b"\n".join(lines))

    # WHEN the data is checked
    result = invoke("upload", str(data), "--dry-run")

    # THEN the command names file and line, like every other problem, instead of a traceback
    assert result.exit_code == 1
    assert f"{name}:{line}: is not valid UTF-8 (byte 0xe9)" in result.output
    assert "Traceback" not in result.output
    assert "nothing uploaded" in result.output


def test_a_lone_carriage_return_in_a_field_is_reported_as_file_and_line(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    items = _bingewatch(data, "items.csv")
    lines = items.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b",", b"\r,", 1)
    items.write_bytes(b"\n".join(lines))

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "items.csv:5: not a CSV record: new-line character seen in unquoted field" in result.output


def test_an_empty_csv_is_named(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    _bingewatch(data, "items.csv").write_bytes(b"")

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "items.csv: is empty (no header line)" in result.output


def test_too_few_interactions_are_refused(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    interactions = data / "personalize" / "train" / "bingewatch" / "interactions.csv"
    interactions.write_text("".join(interactions.read_text().splitlines(keepends=True)[:501]))

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "500 interactions; Personalize needs at least 1,000" in result.output


def test_schema_and_header_disagreement_uses_the_workflows_rule(aws: None, tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    items = data / "personalize" / "train" / "bingewatch" / "items.csv"
    items.write_text(items.read_text().replace("GENRES", "GENRE", 1))

    result = invoke("upload", str(data), "--dry-run")

    assert result.exit_code == 1
    assert "items.csv:1): CSV columns not in the schema: GENRE" in result.output.replace("\n", "")


def test_a_missing_stack_is_one_line_and_non_zero(aws: None, tmp_path: Path) -> None:
    result = invoke("upload", str(copy_data(tmp_path)), "--stack-name", "Elsewhere")

    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: stack Elsewhere not found in eu-central-1: deploy it (make deploy), or pass the --region and "
        "--stack-name it was deployed with"
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials and no region anywhere botocore looks (env, files, instance metadata)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "CONTEXTUAL_TARGETING_STACK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "no AWS region: pass --region or set AWS_REGION (or a region in your profile)"),
        (("--region", "eu-west-1"), "no AWS credentials found"),
    ],
    ids=["no region", "no credentials"],
)
def test_dry_run_works_offline_naming_the_buckets_unknown(
    offline: None, tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    # GIVEN valid data and no way to reach AWS
    data = copy_data(tmp_path)

    # WHEN a dry run is asked for
    result = invoke("upload", str(data), "--dry-run", *args)

    # THEN it validates and lists the whole plan in the safe order, saying why the buckets are unknown
    assert result.exit_code == 0, result.output
    assert f"bucket unknown ({reason}" in result.output
    planned = [line.split(" -> ")[1].split(" (")[0] for line in result.output.splitlines() if " -> " in line]
    assert planned == [f"s3://<bucket unknown>/{key}" for key in SAFE_ORDER]
    assert "endpoints.csv -> s3://<bucket unknown>/pinpoint/endpoints.csv" in result.output
    assert "(only with the Pinpoint destination)" in result.output


def test_a_real_upload_without_credentials_still_fails(offline: None, tmp_path: Path) -> None:
    result = invoke("upload", str(copy_data(tmp_path)), "--region", "eu-west-1")

    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: no AWS credentials found: run `aws configure`, set AWS_PROFILE, or pass --profile"
    )


def test_dry_run_without_the_stack_names_the_buckets_unknown(aws: None, tmp_path: Path) -> None:
    result = invoke("upload", str(copy_data(tmp_path)), "--dry-run", "--stack-name", "Elsewhere")

    assert result.exit_code == 0, result.output
    assert "bucket unknown (stack Elsewhere not found in eu-central-1" in result.output
    assert f"s3://<bucket unknown>/{CONFIG_KEY}" in result.output


def test_no_credentials_is_one_line_and_non_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN no credentials anywhere botocore looks (env, files, instance metadata)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    result = invoke("segments", "--region", "eu-west-1")

    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: no AWS credentials found: run `aws configure`, set AWS_PROFILE, or pass --profile"
    )


def test_multipart_etag_matches_s3s(aws: None, tmp_path: Path) -> None:
    # GIVEN a file just over one part, uploaded with the command's transfer settings
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (PART_SIZE + 10))
    small = tmp_path / "small.csv"
    small.write_bytes(b"USER_ID\n1\n")
    s3 = create_buckets(BUCKET)
    from contextual_targeting.cli.upload import TRANSFER_CONFIG

    for path in (big, small):
        s3.upload_file(str(path), BUCKET, path.name, Config=TRANSFER_CONFIG)

    # THEN the locally computed ETags are S3's
    for path in (big, small):
        assert s3.head_object(Bucket=BUCKET, Key=path.name)["ETag"].strip('"') == local_etag(path)
    assert local_etag(big).endswith("-2")


def test_a_folder_without_a_training_config_is_refused(aws: None, tmp_path: Path) -> None:
    (tmp_path / "personalize" / "train").mkdir(parents=True)

    result = invoke("upload", str(tmp_path), "--dry-run")

    assert result.exit_code == 1
    assert "no training config at train/<dataset-group>/<name>_config.json" in result.output
