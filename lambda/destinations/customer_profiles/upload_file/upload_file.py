"""Build Customer Profiles upload files from a segment, the contact file and the previous members.

Membership is a profile attribute: current members with contact data get `true`, members of the previous run
who dropped out get `false`, so the segment definition (attribute = "true") follows the latest run. The
segment's ids are held in memory (at most 5M per query, as in the Pinpoint join); the contact file and the
previous member file are streamed once each, and every output row is handed to a writer as it is produced.

No row has a blank mapped cell: whether a blank cell overwrites a profile's value in an upload job is not
documented, so rows go to one file per set of columns they have (members with email and phone, with email
only, with phone only; dropped members with the key and the flag only), each uploaded by its own job whose
`Fields` map only those columns; a file that would reach the service's size limit goes on in a new part.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from s3_streams import csv_records
from segment_names import attribute_name as segment_attribute_name
from segment_names import segment_name

HEADER_USER_ID = "UserId"
HEADER_EMAIL = "Email"
HEADER_PHONE = "Phone"
HEADER_MEMBER = "Member"
# "The CSV file must be under 1GB in size":
# https://docs.aws.amazon.com/connect/latest/adminguide/customer-segments-imported-files.html
# 1 GB read as 10^9 bytes, the smaller of GB and GiB.
UPLOAD_FILE_LIMIT = 1_000_000_000


@dataclass
class UploadStats:
    """What the build saw: the workflow reports these counts in its event and email."""

    user_count: int = 0
    duplicate_users: int = 0
    contact_rows: int = 0
    members: int = 0
    users_without_contact: int = 0
    previous_members: int = 0
    members_removed: int = 0
    removed_without_contact: int = 0
    rows: int = 0
    sample_users_without_contact: list[str] = field(default_factory=list)

    def as_payload(self) -> dict[str, Any]:
        """PascalCase counts for the state payload."""
        return {"".join(p.title() for p in k.split("_")): v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ContactColumns:
    """Column names of the contact file (the training users file by default)."""

    user_id: str = "USER_ID"
    email: str = "E_MAIL"
    phone: str = ""


def segment_slug(key: str) -> str:
    """The query slug of a segment file: `segments/<dsg>/<job>/<slug>.csv` -> `<slug>`."""
    name = key.rsplit("/", 1)[-1]
    return name[: -len(".csv")] if name.endswith(".csv") else name


def definition_name(dataset_group: str, slug: str) -> str:
    """Segment definition name per dataset group and query: the segment's name (`segment_names`).

    One-to-one over (dataset group, query), within SegmentDefinitionName's `^[a-zA-Z0-9_-]+$`, 1-64.
    """
    return segment_name(dataset_group, slug)


def attribute_name(definition: str) -> str:
    """Profile attribute that carries the membership: `segment_` + the definition name, `_` for `-`."""
    # Attribute keys are 1-255 characters (customer-profiles model, string1To255); names are 64 at most.
    return segment_attribute_name(definition)


def segment_groups(attribute: str) -> dict[str, Any]:
    """SegmentGroups of CreateSegmentDefinition: profiles whose attribute is "true"."""
    return {
        "Groups": [
            {
                "Dimensions": [
                    {
                        "ProfileAttributes": {
                            "Attributes": {attribute: {"DimensionType": "INCLUSIVE", "Values": ["true"]}}
                        }
                    }
                ],
                "Type": "ALL",
            }
        ],
        "Include": "ALL",
    }


def read_ids(
    lines: Iterable[str], header: str = HEADER_USER_ID, *, source: str = "segment file"
) -> Iterator[str]:
    """User ids of a one-column CSV with the given header (RFC 4180 quoting), exactly as written.

    Ids are not stripped (` u1` and `u1` are two users); blank lines and empty ids are skipped.
    """
    rows = csv_records(lines, source, max_fields=1)  # an unquoted comma is no other user
    first = next(rows, None)
    if first is None:
        return
    if [h.strip().lstrip("\ufeff") for h in first] != [header]:
        raise ValueError(f"expected the header {header!r}, got {first!r}")
    for row in rows:
        if row and row[0]:
            yield row[0]


def read_segment(
    lines: Iterable[str], stats: UploadStats, *, source: str = "segment file"
) -> dict[str, bool]:
    """The segment's users, de-duplicated; the value says whether contact data was found."""
    users: dict[str, bool] = {}
    for user_id in read_ids(lines, source=source):
        if user_id in users:
            stats.duplicate_users += 1
        else:
            users[user_id] = False
    stats.user_count = len(users)
    return users


def dropped_members(previous: Iterable[str], users: dict[str, bool], stats: UploadStats) -> dict[str, bool]:
    """Members of the previous run who are not in this segment (value: contact data found)."""
    dropped: dict[str, bool] = {}
    for user_id in previous:
        stats.previous_members += 1
        if user_id not in users:
            dropped[user_id] = False
    stats.members_removed = len(dropped)
    return dropped


