"""Streaming join of a segment's user ids with a Pinpoint endpoint export.

The segment (user ids, rank order) is held as a dict in memory: it is the smaller side (at most 5M users per
batch segment query) and lookups are O(1). The export (gzip'ed JSON lines, one endpoint a line, possibly many
parts) is streamed once; a line is parsed fully only when a cheap regex finds a user id of the segment.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from s3_streams import csv_records

# `"UserId":"..."` is the only string-valued UserId member of an endpoint line: user attributes are lists.
_USER_ID = re.compile(rb'"UserId"\s*:\s*"((?:[^"\\]|\\.)*)"')
INACTIVE = "INACTIVE"
OPTED_OUT = "ALL"


@dataclass
class JoinStats:
    """What the join saw: the workflow reports these counts in its event and email."""

    user_count: int = 0
    duplicate_users: int = 0
    endpoint_lines: int = 0
    endpoint_count: int = 0
    users_without_endpoints: int = 0
    opted_out: int = 0
    inactive: int = 0
    other_channel: int = 0
    duplicate_endpoints: int = 0
    export_parts: int = 0
    sample_users_without_endpoints: list[str] = field(default_factory=list)

    def as_payload(self) -> dict[str, Any]:
        """PascalCase counts for the state payload."""
        return {"".join(p.title() for p in k.split("_")): v for k, v in asdict(self).items()}


def read_segment_users(
    lines: Iterable[str], stats: JoinStats, source: str = "segment file"
) -> dict[str, bool]:
    """User ids of a segment CSV (header `UserId`, CSV-quoted where needed), in rank order, de-duplicated.

    Ids are taken as written (` u1` is not `u1`); blank lines and empty ids are skipped. The value says
    whether an endpoint was found for the user; the join sets it.
    """
    users: dict[str, bool] = {}
    rows = csv_records(lines, source, max_fields=1)  # an unquoted comma is no other user
    header = next(rows, None)
    if header is None:
        return users
    if [h.strip().lstrip("\ufeff") for h in header] != ["UserId"]:
        raise ValueError(f"segment file header must be 'UserId', got {header!r}")
    for row in rows:
        if not row or not row[0]:
            continue
        user_id = row[0]
        if user_id in users:
            stats.duplicate_users += 1
        else:
            users[user_id] = False
    stats.user_count = len(users)
    return users


def endpoint_lines(parts: Iterable[IO[bytes]], stats: JoinStats) -> Iterator[bytes]:
    """Lines of gzip'ed export parts, streamed."""
    for part in parts:
        stats.export_parts += 1
        with gzip.GzipFile(fileobj=part) as unzipped:
            yield from io.BufferedReader(unzipped, buffer_size=1 << 20)


def keep_endpoint(endpoint: dict[str, Any], channels: frozenset[str], stats: JoinStats) -> bool:
    """Whether an endpoint can receive messages: not opted out, active, and on one of the channels."""
    if endpoint.get("OptOut") == OPTED_OUT:
        stats.opted_out += 1
        return False
    if endpoint.get("EndpointStatus") == INACTIVE:
        stats.inactive += 1
        return False
    if channels and endpoint.get("ChannelType") not in channels:
        stats.other_channel += 1
        return False
    return True


def join_endpoints(
    users: dict[str, bool], lines: Iterable[bytes], channels: frozenset[str], stats: JoinStats
) -> Iterator[str]:
    """Endpoint ids of the segment's users that pass the filters, each once, in export order."""
    seen: set[str] = set()
    for line in lines:
        stats.endpoint_lines += 1
        match = _USER_ID.search(line)
        if match is None:
            continue  # an endpoint without a user cannot belong to a segment of users
        raw = match.group(1)
        user_id = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("utf-8")
        if user_id not in users:
            continue
        endpoint = json.loads(line)
        # The regex is a pre-filter only: the parsed record decides.
        if (endpoint.get("User") or {}).get("UserId") != user_id:
            continue
        endpoint_id = endpoint.get("Id")
        if not endpoint_id or not keep_endpoint(endpoint, channels, stats):
            continue
        if endpoint_id in seen:
            stats.duplicate_endpoints += 1
            continue
        seen.add(endpoint_id)
        users[user_id] = True
        stats.endpoint_count += 1
        yield endpoint_id


def count_users_without_endpoints(users: dict[str, bool], stats: JoinStats, sample: int = 10) -> None:
    """Count (and sample, in rank order) the users the join found no endpoint for."""
    missing = 0
    for user_id, found in users.items():
        if not found:
            missing += 1
            if len(stats.sample_users_without_endpoints) < sample:
                stats.sample_users_without_endpoints.append(user_id)
    stats.users_without_endpoints = missing


def write_id_csv(endpoint_ids: Iterable[str], write: Callable[[bytes], Any], chunk: int = 1 << 16) -> int:
    """Write Pinpoint's `Id` import CSV (UTF-8, header `Id`) through `write`; return the number of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Id"])
    rows = 0
    for endpoint_id in endpoint_ids:
        writer.writerow([endpoint_id])
        rows += 1
        if buffer.tell() >= chunk:
            write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    write(buffer.getvalue().encode("utf-8"))
    return rows


def import_file_name(segment_name: str) -> str:
    """Key-safe file name for a segment: slashes and control characters would make folders or break keys."""
    cleaned = "".join("-" if ch == "/" or ord(ch) < 32 else ch for ch in segment_name).strip() or "segment"
    return f"{cleaned}.csv"
