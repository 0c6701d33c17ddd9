"""The Customer Profiles Lambdas: upload file (moto S3), presigned PUT (local HTTP server), gate (Stubber)."""

from __future__ import annotations

import base64
import csv
import hashlib
import http.server
import io
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
import s3_streams
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from moto import mock_aws

from tests.helpers import EVENTS_ROOT, load_lambda

EVENTS = EVENTS_ROOT / "customer_profiles"
upload_file = load_lambda("destinations/customer_profiles/upload_file", "upload_file")
upload_file_handler = load_lambda("destinations/customer_profiles/upload_file", "handler")
presigned_put = load_lambda("destinations/customer_profiles/send", "presigned_put")
send_handler = load_lambda("destinations/customer_profiles/send", "handler")
gate_handler = load_lambda("destinations/customer_profiles/gate", "handler")

PROFILES_MODEL = botocore.session.get_session().get_service_model("customer-profiles")
STATE_PREFIX = "destinations/customer-profiles/"
SEGMENT_KEY = "segments/bingewatch/bingewatch-genres-20261128T101500/genres-action.csv"
FOLDER = f"{STATE_PREFIX}bingewatch/genres-action/"
COLUMNS = upload_file.ContactColumns()


def validate(operation: str, params: dict[str, Any]) -> None:
    """Fail when `params` do not fit the operation's input shape in botocore's customer-profiles model."""
    shape = PROFILES_MODEL.operation_model(operation).input_shape
    assert shape is not None
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()


# ---------------------------------------------------------------------------------------------------------
# Upload file: pure functions


def test_names_are_readable_valid_and_bounded() -> None:
    assert upload_file.segment_slug(SEGMENT_KEY) == "genres-action"
    name = upload_file.definition_name("bingewatch", "genres-action")
    assert name == "bingewatch-genres-action"
    assert upload_file.attribute_name(name) == "segment_bingewatch_genres_action"
    long_name = upload_file.definition_name("bingewatch", "-".join(["genres-comedy"] * 10))
    assert len(long_name) == 64
    assert long_name.startswith("bingewatch-genres-comedy-genres-comedy-")
    assert long_name != upload_file.definition_name("bingewatch", "-".join(["genres-comedy"] * 11))
    # Names are lowercase: a dataset group with capitals (or a foreign slug) is told apart by a hash.
    odd = upload_file.definition_name("DSG", "a b/ü")
    assert re.fullmatch(r"dsg-a-b-u--[0-9a-f]{10}", odd)
    assert odd != upload_file.definition_name("dsg", "a b/ü")


def test_definition_and_fields_fit_the_api_model() -> None:
    attribute = "segment_bingewatch_genres_action"
    groups = upload_file.segment_groups(attribute)
    validate(
        "CreateSegmentDefinition",
        {"DomainName": "d", "SegmentDefinitionName": "n", "DisplayName": "x", "SegmentGroups": groups},
    )
    dimension = groups["Groups"][0]["Dimensions"][0]["ProfileAttributes"]["Attributes"][attribute]
    assert dimension == {"DimensionType": "INCLUSIVE", "Values": ["true"]}
    for columns in (
        COLUMNS,
        upload_file.ContactColumns(phone="PHONE"),
        upload_file.ContactColumns(email="", phone="P"),
    ):
        fields = upload_file.fields_mapping(attribute, upload_file.header(columns))
        validate(
            "CreateUploadJob",
            {
                "DomainName": "d",
                "DisplayName": "x",
                "Fields": fields,
                "UniqueKey": "UserId",
                "DataExpiry": 14,
            },
        )
        # Every upload column is mapped, and nothing else.
        assert list(fields) == list(upload_file.header(columns))
    fields = upload_file.fields_mapping(attribute, upload_file.header(COLUMNS))
    assert fields["Member"]["Target"] == f"_profile.Attributes.{attribute}"
    assert fields["Email"] == {
        "Source": "_source.Email",
        "Target": "_profile.EmailAddress",
        "ContentType": "EMAIL_ADDRESS",
    }
    assert fields["UserId"]["Target"] == "_profile.AccountNumber"


