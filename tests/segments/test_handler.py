"""The split Lambda against moto S3: segment files, manifest, atomic writes, the workflow's summary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import s3_streams
from moto import mock_aws

from tests.segments.support import (
    BUCKET,
    EVENTS,
    JOB_PREFIX,
    big_line_chunks,
    create_bucket,
    event,
    handler_module,
    job_line,
    job_output,
    read_csv,
    segment_store,
    user_ids,
)

SEGMENTS = "segments/bingewatch/bingewatch-genres-20261128T101500Z/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Moto S3 with the data bucket, and the function's environment."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SEGMENTS_BUCKET", BUCKET)
    monkeypatch.setenv("SEGMENTS_PREFIX", "segments/")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        create_bucket(client)
        yield client


def put_output(s3: Any, body: bytes, name: str = "job_config.json.out", prefix: str = JOB_PREFIX) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}", Body=body)


def keys(s3: Any, prefix: str = "segments/") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_sample_output_becomes_segments_a_manifest_and_a_small_summary(s3: Any) -> None:
    # GIVEN the sample job output (5 queries: 2 good, 1 empty, 1 failed, 1 in the documentation's shape)
    put_output(s3, (EVENTS / "job_config.json.out").read_bytes())
    put_output(s3, b"", name="_SUCCESS")  # not a *.out object: ignored

    # WHEN the function runs on the workflow's request
    summary = handler_module.handler(event("split_request.json"), None)

    # THEN every good query has its own readable, UTF-8 CSV segment in rank order
    # (values with capitals are not lossless in a lowercase slug: they get a hash of the query)
    assert keys(s3) == [
        f"{SEGMENTS}genres-action--0e8c624a.csv",
        f"{SEGMENTS}genres-comedy-genres-action--7ed97b45.csv",
        f"{SEGMENTS}genres-horror--a7862233.csv",
        f"{SEGMENTS}manifest.json",
    ]
    assert read_csv(s3, f"{SEGMENTS}genres-action--0e8c624a.csv") == [
        ["UserId"],
        ["17"],
        ["4"],
        ["230"],
        ["user,with,commas"],
        ['Zoë "the" fan'],
    ]
    assert read_csv(s3, f"{SEGMENTS}genres-horror--a7862233.csv") == [["UserId"], ["8"], ["442"], ["435"]]
    head = s3.head_object(Bucket=BUCKET, Key=f"{SEGMENTS}genres-action--0e8c624a.csv")
    assert head["ContentType"] == "text/csv; charset=utf-8"

    # AND the summary names each query's outcome, the problems with their line
    assert summary["Status"] == "SUCCEEDED WITH PROBLEMS"
    assert (summary["SegmentCount"], summary["ProblemCount"]) == (3, 2)
    assert summary["ManifestUri"] == f"s3://{BUCKET}/{SEGMENTS}manifest.json"
    by_line = {s["Line"]: s for s in summary["Segments"]}
    assert by_line[1] == {
        "Source": f"{JOB_PREFIX}job_config.json.out",
        "Line": 1,
        "Query": 'ITEMS.genres = "Action"',
        "Status": "READY",
        "SegmentName": "bingewatch-genres-action--094be1d735",
        "Bucket": BUCKET,
        "Key": f"{SEGMENTS}genres-action--0e8c624a.csv",
        "SegmentUri": f"s3://{BUCKET}/{SEGMENTS}genres-action--0e8c624a.csv",
        "UserCount": 5,
        "Error": None,
    }
    assert (by_line[3]["Status"], by_line[3]["Key"]) == ("EMPTY", None)
    assert by_line[3]["Error"] == "line 3: the query matched no users"
    assert (by_line[4]["Status"], by_line[4]["Query"]) == ("FAILED", 'ITEMS.genre = "Drama"')
    assert by_line[4]["Error"] == "Invalid item attribute: ITEMS.genre"
    assert "line 4" in summary["Summary"]
    assert "Invalid item attribute" in summary["Summary"]

    # AND the manifest holds the same entries
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{SEGMENTS}manifest.json")["Body"].read())
    assert manifest["Segments"] == summary["Segments"]
    assert (manifest["JobName"], manifest["DatasetGroupName"]) == (
        "bingewatch-genres-20261128T101500Z",
        "bingewatch",
    )


def test_output_file_name_is_not_hard_coded(s3: Any) -> None:
    # The original sample only ever read `job_config.json.out`; Personalize names it after the input file.
    put_output(s3, job_output(job_line('ITEMS.genres = "Action"', ["1"])), name="my-queries.jsonl.out")
    put_output(s3, job_output(job_line('ITEMS.genres = "Comedy"', ["2"])), name="more.out")
    summary = handler_module.handler(event("split_request.json"), None)
    assert [s["Source"].rsplit("/", 1)[1] for s in summary["Segments"]] == [
        "more.out",
        "my-queries.jsonl.out",
    ]
    assert summary["SegmentCount"] == 2


def test_job_output_missing_is_a_named_error(s3: Any) -> None:
    put_output(s3, b"{}", name="job_config.json")  # the input, not output
    with pytest.raises(segment_store.JobOutputMissingError, match=r"no \.out object under s3://"):
        handler_module.handler(event("split_request.json"), None)
    assert keys(s3) == []


def test_output_without_query_lines_is_a_named_error(s3: Any) -> None:
    put_output(s3, b"\n")
    with pytest.raises(segment_store.JobOutputMissingError, match="holds no query lines"):
        handler_module.handler(event("split_request.json"), None)


def test_more_queries_than_a_job_can_have_fail_the_run(s3: Any) -> None:
    put_output(s3, job_output(*(job_line(f'ITEMS.genres = "G{i}"', ["u"]) for i in range(11))))
    with pytest.raises(segment_store.TooManyQueriesError, match="line 11"):
        handler_module.handler(event("split_request.json"), None)
    assert f"{SEGMENTS}manifest.json" not in keys(s3)


def test_a_job_over_the_query_limit_leaves_no_segment_file_and_no_open_upload(s3: Any) -> None:
    # GIVEN 11 query lines, the first one larger than a multipart part (a job's segments appear together
    # with their manifest or not at all; 10 files used to stay behind without one)
    first = b"".join(big_line_chunks('ITEMS.genres = "Big"', 1_200_000))
    put_output(s3, first + job_output(*(job_line(f'ITEMS.genres = "G{i}"', ["u"]) for i in range(10))))
    # WHEN split with the smallest part size S3 allows
    job = segment_store.JobInfo.from_event(event("split_request.json"))
    with pytest.raises(segment_store.TooManyQueriesError, match="line 11"):
        segment_store.process_job(s3, job, bucket=BUCKET, prefix="segments/", part_size=5 << 20)
    # THEN nothing is visible and nothing is left half uploaded
    assert keys(s3) == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


class FailingManifest:
    """An S3 client whose PutObject of the manifest fails (a commit step after the segment files)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"].endswith("manifest.json"):
            raise RuntimeError("S3 is down")
        return self.client.put_object(**kwargs)


