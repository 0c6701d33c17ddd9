"""Streaming S3 reads and writes shared by the Lambdas (deployed as the `SharedCode` layer).

Segment-sized data never sits in memory: objects are read as text streams and written as multipart
uploads that become visible only when complete, so a subscriber never sees half a file.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

PART_SIZE = 16 * 1024 * 1024  # S3 multipart parts: 5 MiB minimum, 10,000 parts at most (160 GB here)


def text_lines(s3: Any, bucket: str, key: str) -> IO[str]:
    """A text stream of an S3 object (UTF-8, BOM dropped) whose lines end at `\\n` only, read as consumed.

    `str.splitlines` semantics (codecs readers) also end a line at U+2028, U+2029, U+0085, \\x0b, \\x0c,
    \\x1c-\\x1e, and `newline=""` at a lone \\r: an id holding one would be read as two users. With
    `newline="\\n"` lines end at LF (CRLF keeps its CR) and are not translated, so `csv` sees the bytes as
    written: a quoted CR or LF stays in its field, and an unquoted lone CR is a csv error, not a new record.
    """
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    return io.TextIOWrapper(body, encoding="utf-8-sig", newline="\n")


def csv_records(lines: Iterable[str], source: str, *, max_fields: int | None = None) -> Iterator[list[str]]:
    """Records of an RFC 4180 CSV read from `lines`; a malformed record is a ValueError naming its line.

    Strict: text after a closing quote, a lone CR outside quotes, or more than `max_fields` fields fails
    instead of being read as some other record, which could give one user's values to another.
    """
    reader = csv.reader(lines, strict=True)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ValueError(
                f"{source} line {reader.line_num}: {error} "
                "(RFC 4180: a field holding a comma, quote or line break must be quoted)"
            ) from None
        if max_fields is not None and len(record) > max_fields:
            raise ValueError(
                f"{source} line {reader.line_num}: expected {max_fields} field(s), found {len(record)}"
            )
        yield record


class ObjectWriter:
    """One S3 object written in parts; readers see it only once `commit` ends (PutObject or Complete).

    The key may be set after writing has begun (a segment is named from a query that can follow its
    users): parts that must leave memory before that are kept in a local temporary file, so memory stays
    bounded by about two parts.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str | None = None,
        *,
        content_type: str = "text/csv",
        part_size: int | None = None,
        tagging: str | None = None,
    ) -> None:
        """`tagging`: the object's tags as URL query text (`key=value`), e.g. for a lifecycle rule."""
        self.key = key
        self.size = 0
        self._s3 = s3
        self._bucket = bucket
        self._content_type = content_type
        self._part_size = part_size or PART_SIZE
        self._extra = {"Tagging": tagging} if tagging else {}
        self._buffer = bytearray()
        self._spool: IO[bytes] | None = None
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def parts(self) -> int:
        """Parts uploaded so far."""
        return len(self._parts)

    def write(self, data: bytes) -> None:
        """Append bytes; a part goes to S3 (or the spool) whenever a full one is buffered."""
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self._part_size:
            self._send(final=False)

    def stage(self) -> None:
        """Send the parts kept aside while the key was unknown to S3; nothing becomes visible yet.

        Memory and local disk then hold at most about one part, so many objects can wait for their commit.
        """
        if self.key is None:
            raise ValueError("the object has no key yet")
        if self._spool is not None:
            self._send(final=False)

    def commit(self) -> None:
        """Make the object visible under `key`, complete."""
        if self.key is None:
            raise ValueError("the object has no key yet")
        if self._upload_id is None and self._spool is None:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
                **self._extra,
            )
        else:
            self._send(final=True)
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._reset()

    def abort(self) -> None:
        """Drop everything written; nothing becomes visible."""
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
        self._reset()

    def _send(self, *, final: bool) -> None:
        if self.key is None:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _reset
            self._spool.write(self._buffer)
            self._buffer.clear()
            return
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type, **self._extra
            )
            self._upload_id = created["UploadId"]
        if self._spool is not None:
            self._spool.seek(0)
            while len(piece := self._spool.read(self._part_size)) == self._part_size:
                self._upload_part(piece)
            # Only the last part may be smaller than 5 MiB: the spool's tail goes in front of the buffer.
            self._buffer[:0] = piece
            self._spool.close()
            self._spool = None
        # The whole buffer goes as one part (parts may exceed `part_size`): no copy of a slice, no memmove.
        if self._buffer and (final or len(self._buffer) >= self._part_size):
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()

    def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def _reset(self) -> None:
        if self._spool is not None:
            self._spool.close()
        self._spool = None
        self._buffer = bytearray()
        self._upload_id = None
        self._parts = []
