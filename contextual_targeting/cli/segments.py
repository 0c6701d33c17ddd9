"""`segments`: the produced segments, from the post-processor's manifests, with what the destinations made
of them (Customer Profiles upload runs, Pinpoint import runs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contextual_targeting.cli.executions import ExecutionView, describe, recent_executions, source_key
from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE
from contextual_targeting.contracts.layout import SEGMENTS_PREFIX

MANIFEST_NAME = "manifest.json"
# Pinpoint import runs older than this are not looked at (Step Functions keeps 90 days of history).
PINPOINT_LOOKBACK = timedelta(days=90)
MAX_PINPOINT_RUNS = 500
MAX_PROFILES_RUNS = 500


@dataclass(frozen=True, kw_only=True)
class SegmentRow:
    """One query's outcome in a batch segment job, with its Pinpoint import when there is one."""

    dataset_group: str
    job: str
    query: str
    status: str
    segment: str | None
    file: str | None
    users: int
    error: str | None = None
    endpoints: int | None = None
    import_status: str | None = None
    profiles_status: str | None = None
    """The Customer Profiles upload run's outcome (SUCCEEDED, PARTIALLY_SUCCEEDED, REJECTED, FAILED, ...)."""
    profiles_definition: str | None = None
    profiles_members: int | None = None
    profiles_uploaded: int | None = None
    profiles_failed: int | None = None
    users_without_contact: int | None = None

    def document(self) -> dict[str, Any]:
        """The row as JSON (the `--json` output)."""
        return asdict(self)


