"""Audience correctness under hostile data, as properties over the Lambdas' own code against moto S3.

- Any list of user ids the split accepts reaches every destination reader as exactly those users: the
  Customer Profiles build (segment and previous members) and the Pinpoint endpoint join.
- The contact join never gives contact data to a user outside the segment, nor another user's data, whatever
  the contact file holds (quotes, commas, line separators inside fields, either line ending).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
import s3_streams
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from tests.destinations.customer_profiles.test_lambdas import (
    COLUMNS,
    STATE_PREFIX,
    upload_file,
    upload_file_handler,
)
from tests.destinations.pinpoint.test_lambdas import endpoint, join, join_handler
from tests.segments.support import BUCKET, job_output, segment_store

IMPORT_BUCKET = "import-bucket"
QUERY = 'ITEMS.genres = "action"'
# Characters that break lines, fields or JSON somewhere: str.splitlines separators, CSV and JSON specials.
HOSTILE = [
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\r",
    "\n",
    "\r\n",
    '"',
    ",",
    "\\",
]
HOSTILE += [" ", "\t", "\ufeff", "\x00", "é", "東", "🎬", "a", "b", "1"]

hostile_text = st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=12).map("".join)
# Lone surrogates cannot be encoded as UTF-8, so no file can hold them.
NO_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
user_ids = st.one_of(
    hostile_text,
    st.text(st.characters(exclude_categories=NO_SURROGATES), min_size=1, max_size=30),
    st.lists(st.sampled_from(HOSTILE), min_size=150, max_size=300).map("".join),  # long ids span buffer cuts
)

_runs = itertools.count()


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """One moto S3 for the module; each example works under its own prefix."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket=IMPORT_BUCKET)
        yield client


def split_one(s3: Any, group: str, ids: list[str], *, ensure_ascii: bool) -> dict[str, Any]:
    """Run the split on one query line of `ids`; its summary entry."""
    job_name = f"{group}-run"
    prefix = f"batch/{group}/sol/{job_name}/"
    line = json.dumps(
        {"input": {"itemAttributes": QUERY}, "output": {"usersList": ids}}, ensure_ascii=ensure_ascii
    )
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}q.json.out", Body=job_output(line))
    job = segment_store.JobInfo(
        job_arn=f"arn:aws:personalize:eu-central-1:123456789012:batch-segment-job/{job_name}",
        job_name=job_name,
        dataset_group_name=group,
        output_uri=f"s3://{BUCKET}/{prefix}",
    )
    (segment,) = segment_store.process_job(s3, job, bucket=BUCKET, prefix="segments/", part_size=5 << 20)[
        "Segments"
    ]
    assert segment["Status"] == "READY", segment["Error"]
    return dict(segment)