def test_rows_mark_members_true_and_dropped_members_false() -> None:
    # GIVEN a segment of 1, "a,b", 3, 404 (no contact) and previous members 2 (contact) and 9 (contact gone)
    stats = upload_file.UploadStats()
    users = upload_file.read_segment(io.StringIO((EVENTS / "segment.csv").read_text()), stats)
    dropped = upload_file.dropped_members(["1", "2", "9"], users, stats)
    # WHEN the rows are built from the contact file
    rows = list(
        upload_file.upload_rows(
            users, dropped, io.StringIO((EVENTS / "users.csv").read_text()), COLUMNS, stats
        )
    )
    upload_file.count_users_without_contact(users, stats)
    # THEN members are true in contact-file order with their contact data, dropped members false with the key
    # alone (never a blank cell), users without contact counted
    with_email, flag_only = ("UserId", "Email", "Member"), ("UserId", "Member")
    assert rows == [
        (with_email, ("1", "success+1@simulator.amazonses.com", "true")),
        (with_email, ("3", "success+3@simulator.amazonses.com", "true")),
        (with_email, ("a,b", "success+ab@simulator.amazonses.com", "true")),
        (flag_only, ("2", "false")),
        (flag_only, ("9", "false")),
    ]
    assert (stats.members, stats.members_removed, stats.users_without_contact) == (3, 2, 1)
    assert stats.sample_users_without_contact == ["404"]
    assert stats.removed_without_contact == 1


def test_segment_header_and_contact_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="header"):
        upload_file.read_segment(io.StringIO("USER_ID\n1\n"), upload_file.UploadStats())
    with pytest.raises(ValueError, match="no column E_MAIL"):
        list(
            upload_file.upload_rows(
                {"1": False}, {}, io.StringIO("USER_ID,MAIL\n1,x\n"), COLUMNS, upload_file.UploadStats()
            )
        )


# ---------------------------------------------------------------------------------------------------------
# Upload file: handler against moto


@pytest.fixture
def s3() -> Iterator[Any]:
    """moto S3 with the data bucket holding the segment and the training users file."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        client.put_object(Bucket="data-bucket", Key=SEGMENT_KEY, Body=(EVENTS / "segment.csv").read_bytes())
        client.put_object(
            Bucket="data-bucket", Key="train/bingewatch/users.csv", Body=(EVENTS / "users.csv").read_bytes()
        )
        yield client


def build(s3: Any, run: str = "run-1", key: str = SEGMENT_KEY) -> dict[str, Any]:
    """Run the handler's build on the sample segment."""
    event = {
        "Bucket": "data-bucket",
        "Key": key,
        "SegmentName": "bingewatch-genres-action-genres-20261128T101500",
        "DatasetGroupName": "bingewatch",
        "Query": 'ITEMS.genres = "Action"',
        "RunId": run,
    }
    return upload_file_handler.build_upload(
        event, s3, state_prefix=STATE_PREFIX, contacts_key="train/{dataset_group}/users.csv", columns=COLUMNS
    )


def read(s3: Any, key: str) -> str:
    return str(s3.get_object(Bucket="data-bucket", Key=key)["Body"].read().decode())


def test_first_run_writes_the_upload_file_and_the_pending_members(s3: Any) -> None:
    result = build(s3)
    (upload,) = result["Files"]
    assert upload["Key"] == f"{FOLDER}runs/run-1/upload-email-1.csv"
    assert list(upload["Fields"]) == ["UserId", "Email", "Member"]
    assert upload["Rows"] == 3
    assert result["FileCount"] == 1
    assert result["RunFiles"] == [{"Key": upload["Key"]}, {"Key": result["PendingKey"]}]
    assert read(s3, upload["Key"]).splitlines() == [
        "UserId,Email,Member",
        "1,success+1@simulator.amazonses.com,true",
        "3,success+3@simulator.amazonses.com,true",
        '"a,b",success+ab@simulator.amazonses.com,true',
    ]
    assert read(s3, result["PendingKey"]).splitlines() == ["UserId", "1", "3", '"a,b"']
    assert result["MembersKey"] == f"{FOLDER}members.csv"
    assert (result["Members"], result["UsersWithoutContact"], result["MembersRemoved"]) == (3, 1, 0)
    assert result["SampleUsersWithoutContact"] == ["404"]
    assert result["UploadBytes"] == upload["Bytes"] == len(read(s3, upload["Key"]).encode())
    assert result["Definition"]["Name"] == "bingewatch-genres-action"
    assert result["Definition"]["DisplayName"] == 'bingewatch: ITEMS.genres = "Action"'
    validate(
        "CreateSegmentDefinition",
        {
            "DomainName": "d",
            "SegmentDefinitionName": result["Definition"]["Name"],
            "DisplayName": result["Definition"]["DisplayName"],
            "Description": result["Definition"]["Description"],
            "SegmentGroups": result["Definition"]["SegmentGroups"],
        },
    )


