"""`contextual-targeting demo`: the default stack's workflows end to end on the shipped data and on broken
data, without AWS credentials and without any connection leaving this machine."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from typer.testing import CliRunner

from contextual_targeting.cli import demo as cli_demo
from contextual_targeting.cli import main
from contextual_targeting.contracts.events import (
    CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE,
    SEGMENT_READY,
    TRAINING_RUN_STATE_CHANGE,
)
from contextual_targeting.local.demo import run_demo
from contextual_targeting.local.demo_output import OUTPUT_MARKER, DemoError, check_output
from contextual_targeting.local.synth import SynthesizedStack, asset_sources
from contextual_targeting.stack import ContextualTargetingStack
from tests.helpers import REPO

pytestmark = pytest.mark.slow

JOB = "bingewatch-genres-20260101T090000"
SEGMENTS = f"segments/bingewatch/{JOB}"
JOB_OUTPUT = f"batch/bingewatch/bw_aws-item-attribute-affinity/{JOB}/job_config.json.out"
QUERIES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


@pytest.fixture(scope="module")
def synthesized(stack: ContextualTargetingStack, template: Template) -> SynthesizedStack:
    """The session's default stack, as the command would synthesize it."""
    return SynthesizedStack(template=dict(template.to_json()), code=asset_sources(stack))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, synthesized: SynthesizedStack) -> None:
    """No credentials, a profile that does not exist, and no connection anywhere but 127.0.0.1."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    connect = socket.socket.connect

    def local_only(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"the demo tried to connect to {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(cli_demo, "synthesized_default_stack", lambda: synthesized)


def demo(*args: str) -> Any:
    return CliRunner().invoke(main.app, ["demo", *args], catch_exceptions=False)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_demo_runs_every_workflow_on_the_shipped_data(offline: None, tmp_path: Path) -> None:
    # GIVEN the repository's demo data and no AWS at all
    out = tmp_path / "demo-output"
    # WHEN the command runs
    result = demo("--data", str(REPO / "data"), "--out", str(out))
    # THEN every workflow succeeded and the table lists each query with its segment and counts
    assert result.exit_code == 0, result.output
    for workflow in ("Training config trigger dispatch", "Training workflow", "Segment postprocessor"):
        assert workflow in result.output
    assert result.output.count("Customer profiles upload workflow") == len(QUERIES)
    assert "Demo segments" in result.output
    assert "local Personalize stand-in" in result.output
    for genre in QUERIES:
        assert f'"{genre}"' in result.output

    # The segment files and manifest sit at the keys the deployed pipeline writes, and hold the users the
    # Personalize stand-in ranked, in its order.
    manifest = json.loads((out / SEGMENTS / "manifest.json").read_text())
    assert manifest["SegmentCount"] == len(QUERIES)
    ranked = [json.loads(line) for line in (out / JOB_OUTPUT).read_text().splitlines()]
    assert [line["error"] for line in ranked] == [None] * len(QUERIES)
    for entry, line in zip(manifest["Segments"], ranked, strict=True):
        assert entry["Status"] == "READY"
        assert entry["Key"].startswith(f"{SEGMENTS}/")
        rows = list(csv.reader((out / entry["Key"]).read_text().splitlines()))
        assert rows[0] == ["UserId"]
        assert [r[0] for r in rows[1:]] == line["output"]["usersList"]
        assert len(rows) - 1 == entry["UserCount"] == 50

    # The events each workflow put on the bus, and the emails.
    events = jsonl(out / "events.jsonl")
    kinds = [e["detail-type"] for e in events]
    assert kinds.count(SEGMENT_READY) == len(QUERIES)
    assert [e["detail"]["Status"] for e in events if e["detail-type"] == TRAINING_RUN_STATE_CHANGE] == [
        "SUCCEEDED"
    ]
    uploads = [e["detail"] for e in events if e["detail-type"] == CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE]
    assert [u["Status"] for u in uploads] == ["SUCCEEDED"] * len(QUERIES)
    assert all(u["UsersWithoutContact"] == 0 and u["ProfilesUploaded"] == 50 for u in uploads)
    emails = jsonl(out / "emails.jsonl")
    assert emails[0]["subject"] == "Contextual targeting: training run succeeded"
    assert len(emails) == 1 + 1 + len(QUERIES)

    # Each Customer Profiles segment holds the segment's users, with their email addresses.
    for upload in uploads:
        name = upload["SegmentDefinitionName"]
        members = list(csv.DictReader((out / "customer-profiles" / f"{name}.csv").read_text().splitlines()))
        segment = next(s for s in manifest["Segments"] if s["SegmentName"] == upload["SegmentName"])
        users = [r[0] for r in csv.reader((out / segment["Key"]).read_text().splitlines()[1:])]
        assert sorted(m["UserId"] for m in members) == sorted(users)
        assert all(m["Email"] == f"success+{m['UserId']}@simulator.amazonses.com" for m in members)

    # One trace per execution, on the virtual clock: training took its typical durations.
    traces = sorted((out / "traces").glob("*.json"))
    assert len(traces) == 3 + len(QUERIES)
    training = json.loads(traces[1].read_text())
    assert training["workflow"] == "Training workflow"
    assert training["virtualSeconds"] > 3600 + 1200
    assert training["states"][0]["state"] == "Start the training run"
    waits = [s for s in training["states"] if s["type"] == "Wait"]
    assert sum(s["seconds"] for s in waits) > 3600
    assert "Personalize" in " ".join(training["standIns"])

    readme = (out / "README.md").read_text()
    assert readme.startswith(OUTPUT_MARKER)
    assert "not by a trained model" in readme
    summary = json.loads((out / "summary.json").read_text())
    assert [s["Query"] for s in summary["Segments"]] == [f'ITEMS.genres = "{g}"' for g in QUERIES]
    assert "stand-in" in summary["StandIns"]["Amazon Personalize"]


def test_broken_data_gets_the_validators_message_and_nothing_is_written(
    offline: None, tmp_path: Path
) -> None:
    # GIVEN a data folder whose interactions file names its time column differently from the schema
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "personalize", data / "personalize")
    interactions = data / "personalize" / "train" / "bingewatch" / "interactions.csv"
    lines = interactions.read_text().split("\n")
    interactions.write_text("\n".join([lines[0].replace("TIMESTAMP", "WHEN"), *lines[1:]]))
    out = tmp_path / "demo-output"
    # WHEN the demo runs on it
    result = demo("--data", str(data), "--out", str(out))
    # THEN it stops with the deployed validator's message, and writes nothing
    assert result.exit_code == 1
    assert (
        "InvalidConfig: The training config train/bingewatch/bingewatch_config.json is invalid"
        in result.output
    )
    assert "schema fields missing from the CSV header: TIMESTAMP" in result.output
    assert "CSV columns not in the schema: WHEN" in result.output
    assert "nothing written" in result.output
    assert not out.exists()


def test_rows_personalize_would_refuse_fail_the_import_with_the_stand_ins_reason(
    offline: None, synthesized: SynthesizedStack, tmp_path: Path
) -> None:
    # GIVEN a rating that is not a number (the header is fine, so the validator lets it through)
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "personalize", data / "personalize")
    interactions = data / "personalize" / "train" / "bingewatch" / "interactions.csv"
    lines = interactions.read_text().split("\n")
    fields = lines[3].split(",")
    fields[2] = "lots"
    lines[3] = ",".join(fields)
    interactions.write_text("\n".join(lines))
    # WHEN the demo runs
    result = run_demo(synthesized, data, tmp_path / "out")
    # THEN the dataset import fails as Personalize's would, naming the row, and nothing is written
    assert not result.succeeded
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert "DatasetImportJobFailed" in failure
    assert "local stand-in for Amazon Personalize" in failure
    assert "train/bingewatch/interactions.csv:4: EVENT_VALUE 'lots' is not float" in failure
    assert not (tmp_path / "out").exists()


def test_the_demo_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not a demo output folder"):
        check_output(mine)
    earlier = tmp_path / "demo-output"
    earlier.mkdir()
    (earlier / "README.md").write_text(f"{OUTPUT_MARKER}\n")
    check_output(earlier)
    check_output(tmp_path / "absent")


def test_a_folder_without_a_training_config_is_one_line(offline: None, tmp_path: Path) -> None:
    (tmp_path / "personalize" / "train").mkdir(parents=True)
    result = demo("--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "no training config at train/<dataset-group>/<name>_config.json" in result.output