def test_a_failed_manifest_write_takes_the_segment_files_back(s3: Any) -> None:
    put_output(s3, job_output(*(job_line(f'ITEMS.genres = "g{i}"', ["u"]) for i in range(3))))
    job = segment_store.JobInfo.from_event(event("split_request.json"))
    with pytest.raises(RuntimeError, match="S3 is down"):
        segment_store.process_job(FailingManifest(s3), job, bucket=BUCKET, prefix="segments/")
    assert keys(s3) == []


def test_user_count_counts_distinct_users(s3: Any) -> None:
    # Destinations de-duplicate; the count in the event and the manifest must match what they see.
    put_output(s3, job_output(job_line('ITEMS.genres = "action"', ["u1", "u2", "u1", "u3", "u2"])))
    summary = handler_module.handler(event("split_request.json"), None)
    assert summary["Segments"][0]["UserCount"] == 3
    assert read_csv(s3, f"{SEGMENTS}genres-action.csv") == [["UserId"], ["u1"], ["u2"], ["u3"]]


def test_ten_queries_give_ten_segments(s3: Any) -> None:
    put_output(s3, job_output(*(job_line(f'ITEMS.genres = "G{i}"', user_ids(3)) for i in range(10))))
    summary = handler_module.handler(event("split_request.json"), None)
    assert summary["SegmentCount"] == 10
    assert len(summary["Segments"]) == 10
    assert len(keys(s3)) == 11


@pytest.mark.parametrize(
    "change",
    [{"JobName": "../../etc"}, {"DatasetGroupName": "a/b"}, {"OutputUri": "https://x/y"}, {"JobArn": None}],
)
def test_invalid_requests_are_refused(s3: Any, change: dict[str, Any]) -> None:
    request = {**event("split_request.json"), **change}
    request = {k: v for k, v in request.items() if v is not None}
    with pytest.raises(segment_store.InvalidRequestError):
        handler_module.handler(request, None)


def test_two_runs_of_the_same_queries_give_the_same_names_and_never_collide(s3: Any) -> None:
    # The original sample named segments by the second: two runs in the same second collided. Files live
    # under the job's folder; the name follows the query, so a destination keeps one segment per query.
    body = job_output(job_line('ITEMS.genres = "action"', ["1"]), job_line('ITEMS.genres = "Comedy"', ["2"]))
    runs = []
    for job in ("bingewatch-genres-20261128T101500Z", "bingewatch-genres-20261128T101500Z-2"):
        prefix = f"batch/bingewatch/sol/{job}/"
        put_output(s3, body, prefix=prefix)
        request = {**event("split_request.json"), "JobName": job, "OutputUri": f"s3://{BUCKET}/{prefix}"}
        runs.append([(s["SegmentName"], s["Key"]) for s in handler_module.handler(request, None)["Segments"]])
    assert [name for name, _ in runs[0]] == [name for name, _ in runs[1]]
    assert [name for name, _ in runs[0]] == [
        "bingewatch-genres-action",
        "bingewatch-genres-comedy--e9c7df3b43",
    ]
    assert len({key for run in runs for _, key in run}) == 4
    assert runs[1][0][1] == "segments/bingewatch/bingewatch-genres-20261128T101500Z-2/genres-action.csv"


