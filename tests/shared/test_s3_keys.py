"""Keys from S3 events: one rule (`lambda/shared/python/s3_keys.py`) for every consumer of
`detail.object.key`, the training config validator, the Pinpoint import file inspector and the CLI."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
import s3_keys
from aws_cdk.assertions import Template
from moto import mock_aws

from contextual_targeting.cli.upload import find_started_execution
from tests.helpers import EVENTS_ROOT, load_lambda
from tests.training.fakes import CONFIG_KEY, demo_files
from tests.training.test_config import _handler_module

EVENTS = EVENTS_ROOT / "training"
BUCKET = "data-bucket"
inspect_handler = load_lambda("destinations/pinpoint/import_file", "handler")


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_candidates_are_decoded_first_then_as_received_then_percent_decoded() -> None:
    assert s3_keys.key_candidates("pinpoint/a+b%2Bc.csv") == [
        "pinpoint/a b+c.csv",
        "pinpoint/a+b%2Bc.csv",
        "pinpoint/a+b+c.csv",
    ]
    assert s3_keys.key_candidates("train/bingewatch/bingewatch_config.json") == [
        "train/bingewatch/bingewatch_config.json"
    ]


def _hostile_keys(count: int = 2000) -> list[str]:
    """Keys as S3 allows them (any Unicode but surrogates), heavy on the characters encodings touch."""
    rng = random.Random(12)
    tricky = [*" +%/?&=#'\"\\\u2028\u0085\x00\tÜ😀", "%2B", "%20", "%%", "+ +"]

    def character() -> str:
        if rng.random() < 0.5:
            return rng.choice(tricky)
        return chr(
            rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD800), rng.randrange(0xE000, 0x10FFFF)])
        )

    return ["".join(character() for _ in range(rng.randrange(1, 30))) for _ in range(count)]


def test_every_way_a_key_may_arrive_leads_back_to_it() -> None:
    # S3 notifications' encoding is tried first; a key delivered as stored or %-encoded is still found.
    for key in _hostile_keys():
        assert s3_keys.key_candidates(quote_plus(key, safe="/"))[0] == key, repr(key)
        assert key in s3_keys.key_candidates(key), repr(key)
        assert key in s3_keys.key_candidates(quote(key, safe="/")), repr(key)


@pytest.mark.parametrize(
    ("stored", "received"),
    [
        ("train/x/my config_config.json", "train/x/my+config_config.json"),
        ("pinpoint/a b+c.csv", "pinpoint/a+b%2Bc.csv"),
        ("pinpoint/Müller.csv", "pinpoint/M%C3%BCller.csv"),
        ("pinpoint/a+b.csv", "pinpoint/a+b.csv"),
        ("pinpoint/100%.csv", "pinpoint/100%.csv"),
    ],
)
def test_the_stored_key_is_found_however_the_event_wrote_it(s3: Any, stored: str, received: str) -> None:
    version = s3.put_object(Bucket=BUCKET, Key=stored, Body=b"x")["VersionId"]
    assert s3_keys.find_object_key(s3, BUCKET, received, version) == stored
    assert s3_keys.find_object_key(s3, BUCKET, received) == stored


def test_the_version_tells_apart_two_keys_the_decoding_confuses(s3: Any) -> None:
    # GIVEN "a b.csv" and "a+b.csv" both exist, and the event (delivered as stored) names "a+b.csv"
    s3.put_object(Bucket=BUCKET, Key="pinpoint/a b.csv", Body=b"1")
    version = s3.put_object(Bucket=BUCKET, Key="pinpoint/a+b.csv", Body=b"2")["VersionId"]
    # THEN with the event's version the decoded candidate has no such version and the raw key is chosen
    assert s3_keys.find_object_key(s3, BUCKET, "pinpoint/a+b.csv", version) == "pinpoint/a+b.csv"


def test_a_gone_object_is_none(s3: Any) -> None:
    assert s3_keys.find_object_key(s3, BUCKET, "pinpoint/gone+file.csv") is None


def test_validator_reads_the_config_an_encoded_event_key_names(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the demo data, its config stored under a name with a space, and the event's URL-encoded key
    for key, body in demo_files().items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    stored = "train/bingewatch/binge watch_config.json"
    version = s3.put_object(Bucket=BUCKET, Key=stored, Body=demo_files()[CONFIG_KEY])["VersionId"]
    handler = _handler_module(monkeypatch)
    monkeypatch.setattr(handler, "_S3", s3)
    event = json.loads((EVENTS / "validate_demo.json").read_text())
    event.update(Bucket=BUCKET, Key="train/bingewatch/binge+watch_config.json", Source={"VersionId": version})
    context = SimpleNamespace(invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:v")
    # WHEN the validator runs
    result = handler.handler(event, context)
    # THEN it read the stored config and planned the run
    assert result["Valid"], result["Errors"]
    assert "Plan" in result


def test_pinpoint_inspector_uses_the_same_rule(s3: Any) -> None:
    version = s3.put_object(Bucket=BUCKET, Key="pinpoint/a b+c.csv", Body=b"Id\ne1\n")["VersionId"]
    event = {"Bucket": BUCKET, "Key": "pinpoint/a+b%2Bc.csv", "VersionId": version}
    result = inspect_handler.inspect_file(event, s3, prefix="pinpoint/")
    assert result["Key"] == "pinpoint/a b+c.csv"
    assert result["Accepted"] is True


@pytest.mark.parametrize("function", ["TrainingConfigValidator", "PinpointImportFileInspector"])
def test_the_lambdas_that_read_event_keys_deploy_with_the_shared_layer(
    full_template: Template, function: str
) -> None:
    # In Lambda the rule's module comes from the layer: without it the import fails at the first event.
    (layer,) = full_template.find_resources("AWS::Lambda::LayerVersion")
    functions = full_template.find_resources("AWS::Lambda::Function")
    (props,) = [r["Properties"] for logical_id, r in functions.items() if logical_id.startswith(function)]
    assert props["Layers"] == [{"Ref": layer}]


class OneExecution:
    """ListExecutions / DescribeExecution of one training run started by the trigger."""

    def __init__(self, key: str) -> None:
        self.input = json.dumps({"Source": {"Bucket": BUCKET, "Key": key, "VersionId": "v1"}})

    def list_executions(self, **_: Any) -> dict[str, Any]:
        arn = "arn:aws:states:eu-central-1:123456789012:execution:Training:run-1"
        return {"executions": [{"executionArn": arn, "startDate": datetime(2026, 1, 1, tzinfo=UTC)}]}

    def describe_execution(self, **_: Any) -> dict[str, Any]:
        return {"input": self.input}


def test_upload_finds_the_run_whose_input_key_is_url_encoded() -> None:
    # GIVEN the trigger started the run with the event's URL-encoded key
    sfn = OneExecution("train/bingewatch/binge+watch_config.json")
    # WHEN the CLI looks for the run of the config it uploaded
    arn = find_started_execution(
        sfn,
        "arn:aws:states:eu-central-1:123456789012:stateMachine:Training",
        config_key="train/bingewatch/binge watch_config.json",
        version_id="v1",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        sleep=lambda _: None,
        clock=lambda: 0.0,
        wait_seconds=0,
    )
    # THEN it is found
    assert arn == "arn:aws:states:eu-central-1:123456789012:execution:Training:run-1"
