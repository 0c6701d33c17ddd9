"""What a run trains on, as S3 object versions: a fingerprint to compare with the last successful run's.

The validator reads the config, every training CSV (its header) and every batch query file; whatever it
read is what the run's imports and batch segment jobs use. A scheduled run whose fingerprint equals the one
the last successful run recorded has no new data and ends early (see contextual_targeting/training/).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

STATE_FILE = "last-success.json"


class RecordingS3:
    """An S3 client that remembers the version of every object read through it (VersionId, or the ETag in a
    bucket without versioning)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.read: dict[str, str] = {}

    def get_object(self, **kwargs: Any) -> Any:
        """GetObject, noting the version of the object the answer came from."""
        response = self._s3.get_object(**kwargs)
        version = str(response.get("VersionId") or "")
        if version in ("", "null"):
            version = "etag:" + str(response.get("ETag", "")).strip('"')
        self.read[str(kwargs["Key"])] = version
        return response


def state_key(prefix: str, dataset_group: str) -> str:
    """Where the last successful run of a dataset group recorded what it trained on."""
    return f"{prefix}{dataset_group}/{STATE_FILE}"


def fingerprint(files: Mapping[str, str]) -> str:
    """One string for a set of (key, version) pairs, independent of their order."""
    text = "\n".join(f"{key}\t{version}" for key, version in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def last_success(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The record of the last successful run, or None (first run, or a record that cannot be read)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as err:
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        record = json.loads(body.read(64 * 1024))
    except ValueError:
        return None  # an unreadable record only costs one training run
    return record if isinstance(record, dict) else None


def data_state(s3: Any, read: Mapping[str, str], bucket: str, key: str) -> dict[str, Any]:
    """The run's data versions, where to record them on success, and whether they equal the last success's."""
    files = dict(sorted(read.items()))
    mark = fingerprint(files)
    previous = last_success(s3, bucket, key)
    return {
        "Fingerprint": mark,
        "Files": files,
        "StateKey": key,
        "Unchanged": previous is not None and previous.get("Fingerprint") == mark,
        "LastSuccess": {
            "ExecutionArn": str((previous or {}).get("ExecutionArn", "")),
            "Started": str((previous or {}).get("Started", "")),
        },
    }
