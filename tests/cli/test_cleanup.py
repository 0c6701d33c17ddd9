"""`contextual-targeting cleanup`: Personalize through botocore's Stubber (moto has almost no Personalize),
so the stubbed call sequence is the dependency order; S3 purge against moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from contextual_targeting.cli import stack_outputs as keys
from tests.cli.support import (
    ACCOUNT,
    BUCKET,
    REGION,
    Clock,
    aws,
    clock,
    create_buckets,
    deploy_stack,
    invoke,
    use_clients,
)

__all__ = ["aws", "clock"]  # fixtures

ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}"
GROUP = f"{ARN}:dataset-group/bingewatch"
SOLUTION = f"{ARN}:solution/bw_aws-item-attribute-affinity"
VERSION = f"{SOLUTION}/abc123"
TRAINING_VERSION = f"{SOLUTION}/def456"
FILTER = f"{ARN}:filter/no-horror"
DATASETS = {
    "INTERACTIONS": (
        f"{ARN}:dataset/bingewatch/INTERACTIONS",
        f"{ARN}:schema/bingewatch-interactions-schema",
    ),
    "ITEMS": (f"{ARN}:dataset/bingewatch/ITEMS", f"{ARN}:schema/bingewatch-items-schema"),
}


def not_found(stub: Stubber, operation: str, **params: Any) -> None:
    stub.add_client_error(operation, "ResourceNotFoundException", "gone", expected_params=params)


def inventory(stub: Stubber, *, job_status: str = "ACTIVE", version_status: str = "ACTIVE") -> None:
    """The List/Describe calls of the plan, in the order cleanup makes them."""
    stub.add_response(
        "list_dataset_groups",
        {
            "datasetGroups": [
                {"name": "other", "datasetGroupArn": f"{ARN}:dataset-group/other"},
                {"name": "bingewatch", "datasetGroupArn": GROUP},
            ]
        },
        {},
    )
    stub.add_response(
        "list_solutions",
        {
            "solutions": [
                {"name": "bw_aws-item-attribute-affinity", "solutionArn": SOLUTION, "status": "ACTIVE"}
            ]
        },
        {"datasetGroupArn": GROUP},
    )
    stub.add_response(
        "list_solution_versions",
        {"solutionVersions": [{"solutionVersionArn": VERSION, "status": version_status}]},
        {"solutionArn": SOLUTION},
    )
    stub.add_response(
        "list_batch_segment_jobs",
        {
            "batchSegmentJobs": [
                {"batchSegmentJobArn": f"{ARN}:batch-segment-job/j1", "jobName": "j1", "status": job_status}
            ]
        },
        {"solutionVersionArn": VERSION},
    )
    stub.add_response("list_campaigns", {"campaigns": []}, {"solutionArn": SOLUTION})
    stub.add_response("list_recommenders", {"recommenders": []}, {"datasetGroupArn": GROUP})
    stub.add_response("list_event_trackers", {"eventTrackers": []}, {"datasetGroupArn": GROUP})
    stub.add_response("list_metric_attributions", {"metricAttributions": []}, {"datasetGroupArn": GROUP})
    stub.add_response(
        "list_filters", {"Filters": [{"name": "no-horror", "filterArn": FILTER}]}, {"datasetGroupArn": GROUP}
    )
    stub.add_response(
        "list_datasets",
        {
            "datasets": [
                {"name": f"bingewatch-{t.lower()}", "datasetArn": a} for t, (a, _) in DATASETS.items()
            ]
        },
        {"datasetGroupArn": GROUP},
    )
    for dataset_arn, schema_arn in DATASETS.values():
        stub.add_response("list_dataset_import_jobs", {"datasetImportJobs": []}, {"datasetArn": dataset_arn})
        stub.add_response(
            "describe_dataset", {"dataset": {"schemaArn": schema_arn}}, {"datasetArn": dataset_arn}
        )


def deletions(stub: Stubber) -> None:
    """Filter, solution, datasets, dataset group (each waited for), then the schemas."""
    stub.add_response("delete_filter", {}, {"filterArn": FILTER})
    stub.add_response("describe_filter", {"filter": {"status": "DELETE PENDING"}}, {"filterArn": FILTER})
    not_found(stub, "describe_filter", filterArn=FILTER)
    stub.add_response("delete_solution", {}, {"solutionArn": SOLUTION})
    not_found(stub, "describe_solution", solutionArn=SOLUTION)
    for dataset_arn, _ in DATASETS.values():
        stub.add_response("delete_dataset", {}, {"datasetArn": dataset_arn})
        not_found(stub, "describe_dataset", datasetArn=dataset_arn)
    stub.add_response("delete_dataset_group", {}, {"datasetGroupArn": GROUP})
    stub.add_response(
        "describe_dataset_group", {"datasetGroup": {"status": "DELETE PENDING"}}, {"datasetGroupArn": GROUP}
    )
    stub.add_response(
        "describe_dataset_group", {"datasetGroup": {"status": "DELETE PENDING"}}, {"datasetGroupArn": GROUP}
    )
    not_found(stub, "describe_dataset_group", datasetGroupArn=GROUP)
    interactions_schema, items_schema = (s for _, s in DATASETS.values())
    stub.add_response("delete_schema", {}, {"schemaArn": interactions_schema})
    stub.add_client_error(
        "delete_schema", "ResourceInUseException", "in use", expected_params={"schemaArn": items_schema}
    )


@pytest.fixture
def personalize(aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """A stubbed Personalize client given to the command; every stubbed call must be made."""
    create_buckets(BUCKET)
    deploy_stack({keys.PERSONALIZE_BUCKET: BUCKET})
    client = boto3.client("personalize", region_name=REGION)
    use_clients(monkeypatch, personalize=client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_cleanup_deletes_in_dependency_order_and_waits_for_each(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize)
    deletions(personalize)

    result = invoke("cleanup", "bingewatch", "--yes")

    assert result.exit_code == 0, result.output
    assert "kept schema bingewatch-items-schema: another dataset uses it" in result.output
    assert "dataset group bingewatch cleaned up" in result.output
    assert clock.sleeps == [10.0, 10.0, 10.0]  # one for the filter, two for the dataset group


def test_cleanup_asks_first_and_a_no_deletes_nothing(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize)

    result = CliRunnerWithInput("n\n").invoke("cleanup", "bingewatch")

    assert result.exit_code == 1
    assert "Delete these resources?" in result.output
    assert "delete solution bw_aws-item-attribute-affinity" in result.output
    assert "error: cancelled: nothing deleted" in result.output


def test_cleanup_asks_first_and_a_yes_deletes(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize)
    deletions(personalize)

    result = CliRunnerWithInput("y\n").invoke("cleanup", "bingewatch")

    assert result.exit_code == 0, result.output


def test_dry_run_lists_the_plan_in_order_and_deletes_nothing(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize)

    result = invoke("cleanup", "bingewatch", "--dry-run", "--purge-data")

    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()[1:]]
    assert [line.split(" (")[0] for line in lines] == [
        "delete filter no-horror",
        "delete solution bw_aws-item-attribute-affinity",
        "delete dataset bingewatch-interactions",
        "delete dataset bingewatch-items",
        "delete dataset group bingewatch",
        "delete schema bingewatch-interactions-schema unless another dataset uses it",
        "delete schema bingewatch-items-schema unless another dataset uses it",
        f"delete every object version under s3://{BUCKET}/train/bingewatch/",
        f"delete every object version under s3://{BUCKET}/batch/bingewatch/",
        f"delete every object version under s3://{BUCKET}/segments/bingewatch/",
    ]


def test_a_running_batch_segment_job_blocks_cleanup(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize, job_status="CREATE IN_PROGRESS")

    result = invoke("cleanup", "bingewatch", "--yes")

    assert result.exit_code == 1
    assert "blocked: batch segment job j1 is CREATE IN_PROGRESS (Personalize cannot stop it)" in result.output


def test_a_training_solution_version_is_stopped_first(personalize: Stubber, clock: Clock) -> None:
    inventory(personalize, version_status="CREATE IN_PROGRESS")
    personalize.add_response("stop_solution_version_creation", {}, {"solutionVersionArn": VERSION})
    personalize.add_response(
        "describe_solution_version",
        {"solutionVersion": {"status": "CREATE STOPPING"}},
        {"solutionVersionArn": VERSION},
    )
    personalize.add_response(
        "describe_solution_version",
        {"solutionVersion": {"status": "CREATE STOPPED"}},
        {"solutionVersionArn": VERSION},
    )
    deletions(personalize)

    result = invoke("cleanup", "bingewatch", "--yes")

    assert result.exit_code == 0, result.output
    assert "stopping training abc123" in result.output


def test_purge_data_deletes_every_version_under_the_groups_prefixes_only(
    personalize: Stubber, clock: Clock
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for key in (
        "train/bingewatch/users.csv",
        "train/bingewatch/users.csv",
        "segments/bingewatch/j/a.csv",
        "train/shop/users.csv",
    ):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    inventory(personalize)
    deletions(personalize)

    result = invoke("cleanup", "bingewatch", "--yes", "--purge-data")

    assert result.exit_code == 0, result.output
    assert f"deleted 2 object version(s) under s3://{BUCKET}/train/bingewatch/" in result.output
    left = s3.list_object_versions(Bucket=BUCKET)
    assert [v["Key"] for v in left.get("Versions", [])] == ["train/shop/users.csv"]


def test_an_unknown_dataset_group_is_one_line(personalize: Stubber, clock: Clock) -> None:
    personalize.add_response("list_dataset_groups", {"datasetGroups": []}, {})

    result = invoke("cleanup", "nope", "--yes")

    assert result.exit_code == 1
    assert result.output.strip() == "error: dataset group nope not found in this account and region"


class CliRunnerWithInput:
    """The command with answers on standard input (the confirmation prompt)."""

    def __init__(self, answers: str) -> None:
        self.answers = answers

    def invoke(self, *args: str) -> Any:
        from typer.testing import CliRunner

        from contextual_targeting.cli import main

        return CliRunner().invoke(main.app, list(args), input=self.answers, catch_exceptions=False)
