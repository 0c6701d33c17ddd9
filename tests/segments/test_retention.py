"""The split Lambda tags the job's earlier runs for expiry (`lambda/segments/split/retention.py`), against
moto S3: earlier runs of the same job are tagged, the latest run, the query file and other jobs are not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contextual_targeting.contracts.layout import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE
from tests.helpers import load_lambda
from tests.segments.support import BUCKET, create_bucket, handler_module, segment_store

retention = load_lambda("segments/split", "retention")

TAG = f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}"
SOLUTION = "batch/bingewatch/bw_aws-item-attribute-affinity/"
QUERIES = f"{SOLUTION}job_config.json"
RUNS = ["bingewatch-genres-20260105T030000", "bingewatch-genres-20260112T030000"]
LATEST = "bingewatch-genres-20260119T030000"
OTHER_JOB = "bingewatch-genres-extra-20260101T030000"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        create_bucket(client)
        client.put_object(
            Bucket=BUCKET, Key=QUERIES, Body=b'{"itemAttributes": "ITEMS.genres = \\"Action\\""}\n'
        )
        for name in [*RUNS, OTHER_JOB]:
            client.put_object(Bucket=BUCKET, Key=f"{SOLUTION}{name}/job_config.json.out", Body=b"{}\n")
            for file in ("action.csv", "manifest.json"):
                client.put_object(
                    Bucket=BUCKET, Key=f"segments/bingewatch/{name}/{file}", Body=b"UserId\n1\n"
                )
        client.put_object(Bucket=BUCKET, Key=f"{SOLUTION}{LATEST}/job_config.json.out", Body=b"{}\n")
        yield client


def _job(name: str = LATEST) -> Any:
    return segment_store.JobInfo(
        job_arn=f"arn:aws:personalize:eu-central-1:123456789012:batch-segment-job/{name}",
        job_name=name,
        dataset_group_name="bingewatch",
        output_uri=f"s3://{BUCKET}/{SOLUTION}{name}/",
    )


def _tagged(s3: Any) -> set[str]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {
        key
        for key in keys
        if {"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}
        in s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    }


def test_earlier_runs_of_the_job_are_tagged_and_nothing_else(s3: Any) -> None:
    # GIVEN two earlier runs of the job, another job, the query file, and the latest run's output
    # WHEN the latest run has been split
    report = retention.supersede_earlier_runs(
        s3, _job(), segments_bucket=BUCKET, segments_prefix="segments/", tag=TAG
    )
    # THEN every file of the earlier runs carries the expiry tag; the query file, the other job and the
    # latest run's output do not
    earlier = {
        key
        for name in RUNS
        for key in (
            f"{SOLUTION}{name}/job_config.json.out",
            f"segments/bingewatch/{name}/action.csv",
            f"segments/bingewatch/{name}/manifest.json",
        )
    }
    assert _tagged(s3) == earlier
    assert report["Problem"] is None
    assert len(report["Tagged"]) == 4


def test_tagging_again_tags_nothing_new(s3: Any) -> None:
    retention.supersede_earlier_runs(s3, _job(), segments_bucket=BUCKET, segments_prefix="segments/", tag=TAG)
    again = retention.supersede_earlier_runs(
        s3, _job(), segments_bucket=BUCKET, segments_prefix="segments/", tag=TAG
    )
    assert again == {"Tagged": [], "Problem": None}


def test_a_rerun_of_an_older_run_never_tags_a_newer_one(s3: Any) -> None:
    retention.supersede_earlier_runs(
        s3, _job(RUNS[0]), segments_bucket=BUCKET, segments_prefix="segments/", tag=TAG
    )
    assert _tagged(s3) == set()


def test_without_the_setting_nothing_is_tagged(s3: Any) -> None:
    report = retention.supersede_earlier_runs(
        s3, _job(), segments_bucket=BUCKET, segments_prefix="segments/", tag=None
    )
    assert report == {"Tagged": [], "Problem": None}
    assert _tagged(s3) == set()


def test_a_refused_tagging_is_reported_not_raised(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN S3 refuses the tagging (a role without s3:PutObjectTagging)
    from botocore.exceptions import ClientError

    def refuse(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObjectTagging")

    monkeypatch.setattr(s3, "put_object_tagging", refuse)
    # THEN the new segments still count as ready: the problem is reported in the function's answer
    report = retention.supersede_earlier_runs(
        s3, _job(), segments_bucket=BUCKET, segments_prefix="segments/", tag=TAG
    )
    assert "AccessDenied" in str(report["Problem"])


@pytest.mark.parametrize("name", ["bingewatch-genres", "no-stamp-here", "x-2026T03"])
def test_a_job_name_without_a_run_stamp_supersedes_nothing(s3: Any, name: str) -> None:
    assert retention.earlier_runs(s3, BUCKET, SOLUTION, name) == []


def test_the_handler_tags_after_splitting(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the latest run's real job output and the function's environment
    monkeypatch.setenv("SEGMENTS_BUCKET", BUCKET)
    monkeypatch.setenv("SEGMENTS_PREFIX", "segments/")
    monkeypatch.setenv("EXPIRY_TAG", TAG)
    line = (
        b'{"input": {"itemAttributes": "ITEMS.genres = \\"Action\\""}, "output": {"usersList": ["1", "2"]}}\n'
    )
    s3.put_object(Bucket=BUCKET, Key=f"{SOLUTION}{LATEST}/job_config.json.out", Body=line)
    # WHEN the function splits it
    result = handler_module.handler(
        {
            "JobArn": _job().job_arn,
            "JobName": LATEST,
            "DatasetGroupName": "bingewatch",
            "OutputUri": _job().output_uri,
        },
        None,
    )
    # THEN the new segment is ready and the earlier runs are tagged for expiry
    assert result["SegmentCount"] == 1
    assert len(result["Superseded"]["Tagged"]) == 4
    assert not any(LATEST in key for key in _tagged(s3))


def test_a_malformed_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="expected key=value"):
        retention.parse_tag("no-equals-sign")
