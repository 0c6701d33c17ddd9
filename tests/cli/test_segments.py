"""`contextual-targeting segments`: manifests in moto S3, Pinpoint runs scripted."""

from __future__ import annotations

import json

import pytest

from contextual_targeting.cli import stack_outputs as keys
from tests.cli.support import (
    BUCKET,
    EVENTS,
    IMPORT,
    PREPARE,
    TRAINING,
    Clock,
    FakeExecution,
    FakeStepFunctions,
    aws,
    clock,
    create_buckets,
    deploy_stack,
    exec_arn,
    invoke,
    use_clients,
)

__all__ = ["aws", "clock"]  # fixtures

MANIFEST = json.loads((EVENTS / "manifest.json").read_text())
ACTION = MANIFEST["Segments"][0]["SegmentName"]
COMEDY = MANIFEST["Segments"][1]["SegmentName"]


def put_manifests() -> None:
    s3 = create_buckets(BUCKET)
    s3.put_object(
        Bucket=BUCKET,
        Key=f"segments/bingewatch/{MANIFEST['JobName']}/manifest.json",
        Body=json.dumps(MANIFEST),
    )
    other = dict(
        MANIFEST, DatasetGroupName="shop", JobName="shop-colors-1", Segments=MANIFEST["Segments"][:1]
    )
    s3.put_object(Bucket=BUCKET, Key="segments/shop/shop-colors-1/manifest.json", Body=json.dumps(other))
    # A segment file is not a manifest.
    s3.put_object(Bucket=BUCKET, Key="segments/shop/shop-colors-1/genres-action.csv", Body=b"USER_ID\n1\n")


def test_segments_lists_every_query_of_every_manifest_as_json(aws: None, clock: Clock) -> None:
    put_manifests()
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET, keys.TRAINING_STATE_MACHINE: TRAINING})

    result = invoke("segments", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["dataset_group"], r["status"], r["users"]) for r in rows] == [
        ("bingewatch", "READY", 50),
        ("bingewatch", "READY", 48),
        ("bingewatch", "EMPTY", 0),
        ("shop", "READY", 50),
    ]
    assert rows[0]["query"] == 'ITEMS.genres = "Action"'
    assert rows[0]["segment"] == ACTION
    assert rows[0]["file"] == MANIFEST["Segments"][0]["SegmentUri"]
    assert rows[2]["error"] == "line 3: the query matched no users"
    assert rows[0]["import_status"] is None


def test_segments_table_and_dataset_group_filter(aws: None, clock: Clock) -> None:
    put_manifests()
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET})

    result = invoke("segments", "--dataset-group", "shop")

    assert result.exit_code == 0, result.output
    assert "Segments" in result.output
    assert "shop" in result.output
    assert "bingewatch" not in result.output


def test_segments_show_pinpoint_endpoints_and_import_status(
    aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN segments whose Pinpoint runs: Action imported, Comedy prepared but its import failed
    put_manifests()
    deploy_stack(
        {
            keys.PERSONALIZE_BUCKET: BUCKET,
            keys.PINPOINT_PREPARE_STATE_MACHINE: PREPARE,
            keys.PINPOINT_IMPORT_STATE_MACHINE: IMPORT,
        }
    )
    sfn = FakeStepFunctions()
    for number, (name, imported) in enumerate(((ACTION, "COMPLETED"), (COMEDY, None))):
        key = f"pinpoint/{name}.csv"
        sfn.add(
            FakeExecution(
                arn=exec_arn("PinpointPrepare", f"p{number}"),
                machine=PREPARE,
                status="SUCCEEDED",
                start=10,
                stop=20,
                input={"detail": {"SegmentName": name}},
                output={"Status": "PREPARED", "SegmentName": name, "Key": key, "EndpointCount": 70 + number},
            )
        )
        sfn.add(
            FakeExecution(
                arn=exec_arn("PinpointImport", f"i{number}"),
                machine=IMPORT,
                status="SUCCEEDED" if imported else "FAILED",
                start=30,
                stop=40,
                input={"Source": {"Bucket": "import-bucket", "Key": key, "VersionId": "v1"}},
                output={"Status": imported, "SegmentName": name} if imported else None,
            )
        )
    use_clients(monkeypatch, stepfunctions=sfn)

    result = invoke("segments", "--json")

    assert result.exit_code == 0, result.output
    by_segment = {(r["dataset_group"], r["segment"]): r for r in json.loads(result.output)}
    assert (
        by_segment["bingewatch", ACTION]["endpoints"],
        by_segment["bingewatch", ACTION]["import_status"],
    ) == (
        70,
        "COMPLETED",
    )
    assert (
        by_segment["bingewatch", COMEDY]["endpoints"],
        by_segment["bingewatch", COMEDY]["import_status"],
    ) == (
        71,
        "FAILED",
    )


def test_no_segments_yet(aws: None, clock: Clock) -> None:
    create_buckets(BUCKET)
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET})

    result = invoke("segments")

    assert result.exit_code == 0
    assert "no segments yet" in result.output
