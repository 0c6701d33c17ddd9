"""The validator's data versions (`lambda/training/validate_config/data_versions.py`): what a run trains on,
as object versions, and whether a scheduled run has anything new; against moto S3."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.helpers import REPO, load_lambda
from tests.training.fakes import CONFIG_KEY, ROLE_ARN, demo_files

EVENT = json.loads((REPO / "tests" / "events" / "training" / "validate_demo.json").read_text())
CONTEXT = SimpleNamespace(invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:validator")
BUCKET = EVENT["Bucket"]
STATE_KEY = "state/training/bingewatch/last-success.json"
INTERACTIONS = "train/bingewatch/interactions.csv"

dv = load_lambda("training/validate_config", "data_versions")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A versioned bucket holding the demo data."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for key, body in demo_files().items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield client


def _handler(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("PERSONALIZE_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("TRAINING_STATE_PREFIX", "state/training/")
    monkeypatch.syspath_prepend(str(REPO / "lambda" / "training" / "validate_config"))
    spec = importlib.util.spec_from_file_location(
        "training_validator_handler_versions", REPO / "lambda/training/validate_config/handler.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("training_validator_handler_versions", None)
    spec.loader.exec_module(module)
    return module


def _record(s3: Any, data: dict[str, Any]) -> None:
    """What a successful run writes (contextual_targeting/training/freshness.py)."""
    body = {"Fingerprint": data["Fingerprint"], "Files": data["Files"], "ExecutionArn": "arn:run-1"}
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=json.dumps(body).encode())


def test_the_plan_carries_the_versions_of_everything_the_run_trains_on(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the demo data in a versioned bucket, no run recorded yet
    handler = _handler(monkeypatch)
    # WHEN the validator runs
    data = handler.handler(EVENT, CONTEXT)["Data"]
    # THEN it names each file it read at its current version, and nothing is "unchanged" on a first run
    versions = {
        key: s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]
        for key in (
            CONFIG_KEY,
            INTERACTIONS,
            "train/bingewatch/items.csv",
            "train/bingewatch/users.csv",
            "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json",
        )
    }
    assert data["Files"] == versions
    assert data["StateKey"] == STATE_KEY
    assert data["Unchanged"] is False
    assert data["LastSuccess"] == {"ExecutionArn": "", "Started": ""}


def test_the_same_versions_are_unchanged_and_a_new_csv_version_is_not(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a successful run recorded what it trained on
    handler = _handler(monkeypatch)
    _record(s3, handler.handler(EVENT, CONTEXT)["Data"])
    # WHEN the next run finds the same objects, and then a re-upload of the same bytes (a new version)
    same = handler.handler(EVENT, CONTEXT)["Data"]
    s3.put_object(Bucket=BUCKET, Key=INTERACTIONS, Body=demo_files()[INTERACTIONS])
    new = handler.handler(EVENT, CONTEXT)["Data"]
    # THEN only the first is unchanged: an upload is new data, even with the same content
    assert same["Unchanged"] is True
    assert same["LastSuccess"]["ExecutionArn"] == "arn:run-1"
    assert new["Unchanged"] is False
    assert new["Fingerprint"] != same["Fingerprint"]


def test_an_invalid_config_reports_no_data(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _handler(monkeypatch)
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=b"{ not json")
    assert "Data" not in handler.handler(EVENT, CONTEXT)


class _Unversioned:
    """GetObject answers of a bucket without versioning: VersionId "null" (or none), an ETag."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        return self.answers[kwargs["Key"]]


def test_without_versioning_the_etag_stands_for_the_version() -> None:
    reads = dv.RecordingS3(_Unversioned({"a": {"VersionId": "null", "ETag": '"e1"'}, "b": {"ETag": '"e2"'}}))
    reads.get_object(Bucket="x", Key="a")
    reads.get_object(Bucket="x", Key="b")
    assert reads.read == {"a": "etag:e1", "b": "etag:e2"}


def test_the_fingerprint_ignores_the_order_of_reads() -> None:
    assert dv.fingerprint({"a": "1", "b": "2"}) == dv.fingerprint({"b": "2", "a": "1"})
    assert dv.fingerprint({"a": "1", "b": "2"}) != dv.fingerprint({"a": "1", "b": "3"})


def test_an_unreadable_record_means_train_again(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=b"not json")
    assert dv.last_success(s3, BUCKET, STATE_KEY) is None
    data = dv.data_state(s3, {"a": "1"}, BUCKET, STATE_KEY)
    assert data["Unchanged"] is False
