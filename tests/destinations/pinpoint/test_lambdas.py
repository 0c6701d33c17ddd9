"""The Pinpoint destination's Lambdas: the join's pure functions and both handlers against moto S3."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.helpers import EVENTS_ROOT, REPO, load_lambda

EVENTS = EVENTS_ROOT / "pinpoint"


join = load_lambda("destinations/pinpoint/endpoint_join", "join")
join_handler = load_lambda("destinations/pinpoint/endpoint_join", "handler")
import_file = load_lambda("destinations/pinpoint/import_file", "import_file")
inspect_handler = load_lambda("destinations/pinpoint/import_file", "handler")


def gz(lines: list[bytes] | bytes) -> io.BytesIO:
    """A gzip'ed export part."""
    data = lines if isinstance(lines, bytes) else b"".join(lines)
    return io.BytesIO(gzip.compress(data))


def endpoint(eid: str, user: str | None, channel: str = "EMAIL", **extra: Any) -> bytes:
    """One export line (JSON, newline-terminated), shaped like Pinpoint's endpoint export."""
    record: dict[str, Any] = {
        "ApplicationId": "app-1",
        "Id": eid,
        "ChannelType": channel,
        "Address": f"{eid}@example.com",
        "EndpointStatus": "ACTIVE",
        "OptOut": "NONE",
        **extra,
    }
    if user is not None:
        record["User"] = {"UserId": user, "UserAttributes": {"UserId": ["not-the-user-id"]}}
    return (json.dumps(record) + "\n").encode()


def run_join(segment_csv: str, parts: list[io.BytesIO], channels: str = "") -> tuple[list[str], Any]:
    """Run the pure join end to end over in-memory inputs."""
    stats = join.JoinStats()
    users = join.read_segment_users(io.StringIO(segment_csv), stats)
    wanted = frozenset(c for c in channels.split(",") if c)
    ids = list(join.join_endpoints(users, join.endpoint_lines(parts, stats), wanted, stats))
    join.count_users_without_endpoints(users, stats)
    return ids, stats


# ---------------------------------------------------------------------------------------------------------
# Join: pure functions


def test_join_keeps_every_endpoint_of_a_user_across_channels_and_drops_unreachable_ones() -> None:
    # GIVEN the sample segment (a duplicate user, a CSV-quoted id, a user without endpoints) and export part
    segment = (EVENTS / "segment.csv").read_text()
    part = gz((EVENTS / "export_part.jsonl").read_bytes())
    # WHEN joined over all channels
    ids, stats = run_join(segment, [part])
    # THEN every reachable endpoint of the segment's users comes out once, in export order
    assert ids == ["email-1", "sms-1", "push-2", "email-c"]
    assert stats.user_count == 4
    assert stats.duplicate_users == 1
    assert stats.opted_out == 1  # email-2 (OptOut ALL)
    assert stats.inactive == 1  # sms-2 (EndpointStatus INACTIVE)
    assert stats.duplicate_endpoints == 1  # email-1 listed twice
    assert stats.users_without_endpoints == 1
    assert stats.sample_users_without_endpoints == ["404"]
    assert stats.endpoint_lines == 9


def test_channel_filter_keeps_only_the_named_channels_and_counts_users_left_without() -> None:
    segment = (EVENTS / "segment.csv").read_text()
    ids, stats = run_join(segment, [gz((EVENTS / "export_part.jsonl").read_bytes())], channels="EMAIL")
    assert ids == ["email-1", "email-c"]
    assert stats.other_channel == 2  # sms-1, push-2
    assert stats.users_without_endpoints == 2
    assert stats.sample_users_without_endpoints == ["2", "404"]  # rank order


def test_join_reads_several_gzip_parts_and_dedupes_across_them() -> None:
    parts = [
        gz([endpoint("e1", "u1"), endpoint("e2", "u2")]),
        gz([endpoint("e1", "u1"), endpoint("e3", "u2", "SMS")]),
    ]
    ids, stats = run_join("UserId\nu1\nu2\n", parts)
    assert ids == ["e1", "e2", "e3"]
    assert stats.export_parts == 2
    assert stats.duplicate_endpoints == 1


def test_users_without_any_endpoint_are_counted_not_fatal() -> None:
    ids, stats = run_join("UserId\nghost-1\nghost-2\n", [gz([endpoint("e1", "someone-else")])])
    assert ids == []
    assert stats.users_without_endpoints == 2
    assert stats.endpoint_count == 0


