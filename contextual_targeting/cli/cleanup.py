"""`cleanup`: delete a dataset group's Personalize resources in dependency order, waiting for each.

Personalize has no cascading delete: a solution goes only when its campaigns are gone and no version is
training, a dataset only when no import job runs, the dataset group only when it is empty. Batch segment and
import jobs cannot be stopped or deleted (the API has no such call), so a running one makes cleanup refuse;
solution versions go with their solution, and a training one is stopped first (StopSolutionVersionCreation).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from contextual_targeting.cli.stack_outputs import CliError
from contextual_targeting.contracts.layout import BATCH_PREFIX, SEGMENTS_PREFIX, TRAIN_PREFIX

IN_PROGRESS = frozenset({"CREATE PENDING", "CREATE IN_PROGRESS"})
TRAINING_STATUSES = IN_PROGRESS | {"CREATE STOPPING"}
DELETE_TIMEOUT = 30 * 60.0
"""Seconds to wait for one deletion (dataset groups with large datasets take minutes)."""
STOP_TIMEOUT = 30 * 60.0
POLL_SECONDS = 10.0


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One Personalize resource type, named the way the API names it."""

    label: str
    api: str
    """`DatasetGroup`: `describe_dataset_group(datasetGroupArn=...)` -> `{"datasetGroup": {...}}`."""

    @property
    def snake(self) -> str:
        """`dataset_group`."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.api).lower()

    @property
    def member(self) -> str:
        """`datasetGroup`: the response member of Describe."""
        return self.api[0].lower() + self.api[1:]

    @property
    def arn_member(self) -> str:
        """`datasetGroupArn`: the request member of Describe and Delete."""
        return f"{self.member}Arn"


CAMPAIGN = Kind(label="campaign", api="Campaign")
RECOMMENDER = Kind(label="recommender", api="Recommender")
EVENT_TRACKER = Kind(label="event tracker", api="EventTracker")
METRIC_ATTRIBUTION = Kind(label="metric attribution", api="MetricAttribution")
FILTER = Kind(label="filter", api="Filter")
SOLUTION = Kind(label="solution", api="Solution")
SOLUTION_VERSION = Kind(label="solution version", api="SolutionVersion")
DATASET = Kind(label="dataset", api="Dataset")
DATASET_GROUP = Kind(label="dataset group", api="DatasetGroup")
SCHEMA = Kind(label="schema", api="Schema")

# Children of the dataset group that block its deletion: (kind, list call, list member).
GROUP_CHILDREN = (
    (RECOMMENDER, "list_recommenders", "recommenders"),
    (EVENT_TRACKER, "list_event_trackers", "eventTrackers"),
    (METRIC_ATTRIBUTION, "list_metric_attributions", "metricAttributions"),
    (FILTER, "list_filters", "Filters"),
)


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One resource to stop or delete."""

    kind: Kind
    arn: str
    name: str


@dataclass(kw_only=True)
class CleanupPlan:
    """What cleanup would do, in order; `blockers` make it refuse."""

    dataset_group: str
    dataset_group_arn: str
    stop: list[Resource] = field(default_factory=list)
    delete: list[Resource] = field(default_factory=list)
    schemas: list[Resource] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def lines(self, bucket: str | None = None) -> list[str]:
        """The plan as the user reads it before confirming."""
        lines = [f"stop training {r.name} ({r.arn})" for r in self.stop]
        lines += [f"delete {r.kind.label} {r.name} ({r.arn})" for r in self.delete]
        lines += [
            f"delete {r.kind.label} {r.name} unless another dataset uses it ({r.arn})" for r in self.schemas
        ]
        lines += [f"delete every object version under s3://{bucket}/{p}" for p in self.prefixes]
        return lines


def _list(client: Any, operation: str, member: str, **kwargs: Any) -> list[dict[str, Any]]:
    """All pages of a Personalize List call."""
    items: list[dict[str, Any]] = []
    while True:
        page = getattr(client, operation)(**kwargs)
        items += page.get(member, [])
        if not page.get("nextToken"):
            return items
        kwargs["nextToken"] = page["nextToken"]


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def find_dataset_group(personalize: Any, name: str) -> str:
    """The dataset group's ARN, by name."""
    for group in _list(personalize, "list_dataset_groups", "datasetGroups"):
        if group["name"] == name:
            return str(group["datasetGroupArn"])
    raise CliError(f"dataset group {name} not found in this account and region")