def upload_rows(
    users: dict[str, bool],
    dropped: dict[str, bool],
    contacts: Iterable[str],
    columns: ContactColumns,
    stats: UploadStats,
    *,
    source: str = "contact file",
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(header, row) of each upload row: members with the contact values they have, in contact-file order,
    then dropped members with the key and `false` alone (a membership change touches nothing else)."""
    # csv.reader with column indexes: about twice as fast as DictReader on a multi-million-row file.
    reader = csv_records(contacts, source)
    contact_columns = [name for name in (columns.email, columns.phone) if name]
    fieldnames = [name.strip().lstrip("\ufeff") for name in next(reader, [])]
    missing = [name for name in (columns.user_id, *contact_columns) if name not in fieldnames]
    if missing:
        raise ValueError(
            f"contact file has no column {', '.join(missing)} (columns: {', '.join(fieldnames)})"
        )
    id_index = fieldnames.index(columns.user_id)
    indexes = [fieldnames.index(name) for name in contact_columns]
    headers = [h for h, name in ((HEADER_EMAIL, columns.email), (HEADER_PHONE, columns.phone)) if name]
    width = max(id_index, *indexes) + 1
    for record in reader:
        stats.contact_rows += 1
        if len(record) < width:
            continue
        user_id = record[id_index]  # as written: a stripped id could be another user's
        values = tuple(record[i].strip() for i in indexes)
        if not user_id or not any(values):
            continue
        if users.get(user_id) is False:
            users[user_id] = True
            stats.members += 1
            stats.rows += 1
            present = [(h, v) for h, v in zip(headers, values, strict=True) if v]
            yield (
                (HEADER_USER_ID, *(h for h, _ in present), HEADER_MEMBER),
                (user_id, *(v for _, v in present), "true"),
            )
        elif dropped.get(user_id) is False:
            dropped[user_id] = True
    # Dropped members get `false` with the unique key alone: it finds the profile whatever contact is left.
    for user_id, found in dropped.items():
        if not found:
            stats.removed_without_contact += 1
        stats.rows += 1
        yield (HEADER_USER_ID, HEADER_MEMBER), (user_id, "false")


def count_users_without_contact(users: dict[str, bool], stats: UploadStats, sample: int = 10) -> None:
    """Count (and sample, in rank order) the segment's users without contact data."""
    missing = 0
    for user_id, found in users.items():
        if not found:
            missing += 1
            if len(stats.sample_users_without_contact) < sample:
                stats.sample_users_without_contact.append(user_id)
    stats.users_without_contact = missing


def header(columns: ContactColumns) -> tuple[str, ...]:
    """Every column an upload file may have (each file has the key, the flag and some of these)."""
    contact = [h for h, name in ((HEADER_EMAIL, columns.email), (HEADER_PHONE, columns.phone)) if name]
    return (HEADER_USER_ID, *contact, HEADER_MEMBER)


def column_set(first: tuple[str, ...]) -> str:
    """Readable name of a column set: `email-phone`, `email`, `phone`, or `flag` (key and flag only)."""
    return "-".join(h.lower() for h in first[1:-1]) or "flag"


@dataclass
class UploadFile:
    """One upload file: its columns, its part number within them, and what it holds."""

    columns: tuple[str, ...]
    part: int
    key: str
    writer: Any
    rows: int = 0
    size: int = 0


class UploadFiles:
    """Writes rows to one CSV per column set (UTF-8, no BOM, CRLF), starting a new part of a set whenever
    the next row would take its file to `limit` bytes."""

    def __init__(self, open_file: Callable[[str], Any], *, limit: int = UPLOAD_FILE_LIMIT) -> None:
        """`open_file(name)` gives a writer (`write(bytes)`) for the file called `name`."""
        self._open = open_file
        self._limit = limit
        self._current: dict[tuple[str, ...], UploadFile] = {}
        self.files: list[UploadFile] = []
        self._line = io.StringIO()
        # CRLF, RFC 4180's record end: csv.writer quotes a field holding any character of its line
        # terminator: with "\n", a lone CR in a user id went out unquoted and a CR-splitting reader split it.
        self._csv = csv.writer(self._line, lineterminator="\r\n")

    def _encode(self, row: tuple[str, ...]) -> bytes:
        self._csv.writerow(row)
        text = self._line.getvalue()
        self._line.seek(0)
        self._line.truncate()
        return text.encode("utf-8")

    def add(self, columns: tuple[str, ...], row: tuple[str, ...]) -> None:
        """Write `row` to the current file of `columns`, or to a new one when it would reach the limit."""
        data = self._encode(row)
        current = self._current.get(columns)
        if current is None or current.size + len(data) >= self._limit:
            part = current.part + 1 if current else 1
            header = self._encode(columns)
            if len(header) + len(data) >= self._limit:
                raise ValueError(f"one upload row is {len(data)} bytes: no file under {self._limit} holds it")
            name = f"{column_set(columns)}-{part}"
            writer = self._open(name)
            current = UploadFile(
                columns=columns, part=part, key=str(getattr(writer, "key", name)), writer=writer
            )
            current.writer.write(header)
            current.size = len(header)
            self._current[columns] = current
            self.files.append(current)
        current.writer.write(data)
        current.size += len(data)
        current.rows += 1


def fields_mapping(attribute: str, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """CreateUploadJob `Fields` of a file with these `columns`: each (`_source.<col>`) to its profile field
    (`_profile.<field>`), and no other, so no mapped cell is ever blank."""
    targets = {
        HEADER_USER_ID: ("_profile.AccountNumber", "STRING"),
        HEADER_EMAIL: ("_profile.EmailAddress", "EMAIL_ADDRESS"),
        HEADER_PHONE: ("_profile.PhoneNumber", "PHONE_NUMBER"),
        HEADER_MEMBER: (f"_profile.Attributes.{attribute}", "STRING"),
    }
    return {
        column: {
            "Source": f"_source.{column}",
            "Target": targets[column][0],
            "ContentType": targets[column][1],
        }
        for column in columns
    }
