"""Lambda entry point: split a finished batch segment job's output into segment files and a manifest.

Input (from the workflow): {"JobArn", "JobName", "DatasetGroupName", "OutputUri"}.
Output: a summary of at most 10 small entries; user ids never leave S3.
Environment: SEGMENTS_BUCKET (where segments go), SEGMENTS_PREFIX (default `segments/`).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from segment_store import JobInfo, process_job


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the workflow's input and split the job's output."""
    job = JobInfo.from_event(event)
    return process_job(
        boto3.client("s3"),
        job,
        bucket=os.environ["SEGMENTS_BUCKET"],
        prefix=os.environ.get("SEGMENTS_PREFIX", "segments/"),
    )
