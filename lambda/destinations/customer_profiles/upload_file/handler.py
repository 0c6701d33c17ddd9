"""Lambda: join a ready segment with the contacts, diff with the previous members, write the upload file."""

from __future__ import annotations

import os
from typing import Any

import boto3
from run_log import logged, put_metrics
from s3_streams import ObjectWriter, text_lines
from upload_file import (
    UPLOAD_FILE_LIMIT,
    ContactColumns,
    UploadFiles,
    UploadStats,
    attribute_name,
    count_users_without_contact,
    definition_name,
    dropped_members,
    fields_mapping,
    read_ids,
    read_segment,
    segment_groups,
    segment_slug,
    upload_rows,
)


class ContactFileMissingError(Exception):
    """The contact file to join the segment with is not in the bucket."""


def _contact_lines(s3: Any, bucket: str, key: str, setting: str) -> Any:
    try:
        return text_lines(s3, bucket, key)
    except s3.exceptions.NoSuchKey:
        # A bare NoSuchKey names neither the key nor where it comes from.
        raise ContactFileMissingError(
            f"the contact file s3://{bucket}/{key} does not exist: upload it, or point the construct prop "
            f"contacts_key (Lambda environment CONTACTS_KEY, now {setting!r}) at the file of contact data"
        ) from None


def _previous_members(s3: Any, bucket: str, key: str) -> Any:
    """Ids of the previous run's members, or none on a first run."""
    try:
        yield from read_ids(text_lines(s3, bucket, key), source=f"previous members s3://{bucket}/{key}")
    except s3.exceptions.NoSuchKey:
        return


def build_upload(
    event: dict[str, Any],
    s3: Any,
    *,
    state_prefix: str,
    contacts_key: str,
    columns: ContactColumns,
    tagging: str | None = None,
    file_limit: int = UPLOAD_FILE_LIMIT,
) -> dict[str, Any]:
    """Write `runs/<run>/upload-<columns>-<part>.csv` and `runs/<run>/members.csv` under the segment's folder.

    One upload file per column set (and part, under `file_limit` bytes), each with the `Fields` of its own
    columns (`Files`, in upload order). Nothing is written when no current member has contact data: the
    workflow then rejects the segment. `tagging` marks the run files for the bucket's lifecycle (the workflow
    deletes them, but an execution that times out or is aborted cannot); the member list they become is
    copied without tags.
    """
    bucket, dataset_group = event["Bucket"], event["DatasetGroupName"]
    slug = segment_slug(event["Key"])
    name = definition_name(dataset_group, slug)
    attribute = attribute_name(name)
    folder = f"{state_prefix}{dataset_group}/{slug}/"
    run = f"{folder}runs/{event['RunId']}/"
    members_key, pending_key = f"{folder}members.csv", f"{run}members.csv"
    stats = UploadStats()
    users = read_segment(
        text_lines(s3, bucket, event["Key"]), stats, source=f"segment file s3://{bucket}/{event['Key']}"
    )
    dropped = dropped_members(_previous_members(s3, bucket, members_key), users, stats)
    contacts = contacts_key.format(dataset_group=dataset_group)
    writers: list[ObjectWriter] = []

    def open_file(file_name: str) -> ObjectWriter:
        writers.append(ObjectWriter(s3, bucket, f"{run}upload-{file_name}.csv", tagging=tagging))
        return writers[-1]

    files = UploadFiles(open_file, limit=file_limit)
    members = ObjectWriter(s3, bucket, pending_key, tagging=tagging)
    members.write(b"UserId\n")
    try:
        # An empty segment is rejected whole: no contact file read, no member set to false.
        rows = (
            upload_rows(
                users,
                dropped,
                _contact_lines(s3, bucket, contacts, contacts_key),
                columns,
                stats,
                source=f"contact file s3://{bucket}/{contacts}",
            )
            if users
            else iter(())
        )
        for file_columns, row in rows:
            files.add(file_columns, row)
            if row[-1] == "true":  # the next run's previous members: only users uploaded as `true`
                members.write(_csv_line(row[0]))
        count_users_without_contact(users, stats)
        for writer in [*writers, members]:
            writer.commit() if stats.members else writer.abort()
    except BaseException:
        for writer in [*writers, members]:
            writer.abort()
        raise
    written = stats.members > 0
    uploads = files.files if written else []
    return {
        **stats.as_payload(),
        "Bucket": bucket,
        "MembersKey": members_key,
        "PendingKey": pending_key if written else "",
        "Files": [
            {"Key": f.key, "Rows": f.rows, "Bytes": f.size, "Fields": fields_mapping(attribute, f.columns)}
            for f in uploads
        ],
        "FileCount": len(uploads),
        # What the workflow deletes once it is done: every run file (DeleteObjects `Objects`).
        "RunFiles": [{"Key": key} for key in [*(f.key for f in uploads), pending_key] if written],
        "UploadBytes": sum(f.size for f in uploads),
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
    }


def _csv_line(user_id: str) -> bytes:
    needs_quotes = any(ch in user_id for ch in ',"\r\n') or not user_id
    text = '"' + user_id.replace('"', '""') + '"' if needs_quotes else user_id
    return (text + "\n").encode("utf-8")


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: `{Bucket, Key, SegmentName, DatasetGroupName, Query, RunId}` in, keys and counts out."""
    result = build_upload(
        event,
        boto3.client("s3"),
        state_prefix=os.environ["STATE_PREFIX"],
        contacts_key=os.environ["CONTACTS_KEY"],
        columns=ContactColumns(
            user_id=os.environ.get("ID_COLUMN", "USER_ID"),
            email=os.environ.get("EMAIL_COLUMN", "E_MAIL"),
            phone=os.environ.get("PHONE_COLUMN", ""),
        ),
        tagging=os.environ.get("EXPIRY_TAG") or None,
        file_limit=int(os.environ.get("UPLOAD_FILE_LIMIT") or UPLOAD_FILE_LIMIT),
    )
    put_metrics(
        {"UsersWithoutContact": result["UsersWithoutContact"]},
        dimensions={"DatasetGroup": event["DatasetGroupName"], "Segment": segment_slug(event["Key"])},
    )
    return result
