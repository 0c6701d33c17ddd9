"""The Customer Profiles destination's run files carry the expiry tag the data bucket's lifecycle acts on;
the member list the next run needs never does (moto S3, the workflow run locally)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.contracts.layout import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE
from contextual_targeting.local import Outbox, TaskCall
from tests.destinations.customer_profiles.test_lambdas import COLUMNS, STATE_PREFIX, upload_file_handler
from tests.destinations.customer_profiles.test_workflow import (
    FOLDER,
    definition,
    run,
    s3_client,
    template,
)

__all__ = ["definition", "s3_client", "template"]  # fixtures

pytestmark = pytest.mark.slow

TAG = {"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}


def _tags(client: Any, key: str) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = client.get_object_tagging(Bucket="data-bucket", Key=key)["TagSet"]
    return tags


def tagged_upload_file(client: Any, seen: dict[str, list[dict[str, str]]]) -> Callable[[TaskCall], Any]:
    """The upload-file Lambda's code as deployed (EXPIRY_TAG set), noting the tags of what it wrote."""

    def build(call: TaskCall) -> Any:
        result = upload_file_handler.build_upload(
            call.parameters,
            client,
            state_prefix=STATE_PREFIX,
            contacts_key="train/{dataset_group}/users.csv",
            columns=COLUMNS,
            tagging=f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}",
        )
        for upload in result["Files"]:
            seen[upload["Key"].rsplit("/", 1)[-1]] = _tags(client, upload["Key"])
        seen["PendingKey"] = _tags(client, result["PendingKey"])
        return result

    return build


def test_run_files_expire_and_the_member_list_does_not(definition: dict[str, Any], s3_client: Any) -> None:
    # GIVEN the upload-file Lambda as deployed, tagging what it writes for one run
    seen: dict[str, list[dict[str, str]]] = {}
    # WHEN a segment goes through the workflow
    handlers: dict[str, Any] = {"Write the upload file": tagged_upload_file(s3_client, seen)}
    execution = run(definition, s3_client, Outbox(CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE), **handlers)
    # THEN both run files carried the expiry tag, and the member list copied from one of them does not
    assert execution.status == "SUCCEEDED", execution.summary()
    assert seen == {"upload-email-1.csv": [TAG], "PendingKey": [TAG]}
    (copy,) = execution.calls_to("aws-sdk:s3:copyObject")
    assert copy.parameters["TaggingDirective"] == "REPLACE"
    assert _tags(s3_client, f"{FOLDER}members.csv") == []


def test_large_run_files_are_tagged_too(s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 5 MiB parts, so the upload file goes up as a multipart upload
    import s3_streams

    monkeypatch.setattr(s3_streams, "PART_SIZE", 5 * 1024 * 1024)
    users = 200_000
    key = "segments/bingewatch/bingewatch-genres-20261128T101500/genres-action.csv"
    s3_client.put_object(
        Bucket="data-bucket", Key=key, Body=("UserId\n" + "".join(f"{i}\n" for i in range(users))).encode()
    )
    contacts = "USER_ID,E_MAIL\n" + "".join(f"{i},user-{i}@example.com\n" for i in range(users))
    s3_client.put_object(Bucket="data-bucket", Key="train/bingewatch/users.csv", Body=contacts.encode())
    # WHEN the file is built with the tag
    result = upload_file_handler.build_upload(
        {"Bucket": "data-bucket", "Key": key, "DatasetGroupName": "bingewatch", "RunId": "r", "Query": "q"},
        s3_client,
        state_prefix=STATE_PREFIX,
        contacts_key="train/{dataset_group}/users.csv",
        columns=COLUMNS,
        tagging=f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}",
    )
    # THEN the multipart object carries it as well
    assert result["UploadBytes"] > 5 * 1024 * 1024
    assert _tags(s3_client, result["Files"][0]["Key"]) == [TAG]


def test_the_deployed_function_is_told_the_tag(template: Any) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    (upload,) = [
        f
        for f in functions.values()
        if "STATE_PREFIX" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert (
        upload["Properties"]["Environment"]["Variables"]["EXPIRY_TAG"]
        == f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}"
    )
