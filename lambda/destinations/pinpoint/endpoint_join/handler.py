"""Lambda: resolve a ready segment's users to Pinpoint endpoint ids and write the `Id` import file."""

from __future__ import annotations

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
from run_log import logged
from s3_streams import ObjectWriter, text_lines


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
    bucket, key = event["SegmentBucket"], event["SegmentKey"]
    users = read_segment_users(text_lines(s3, bucket, key), stats, f"segment file s3://{bucket}/{key}")
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
        writer = ObjectWriter(s3, import_bucket, key)
        try:
            write_id_csv(_chain(first, ids), writer.write)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    count_users_without_endpoints(users, stats)
    return {**stats.as_payload(), "ImportKey": key, "ImportBucket": import_bucket}


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{SegmentBucket, SegmentKey, SegmentName, ExportBucket, ExportPrefix}` in, counts out."""
    return join_segment(
        event,
        boto3.client("s3"),
        import_bucket=os.environ["IMPORT_BUCKET"],
        import_prefix=os.environ["IMPORT_PREFIX"],
        channels=os.environ.get("CHANNELS", ""),
    )