def read_manifest(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """A manifest document (small: one entry per query, at most 10)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        value = json.loads(body.read())
    finally:
        body.close()
    return value if isinstance(value, dict) else {}


def manifest_keys(s3: Any, bucket: str, dataset_group: str | None = None) -> list[str]:
    """Keys of every `segments/<dataset-group>/<job>/manifest.json`, oldest job name first."""
    prefix = f"{SEGMENTS_PREFIX}{dataset_group}/" if dataset_group else SEGMENTS_PREFIX
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(f"/{MANIFEST_NAME}")]
    return sorted(keys)


def manifest_rows(manifest: dict[str, Any], bucket: str) -> list[SegmentRow]:
    """One row per query of the manifest."""
    rows = []
    for entry in manifest.get("Segments", []):
        key = entry.get("Key")
        rows.append(
            SegmentRow(
                dataset_group=str(manifest.get("DatasetGroupName", "")),
                job=str(manifest.get("JobName", "")),
                query=str(entry.get("Query") or ""),
                status=str(entry.get("Status", "")),
                segment=entry.get("SegmentName"),
                file=entry.get("SegmentUri")
                or (f"s3://{entry.get('Bucket') or bucket}/{key}" if key else None),
                users=int(entry.get("UserCount") or 0),
                error=entry.get("Error"),
            )
        )
    return rows


@dataclass(frozen=True, kw_only=True)
class PinpointStatus:
    """What the Pinpoint destination did with one segment."""

    endpoints: int | None
    import_status: str | None


def pinpoint_statuses(
    sfn: Any, *, prepare_machine: str | None, import_machine: str | None, now: datetime | None = None
) -> dict[str, PinpointStatus]:
    """By segment name: endpoint count (prepare run) and import status (import run), newest runs win."""
    since = (now or datetime.now(UTC)) - PINPOINT_LOOKBACK
    endpoints: dict[str, int] = {}
    statuses: dict[str, str] = {}
    # Imports first: an import's status says more than its prepare run's (setdefault keeps the first).
    for machine, is_import in ((import_machine, True), (prepare_machine, False)):
        if machine is None:
            continue
        for execution in recent_executions(sfn, machine, since, limit=MAX_PINPOINT_RUNS):
            view = describe(sfn, str(execution["executionArn"]), with_history=False)
            name = view.output.get("SegmentName") or view.input.get("detail", {}).get("SegmentName")
            if not name:
                if is_import:
                    # The import's output names the segment; a run still going is known by its file only.
                    name = str(source_key(view.input) or "").rsplit("/", 1)[-1].removesuffix(".csv") or None
                if not name:
                    continue
            if is_import:
                statuses.setdefault(name, str(view.output.get("Status") or view.status))
                continue
            if "EndpointCount" in view.output:
                endpoints.setdefault(name, int(view.output["EndpointCount"]))
            if view.status != "SUCCEEDED":
                statuses.setdefault(name, "PREPARING" if not view.finished else f"PREPARE {view.status}")
            elif not view.output.get("Key"):
                statuses.setdefault(name, str(view.output.get("Status") or "NOT IMPORTED"))
    return {
        name: PinpointStatus(endpoints=endpoints.get(name), import_status=statuses.get(name))
        for name in set(endpoints) | set(statuses)
    }


@dataclass(frozen=True, kw_only=True)
class ProfilesStatus:
    """What the Customer Profiles destination did with one segment: its upload run's report."""

    status: str
    definition: str | None = None
    members: int | None = None
    """Segment users with contact data: the profiles flagged as members (UserCount - UsersWithoutContact)."""
    uploaded: int | None = None
    """Profiles created or updated, members and dropped members alike."""
    failed: int | None = None
    without_contact: int | None = None
    reason: str | None = None


def profiles_status(view: ExecutionView) -> ProfilesStatus:
    """The upload run's report: its output once it succeeded, the event it published when it failed."""
    if not view.finished:
        return ProfilesStatus(status="UPLOADING")
    report: dict[str, Any] = dict(view.output) if view.status == "SUCCEEDED" else {}
    if not report:
        published = [e for e in view.events if e["DetailType"] == CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE]
        report = dict(published[-1]["Detail"]) if published else {}
    users, without = _count(report.get("UserCount")), _count(report.get("UsersWithoutContact"))
    return ProfilesStatus(
        status=str(report.get("Status") or view.status),
        definition=report.get("SegmentDefinitionName") or None,
        members=None if users is None or without is None else users - without,
        uploaded=_count(report.get("ProfilesUploaded")),
        failed=_count(report.get("ProfilesFailed")),
        without_contact=without,
        reason=report.get("FailureReason") or (view.reason() if view.status != "SUCCEEDED" else None),
    )


def profiles_summary(view: ExecutionView) -> str:
    """One line on an upload run: its definition and counts, or why nothing was uploaded."""
    status = profiles_status(view)
    if status.status in ("SUCCEEDED", "PARTIALLY_SUCCEEDED"):
        partial = f" ({status.reason})" if status.status == "PARTIALLY_SUCCEEDED" else ""
        members, uploaded = status.members or 0, status.uploaded or 0
        failed, without = status.failed or 0, status.without_contact or 0
        return (
            f"{status.definition}: {members:,} members, {uploaded:,} profiles uploaded, {failed:,} failed, "
            f"{without:,} users without contact data{partial}"
        )
    return f"{status.status}: {status.reason or 'no reason given'}"


def customer_profiles_statuses(
    sfn: Any, machine: str, *, now: datetime | None = None
) -> dict[str, ProfilesStatus]:
    """By segment name: the newest upload run's report (one run per Segment Ready event)."""
    since = (now or datetime.now(UTC)) - PINPOINT_LOOKBACK
    statuses: dict[str, ProfilesStatus] = {}
    for execution in recent_executions(sfn, machine, since, limit=MAX_PROFILES_RUNS):
        arn = str(execution["executionArn"])
        view = describe(sfn, arn, with_history=False)
        name = view.output.get("SegmentName") or view.input.get("detail", {}).get("SegmentName")
        if not name or name in statuses:
            continue  # newest first: a replayed event's run wins
        if view.finished and view.status != "SUCCEEDED":
            view = describe(sfn, arn)  # the report is in the event the run published
        statuses[str(name)] = profiles_status(view)
    return statuses


def list_segments(
    s3: Any,
    bucket: str,
    *,
    dataset_group: str | None = None,
    pinpoint: dict[str, PinpointStatus] | None = None,
    profiles: dict[str, ProfilesStatus] | None = None,
) -> list[SegmentRow]:
    """Every query outcome of every manifest, with what the destinations did with it when known."""
    rows: list[SegmentRow] = []
    for key in manifest_keys(s3, bucket, dataset_group):
        rows += manifest_rows(read_manifest(s3, bucket, key), bucket)
    if pinpoint:
        rows = [_with_pinpoint(row, pinpoint) for row in rows]
    if profiles:
        rows = [_with_profiles(row, profiles) for row in rows]
    return rows


def _with_profiles(row: SegmentRow, profiles: dict[str, ProfilesStatus]) -> SegmentRow:
    status = profiles.get(row.segment or "")
    if status is None:
        return row
    values = row.document() | {
        "profiles_status": status.status,
        "profiles_definition": status.definition,
        "profiles_members": status.members,
        "profiles_uploaded": status.uploaded,
        "profiles_failed": status.failed,
        "users_without_contact": status.without_contact,
    }
    return SegmentRow(**values)


def _count(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _with_pinpoint(row: SegmentRow, pinpoint: dict[str, PinpointStatus]) -> SegmentRow:
    status = pinpoint.get(row.segment or "")
    if status is None:
        return row
    values = row.document() | {"endpoints": status.endpoints, "import_status": status.import_status}
    return SegmentRow(**values)


def to_json(rows: Iterable[SegmentRow]) -> str:
    """The `--json` output: a list of row objects."""
    return json.dumps([r.document() for r in rows], indent=2)
