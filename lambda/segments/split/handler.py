"""Lambda entry point: split a finished batch segment job's output into segment files and a manifest.

Input (from the workflow): {"JobArn", "JobName", "DatasetGroupName", "OutputUri"}.
Output: a summary of at most 10 small entries; user ids never leave S3.
Environment: SEGMENTS_BUCKET (where segments go), SEGMENTS_PREFIX (default `segments/`).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from run_log import logged, put_metrics
from segment_store import JobInfo, process_job


@logged
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the workflow's input and split the job's output."""
    job = JobInfo.from_event(event)
    result = process_job(
        boto3.client("s3"),
        job,
        bucket=os.environ["SEGMENTS_BUCKET"],
        prefix=os.environ.get("SEGMENTS_PREFIX", "segments/"),
    )
    emit_segment_metrics(result, job.dataset_group_name)
    return result


def emit_segment_metrics(result: dict[str, Any], dataset_group: str) -> None:
    """`SegmentUsers` per ready segment, named by its query's file name (stable from one job to the next)."""
    for segment in result["Segments"]:
        if segment["Status"] == "READY":
            slug = str(segment["Key"]).rsplit("/", 1)[-1].removesuffix(".csv")
            put_metrics(
                {"SegmentUsers": segment["UserCount"]},
                dimensions={"DatasetGroup": dataset_group, "Segment": slug},
            )
