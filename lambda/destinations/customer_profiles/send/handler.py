"""Lambda: send a prepared upload file from S3 to a Customer Profiles upload job (GetUploadJobPath + PUT)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from presigned_put import CHUNK, put_stream, sse_c_headers
from run_log import logged


class NoClientTokenError(Exception):
    """GetUploadJobPath answered without the ClientToken (optional in its API model) the upload needs."""


def _chunks(body: Any) -> Iterator[bytes]:
    while chunk := body.read(CHUNK):
        yield chunk


def send_upload_file(event: dict[str, Any], s3: Any, profiles: Any) -> dict[str, Any]:
    """Stream `s3://Bucket/Key` to the upload job's presigned URL; the ClientToken stays in this call."""
    obj = s3.get_object(Bucket=event["Bucket"], Key=event["Key"])
    length = int(obj["ContentLength"])
    path = profiles.get_upload_job_path(DomainName=event["DomainName"], JobId=event["JobId"])
    if not path.get("ClientToken"):
        raise NoClientTokenError(
            f"GetUploadJobPath gave no ClientToken for upload job {event['JobId']} in domain "
            f"{event['DomainName']}: the upload URL needs it as its SSE-C key, so the file was not sent"
        )
    status = put_stream(path["Url"], _chunks(obj["Body"]), length, sse_c_headers(path["ClientToken"]))
    return {"Bytes": length, "HttpStatus": status}


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{DomainName, JobId, Bucket, Key}` in, `{Bytes, HttpStatus}` out."""
    return send_upload_file(event, boto3.client("s3"), boto3.client("customer-profiles"))