def test_second_run_sets_dropped_members_false(s3: Any) -> None:
    s3.put_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv", Body=b"UserId\n1\n2\n")
    result = build(s3, run="run-2")
    members, dropped = result["Files"]
    assert read(s3, dropped["Key"]).splitlines() == ["UserId,Member", "2,false"]
    assert list(dropped["Fields"]) == ["UserId", "Member"]  # a membership change touches nothing else
    assert dropped["Key"].endswith("/runs/run-2/upload-flag-1.csv")
    assert "1,success+1@simulator.amazonses.com,true" in read(s3, members["Key"]).splitlines()
    assert result["MembersRemoved"] == 1
    assert read(s3, result["PendingKey"]).splitlines() == ["UserId", "1", "3", '"a,b"']


def test_a_missing_contact_file_names_its_key_and_the_setting(s3: Any) -> None:
    s3.delete_object(Bucket="data-bucket", Key="train/bingewatch/users.csv")
    with pytest.raises(upload_file_handler.ContactFileMissingError) as raised:
        build(s3)
    assert str(raised.value) == (
        "the contact file s3://data-bucket/train/bingewatch/users.csv does not exist: upload it, or point "
        "the construct prop contacts_key (Lambda environment CONTACTS_KEY, now "
        "'train/{dataset_group}/users.csv') at the file of contact data"
    )
    assert "Contents" not in s3.list_objects_v2(Bucket="data-bucket", Prefix=STATE_PREFIX)


def test_segment_without_contacts_writes_nothing(s3: Any) -> None:
    s3.put_object(Bucket="data-bucket", Key=SEGMENT_KEY, Body=b"UserId\nghost-1\nghost-2\n")
    result = build(s3)
    assert (result["Members"], result["UserCount"], result["UsersWithoutContact"]) == (0, 2, 2)
    assert result["PendingKey"] == ""
    assert result["Files"] == result["RunFiles"] == []
    assert "Contents" not in s3.list_objects_v2(Bucket="data-bucket", Prefix=STATE_PREFIX)


def test_empty_segment_writes_nothing(s3: Any) -> None:
    s3.put_object(Bucket="data-bucket", Key=SEGMENT_KEY, Body=b"UserId\n")
    result = build(s3)
    assert (result["Members"], result["UserCount"]) == (0, 0)
    assert "Contents" not in s3.list_objects_v2(Bucket="data-bucket", Prefix=STATE_PREFIX)


