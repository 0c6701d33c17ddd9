"""Split a finished batch segment job into segment files and a manifest in S3, streaming both ways."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from s3_streams import ObjectWriter
from segment_names import normalise_query, query_slug, segment_name
from segment_parser import CHUNK_SIZE, ParsedLine, csv_header, iter_chunks, parse_job_output

PART_SIZE = 8 << 20
"""Multipart part size: S3's minimum is 5 MiB; 8 MiB keeps a 50 MB segment to 7 parts."""
MAX_QUERIES = 10
"""Personalize allows 10 queries per batch segment job input file; the workflow's payload relies on it."""
MAX_TEXT = 1000
"""Queries and errors are cut to this many characters in the workflow payload (the manifest keeps them)."""
OUTPUT_SUFFIX = ".out"
READY, EMPTY, FAILED = "READY", "EMPTY", "FAILED"
# Personalize resource names: letters, digits, '-' and '_' (never '/' or '..': they become key parts).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<prefix>.*)$")


class JobOutputMissingError(Exception):
    """The job's output location holds no `*.out` object."""


class TooManyQueriesError(Exception):
    """The job output holds more query lines than a batch segment job can have."""


class InvalidRequestError(ValueError):
    """The workflow passed an input the function cannot use."""


@dataclass(frozen=True, kw_only=True)
class JobInfo:
    """The finished batch segment job, as the workflow describes it."""

    job_arn: str
    job_name: str
    dataset_group_name: str
    output_uri: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> JobInfo:
        """Read and check the workflow's input (`JobArn`, `JobName`, `DatasetGroupName`, `OutputUri`)."""
        try:
            job = cls(
                job_arn=str(event["JobArn"]),
                job_name=str(event["JobName"]),
                dataset_group_name=str(event["DatasetGroupName"]),
                output_uri=str(event["OutputUri"]),
            )
        except KeyError as missing:
            raise InvalidRequestError(f"input lacks {missing}") from None
        for label, name in (("JobName", job.job_name), ("DatasetGroupName", job.dataset_group_name)):
            if not _NAME.match(name):
                raise InvalidRequestError(f"{label} {name!r} is not a Personalize resource name")
        split_s3_uri(job.output_uri)
        return job


@dataclass(kw_only=True)
class SegmentResult:
    """What became of one query line."""

    source: str
    line: int
    query: str | None
    status: str
    user_count: int = 0
    segment_name: str | None = None
    bucket: str | None = None
    key: str | None = None
    error: str | None = None

    @property
    def uri(self) -> str | None:
        """The segment file's `s3://` URI when the segment is ready."""
        return f"s3://{self.bucket}/{self.key}" if self.key else None

    def document(self, *, limit: int | None = None) -> dict[str, Any]:
        """The manifest entry (limit=None) or the workflow's summary entry (texts cut to `limit`)."""
        return {
            "Source": self.source,
            "Line": self.line,
            "Query": _cut(self.query or "", limit),
            "Status": self.status,
            "SegmentName": self.segment_name,
            "Bucket": self.bucket,
            "Key": self.key,
            "SegmentUri": self.uri,
            "UserCount": self.user_count,
            "Error": None if self.error is None else _cut(self.error, limit),
        }


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> (`bucket`, `some/prefix/`)."""
    match = _S3_URI.match(uri)
    if not match:
        raise InvalidRequestError(f"{uri!r} is not an s3:// URI")
    return match["bucket"], match["prefix"]


def list_job_outputs(s3: Any, output_uri: str) -> tuple[str, list[str]]:
    """The bucket and the keys of every `*.out` object under the job's output location, in key order."""
    bucket, prefix = split_s3_uri(output_uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(OUTPUT_SUFFIX)]
    if not keys:
        raise JobOutputMissingError(f"no {OUTPUT_SUFFIX} object under {output_uri}")
    return bucket, sorted(keys)


