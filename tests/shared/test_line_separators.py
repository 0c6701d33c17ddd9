"""Line-oriented readers end a line at `\\n` (or `\\r\\n`) only, as RFC 4180 CSV and JSON lines do.

`str.splitlines` semantics (codecs stream readers) also break at U+2028, U+2029, U+0085, `\\x0b`,
`\\x0c`, `\\x1c`-`\\x1e` and a lone `\\r`: a user id holding one became two users, and a contact field
holding one shifted the columns of the next "line", so a user got an address from another user's row.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import s3_streams
from moto import mock_aws

from tests.destinations.customer_profiles.test_lambdas import COLUMNS, STATE_PREFIX, upload_file_handler
from tests.destinations.pinpoint.test_lambdas import endpoint, import_file, join, join_handler
from tests.training.fakes import load_validator

BUCKET = "data-bucket"
SEGMENT_KEY = "segments/shop/shop-run-1/genres-action.csv"
CONTACTS_KEY = "train/shop/users.csv"
# Every character `str.splitlines` breaks at besides \n and \r\n.
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket="import-bucket")
        yield client


def put(s3: Any, key: str, text: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def build(s3: Any, run: str = "run-1") -> dict[str, Any]:
    event = {
        "Bucket": BUCKET,
        "Key": SEGMENT_KEY,
        "SegmentName": "shop-genres-action",
        "DatasetGroupName": "shop",
        "Query": 'ITEMS.genres = "action"',
        "RunId": run,
    }
    return upload_file_handler.build_upload(
        event, s3, state_prefix=STATE_PREFIX, contacts_key="train/{dataset_group}/users.csv", columns=COLUMNS
    )


def upload_rows(s3: Any, result: dict[str, Any]) -> list[list[str]]:
    """Data rows of every upload file, in upload order."""
    rows: list[list[str]] = []
    for upload in result["Files"]:
        text = s3.get_object(Bucket=BUCKET, Key=upload["Key"])["Body"].read().decode()
        rows += list(csv.reader(io.StringIO(text, newline="")))[1:]
    return rows


@pytest.mark.parametrize("separator", [*SEPARATORS, "\r"])
def test_text_lines_end_a_line_at_line_feed_only(s3: Any, separator: str) -> None:
    put(s3, "ids.csv", f"\ufeffUserId\nreal{separator}user\r\nnext\n")
    assert list(s3_streams.text_lines(s3, BUCKET, "ids.csv")) == [
        "UserId\n",
        f"real{separator}user\r\n",
        "next\n",
    ]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_segment_id_with_a_line_separator_is_one_user_and_gets_only_its_own_address(
    s3: Any, separator: str
) -> None:
    # GIVEN a segment whose only user is `real<separator>user`, and contacts for it and for `user`
    hostile = f"real{separator}user"
    put(s3, SEGMENT_KEY, f"UserId\n{hostile}\n")
    put(s3, CONTACTS_KEY, f"USER_ID,E_MAIL\nuser,user@example.com\n{hostile},hostile@example.com\n")
    # WHEN the upload file is built
    result = build(s3)
    # THEN only that user is uploaded, with its own address; `user` is not in the segment
    assert upload_rows(s3, result) == [[hostile, "hostile@example.com", "true"]]
    assert (result["UserCount"], result["Members"]) == (1, 1)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_next_line_character_in_a_contact_field_does_not_shift_another_users_address(
    s3: Any, separator: str
) -> None:
    # GIVEN user 1's row holding a separator; the text after it looks like a row of user 2
    put(s3, SEGMENT_KEY, "UserId\n1\n2\n")
    put(s3, CONTACTS_KEY, f"USER_ID,E_MAIL,NOTE\n1,one@example.com,note{separator}2,two@example.com\n")
    # WHEN the upload file is built
    result = build(s3)
    # THEN user 1 has its address and user 2, who has no row, gets none
    assert upload_rows(s3, result) == [["1", "one@example.com", "true"]]
    assert result["SampleUsersWithoutContact"] == ["2"]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_previous_member_with_a_line_separator_is_one_member(s3: Any, separator: str) -> None:
    # GIVEN a previous member `real<separator>user` who dropped out; `user` was never a member
    hostile = f"real{separator}user"
    put(s3, SEGMENT_KEY, "UserId\nstays\n")
    put(s3, f"{STATE_PREFIX}shop/genres-action/members.csv", f'UserId\nstays\n"{hostile}"\n')
    put(
        s3,
        CONTACTS_KEY,
        f"USER_ID,E_MAIL\nstays,s@example.com\nuser,u@example.com\n{hostile},h@example.com\n",
    )
    # WHEN the upload file is built
    result = build(s3, run="run-2")
    # THEN the dropped member is set false under its own id, and `user` is untouched
    assert upload_rows(s3, result) == [
        ["stays", "s@example.com", "true"],
        [hostile, "false"],  # a membership change: the key and the flag only
    ]
    assert result["MembersRemoved"] == 1


def test_a_carriage_return_in_a_user_id_is_quoted_in_the_upload_file(s3: Any) -> None:
    # Found by the property tests: csv.writer with a "\n" terminator wrote `a\rb` bare, which a CSV reader
    # (Customer Profiles' included) may read as two records.
    put(s3, SEGMENT_KEY, 'UserId\n"a\rb"\n')
    put(s3, CONTACTS_KEY, 'USER_ID,E_MAIL\n"a\rb",ab@example.com\n')
    result = build(s3)
    body = s3.get_object(Bucket=BUCKET, Key=result["Files"][0]["Key"])["Body"].read()
    assert body == b'UserId,Email,Member\r\n"a\rb",ab@example.com,true\r\n'


def test_ids_are_not_stripped_so_a_padded_id_is_another_user(s3: Any) -> None:
    # ` u1` and `u1` are different Personalize users: the padded one must not get u1's address.
    put(s3, SEGMENT_KEY, "UserId\n u1\n")
    put(s3, CONTACTS_KEY, "USER_ID,E_MAIL\nu1,u1@example.com\n")
    result = build(s3)
    assert (result["Members"], result["SampleUsersWithoutContact"]) == (0, [" u1"])


def test_contact_row_with_a_bare_carriage_return_is_refused_with_its_line(s3: Any) -> None:
    # A lone CR outside quotes is no RFC 4180 record end; reading it as one gave user 2 user 1's address.
    put(s3, SEGMENT_KEY, "UserId\n2\n")
    put(s3, CONTACTS_KEY, "USER_ID,E_MAIL\n1\r2,one@example.com\n")
    with pytest.raises(ValueError, match=rf"contact file s3://{BUCKET}/{CONTACTS_KEY} line 2: "):
        build(s3)


def test_segment_row_with_two_fields_is_refused(s3: Any) -> None:
    put(s3, SEGMENT_KEY, "UserId\nfirst,second\n")
    put(s3, CONTACTS_KEY, "USER_ID,E_MAIL\nfirst,f@example.com\n")
    with pytest.raises(ValueError, match="line 2: expected 1 field\\(s\\), found 2"):
        build(s3)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_pinpoint_join_reads_a_segment_id_with_a_line_separator_as_one_user(s3: Any, separator: str) -> None:
    # GIVEN a segment of `real<separator>user` and endpoints of `real`, `user` and that user
    hostile = f"real{separator}user"
    put(s3, "segments/shop/run/action.csv", f"UserId\n{hostile}\n")
    export = endpoint("e-real", "real") + endpoint("e-user", "user") + endpoint("e-hostile", hostile)
    s3.put_object(Bucket="import-bucket", Key="exports/run/part-0.gz", Body=gzip.compress(export))
    # WHEN joined
    result = join_handler.join_segment(
        {
            "SegmentBucket": BUCKET,
            "SegmentKey": "segments/shop/run/action.csv",
            "SegmentName": "shop-genres-action",
            "ExportBucket": "import-bucket",
            "ExportPrefix": "exports/run/",
        },
        s3,
        import_bucket="import-bucket",
        import_prefix="pinpoint/",
        channels="",
    )
    # THEN only that user's endpoint is imported
    body = s3.get_object(Bucket="import-bucket", Key=result["ImportKey"])["Body"].read()
    assert body == b"Id\ne-hostile\n"
    assert (result["UserCount"], result["EndpointCount"]) == (1, 1)


def test_pinpoint_export_lines_end_at_line_feed_only() -> None:
    # JSON allows a raw U+2028 or U+0085 in a string; the export is read as bytes split at \n.
    stats = join.JoinStats()
    users = {"a\u2028b": False, "c\x85d": False}
    raw = "".join(
        json.dumps({"Id": f"e{i}", "User": {"UserId": u}}, ensure_ascii=False) + "\n"
        for i, u in enumerate(users)
    )
    lines = join.endpoint_lines([io.BytesIO(gzip.compress(raw.encode()))], stats)
    assert list(join.join_endpoints(users, lines, frozenset(), stats)) == ["e0", "e1"]


def test_query_with_a_line_separator_in_its_value_is_one_query() -> None:
    # Personalize reads the query file as JSON lines: a raw U+2028 inside a string is part of the line.
    key = "batch/bingewatch/bw_aws-item-attribute-affinity/job_config.json"
    text = '{"itemAttributes": "ITEMS.genres = \\"Sci\u2028Fi\\""}\n'
    validator = load_validator()
    report = validator.Report()
    validator.check_queries(report, key, text, ["GENRES"])
    assert report.errors == []


def test_pinpoint_import_reads_the_first_json_line_up_to_its_line_feed() -> None:
    head = json.dumps({"ChannelType": "EMAIL", "Address": "a\u2028b@example.com"}, ensure_ascii=False) + "\n"
    decision = import_file.decide("pinpoint/new.jsonl", "pinpoint/", head)
    assert (decision.accepted, decision.register_endpoints) == (True, True)
