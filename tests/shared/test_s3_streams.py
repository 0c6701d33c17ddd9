"""The shared layer's streaming S3 writer: parts while writing, one object at the end, nothing on abort."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import s3_streams
from moto import mock_aws

from contextual_targeting.common.workflow_kit import uses_shared_code


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(
            Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        yield client


def test_small_object_is_one_put(s3: Any) -> None:
    writer = s3_streams.ObjectWriter(s3, "bucket", "small.csv")
    writer.write(b"UserId\n1\n")
    writer.commit()
    assert writer.parts == 0
    assert s3.get_object(Bucket="bucket", Key="small.csv")["Body"].read() == b"UserId\n1\n"


def test_large_object_goes_up_in_parts_and_appears_only_when_complete(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN S3's minimum part size and 12 MiB written in 3 MiB chunks
    monkeypatch.setattr(s3_streams, "PART_SIZE", 5 * 1024 * 1024)
    writer = s3_streams.ObjectWriter(s3, "bucket", "big.csv")
    chunk = b"x" * (3 * 1024 * 1024)
    for _ in range(4):
        writer.write(chunk)
    # THEN two full parts went up but nothing is visible before the commit, and one object of every byte after
    assert writer.parts == 2
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket")
    writer.commit()
    assert writer.size == 4 * len(chunk)
    assert s3.head_object(Bucket="bucket", Key="big.csv")["ContentLength"] == 4 * len(chunk)


def test_abort_leaves_no_object_and_no_open_upload(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_streams, "PART_SIZE", 5 * 1024 * 1024)
    writer = s3_streams.ObjectWriter(s3, "bucket", "half.csv")
    writer.write(b"y" * (6 * 1024 * 1024))
    writer.abort()
    assert s3.list_multipart_uploads(Bucket="bucket").get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket")


def test_staged_spool_goes_to_s3_and_stays_invisible_until_commit(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 11 MiB written before the key was known (kept in a local spool)
    monkeypatch.setattr(s3_streams, "PART_SIZE", 5 * 1024 * 1024)
    writer = s3_streams.ObjectWriter(s3, "bucket")
    writer.write(b"z" * (11 * 1024 * 1024))
    # WHEN the key is set and the writer staged
    writer.key = "late.csv"
    writer.stage()
    # THEN the full parts are in S3, the object is not, and the commit shows every byte
    assert writer.parts == 2
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket")
    writer.commit()
    assert s3.head_object(Bucket="bucket", Key="late.csv")["ContentLength"] == 11 * 1024 * 1024


def test_text_lines_streams_utf8_without_bom(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="ids.csv", Body="\ufeffUserId\nJosé\n".encode())
    lines = s3_streams.text_lines(s3, "bucket", "ids.csv")
    assert list(io.StringIO(lines.read())) == ["UserId\n", "José\n"]


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("destinations/pinpoint/endpoint_join", True),
        ("destinations/customer_profiles/upload_file", True),
        ("segments/split", True),
        # Every handler imports `run_log` (structured logs), so every Lambda has the layer now.
        ("training/validate_config", True),
    ],
)
def test_a_lambda_that_imports_the_shared_layer_deploys_with_it(component: str, expected: bool) -> None:
    assert uses_shared_code(component) is expected
