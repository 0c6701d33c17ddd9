"""Shared helpers of the SegmentPostprocessor tests (no tests here): the Lambda's modules, generated job
output, events, moto S3 set-up."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from tests.helpers import REPO

LAMBDA_DIR = REPO / "lambda" / "segments" / "split"
EVENTS = REPO / "tests" / "events" / "segment_postprocessor"
BUCKET = "personalize-data"
JOB_PREFIX = "batch/bingewatch/bw_aws-item-attribute-affinity/bingewatch-genres-20261128T101500Z/"

# The Lambda's modules import each other by plain name, as they do in the Lambda runtime.
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

import segment_parser  # noqa: E402
import segment_store  # noqa: E402


def _load_handler() -> ModuleType:
    # Every Lambda folder has a `handler.py`: load this one under a name no other test can shadow.
    spec = importlib.util.spec_from_file_location("segment_postprocessor_handler", LAMBDA_DIR / "handler.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler_module = _load_handler()

__all__ = ["handler_module", "segment_parser", "segment_store"]


def event(name: str) -> dict[str, Any]:
    """A JSON event from tests/events/segment_postprocessor/."""
    return json.loads((EVENTS / name).read_text())


def job_line(
    query: str | None,
    users: Sequence[str] | None,
    *,
    shape: str = "usersList",
    error: str | None = None,
) -> str:
    """One line of job output: `usersList` is the shape seen in job output (input/output/error),
    `recommendedUsers` the documentation's Item-Attribute-Affinity shape (top-level itemAttributes)."""
    if shape == "usersList":
        output = None if users is None else {"usersList": list(users)}
        return json.dumps({"input": {"itemAttributes": query}, "output": output, "error": error})
    assert shape == "recommendedUsers"
    return json.dumps({"itemAttributes": query, "output": {"recommendedUsers": list(users or [])}})


def job_output(*lines: str) -> bytes:
    """JSON lines as Personalize writes them (UTF-8, newline-terminated)."""
    return "".join(f"{line}\n" for line in lines).encode()


def user_ids(count: int, prefix: str = "user-") -> list[str]:
    """`count` distinct user ids in rank order."""
    return [f"{prefix}{i}" for i in range(count)]


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """`data` in pieces of `size` bytes, as a streaming body would deliver it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def big_line_chunks(query: str, count: int, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """One job output line of `count` users, generated lazily so the test never holds it whole."""
    yield ('{"input": {"itemAttributes": ' + json.dumps(query) + '}, "output": {"usersList": [').encode()
    block = 10_000
    for start in range(0, count, block):
        ids = ", ".join(f'"{i}"' for i in range(start, min(start + block, count)))
        text = (", " if start else "") + ids
        yield from chunked(text.encode(), chunk_size)
    yield b']}, "error": null}\n'


def create_bucket(s3: Any) -> None:
    """The data bucket in moto's region."""
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})


def read_csv(s3: Any, key: str) -> list[list[str]]:
    """Rows of a segment file (header included)."""
    import csv
    import io

    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    return list(csv.reader(io.StringIO(body)))
