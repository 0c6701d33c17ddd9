"""Lambda entry point: split a finished batch segment job's output into segment files and a manifest.

Input (from the workflow): {"JobArn", "JobName", "DatasetGroupName", "OutputUri"}.
Output: a summary of at most 10 small entries; user ids never leave S3.
Environment: SEGMENTS_BUCKET (where segments go), SEGMENTS_PREFIX (default `segments/`), EXPIRY_TAG
(`key=value` put on the job's earlier runs' files once this run is split; none: nothing is tagged).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from retention import supersede_earlier_runs
from run_log import logged, put_metrics
from segment_store import JobInfo, process_job


@logged
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the workflow's input and split the job's output."""
    job = JobInfo.from_event(event)
    s3 = boto3.client("s3")
    bucket = os.environ["SEGMENTS_BUCKET"]
    prefix = os.environ.get("SEGMENTS_PREFIX", "segments/")
    result = process_job(s3, job, bucket=bucket, prefix=prefix)
    result["Superseded"] = supersede_earlier_runs(
        s3, job, segments_bucket=bucket, segments_prefix=prefix, tag=os.environ.get("EXPIRY_TAG")
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
