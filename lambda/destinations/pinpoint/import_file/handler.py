"""Lambda: inspect a file dropped under the import prefix and say how Pinpoint should import it."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.exceptions import ClientError
from import_file import HEAD_BYTES, decide
from run_log import logged
from s3_keys import find_object_key


def read_head(s3: Any, bucket: str, key: str, version_id: str | None) -> str:
    """The file's first bytes as text: enough for the header line, never the whole file."""
    args = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{HEAD_BYTES - 1}"}
    if version_id:
        args["VersionId"] = version_id
    try:
        data: bytes = s3.get_object(**args)["Body"].read()
    except ClientError as err:
        # S3 answers a range request on an empty object with InvalidRange (416).
        if err.response.get("Error", {}).get("Code") == "InvalidRange":
            return ""
        raise
    # A range can end inside a multi-byte character; the header line is before it.
    return data.decode("utf-8", errors="ignore")


def inspect_file(event: dict[str, Any], s3: Any, *, prefix: str) -> dict[str, Any]:
    """Decide on `{Bucket, Key, VersionId}`."""
    bucket, version_id = event["Bucket"], event.get("VersionId") or None
    # The key comes from the S3 event, which may URL-encode it: the stored one by the shared rule.
    key = find_object_key(s3, bucket, event["Key"], version_id)
    if key is None:
        decision = decide(event["Key"], prefix, None)
        return {**decision.as_payload(bucket), "Accepted": False, "Reason": "the object no longer exists"}
    return decide(key, prefix, read_head(s3, bucket, key, version_id)).as_payload(bucket)


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{Bucket, Key, VersionId}` in, `{Accepted, Format, RegisterEndpoints, ...}` out."""
    return inspect_file(event, boto3.client("s3"), prefix=os.environ["IMPORT_PREFIX"])