def rfc4180(records: list[list[str]], ending: str = "\n") -> bytes:
    """CSV quoted exactly where RFC 4180 requires (comma, quote, CR, LF), everything else raw.

    Not csv.writer: with a "\n" line terminator it leaves a lone CR unquoted, which the readers refuse.
    """

    def field(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value

    return "".join(",".join(map(field, record)) + ending for record in records).encode()


def contacts_csv(rows: list[tuple[str, str]]) -> bytes:
    return rfc4180([["USER_ID", "E_MAIL"], *[list(row) for row in rows]])


def read_csv(s3: Any, bucket: str, key: str) -> list[list[str]]:
    """A CSV object parsed independently of the code under test (csv with newline="")."""
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def build(s3: Any, group: str, segment: dict[str, Any], run: str) -> dict[str, Any]:
    event = {**segment, "DatasetGroupName": group, "RunId": run}
    return upload_file_handler.build_upload(
        event, s3, state_prefix=STATE_PREFIX, contacts_key="train/{dataset_group}/users.csv", columns=COLUMNS
    )


@given(st.lists(user_ids, min_size=1, max_size=25), st.booleans())
def test_every_destination_reads_exactly_the_users_the_split_wrote(
    s3: Any, ids: list[str], ensure_ascii: bool
) -> None:
    group = f"g{next(_runs)}"
    distinct = list(dict.fromkeys(ids))
    # GIVEN the split's segment file of those ids
    segment = split_one(s3, group, ids, ensure_ascii=ensure_ascii)
    assert segment["UserCount"] == len(distinct)
    bucket, key = segment["Bucket"], segment["Key"]

    # THEN both destinations' segment readers give back exactly the ids, in rank order
    assert (
        list(upload_file.read_segment(s3_streams.text_lines(s3, bucket, key), upload_file.UploadStats()))
        == distinct
    )
    assert list(join.read_segment_users(s3_streams.text_lines(s3, bucket, key), join.JoinStats())) == distinct

    # AND the Customer Profiles build uploads each once, with its own address, and keeps them as members
    emails = {user: f"{n}@example.com" for n, user in enumerate(distinct)}
    s3.put_object(Bucket=BUCKET, Key=f"train/{group}/users.csv", Body=contacts_csv(list(emails.items())))
    first = build(s3, group, segment, "run-1")
    assert {row[0]: row[1] for row in read_csv(s3, BUCKET, first["Files"][0]["Key"])[1:]} == emails
    assert [row[0] for row in read_csv(s3, BUCKET, first["PendingKey"])[1:]] == distinct

    # AND read back as the previous members of a run whose segment is someone else, each is set false
    s3.copy_object(
        Bucket=BUCKET, Key=first["MembersKey"], CopySource={"Bucket": BUCKET, "Key": first["PendingKey"]}
    )
    s3.put_object(Bucket=BUCKET, Key=key, Body="UserId\nnewcomer-\u2028\n".encode())
    s3.put_object(
        Bucket=BUCKET,
        Key=f"train/{group}/users.csv",
        Body=contacts_csv([*emails.items(), ("newcomer-\u2028", "new@example.com")]),
    )
    second = build(s3, group, segment, "run-2")
    rows = [row for upload in second["Files"] for row in read_csv(s3, BUCKET, upload["Key"])[1:]]
    assert {row[0]: tuple(row[1:]) for row in rows} == {
        **{user: ("false",) for user in emails},  # a membership change: the key and the flag only
        "newcomer-\u2028": ("new@example.com", "true"),
    }
    assert second["MembersRemoved"] == len(distinct)


@given(st.lists(user_ids, min_size=1, max_size=25, unique=True))
def test_the_pinpoint_join_finds_exactly_the_endpoints_of_the_segments_users(s3: Any, ids: list[str]) -> None:
    group = f"p{next(_runs)}"
    segment = split_one(s3, group, ids, ensure_ascii=False)
    # GIVEN an export with one endpoint per user, and decoys whose user ids a sloppy reader would confuse
    decoys = {d for user in ids for d in (user.strip(), user + " ", *user.splitlines()) if d not in ids and d}
    lines = [endpoint(f"e{n}", user) for n, user in enumerate(ids)]
    lines += [endpoint(f"decoy{n}", d) for n, d in enumerate(sorted(decoys))]
    s3.put_object(Bucket=IMPORT_BUCKET, Key=f"exports/{group}/part-0.gz", Body=gzip.compress(b"".join(lines)))
    # WHEN joined by the Lambda
    result = join_handler.join_segment(
        {
            "SegmentBucket": segment["Bucket"],
            "SegmentKey": segment["Key"],
            "SegmentName": segment["SegmentName"],
            "ExportBucket": IMPORT_BUCKET,
            "ExportPrefix": f"exports/{group}/",
        },
        s3,
        import_bucket=IMPORT_BUCKET,
        import_prefix=f"pinpoint/{group}/",
        channels="",
    )
    # THEN the import file holds exactly the users' endpoints
    assert sorted(row[0] for row in read_csv(s3, IMPORT_BUCKET, result["ImportKey"])[1:]) == sorted(
        f"e{n}" for n in range(len(ids))
    )
    assert (result["UserCount"], result["UsersWithoutEndpoints"]) == (len(ids), 0)


contact_rows = st.lists(
    st.tuples(st.one_of(user_ids, st.sampled_from(["u1", "u2", " u1", "u1 ", "u1\u2028u2"])), hostile_text),
    max_size=30,
)


@given(
    st.lists(st.one_of(user_ids, st.sampled_from(["u1", "u2"])), min_size=1, max_size=15, unique=True),
    contact_rows,
    st.sampled_from(["\n", "\r\n"]),
    st.lists(st.sampled_from(["NOTE", "E_MAIL", "USER_ID"]), min_size=3, max_size=3, unique=True),
)
def test_the_contact_join_gives_each_member_only_their_own_contact_data(
    s3: Any, segment_ids: list[str], rows: list[tuple[str, str]], ending: str, order: list[str]
) -> None:
    group = f"c{next(_runs)}"
    segment = split_one(s3, group, segment_ids, ensure_ascii=False)
    # GIVEN a contact file with hostile ids, addresses and notes, in any column order and line ending
    records = [order]
    for user, email in rows:
        record = {"USER_ID": user, "E_MAIL": email, "NOTE": f"{email}\x85{user},x@evil.example"}
        records.append([record[column] for column in order])
    s3.put_object(Bucket=BUCKET, Key=f"train/{group}/users.csv", Body=rfc4180(records, ending))
    # WHEN the Customer Profiles build joins them
    result = build(s3, group, segment, "run-1")
    # THEN every uploaded member is in the segment, with the first address its own rows give it
    expected: dict[str, str] = {}
    for user, email in rows:
        if user in segment_ids and email.strip():
            expected.setdefault(user, email.strip())
    uploaded = [row for upload in result["Files"] for row in read_csv(s3, BUCKET, upload["Key"])[1:]]
    assert {row[0]: row[1] for row in uploaded} == expected
    assert all(row[2] == "true" for row in uploaded)
    assert len(uploaded) == len(expected) == result["Members"]