def test_large_upload_file_goes_up_in_parts(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 5 MiB parts (S3's minimum) and a segment whose upload file spans several of them
    monkeypatch.setattr(s3_streams, "PART_SIZE", 5 * 1024 * 1024)
    users = 250_000
    s3.put_object(
        Bucket="data-bucket",
        Key=SEGMENT_KEY,
        Body=("UserId\n" + "".join(f"{i}\n" for i in range(users))).encode(),
    )
    contacts = "USER_ID,E_MAIL\n" + "".join(f"{i},user-{i}@example.com\n" for i in range(users))
    s3.put_object(Bucket="data-bucket", Key="train/bingewatch/users.csv", Body=contacts.encode())
    # WHEN the file is built
    result = build(s3)
    # THEN the object is whole (multipart completed) and its size is the one reported
    head = s3.head_object(Bucket="data-bucket", Key=result["Files"][0]["Key"])
    assert head["ContentLength"] == result["UploadBytes"] > 5 * 1024 * 1024
    assert result["Members"] == users


def test_no_upload_file_has_a_blank_mapped_cell(s3: Any) -> None:
    # GIVEN contacts with email and phone, email only, phone only, neither; a dropped member with both
    s3.put_object(Bucket="data-bucket", Key=SEGMENT_KEY, Body=b"UserId\nboth\nmail\nphone\nnone\n")
    s3.put_object(Bucket="data-bucket", Key=f"{FOLDER}members.csv", Body=b"UserId\nboth\ngone\n")
    contacts = (
        "USER_ID,E_MAIL,PHONE\n"
        "both,b@example.com,+4930123\nmail,m@example.com,\nphone, ,+4930456\nnone,,\ngone,g@example.com,+49\n"
    )
    s3.put_object(Bucket="data-bucket", Key="train/bingewatch/users.csv", Body=contacts.encode())
    # WHEN the upload files are built with an email and a phone column
    result = upload_file_handler.build_upload(
        {"Bucket": "data-bucket", "Key": SEGMENT_KEY, "DatasetGroupName": "bingewatch", "RunId": "r"},
        s3,
        state_prefix=STATE_PREFIX,
        contacts_key="train/{dataset_group}/users.csv",
        columns=upload_file.ContactColumns(phone="PHONE"),
    )
    # THEN each column set has its own file, whose Fields map exactly its header, and no cell is blank
    files = {f["Key"].rsplit("/", 1)[-1]: f for f in result["Files"]}
    assert list(files) == [
        "upload-email-phone-1.csv",
        "upload-email-1.csv",
        "upload-phone-1.csv",
        "upload-flag-1.csv",
    ]
    bodies = {name: list(csv.reader(io.StringIO(read(s3, f["Key"])))) for name, f in files.items()}
    assert bodies["upload-email-phone-1.csv"][1] == ["both", "b@example.com", "+4930123", "true"]
    assert bodies["upload-email-1.csv"][1] == ["mail", "m@example.com", "true"]
    assert bodies["upload-phone-1.csv"][1] == ["phone", "+4930456", "true"]
    assert bodies["upload-flag-1.csv"] == [["UserId", "Member"], ["gone", "false"]]
    for name, body in bodies.items():
        assert list(files[name]["Fields"]) == body[0]
        assert all(cell for row in body for cell in row), name
    assert result["FileCount"] == 4
    assert len(result["RunFiles"]) == 5


def test_an_upload_file_that_would_reach_the_limit_goes_on_in_a_new_part(s3: Any) -> None:
    # GIVEN a limit that holds the header and two rows of the sample
    event = {"Bucket": "data-bucket", "Key": SEGMENT_KEY, "DatasetGroupName": "bingewatch", "RunId": "r"}
    limit = len("UserId,Email,Member\r\n1,success+1@simulator.amazonses.com,true\r\n") * 2
    # WHEN the files are built
    result = upload_file_handler.build_upload(
        event,
        s3,
        state_prefix=STATE_PREFIX,
        contacts_key="train/{dataset_group}/users.csv",
        columns=COLUMNS,
        file_limit=limit,
    )
    # THEN every part stays under the limit, each starts with the header, and together they hold every row
    parts = result["Files"]
    assert [p["Key"].rsplit("/", 1)[-1] for p in parts] == ["upload-email-1.csv", "upload-email-2.csv"]
    rows = []
    for part in parts:
        body = read(s3, part["Key"])
        assert part["Bytes"] == len(body.encode()) < limit
        assert body.splitlines()[0] == "UserId,Email,Member"
        rows += body.splitlines()[1:]
    assert [r.rsplit(",", 2)[0] for r in rows] == ["1", "3", '"a,b"']
    assert sum(p["Rows"] for p in parts) == 3


def test_the_upload_file_limit_is_the_services_1_gb() -> None:
    assert upload_file.UPLOAD_FILE_LIMIT == 1_000_000_000


# ---------------------------------------------------------------------------------------------------------
# Presigned PUT against a local HTTP server


class Recorder(http.server.BaseHTTPRequestHandler):
    """Keeps each PUT's headers and body; answers with the status the test sets."""

    received: list[dict[str, Any]] = []  # noqa: RUF012 - per-test state, reset by the fixture
    status = 200
    error_body = b"<Error><Code>InvalidArgument</Code></Error>"

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        body = bytearray()
        reads = 0
        while len(body) < length:
            chunk = self.rfile.read(min(65536, length - len(body)))
            if not chunk:
                break
            body += chunk
            reads += 1
        Recorder.received.append(
            {"path": self.path, "headers": dict(self.headers), "body": bytes(body), "reads": reads}
        )
        self.send_response(Recorder.status)
        self.end_headers()
        if Recorder.status >= 300:
            self.wfile.write(Recorder.error_body)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 standing in for the presigned S3 URL."""
    Recorder.received = []
    Recorder.status = 200
    Recorder.error_body = b"<Error><Code>InvalidArgument</Code></Error>"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


CLIENT_KEY = bytes(range(32))
CLIENT_TOKEN = base64.b64encode(CLIENT_KEY).decode()


def test_sse_c_headers_follow_s3() -> None:
    headers = presigned_put.sse_c_headers(CLIENT_TOKEN)
    assert headers == {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": CLIENT_TOKEN,
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(
            hashlib.md5(CLIENT_KEY).digest()
        ).decode(),
    }


def test_put_streams_the_body_with_content_length_and_sse_c_headers(server: str) -> None:
    chunks = [b"UserId,Email,Member\n", b"1,a@example.com,true\n" * 1000, b"2,b@example.com,false\n"]
    length = sum(len(c) for c in chunks)
    status = presigned_put.put_stream(
        f"{server}/upload/job-1.csv?X-Amz-Signature=abc",
        iter(chunks),
        length,
        presigned_put.sse_c_headers(CLIENT_TOKEN),
    )
    assert status == 200
    (request,) = Recorder.received
    assert request["path"] == "/upload/job-1.csv?X-Amz-Signature=abc"
    assert request["body"] == b"".join(chunks)
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-length"] == str(length)
    assert "transfer-encoding" not in headers
    assert headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert headers["x-amz-server-side-encryption-customer-key"] == CLIENT_TOKEN
    assert (
        headers["x-amz-server-side-encryption-customer-key-md5"]
        == base64.b64encode(hashlib.md5(CLIENT_KEY).digest()).decode()
    )


def test_rejected_put_names_the_status_but_never_the_key(server: str) -> None:
    Recorder.status = 400
    with pytest.raises(presigned_put.UploadRejectedError) as raised:
        presigned_put.put_stream(f"{server}/u", iter([b"x"]), 1, presigned_put.sse_c_headers(CLIENT_TOKEN))
    assert "HTTP 400" in str(raised.value)
    assert "InvalidArgument" in str(raised.value)
    assert CLIENT_TOKEN not in str(raised.value)


def test_rejected_put_keeps_only_s3s_code_and_message(server: str) -> None:
    # GIVEN S3's error document for a bad SSE-C key, which echoes the key in ArgumentValue
    Recorder.status = 400
    Recorder.error_body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code>'
        "<Message>The secret key was invalid for the specified algorithm.</Message>"
        "<ArgumentName>x-amz-server-side-encryption-customer-key</ArgumentName>"
        f"<ArgumentValue>{CLIENT_TOKEN}</ArgumentValue><RequestId>R1</RequestId><HostId>H1</HostId></Error>"
    ).encode()
    # WHEN the PUT is rejected
    with pytest.raises(presigned_put.UploadRejectedError) as raised:
        presigned_put.put_stream(f"{server}/u", iter([b"x"]), 1, presigned_put.sse_c_headers(CLIENT_TOKEN))
    # THEN the error holds S3's code and message and nothing else of the body
    assert str(raised.value) == (
        "upload URL answered HTTP 400: InvalidArgument: "
        "The secret key was invalid for the specified algorithm."
    )


def test_a_key_echoed_in_s3s_message_is_redacted(server: str) -> None:
    Recorder.status = 400
    digest = presigned_put.sse_c_headers(CLIENT_TOKEN)["x-amz-server-side-encryption-customer-key-MD5"]
    Recorder.error_body = (
        f"<Error><Code>InvalidArgument</Code><Message>bad key {CLIENT_TOKEN} / {digest}</Message></Error>"
    ).encode()
    with pytest.raises(presigned_put.UploadRejectedError) as raised:
        presigned_put.put_stream(f"{server}/u", iter([b"x"]), 1, presigned_put.sse_c_headers(CLIENT_TOKEN))
    assert (
        str(raised.value) == "upload URL answered HTTP 400: InvalidArgument: bad key [redacted] / [redacted]"
    )


@pytest.mark.parametrize(
    "body",
    [
        f"<html>proxy error, request had {CLIENT_TOKEN}</html>".encode(),
        f"plain text {CLIENT_TOKEN}".encode(),
        b'<!DOCTYPE e [<!ENTITY a "aaaa">]><Error><Code>&a;</Code></Error>',
    ],
)
def test_a_body_that_is_no_s3_error_document_is_not_echoed(server: str, body: bytes) -> None:
    Recorder.status = 403
    Recorder.error_body = body
    with pytest.raises(presigned_put.UploadRejectedError) as raised:
        presigned_put.put_stream(f"{server}/u", iter([b"x"]), 1, presigned_put.sse_c_headers(CLIENT_TOKEN))
    assert str(raised.value) == "upload URL answered HTTP 403 (the body is no S3 error document)"


@pytest.mark.parametrize(
    "token",
    [base64.b64encode(bytes(16)).decode(), base64.b64encode(bytes(33)).decode(), "not base64!", ""],
)
def test_sse_c_headers_refuse_a_key_that_is_not_256_bits(token: str) -> None:
    with pytest.raises(ValueError, match="not the base64 of a 256-bit key") as raised:
        presigned_put.sse_c_headers(token)
    if token:
        assert token not in str(raised.value)


def test_short_body_is_refused(server: str) -> None:
    with pytest.raises(ValueError, match="ended after 1 of 5 bytes"):
        presigned_put.put_stream(f"{server}/u", iter([b"x"]), 5, presigned_put.sse_c_headers(CLIENT_TOKEN))


def test_send_streams_the_s3_object_to_the_job_path(s3: Any, server: str) -> None:
    # GIVEN an upload file in S3 and GetUploadJobPath answering with the local URL
    body = b"UserId,Email,Member\n" + b"".join(b"%d,u%d@example.com,true\n" % (i, i) for i in range(50_000))
    s3.put_object(Bucket="data-bucket", Key=f"{FOLDER}runs/r/upload.csv", Body=body)
    profiles = boto3.client("customer-profiles", region_name="us-east-1")
    stubber = Stubber(profiles)
    stubber.add_response(
        "get_upload_job_path",
        {
            "Url": f"{server}/job",
            "ClientToken": CLIENT_TOKEN,
            "ValidUntil": datetime(2026, 11, 28, tzinfo=UTC),
        },
        {"DomainName": "amazon-connect-d", "JobId": "0123456789abcdef0123456789abcdef"},
    )
    event = {
        "DomainName": "amazon-connect-d",
        "JobId": "0123456789abcdef0123456789abcdef",
        "Bucket": "data-bucket",
        "Key": f"{FOLDER}runs/r/upload.csv",
    }
    # WHEN the send Lambda runs
    with stubber:
        result = send_handler.send_upload_file(event, s3, profiles)
    # THEN the whole object went up in 1 MiB chunks, and the result carries no key or URL
    stubber.assert_no_pending_responses()
    assert result == {"Bytes": len(body), "HttpStatus": 200}
    assert Recorder.received[0]["body"] == body
    assert Recorder.received[0]["reads"] > 1


# ---------------------------------------------------------------------------------------------------------
# Gate


MACHINE = "arn:aws:states:eu-central-1:123456789012:stateMachine:Upload"


def execution(name: str, minute: int) -> dict[str, Any]:
    return {
        "executionArn": f"arn:aws:states:eu-central-1:123456789012:execution:Upload:{name}",
        "stateMachineArn": MACHINE,
        "name": name,
        "status": "RUNNING",
        "startDate": datetime(2026, 11, 28, 10, minute, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("mine", "proceed", "ahead"),
    [("e1", True, 0), ("e2", True, 1), ("e3", False, 2), ("e4", False, 3)],
)
def test_gate_gives_slots_in_start_order(mine: str, proceed: bool, ahead: int) -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-central-1")
    stubber = Stubber(sfn)
    running = [execution(f"e{i}", i) for i in (4, 3, 2, 1)]  # newest first, as ListExecutions answers
    stubber.add_response(
        "list_executions",
        {"executions": running[:2], "nextToken": "t"},
        {"stateMachineArn": MACHINE, "statusFilter": "RUNNING"},
    )
    stubber.add_response(
        "list_executions",
        {"executions": running[2:]},
        {"stateMachineArn": MACHINE, "statusFilter": "RUNNING", "nextToken": "t"},
    )
    minute = int(mine[1:])
    event = {
        "StateMachineArn": MACHINE,
        "ExecutionArn": execution(mine, minute)["executionArn"],
        "StartTime": f"2026-11-28T10:{minute:02d}:00.000Z",
        "Limit": 2,
    }
    with stubber:
        assert gate_handler.decide(event, sfn) == {"Proceed": proceed, "Ahead": ahead}
