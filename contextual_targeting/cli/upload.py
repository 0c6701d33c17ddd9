"""`upload`: put the local files into the buckets in a safe order, skipping what S3 already has."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from contextual_targeting.cli.executions import loads, recent_executions
from contextual_targeting.cli.validation import LocalFile

# One part size for uploading and for computing ETags: the multipart ETag depends on it. 8 MiB is what
# boto3 and `aws s3 sync` use by default, so files synced either way compare equal.
PART_SIZE = 8 * 1024 * 1024
TRANSFER_CONFIG = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)
# EventBridge starts the workflow seconds after the upload; local and AWS clocks can differ a little.
EXECUTION_WAIT_SECONDS = 60
EXECUTION_POLL_SECONDS = 3
CLOCK_SKEW = timedelta(minutes=2)
# What a dry run without the stack's outputs shows for the buckets.
UNKNOWN_BUCKET = "<bucket unknown>"
S3_KEYS = Path(__file__).resolve().parents[2] / "lambda" / "shared" / "python" / "s3_keys.py"


@functools.cache
def s3_keys() -> ModuleType:
    """The Lambdas' rule for keys from S3 events (`lambda/shared/python/s3_keys.py`), loaded from the repo."""
    spec = importlib.util.spec_from_file_location("contextual_targeting_s3_keys", S3_KEYS)
    if spec is None or spec.loader is None or not S3_KEYS.is_file():
        raise RuntimeError(f"the shared S3 key rule is missing: {S3_KEYS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Progress(Protocol):
    """Per-file progress reporting (a Rich progress bar in the command, a no-op in tests)."""

    def start(self, item: PlannedUpload) -> Callable[[int], None]: ...  # pragma: no cover

    def finish(self, item: PlannedUpload) -> None: ...  # pragma: no cover


@dataclass(frozen=True, kw_only=True)
class PlannedUpload:
    """One local file, its destination, and whether S3 already holds the same bytes."""

    file: LocalFile
    bucket: str
    size: int
    unchanged: bool

    @property
    def uri(self) -> str:
        """`s3://bucket/key`."""
        return f"s3://{self.bucket}/{self.file.key}"

    @property
    def bucket_unknown(self) -> bool:
        """Planned without the stack's outputs (an offline dry run)."""
        return self.bucket == UNKNOWN_BUCKET


def local_etag(path: Path, part_size: int = PART_SIZE) -> str:
    """The ETag S3 gives the file uploaded with `part_size`: MD5, or MD5 of the part MD5s plus `-<parts>`."""
    digests = []
    with path.open("rb") as handle:
        while chunk := handle.read(part_size):
            digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    # boto3 switches to multipart at `size >= multipart_threshold` (= part_size here).
    if path.stat().st_size < part_size:
        return digests[0].hex() if digests else hashlib.md5(b"", usedforsecurity=False).hexdigest()
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


def remote_object(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject, or None when the key does not exist."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as err:
        if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def plan_uploads(
    s3: Any, files: Iterable[LocalFile], bucket_for: Callable[[LocalFile], str], *, force: bool = False
) -> list[PlannedUpload]:
    """Compare each file with its object (size first, then ETag) to decide what to upload."""
    plan = []
    for file in files:
        bucket = bucket_for(file)
        size = file.path.stat().st_size
        remote = None if force else remote_object(s3, bucket, file.key)
        unchanged = (
            remote is not None
            and int(remote.get("ContentLength", -1)) == size
            and str(remote.get("ETag", "")).strip('"') == local_etag(file.path)
        )
        plan.append(PlannedUpload(file=file, bucket=bucket, size=size, unchanged=unchanged))
    return plan


def plan_without_stack(files: Iterable[LocalFile]) -> list[PlannedUpload]:
    """The plan of a dry run that cannot reach the stack: buckets unknown, every file to be uploaded."""
    return [
        PlannedUpload(file=file, bucket=UNKNOWN_BUCKET, size=file.path.stat().st_size, unchanged=False)
        for file in files
    ]


def content_type(key: str) -> str:
    """What a browser or the console shows the object as."""
    if key.endswith(".csv"):
        return "text/csv"
    if key.endswith(".json"):
        # Query files are JSON lines; configs are JSON: both are text.
        return "application/json"
    return "application/octet-stream"


def upload_files(s3: Any, plan: Sequence[PlannedUpload], progress: Progress) -> dict[str, str | None]:
    """Upload the changed files in plan order; returns the new version id of every uploaded key."""
    versions: dict[str, str | None] = {}
    for item in plan:
        if item.unchanged:
            continue
        callback = progress.start(item)
        s3.upload_file(
            str(item.file.path),
            item.bucket,
            item.file.key,
            ExtraArgs={"ContentType": content_type(item.file.key)},
            Callback=callback,
            Config=TRANSFER_CONFIG,
        )
        progress.finish(item)
        head = remote_object(s3, item.bucket, item.file.key) or {}
        versions[item.file.key] = head.get("VersionId")
    return versions


@dataclass(frozen=True, kw_only=True)
class StartedRun:
    """The training execution a config upload started."""

    config_key: str
    execution_arn: str | None


def find_started_execution(
    sfn: Any,
    state_machine_arn: str,
    *,
    config_key: str,
    version_id: str | None,
    since: datetime,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    wait_seconds: float = EXECUTION_WAIT_SECONDS,
) -> str | None:
    """The execution whose input names this config upload, waiting a bounded time for the trigger."""
    deadline = clock() + wait_seconds
    while True:
        for execution in recent_executions(sfn, state_machine_arn, since - CLOCK_SKEW):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            source = loads(described.get("input")).get("Source", {})
            # The run's input has the key of the S3 event, which may be URL-encoded.
            if config_key not in s3_keys().key_candidates(str(source.get("Key", ""))):
                continue
            # The bucket is versioned: the version id tells this upload from an earlier one of the same key.
            if version_id and source.get("VersionId") not in (None, version_id):
                continue
            return str(execution["executionArn"])
        if clock() >= deadline:
            return None
        sleep(EXECUTION_POLL_SECONDS)


def now() -> datetime:
    """The current time, time-zone aware (what boto3 returns for start dates)."""
    return datetime.now(UTC)