def test_a_repeated_query_is_refused_and_its_first_line_keeps_the_segment(s3: Any) -> None:
    # GIVEN the same query twice (spacing differs: the normalised queries are equal)
    body = job_output(
        job_line('ITEMS.genres = "action"', ["1", "2"]),
        job_line('ITEMS.genres="action"', ["3"]),
    )
    put_output(s3, body)
    # WHEN split
    summary = handler_module.handler(event("split_request.json"), None)
    # THEN line 1 is the segment, and line 2 is a named problem whose users went nowhere
    first, second = summary["Segments"]
    assert (first["Status"], first["SegmentName"], first["UserCount"]) == (
        "READY",
        "bingewatch-genres-action",
        2,
    )
    assert second["Status"] == "FAILED"
    assert second["Error"] == (
        f"line 2: repeats the query of {JOB_PREFIX}job_config.json.out line 1, "
        "whose segment genres-action it would be"
    )
    assert read_csv(s3, f"{SEGMENTS}genres-action.csv") == [["UserId"], ["1"], ["2"]]
    assert keys(s3) == [f"{SEGMENTS}genres-action.csv", f"{SEGMENTS}manifest.json"]


def test_a_failed_line_leaves_no_file_and_no_open_upload(s3: Any) -> None:
    # GIVEN a line that breaks after more than one multipart part of users was written
    good = job_line('ITEMS.genres = "Action"', ["1"])
    broken = b"".join(big_line_chunks('ITEMS.genres = "Comedy"', 1_200_000)).rstrip(b"\n")[:-20] + b"\n"
    put_output(s3, job_output(good) + broken)

    # WHEN split with the smallest part size S3 allows
    job = segment_store.JobInfo.from_event(event("split_request.json"))
    summary = segment_store.process_job(s3, job, bucket=BUCKET, prefix="segments/", part_size=5 << 20)

    # THEN the broken line is reported, and neither a file nor an unfinished upload is left behind
    assert [s["Status"] for s in summary["Segments"]] == ["READY", "FAILED"]
    assert "line 2:" in summary["Segments"][1]["Error"]
    assert keys(s3) == [f"{SEGMENTS}genres-action--0e8c624a.csv", f"{SEGMENTS}manifest.json"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_object_appears_only_when_complete(s3: Any) -> None:
    # GIVEN a writer that has already sent two parts
    writer = s3_streams.ObjectWriter(s3, BUCKET, content_type="text/csv", part_size=5 << 20)
    writer.key = "segments/x/y/z.csv"
    writer.write(b"a" * (5 << 20))
    writer.write(b"b" * (5 << 20))
    writer.write(b"tail")

    # THEN readers do not see it before commit, and see all of it after
    assert keys(s3) == []
    writer.commit()
    body = s3.get_object(Bucket=BUCKET, Key="segments/x/y/z.csv")["Body"].read()
    assert body == b"a" * (5 << 20) + b"b" * (5 << 20) + b"tail"


def test_users_before_the_query_still_get_a_readable_name(s3: Any) -> None:
    # GIVEN a line that states its query after a user list larger than a part
    users = user_ids(700_000)
    line = json.dumps(
        {"output": {"usersList": users}, "input": {"itemAttributes": 'ITEMS.genres = "Action"'}}
    )
    put_output(s3, job_output(line))

    # WHEN split
    job = segment_store.JobInfo.from_event(event("split_request.json"))
    summary = segment_store.process_job(s3, job, bucket=BUCKET, prefix="segments/", part_size=5 << 20)

    # THEN the parts were kept aside until the name was known, and the file is whole
    assert summary["Segments"][0]["Key"] == f"{SEGMENTS}genres-action--0e8c624a.csv"
    assert [row[0] for row in read_csv(s3, f"{SEGMENTS}genres-action--0e8c624a.csv")] == ["UserId", *users]


class CountingS3:
    """Wraps a client and counts its API calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name in ("get_paginator",):
            return attribute
        if callable(attribute):

            def call(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return call
        return attribute


def test_api_calls_do_not_grow_with_the_number_of_users(s3: Any) -> None:
    # The original sample made one API call per user; here a segment costs the same calls at 10 or
    # 100,000 users.
    counts = []
    for users in (10, 100_000):
        put_output(s3, job_output(job_line('ITEMS.genres = "Action"', user_ids(users))))
        counting = CountingS3(s3)
        job = segment_store.JobInfo.from_event(event("split_request.json"))
        segment_store.process_job(counting, job, bucket=BUCKET, prefix="segments/")
        counts.append(sorted(counting.calls))
    assert counts[0] == counts[1] == ["get_object", "put_object", "put_object"]