class SegmentSplitter:
    """Turns the job's output lines into segment files under `<prefix><dataset-group>/<job>/`."""

    def __init__(
        self, s3: Any, job: JobInfo, *, bucket: str, prefix: str, part_size: int = PART_SIZE
    ) -> None:
        self.s3 = s3
        self.job = job
        self.bucket = bucket
        self.folder = f"{prefix}{job.dataset_group_name}/{job.job_name}/"
        self.part_size = part_size
        self.results: list[SegmentResult] = []
        # A segment's name is a function of (dataset group, query) alone; a query's first line owns it.
        self._owners: dict[str, tuple[str, int, str]] = {}  # slug -> (source, line, normalised query)
        self._source = ""
        self._writer: ObjectWriter | None = None
        self._staged: list[ObjectWriter] = []  # complete segments, invisible until `commit`
        self._slug: str | None = None  # the name the line being read owns
        self._conflict: str | None = None  # why the line being read cannot have its name

    @property
    def manifest_key(self) -> str:
        """Where the job's manifest goes."""
        return f"{self.folder}manifest.json"

    def split(self, source: str, chunks: Iterable[bytes]) -> None:
        """Process one `*.out` object given as byte chunks."""
        self._source = source
        try:
            for parsed in parse_job_output(chunks, self._rows):
                if len(self.results) == MAX_QUERIES:
                    raise TooManyQueriesError(
                        f"{source} line {parsed.line}: the job output holds more than {MAX_QUERIES} queries"
                    )
                self.results.append(self._finish(source, parsed))
        finally:
            if self._writer is not None:  # an exception left a segment half written
                self._writer.abort()
                self._writer = None

    def _rows(self, parsed: ParsedLine, rows: bytes, count: int) -> None:
        if self._writer is None:
            self._writer = ObjectWriter(
                self.s3, self.bucket, content_type="text/csv; charset=utf-8", part_size=self.part_size
            )
            self._writer.write(csv_header())
        if self._slug is None and self._conflict is None and parsed.query is not None:
            self._claim_name(parsed, parsed.query)
        if self._conflict is None:  # a repeated query's users are dropped as they come
            self._writer.write(rows)

    def _claim_name(self, parsed: ParsedLine, query: str) -> None:
        slug, normalised = query_slug(query), normalise_query(query)
        owner = self._owners.get(slug)
        if owner is None:
            self._owners[slug] = (self._source, parsed.line, normalised)
            self._slug = slug
            if self._writer is not None and self._writer.key is None:
                self._writer.key = f"{self.folder}{slug}.csv"
        elif owner[2] == normalised:
            self._conflict = (
                f"line {parsed.line}: repeats the query of {owner[0]} line {owner[1]}, "
                f"whose segment {slug} it would be"
            )
        else:
            self._conflict = (
                f"line {parsed.line}: its segment name {slug} is taken by the different query of {owner[0]} "
                f"line {owner[1]} (a hash collision): change the text of either query"
            )

    def _finish(self, source: str, parsed: ParsedLine) -> SegmentResult:
        writer, self._writer = self._writer, None
        if self._slug is None and self._conflict is None and parsed.query is not None:
            self._claim_name(parsed, parsed.query)  # a line without users claims its query's name too
        slug, conflict, self._slug, self._conflict = self._slug, self._conflict, None, None
        result = SegmentResult(source=source, line=parsed.line, query=parsed.query, status=FAILED)
        error = parsed.error or conflict
        if error is None and parsed.query is None:
            error = f"line {parsed.line}: no query (expected input.itemAttributes or itemAttributes)"
        if error is None and not parsed.has_user_list:
            error = f"line {parsed.line}: no user list (expected output.usersList or output.recommendedUsers)"
        if error is not None:
            result.error = error
            if writer is not None:
                writer.abort()
            return result
        if parsed.user_count == 0:
            result.status = EMPTY
            result.error = f"line {parsed.line}: the query matched no users"
            return result
        assert writer is not None
        assert slug is not None
        if writer.key is None:  # the query came after the users
            writer.key = f"{self.folder}{slug}.csv"
        # Not visible yet: the job's segments appear together with their manifest, or not at all.
        writer.stage()
        self._staged.append(writer)
        result.status = READY
        result.user_count = parsed.user_count
        result.bucket = self.bucket
        result.key = writer.key
        result.segment_name = segment_name(self.job.dataset_group_name, slug)
        return result

    def commit(self) -> str:
        """Make every segment file visible, then the manifest (last: it is the job's commit record); its URI.

        On a failure, files already committed are deleted again, the rest aborted, and the error raised.
        """
        committed: list[str] = []
        try:
            while self._staged:
                writer = self._staged[0]
                writer.commit()
                self._staged.pop(0)
                committed.append(str(writer.key))
            return self.write_manifest()
        except BaseException:
            for key in committed:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            self.abort()
            raise

    def abort(self) -> None:
        """Drop every segment not committed yet (open multipart uploads included)."""
        for writer in [*self._staged, *([self._writer] if self._writer else [])]:
            writer.abort()
        self._staged.clear()
        self._writer = None

    def manifest(self) -> dict[str, Any]:
        """The manifest document: the job and every query's outcome."""
        return {
            "Version": 1,
            "JobArn": self.job.job_arn,
            "JobName": self.job.job_name,
            "DatasetGroupName": self.job.dataset_group_name,
            "JobOutputUri": self.job.output_uri,
            "SegmentCount": sum(r.status == READY for r in self.results),
            "ProblemCount": sum(r.status != READY for r in self.results),
            "Segments": [r.document() for r in self.results],
        }

    def write_manifest(self) -> str:
        """Put the manifest (one PutObject: atomic) and return its URI."""
        body = json.dumps(self.manifest(), ensure_ascii=False, indent=2).encode()
        self.s3.put_object(
            Bucket=self.bucket, Key=self.manifest_key, Body=body, ContentType="application/json"
        )
        return f"s3://{self.bucket}/{self.manifest_key}"


