"""Lambda entry point: validate an uploaded training config and return the run plan."""

from __future__ import annotations

import os
from typing import Any

import boto3
from data_versions import RecordingS3, data_state, state_key
from run_log import logged
from s3_keys import find_object_key
from training_config import Target, validate_upload

_S3 = boto3.client("s3")


@logged
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event {Bucket, Key, Source: {VersionId?}, StartTime}; account and region come from the function ARN."""
    _, partition, _, region, account, *_ = context.invoked_function_arn.split(":")
    target = Target(
        partition=partition,
        region=region,
        account=account,
        bucket=event["Bucket"],
        role_arn=os.environ["PERSONALIZE_ROLE_ARN"],
    )
    version_id = (event.get("Source") or {}).get("VersionId") or None
    reads = RecordingS3(_S3)
    # The key comes from the S3 event, which may URL-encode it: read the stored one (the shared rule).
    key = find_object_key(_S3, target.bucket, event["Key"], version_id) or event["Key"]
    result = validate_upload(reads, target, key, event["StartTime"], version_id)
    if "Plan" in result:
        # The versions of everything the run trains on, for the "no new data" check of scheduled runs.
        state = state_key(os.environ["TRAINING_STATE_PREFIX"], result["DatasetGroupName"])
        result["Data"] = data_state(_S3, reads.read, event["Bucket"], state)
    return result
