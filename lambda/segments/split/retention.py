"""Tag superseded runs' files for expiry: once a newer run of a batch segment job has been split, the job
output and segment folders of the same job's earlier runs get the expiry tag, and the data bucket's
lifecycle deletes them once they are old enough. The latest run's files stay untagged and never expire.

Why by tag: the job output `batch/<dsg>/<solution>/<job>-<run>/` sits beside the query file
`batch/<dsg>/<solution>/job_config.json`, which must never expire; a lifecycle prefix cannot tell them apart.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from botocore.exceptions import ClientError
from segment_store import JobInfo, split_s3_uri

LOG = logging.getLogger(__name__)
# `<job name from the config>-<yyyymmddThhmmss>`: the run suffix the training workflow appends.
_RUN = re.compile(r"^(?P<job>.+)-(?P<stamp>[0-9]{8}T[0-9]{6}Z?)$")


def parse_tag(text: str) -> tuple[str, str]:
    """`key=value` (the function's EXPIRY_TAG setting) as a pair."""
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise ValueError(f"expected key=value, got {text!r}")
    return key, value


def earlier_runs(s3: Any, bucket: str, parent: str, job_name: str) -> list[str]:
    """Folders `<parent><job>-<stamp>/` of the same job with an earlier run stamp than `job_name`'s."""
    this = _RUN.match(job_name)
    if this is None:
        return []
    folders = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=parent, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(parent) :].rstrip("/")
            run = _RUN.match(name)
            if run and run["job"] == this["job"] and run["stamp"] < this["stamp"]:
                folders.append(common["Prefix"])
    return sorted(folders)


def tag_folder(s3: Any, bucket: str, folder: str, tag: tuple[str, str]) -> bool:
    """Tag every object in the folder; False when it was tagged before (its last object carries the tag).

    The last object is tagged last, so a folder interrupted half-way is finished by the next run."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        keys += [item["Key"] for item in page.get("Contents", [])]
    if not keys:
        return False
    keys.sort()
    tags = s3.get_object_tagging(Bucket=bucket, Key=keys[-1])["TagSet"]
    if {"Key": tag[0], "Value": tag[1]} in tags:
        return False
    for key in keys:
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": tag[0], "Value": tag[1]}]})
    return True


def supersede_earlier_runs(
    s3: Any, job: JobInfo, *, segments_bucket: str, segments_prefix: str, tag: str | None
) -> dict[str, Any]:
    """Tag the job output and segment folders of the job's earlier runs; report what was tagged.

    A failure is logged and reported, never raised: the new segments are ready and must be announced; the
    old files then stay until a later run tags them."""
    if not tag:
        return {"Tagged": [], "Problem": None}
    pair = parse_tag(tag)
    output_bucket, output_prefix = split_s3_uri(job.output_uri)
    places = [
        (output_bucket, output_prefix.rstrip("/").rpartition("/")[0] + "/"),
        (segments_bucket, f"{segments_prefix}{job.dataset_group_name}/"),
    ]
    tagged: list[str] = []
    try:
        for bucket, parent in places:
            for folder in earlier_runs(s3, bucket, parent, job.job_name):
                if tag_folder(s3, bucket, folder, pair):
                    tagged.append(f"s3://{bucket}/{folder}")
    except ClientError as err:
        LOG.warning("could not tag the earlier runs of %s for expiry: %s", job.job_name, err)
        return {"Tagged": tagged, "Problem": str(err)[:500]}
    return {"Tagged": tagged, "Problem": None}