def test_user_ids_with_json_escapes_and_unicode_match() -> None:
    user = 'Zoë "Z" \\ Müller'
    ids, _ = run_join(f'UserId\n"{user.replace(chr(34), chr(34) * 2)}"\n', [gz([endpoint("e1", user)])])
    assert ids == ["e1"]


def test_an_attribute_named_user_id_does_not_fool_the_prefilter() -> None:
    # The user attribute "UserId" holds a list; only User.UserId decides.
    ids, _ = run_join("UserId\nnot-the-user-id\n", [gz([endpoint("e1", "real-user")])])
    assert ids == []


def test_segment_header_must_be_user_id() -> None:
    with pytest.raises(ValueError, match="UserId"):
        join.read_segment_users(io.StringIO("Id\n1\n"), join.JoinStats())


def test_segment_with_bom_and_blank_lines_reads() -> None:
    stats = join.JoinStats()
    users = join.read_segment_users(io.StringIO("\ufeffUserId\n1\n\n2\n"), stats)
    assert list(users) == ["1", "2"]


def test_id_csv_is_pinpoints_format_and_quotes_where_needed() -> None:
    out = bytearray()
    rows = join.write_id_csv(["a", "b,c", 'd"e'], out.extend, chunk=4)
    assert rows == 3
    assert list(csv.reader(io.StringIO(out.decode()))) == [["Id"], ["a"], ["b,c"], ['d"e']]


def test_import_file_name_keeps_segment_readable_but_key_safe() -> None:
    assert join.import_file_name("bingewatch-action-20261120") == "bingewatch-action-20261120.csv"
    assert join.import_file_name("a/b\nc") == "a-b-c.csv"


# ---------------------------------------------------------------------------------------------------------
# Join handler against moto S3


@pytest.fixture
def s3() -> Any:
    """A moto S3 client with the data bucket and the (versioned) segment-import bucket."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        client.create_bucket(Bucket="import-bucket")
        client.put_bucket_versioning(Bucket="import-bucket", VersioningConfiguration={"Status": "Enabled"})
        yield client


def put_export(s3: Any, prefix: str, parts: list[bytes]) -> None:
    """Pinpoint's export layout: gzip parts (and a non-.gz marker the join must skip) under the prefix."""
    for number, data in enumerate(parts):
        s3.put_object(Bucket="import-bucket", Key=f"{prefix}job-1/part-{number}.gz", Body=gzip.compress(data))
    s3.put_object(Bucket="import-bucket", Key=f"{prefix}job-1/_SUCCESS", Body=b"")


def test_join_handler_writes_the_id_file_under_the_import_prefix(s3: Any) -> None:
    # GIVEN a segment file and a two-part export
    s3.put_object(
        Bucket="data-bucket", Key="segments/bw/job/action.csv", Body=(EVENTS / "segment.csv").read_bytes()
    )
    lines = (EVENTS / "export_part.jsonl").read_bytes().splitlines(keepends=True)
    put_export(s3, "exports/run-1/", [b"".join(lines[:4]), b"".join(lines[4:])])
    # WHEN the handler joins them
    result = join_handler.join_segment(
        {
            "SegmentBucket": "data-bucket",
            "SegmentKey": "segments/bw/job/action.csv",
            "SegmentName": "bw-action-1",
            "ExportBucket": "import-bucket",
            "ExportPrefix": "exports/run-1/",
        },
        s3,
        import_bucket="import-bucket",
        import_prefix="pinpoint/",
        channels="",
    )
    # THEN the Id file holds the endpoints, and the counts come back PascalCase
    assert result["ImportKey"] == "pinpoint/bw-action-1.csv"
    assert result["EndpointCount"] == 4
    assert result["UsersWithoutEndpoints"] == 1
    assert result["ExportParts"] == 2
    body = s3.get_object(Bucket="import-bucket", Key="pinpoint/bw-action-1.csv")["Body"].read().decode()
    assert body.splitlines() == ["Id", "email-1", "sms-1", "push-2", "email-c"]


def test_join_handler_writes_nothing_for_a_segment_without_endpoints(s3: Any) -> None:
    s3.put_object(Bucket="data-bucket", Key="segments/s.csv", Body=b"UserId\nghost\n")
    put_export(s3, "exports/run-2/", [endpoint("e1", "someone")])
    result = join_handler.join_segment(
        {"SegmentBucket": "data-bucket", "SegmentKey": "segments/s.csv", "SegmentName": "empty",
         "ExportBucket": "import-bucket", "ExportPrefix": "exports/run-2/"},
        s3, import_bucket="import-bucket", import_prefix="pinpoint/", channels="",
    )  # fmt: skip
    assert result["ImportKey"] == ""
    assert result["EndpointCount"] == 0
    assert result["UsersWithoutEndpoints"] == 1
    assert "Contents" not in s3.list_objects_v2(Bucket="import-bucket", Prefix="pinpoint/")


