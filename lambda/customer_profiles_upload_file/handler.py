"""Lambda: join a ready segment with the contacts, diff with the previous members, write the upload file."""

from __future__ import annotations

import codecs
import os
from typing import Any

import boto3
from upload_file import (
    ContactColumns,
    UploadStats,
    attribute_name,
    count_users_without_contact,
    definition_name,
    dropped_members,
    fields_mapping,
    header,
    read_ids,
    read_segment,
    segment_groups,
    segment_slug,
    upload_rows,
    write_csv,
)

PART_SIZE = 16 * 1024 * 1024  # S3 multipart parts: 5 MiB minimum, 10,000 parts at most (160 GB here)


class MultipartWriter:
    """Streams bytes to one S3 object, visible only when complete."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
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


def _lines(s3: Any, bucket: str, key: str) -> Any:
    """A text stream of an S3 object (UTF-8, BOM dropped), read as it is consumed."""
    return codecs.getreader("utf-8-sig")(s3.get_object(Bucket=bucket, Key=key)["Body"])


def _previous_members(s3: Any, bucket: str, key: str) -> Any:
    """Ids of the previous run's members, or none on a first run."""
    try:
        yield from read_ids(_lines(s3, bucket, key))
    except s3.exceptions.NoSuchKey:
        return


def build_upload(
    event: dict[str, Any],
    s3: Any,
    *,
    state_prefix: str,
    contacts_key: str,
    columns: ContactColumns,
) -> dict[str, Any]:
    """Write `runs/<run>/upload.csv` and `runs/<run>/members.csv` under the segment's state folder.

    Nothing is written when no current member has contact data: the workflow then rejects the segment.
    """
    bucket, dataset_group = event["Bucket"], event["DatasetGroupName"]
    slug = segment_slug(event["Key"])
    name = definition_name(dataset_group, slug)
    attribute = attribute_name(name)
    folder = f"{state_prefix}{dataset_group}/{slug}/"
    run = f"{folder}runs/{event['RunId']}/"
    keys = {
        "MembersKey": f"{folder}members.csv",
        "UploadKey": f"{run}upload.csv",
        "PendingKey": f"{run}members.csv",
    }
    stats = UploadStats()
    users = read_segment(_lines(s3, bucket, event["Key"]), stats)
    dropped = dropped_members(_previous_members(s3, bucket, keys["MembersKey"]), users, stats)
    contacts = contacts_key.format(dataset_group=dataset_group)
    upload = MultipartWriter(s3, bucket, keys["UploadKey"])
    members = MultipartWriter(s3, bucket, keys["PendingKey"])

    def keep_member(row: tuple[str, ...]) -> None:
        # The next run's previous members: only users uploaded as `true`.
        if row[-1] == "true":
            members.write(_csv_line(row[0]))

    members.write(b"UserId\n")
    try:
        # An empty segment is rejected whole: no contact file read, no member set to false.
        rows = (
            upload_rows(users, dropped, _lines(s3, bucket, contacts), columns, stats) if users else iter(())
        )
        write_csv(rows, upload.write, header(columns), on_row=keep_member)
        count_users_without_contact(users, stats)
        if stats.members:
            upload.close()
            members.close()
        else:
            upload.abort()
            members.abort()
    except BaseException:
        upload.abort()
        members.abort()
        raise
    written = stats.members > 0
    return {
        **stats.as_payload(),
        **{k: (v if written or k == "MembersKey" else "") for k, v in keys.items()},
        "Bucket": bucket,
        "UploadBytes": upload.size if written else 0,
        "ContactsKey": contacts,
        "Definition": {
            "Name": name,
            "DisplayName": f"{dataset_group}: {event.get('Query') or slug}"[:255],
            "Description": (
                f"Users Amazon Personalize ranks as drawn to {event.get('Query') or slug} "
                f"(dataset group {dataset_group}); kept current by contextual-targeting."
            )[:4000],
            "SegmentGroups": segment_groups(attribute),
        },
        "Attribute": attribute,
        "Fields": fields_mapping(attribute, columns),
    }


def _csv_line(user_id: str) -> bytes:
    needs_quotes = any(ch in user_id for ch in ',"\r\n') or not user_id
    text = '"' + user_id.replace('"', '""') + '"' if needs_quotes else user_id
    return (text + "\n").encode("utf-8")


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{Bucket, Key, SegmentName, DatasetGroupName, Query, RunId}` in, keys and counts out."""
    return build_upload(
        event,
        boto3.client("s3"),
        state_prefix=os.environ["STATE_PREFIX"],
        contacts_key=os.environ["CONTACTS_KEY"],
        columns=ContactColumns(
            user_id=os.environ.get("ID_COLUMN", "USER_ID"),
            email=os.environ.get("EMAIL_COLUMN", "E_MAIL"),
            phone=os.environ.get("PHONE_COLUMN", ""),
        ),
    )