def plan_cleanup(personalize: Any, dataset_group: str, *, purge_data: bool = False) -> CleanupPlan:
    """Inventory the dataset group's resources and order them for deletion."""
    group_arn = find_dataset_group(personalize, dataset_group)
    plan = CleanupPlan(dataset_group=dataset_group, dataset_group_arn=group_arn)
    solutions = _list(personalize, "list_solutions", "solutions", datasetGroupArn=group_arn)
    campaigns: list[Resource] = []
    for solution in solutions:
        for version in _list(
            personalize, "list_solution_versions", "solutionVersions", solutionArn=solution["solutionArn"]
        ):
            arn = str(version["solutionVersionArn"])
            if version.get("status") in IN_PROGRESS:
                plan.stop.append(Resource(kind=SOLUTION_VERSION, arn=arn, name=arn.rsplit("/", 1)[-1]))
            for job in _list(
                personalize, "list_batch_segment_jobs", "batchSegmentJobs", solutionVersionArn=arn
            ):
                if job.get("status") in IN_PROGRESS:
                    plan.blockers.append(
                        f"batch segment job {job['jobName']} is {job['status']} (Personalize cannot stop it)"
                    )
        campaigns += [
            Resource(kind=CAMPAIGN, arn=c["campaignArn"], name=c["name"])
            for c in _list(personalize, "list_campaigns", "campaigns", solutionArn=solution["solutionArn"])
        ]
    plan.delete += campaigns
    for kind, operation, member in GROUP_CHILDREN:
        plan.delete += [
            Resource(kind=kind, arn=item[kind.arn_member], name=item["name"])
            for item in _list(personalize, operation, member, datasetGroupArn=group_arn)
        ]
    plan.delete += [Resource(kind=SOLUTION, arn=s["solutionArn"], name=s["name"]) for s in solutions]
    schemas: dict[str, Resource] = {}
    for dataset in _list(personalize, "list_datasets", "datasets", datasetGroupArn=group_arn):
        arn = str(dataset["datasetArn"])
        for job in _list(personalize, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=arn):
            if job.get("status") in IN_PROGRESS:
                plan.blockers.append(
                    f"dataset import job {job['jobName']} is {job['status']} (Personalize cannot stop it)"
                )
        plan.delete.append(Resource(kind=DATASET, arn=arn, name=dataset["name"]))
        schema_arn = str(personalize.describe_dataset(datasetArn=arn)["dataset"]["schemaArn"])
        schemas[schema_arn] = Resource(kind=SCHEMA, arn=schema_arn, name=schema_arn.rsplit("/", 1)[-1])
    plan.delete.append(Resource(kind=DATASET_GROUP, arn=group_arn, name=dataset_group))
    plan.schemas = list(schemas.values())
    if purge_data:
        plan.prefixes = [
            f"{prefix}{dataset_group}/" for prefix in (TRAIN_PREFIX, BATCH_PREFIX, SEGMENTS_PREFIX)
        ]
    return plan


class Cleaner:
    """Carries out a plan; `sleep` and `clock` are injected so tests run without waiting."""

    def __init__(
        self,
        personalize: Any,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        report: Callable[[str], None],
        poll_seconds: float = POLL_SECONDS,
        timeout: float = DELETE_TIMEOUT,
    ) -> None:
        self.personalize = personalize
        self.sleep = sleep
        self.clock = clock
        self.report = report
        self.poll_seconds = poll_seconds
        self.timeout = timeout

    def run(self, plan: CleanupPlan, *, s3: Any = None, bucket: str | None = None) -> None:
        """Stop, delete and wait, in plan order; then the schemas and the S3 data."""
        if plan.blockers:
            raise CliError(
                "cannot clean up yet: " + "; ".join(plan.blockers) + ". Run cleanup when it has finished"
            )
        for resource in plan.stop:
            self._stop(resource)
        for resource in plan.delete:
            self._delete(resource)
        for schema in plan.schemas:
            self._delete_schema(schema)
        if plan.prefixes:
            if s3 is None or bucket is None:
                raise CliError("--purge-data needs the stack's data bucket")
            for prefix in plan.prefixes:
                count = purge_prefix(s3, bucket, prefix)
                self.report(f"deleted {count} object version(s) under s3://{bucket}/{prefix}")

    def _describe(self, resource: Resource) -> dict[str, Any] | None:
        """The resource's description, or None once it is gone."""
        kind = resource.kind
        try:
            answer = getattr(self.personalize, f"describe_{kind.snake}")(**{kind.arn_member: resource.arn})
        except ClientError as err:
            if _error_code(err) == "ResourceNotFoundException":
                return None
            raise
        return dict(answer[kind.member])

    def _wait(self, resource: Resource, done: Callable[[dict[str, Any] | None], bool], what: str) -> None:
        deadline = self.clock() + self.timeout
        while not done(self._describe(resource)):
            if self.clock() >= deadline:
                raise CliError(
                    f"{resource.kind.label} {resource.name} is still {what} after {self.timeout:.0f} s"
                )
            self.sleep(self.poll_seconds)

    def _stop(self, resource: Resource) -> None:
        self.report(f"stopping training {resource.name}")
        try:
            self.personalize.stop_solution_version_creation(solutionVersionArn=resource.arn)
        except ClientError as err:
            # It finished (or failed) between the inventory and now: nothing to stop.
            if _error_code(err) not in ("ResourceInUseException", "InvalidInputException"):
                raise
        self._wait(resource, lambda d: d is None or d.get("status") not in TRAINING_STATUSES, "training")

    def _delete(self, resource: Resource) -> None:
        kind = resource.kind
        self.report(f"deleting {kind.label} {resource.name}")
        try:
            getattr(self.personalize, f"delete_{kind.snake}")(**{kind.arn_member: resource.arn})
        except ClientError as err:
            if _error_code(err) == "ResourceNotFoundException":
                return
            raise CliError(f"cannot delete {kind.label} {resource.name}: {err}") from None
        self._wait(resource, lambda d: d is None, "being deleted")
        self.report(f"deleted {kind.label} {resource.name}")

    def _delete_schema(self, schema: Resource) -> None:
        try:
            self.personalize.delete_schema(schemaArn=schema.arn)
        except ClientError as err:
            if _error_code(err) == "ResourceInUseException":
                self.report(f"kept schema {schema.name}: another dataset uses it")
                return
            if _error_code(err) == "ResourceNotFoundException":
                return
            raise
        self.report(f"deleted schema {schema.name}")


def purge_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every version and delete marker under the prefix (the bucket is versioned)."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        # DeleteObjects takes at most 1,000 keys; a page holds at most 1,000 versions.
        if objects:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise CliError(f"cannot delete s3://{bucket}/{first['Key']}: {first.get('Message')}")
            count += len(objects)
    return count