def inspect(s3: Any, key: str, body: bytes | None = None, event_key: str | None = None) -> dict[str, Any]:
    """Upload `body` under `key` (unless None) and inspect the event's key."""
    version = None
    if body is not None:
        version = s3.put_object(Bucket="import-bucket", Key=key, Body=body)["VersionId"]
    event = {"Bucket": "import-bucket", "Key": event_key or key, "VersionId": version}
    result: dict[str, Any] = inspect_handler.inspect_file(event, s3, prefix="pinpoint/")
    return result


def test_demo_endpoints_file_registers_endpoints_as_segment_endpoints(s3: Any) -> None:
    result = inspect(
        s3, "pinpoint/endpoints.csv", (REPO / "data" / "pinpoint" / "endpoints.csv").read_bytes()
    )
    assert result == {
        "Accepted": True,
        "Key": "pinpoint/endpoints.csv",
        "SegmentName": "endpoints",
        "Format": "CSV",
        "RegisterEndpoints": True,
        "S3Url": "s3://import-bucket/pinpoint/endpoints.csv",
        "Reason": "",
    }


def test_id_only_file_references_existing_endpoints(s3: Any) -> None:
    result = inspect(s3, "pinpoint/bw-action-1.csv", b"Id\nemail-1\nsms-1\n")
    assert result["Accepted"] is True
    assert result["RegisterEndpoints"] is False
    assert result["SegmentName"] == "bw-action-1"


def test_json_lines_file_is_imported_as_json(s3: Any) -> None:
    body = b'{"ChannelType":"SMS","Address":"+12015550100","Id":"sms-9"}\n'
    result = inspect(s3, "pinpoint/new.jsonl", body)
    assert (result["Accepted"], result["Format"], result["RegisterEndpoints"]) == (True, "JSON", True)


def test_key_with_spaces_and_non_ascii_is_used_as_received(s3: Any) -> None:
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    key = event["detail"]["object"]["key"]
    result = inspect(s3, key, b"Id\ne1\n")
    assert result["Key"] == key
    assert result["SegmentName"] == "Action fans Müller"
    assert result["S3Url"] == f"s3://import-bucket/{key}"


def test_url_encoded_key_falls_back_to_the_decoded_key(s3: Any) -> None:
    # S3 notifications (not EventBridge) URL-encode keys; the inspector accepts both.
    result = inspect(s3, "pinpoint/a b+c.csv", b"Id\ne1\n", event_key="pinpoint/a+b%2Bc.csv")
    assert result["Key"] == "pinpoint/a b+c.csv"
    assert result["Accepted"] is True


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("pinpoint/segment.txt", b"Id\n1\n", "unsupported file type .txt"),
        ("pinpoint/README", b"hello", "unsupported file type (no extension)"),
        ("pinpoint/empty.csv", b"", "the file is empty"),
        ("pinpoint/odd.csv", b"Name,Email\nx,y\n", "no Id, User.UserId or ChannelType+Address column"),
        ("pinpoint/bad.json", b"[1,2]\n", "the first line is not a JSON object"),
    ],
)
def test_unimportable_files_are_rejected_with_a_reason(s3: Any, key: str, body: bytes, reason: str) -> None:
    result = inspect(s3, key, body)
    assert result["Accepted"] is False
    assert reason in result["Reason"]


def test_vanished_object_is_rejected(s3: Any) -> None:
    result = inspect(s3, "pinpoint/gone.csv", None)
    assert result["Accepted"] is False
    assert result["Reason"] == "the object no longer exists"


def test_long_names_are_cut_to_the_limit_and_stay_unique() -> None:
    a = import_file.segment_name("pinpoint/" + "x" * 100 + "a.csv", "pinpoint/")
    b = import_file.segment_name("pinpoint/" + "x" * 100 + "b.csv", "pinpoint/")
    assert len(a) == import_file.SEGMENT_NAME_LIMIT == len(b)
    assert a != b
    assert import_file.segment_name("pinpoint/team/q4.csv", "pinpoint/") == "team/q4"
