"""Customer Profiles send Lambda: GetUploadJobPath without its ClientToken (optional in the model)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.helpers import load_lambda

send_handler = load_lambda("destinations/customer_profiles/send", "handler")
JOB_ID = "0123456789abcdef0123456789abcdef"
EVENT = {
    "DomainName": "amazon-connect-d",
    "JobId": JOB_ID,
    "Bucket": "data-bucket",
    "Key": "runs/r/upload.csv",
}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        client.put_object(Bucket="data-bucket", Key=EVENT["Key"], Body=b"UserId,Email,Member\n1,a@b.c,true\n")
        yield client


def test_the_client_token_is_optional_in_the_api_model() -> None:
    output = botocore.session.get_session().get_service_model("customer-profiles")
    shape = output.operation_model("GetUploadJobPath").output_shape
    assert "ClientToken" in shape.members
    assert "ClientToken" not in shape.required_members


def test_an_upload_path_without_client_token_fails_saying_so(s3: Any) -> None:
    # GIVEN GetUploadJobPath answers with a URL (a port nothing listens on: no PUT may happen), no ClientToken
    profiles = boto3.client("customer-profiles", region_name="us-east-1")
    stubber = Stubber(profiles)
    stubber.add_response(
        "get_upload_job_path",
        {"Url": "http://127.0.0.1:9/job", "ValidUntil": datetime(2026, 11, 28, tzinfo=UTC)},
        {"DomainName": EVENT["DomainName"], "JobId": JOB_ID},
    )
    # WHEN the send Lambda runs
    with stubber, pytest.raises(send_handler.NoClientTokenError) as raised:
        send_handler.send_upload_file(dict(EVENT), s3, profiles)
    # THEN it fails with an error that names the job and the missing token, before any upload
    assert f"no ClientToken for upload job {JOB_ID} in domain amazon-connect-d" in str(raised.value)
    stubber.assert_no_pending_responses()