def summary_text(job: JobInfo, results: list[SegmentResult], manifest_uri: str) -> str:
    """The run summary emailed to people: one line per query."""
    ready = [r for r in results if r.status == READY]
    lines = [
        f"Batch segment job {job.job_name} (dataset group {job.dataset_group_name}): "
        f"{len(ready)} segment(s) ready, {len(results) - len(ready)} problem(s).",
        "",
    ]
    for r in results:
        query = _cut(r.query or "(no query)", 200)
        if r.status == READY:
            lines.append(f"- {query}: {r.user_count} users -> {r.segment_name} ({r.uri})")
        else:
            lines.append(f"- {r.source} line {r.line}, {query}: {r.status}: {_cut(r.error or '', 300)}")
    lines += ["", f"Manifest: {manifest_uri}"]
    return "\n".join(lines)


def process_job(
    s3: Any, job: JobInfo, *, bucket: str, prefix: str, part_size: int = PART_SIZE
) -> dict[str, Any]:
    """Split every `*.out` object of the job, write the manifest, return the workflow's small summary."""
    source_bucket, keys = list_job_outputs(s3, job.output_uri)
    splitter = SegmentSplitter(s3, job, bucket=bucket, prefix=prefix, part_size=part_size)
    try:
        for key in keys:
            body = s3.get_object(Bucket=source_bucket, Key=key)["Body"]
            try:
                splitter.split(key, iter_chunks(body, CHUNK_SIZE))
            finally:
                body.close()
        if not splitter.results:
            raise JobOutputMissingError(f"the job output under {job.output_uri} holds no query lines")
    except BaseException:
        splitter.abort()
        raise
    manifest_uri = splitter.commit()
    results = splitter.results
    ready = sum(r.status == READY for r in results)
    return {
        "Status": "SUCCEEDED" if ready == len(results) else "SUCCEEDED WITH PROBLEMS",
        "Bucket": bucket,
        "ManifestKey": splitter.manifest_key,
        "ManifestUri": manifest_uri,
        "SegmentCount": ready,
        "ProblemCount": len(results) - ready,
        "Summary": summary_text(job, results, manifest_uri),
        "Segments": [r.document(limit=MAX_TEXT) for r in results],
    }


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
