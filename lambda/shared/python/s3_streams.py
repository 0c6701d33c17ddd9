"""Streaming S3 reads and writes shared by the Lambdas (deployed as the `SharedCode` layer).

Segment-sized data never sits in memory: objects are read as text streams and written as multipart
uploads that become visible only when complete, so a subscriber never sees half a file.
"""

from __future__ import annotations

import codecs
from typing import Any

PART_SIZE = 16 * 1024 * 1024  # S3 multipart parts: 5 MiB minimum, 10,000 parts at most (160 GB here)


def text_lines(s3: Any, bucket: str, key: str) -> Any:
    """A text stream of an S3 object (UTF-8, BOM dropped), read as it is consumed."""
    return codecs.getreader("utf-8-sig")(s3.get_object(Bucket=bucket, Key=key)["Body"])


class MultipartWriter:
    """Streams bytes to one S3 object, visible only when complete."""

    def __init__(self, s3: Any, bucket: str, key: str, *, content_type: str = "text/csv") -> None:
        self.s3, self.bucket, self.key, self.content_type = s3, bucket, key, content_type
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        """Buffer data and upload every full part."""
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= PART_SIZE:
            self._upload(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def _upload(self, body: bytes) -> None:
        if self.upload_id is None:
            created = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
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
                Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), ContentType=self.content_type
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
