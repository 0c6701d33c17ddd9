"""Decide how Pinpoint imports a file dropped under the import prefix (stdlib only)."""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any

# Pinpoint documents no segment-name limit; 64 characters keep names readable in the console and lists.
SEGMENT_NAME_LIMIT = 64
FORMATS = {".csv": "CSV", ".json": "JSON", ".jsonl": "JSON"}
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Decision:
    """What the import workflow does with one file."""

    accepted: bool
    key: str
    segment_name: str
    format: str = ""
    register_endpoints: bool = False
    reason: str = ""

    def as_payload(self, bucket: str) -> dict[str, Any]:
        """PascalCase fields for the state payload."""
        return {
            "Accepted": self.accepted,
            "Key": self.key,
            "SegmentName": self.segment_name,
            "Format": self.format,
            "RegisterEndpoints": self.register_endpoints,
            "S3Url": f"s3://{bucket}/{self.key}",
            "Reason": self.reason,
        }


def segment_name(key: str, prefix: str) -> str:
    """Readable segment name: the path below the import prefix without extension, within the length limit."""
    relative = key[len(prefix) :] if key.startswith(prefix) else posixpath.basename(key)
    stem = posixpath.splitext(relative)[0].strip() or "segment"
    if len(stem) <= SEGMENT_NAME_LIMIT:
        return stem
    # Keep the name unique when it must be cut: two long names sharing a beginning stay apart.
    digest = hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]
    return f"{stem[: SEGMENT_NAME_LIMIT - 9]}-{digest}"


def columns_of(fmt: str, head: str) -> list[str] | None:
    """Column (CSV) or member (JSON lines) names of the first record, None when there is none."""
    # Lines end at \n only: `splitlines` would also cut a JSON line at a U+2028 inside a string.
    lines = [line for line in head.split("\n") if line.strip()]
    if not lines:
        return None
    if fmt == "CSV":
        return [c.strip().lstrip("\ufeff") for c in next(csv.reader([lines[0]]))]
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        return []
    return list(first) if isinstance(first, dict) else []


def decide(key: str, prefix: str, head: str | None) -> Decision:
    """Accept .csv/.json/.jsonl files that hold endpoint definitions or endpoint/user references."""
    name = segment_name(key, prefix)
    extension = posixpath.splitext(key)[1].lower()
    fmt = FORMATS.get(extension)
    if fmt is None:
        shown = extension or "(no extension)"
        return Decision(
            False, key, name, reason=f"unsupported file type {shown}: Pinpoint imports .csv, .json or .jsonl"
        )
    columns = columns_of(fmt, head or "")
    if columns is None:
        return Decision(False, key, name, fmt, reason="the file is empty")
    if not columns:
        return Decision(False, key, name, fmt, reason="the first line is not a JSON object")
    # New endpoints need ChannelType and Address; `Id`-only (or `User.UserId`-only) files reference
    # existing ones.
    defines = "ChannelType" in columns and "Address" in columns
    references = "Id" in columns or "User.UserId" in columns or "User" in columns
    if not defines and not references:
        return Decision(
            False,
            key,
            name,
            fmt,
            reason=f"no Id, User.UserId or ChannelType+Address column in {columns[:10]}",
        )
    return Decision(True, key, name, fmt, register_endpoints=defines)
