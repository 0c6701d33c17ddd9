"""Lambda: resolve a ready segment's users to Pinpoint endpoint ids and write the `Id` import file."""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from typing import IO, Any

import boto3
from join import (
    JoinStats,
    count_users_without_endpoints,
    endpoint_lines,
    import_file_name,
    join_endpoints,
    read_segment_users,
    write_id_csv,
)

PART_SIZE = 16 * 1024 * 1024  # S3 multipart parts: 5 MiB minimum, 10,000 parts at most (160 GB here)


class MultipartWriter:
    """Streams bytes to one S3 object, visible only when complete: the import rule fires once."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None

    def write(self, data: bytes) -> None:
        """Buffer data and upload every full part."""
        self.buffer += data
        while len(self.buffer) >= PART_SIZE:
            self._upload(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def _upload(self, body: bytes) -> None:
        if self.upload_id is None:
            created = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv"
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        part = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": part["ETag"]})

    def close(self) -> None:
        """Complete the object (a single PutObject when it fits in one part)."""
        if self.upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), ContentType="text/csv"
            )
            return
        if self.buffer:
            self._upload(bytes(self.buffer))
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        """Drop the parts uploaded so far: nothing half-written becomes visible."""
        if self.upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def export_parts(s3: Any, bucket: str, prefix: str) -> Iterator[IO[bytes]]:
    """Bodies of the export's gzip parts under `prefix` (Pinpoint writes `.gz` objects there)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".gz"):
                yield s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]


def join_segment(
    event: dict[str, Any], s3: Any, *, import_bucket: str, import_prefix: str, channels: str
) -> dict[str, Any]:
    """Join one segment with one export and write the import file unless no endpoint was found."""
    stats = JoinStats()
    body = s3.get_object(Bucket=event["SegmentBucket"], Key=event["SegmentKey"])["Body"]
    users = read_segment_users(codecs.getreader("utf-8-sig")(body), stats)
    wanted = frozenset(c.strip().upper() for c in channels.split(",") if c.strip())
    ids = join_endpoints(
        users,
        endpoint_lines(export_parts(s3, event["ExportBucket"], event["ExportPrefix"]), stats),
        wanted,
        stats,
    )
    key = import_prefix + import_file_name(event["SegmentName"])
    first = next(ids, None)
    if first is None:
        for _ in ids:  # drain so the counts cover the whole export
            pass
        key = ""
    else:
        writer = MultipartWriter(s3, import_bucket, key)
        try:
            write_id_csv(_chain(first, ids), writer.write)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    count_users_without_endpoints(users, stats)
    return {**stats.as_payload(), "ImportKey": key, "ImportBucket": import_bucket}


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{SegmentBucket, SegmentKey, SegmentName, ExportBucket, ExportPrefix}` in, counts out."""
    return join_segment(
        event,
        boto3.client("s3"),
        import_bucket=os.environ["IMPORT_BUCKET"],
        import_prefix=os.environ["IMPORT_PREFIX"],
        channels=os.environ.get("CHANNELS", ""),
    )
