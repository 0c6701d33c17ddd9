"""Scripted AWS for the training workflow tests (no tests here): Personalize resources that finish after
virtual durations, an in-memory S3 the real config validator reads, recorders for EventBridge and SNS.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from contextual_targeting.contracts.layout import TRAINING_STATE_PREFIX
from contextual_targeting.local import AwsError, TaskCall
from tests.helpers import REPO, load_lambda

DEMO = REPO / "data" / "personalize"
VALIDATOR_DIR = REPO / "lambda" / "training" / "validate_config"
CONFIG_KEY = "train/bingewatch/bingewatch_config.json"
BUCKET = "data-bucket"
ROLE_ARN = "arn:aws:iam::123456789012:role/PersonalizeRole"
START = datetime(2026, 1, 1, tzinfo=UTC)
PREFIX = "arn:aws:personalize:eu-central-1:123456789012:"

# Virtual seconds from create to ACTIVE (the typical durations; quick resources take seconds).
DURATIONS = {
    "DatasetGroup": 5,
    "Dataset": 0,
    "DatasetImportJob": 600,
    "Solution": 5,
    "SolutionVersion": 3600,
    "BatchSegmentJob": 1200,
}
# Describe* of these kinds has no `FailureReason` member, failed or not (as in the Personalize API).
NO_FAILURE_REASON = frozenset({"Dataset", "Solution"})
# A create request Personalize refuses for good: no retry absorbs it.
REFUSED = "Personalize.InvalidInputException"


def load_validator() -> ModuleType:
    """The Lambda's pure module, imported by path (the Lambda directory is not a package)."""
    if "training_config" in sys.modules:
        return sys.modules["training_config"]
    spec = importlib.util.spec_from_file_location("training_config", VALIDATOR_DIR / "training_config.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["training_config"] = module
    spec.loader.exec_module(module)
    return module


def demo_files() -> dict[str, bytes]:
    """The demo data as bucket keys -> bytes, the way `aws s3 sync ./data/personalize` uploads it."""
    return {str(p.relative_to(DEMO)): p.read_bytes() for p in DEMO.rglob("*") if p.is_file()}


class _NoSuchKeyError(Exception):
    def __init__(self) -> None:
        super().__init__("NoSuchKey")
        self.response = {"Error": {"Code": "NoSuchKey"}}


class _InvalidRangeError(Exception):
    """S3's answer (416) to a ranged GET of an empty object."""

    def __init__(self) -> None:
        super().__init__("InvalidRange")
        self.response = {"Error": {"Code": "InvalidRange"}}


class MemoryS3:
    """get_object over a dict; `arrivals` makes keys appear only from a virtual time on; `put` makes a new
    object version (every object starts at version `v1`)."""

    def __init__(self, objects: Mapping[str, bytes], arrivals: Mapping[str, float] | None = None) -> None:
        self.objects = dict(objects)
        self.arrivals = dict(arrivals or {})
        self.now = 0.0
        self.ranges: list[tuple[str, str | None]] = []
        self.versions: dict[str, str | None] = {}
        self.version_numbers: dict[str, int] = dict.fromkeys(self.objects, 1)

    def put(self, key: str, body: bytes) -> str:
        """Store a new version of `key`; returns its version id."""
        self.objects[key] = body
        self.version_numbers[key] = self.version_numbers.get(key, 0) + 1
        return self.version_id(key)

    def version_id(self, key: str) -> str:
        """The current version id of a key."""
        return f"v{self.version_numbers.get(key, 1)}"

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        key = kwargs["Key"]
        if key not in self.objects or self.arrivals.get(key, 0) > self.now:
            raise _NoSuchKeyError()
        self.ranges.append((key, kwargs.get("Range")))
        self.versions[key] = kwargs.get("VersionId")
        body = self.objects[key]
        if kwargs.get("Range") and not body:
            raise _InvalidRangeError()
        if kwargs.get("Range"):
            last = int(kwargs["Range"].split("-")[1])
            body = body[: last + 1]
        return {"Body": io.BytesIO(body), "VersionId": self.version_id(key)}


@dataclass
class Resource:
    """One fake Personalize resource."""

    kind: str
    name: str
    arn: str
    created_at: float
    duration: float
    fail_reason: str | None = None
    seen_active_at: float | None = None
    request: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    """A status Describe reports whatever the time (a resource found in that state)."""

    @property
    def completes_at(self) -> float:
        return self.created_at + self.duration


@dataclass
class EarlierRun:
    """Another training run of the same dataset group, RUNNING until `until` (virtual seconds of this run)."""

    arn: str
    until: float
    started: str = "2025-12-31T23:00:00+00:00"


class FakeScheduler:
    """EventBridge Scheduler: schedules by (group, name), answered as the API does (PascalCase members)."""

    def __init__(self) -> None:
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse: str | None = None
        """A ValidationException message for every create and update (an expression Scheduler refuses)."""

    def handlers(self) -> dict[str, Callable[[TaskCall], Any]]:
        """Handlers for the four Scheduler SDK tasks."""
        return {
            f"aws-sdk:scheduler:{action}": self._handler(action)
            for action in ("getSchedule", "createSchedule", "updateSchedule", "deleteSchedule")
        }

    def put(self, request: Mapping[str, Any]) -> None:
        """A schedule as if a previous run had created it."""
        self.schedules[(request.get("GroupName", "default"), request["Name"])] = dict(request)

    def get(self, name: str) -> dict[str, Any] | None:
        """The schedule of that name in any group."""
        return next((s for (_, n), s in self.schedules.items() if n == name), None)

    def actions(self) -> list[str]:
        """The Scheduler actions called, in order."""
        return [action for action, _ in self.calls]

    def _handler(self, action: str) -> Callable[[TaskCall], Any]:
        def handle(call: TaskCall) -> Any:
            request = call.parameters
            self.calls.append((action, request))
            key = (request.get("GroupName", "default"), request["Name"])
            found = self.schedules.get(key)
            if action in ("createSchedule", "updateSchedule") and self.refuse:
                raise AwsError("Scheduler.ValidationException", self.refuse)
            if action == "createSchedule":
                if found is not None:
                    raise AwsError("Scheduler.ConflictException", f"Schedule {key[1]} already exists.")
                self.schedules[key] = dict(request)
                return {
                    "ScheduleArn": f"arn:aws:scheduler:eu-central-1:123456789012:schedule/{key[0]}/{key[1]}"
                }
            if found is None:
                raise AwsError("Scheduler.ResourceNotFoundException", f"Schedule {key[1]} does not exist.")
            if action == "getSchedule":
                return {**copy.deepcopy(found), "Arn": f"arn:aws:scheduler:::schedule/{key[0]}/{key[1]}"}
            if action == "updateSchedule":
                self.schedules[key] = dict(request)
                return {
                    "ScheduleArn": f"arn:aws:scheduler:eu-central-1:123456789012:schedule/{key[0]}/{key[1]}"
                }
            del self.schedules[key]
            return {}

        return handle


@dataclass
class FakeAws:
    """Answers every Task of the training workflow; `existing` names resources that exist before the run."""

    s3: MemoryS3
    durations: dict[str, float] = field(default_factory=lambda: dict(DURATIONS))
    existing: set[str] = field(default_factory=set)
    """ARNs that already exist (ACTIVE since long before the run)."""
    existing_status: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """ARNs that already exist in another status: ARN -> (status, failureReason or None)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Resource kind -> failureReason: that kind ends CREATE FAILED (the reason is not reported for the kinds
    in NO_FAILURE_REASON)."""
    rejections: dict[str, str] = field(default_factory=dict)
    """Resource kind (or `Schema`) -> cause: its create requests are refused with REFUSED."""
    throttle: dict[str, int] = field(default_factory=dict)
    """Resource kind -> how many Describe calls are throttled before the answers come."""
    resources: dict[str, Resource] = field(default_factory=dict)
    creates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    describes: list[tuple[str, str, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    validations: list[float] = field(default_factory=list)
    scheduler: FakeScheduler = field(default_factory=FakeScheduler)
    earlier_runs: list[EarlierRun] = field(default_factory=list)
    """Other runs of the dataset group that started before this one."""
    queue_looks: list[float] = field(default_factory=list)
    refuse_record: bool = False
    """The data-versions record cannot be written (S3 answers AccessDenied)."""

    def handlers(self) -> dict[str, Callable[[TaskCall], Any]]:
        """Handlers for `run_workflow`, by resource short form and state name."""
        handlers: dict[str, Callable[[TaskCall], Any]] = {
            "Validate config": self._validate,
            "Look for an earlier run of the dataset group": self._look_for_earlier_runs,
            "Look again for the earlier run": self._look_for_earlier_runs,
            "events:putEvents": self._put_events,
            "sns:publish": self._publish,
            "aws-sdk:personalize:createSchema": self._create_schema,
            "aws-sdk:s3:putObject": self._put_object,
            **self.scheduler.handlers(),
        }
        for kind in DURATIONS:
            handlers[f"aws-sdk:personalize:create{kind}"] = self._creator(kind)
            handlers[f"aws-sdk:personalize:describe{kind}"] = self._describer(kind)
        return handlers

    # ---- Personalize

    def _arn(self, kind: str, request: Mapping[str, Any]) -> str:
        if kind == "DatasetGroup":
            return f"{PREFIX}dataset-group/{request['Name']}"
        if kind == "Dataset":
            group = request["DatasetGroupArn"].rsplit("/", 1)[1]
            return f"{PREFIX}dataset/{group}/{request['DatasetType']}"
        if kind == "DatasetImportJob":
            return f"{PREFIX}dataset-import-job/{request['JobName']}"
        if kind == "Solution":
            return f"{PREFIX}solution/{request['Name']}"
        if kind == "SolutionVersion":
            return f"{request['SolutionArn']}/{len(self.resources):08x}"
        return f"{PREFIX}batch-segment-job/{request['JobName']}"

    def _create_schema(self, call: TaskCall) -> dict[str, Any]:
        request = call.parameters
        self._refuse("Schema")
        arn = f"{PREFIX}schema/{request['Name']}"
        if arn in self.existing:
            raise AwsError("Personalize.ResourceAlreadyExistsException", f"{arn} already exists")
        self.creates.append(("Schema", request))
        return {"SchemaArn": arn}

    def _creator(self, kind: str) -> Callable[[TaskCall], dict[str, Any]]:
        def create(call: TaskCall) -> dict[str, Any]:
            request = call.parameters
            self._refuse(kind)
            arn = self._arn(kind, request)
            if arn in self.existing or arn in self.existing_status or arn in self.resources:
                raise AwsError("Personalize.ResourceAlreadyExistsException", f"{arn} already exists")
            self.creates.append((kind, request))
            name = request.get("Name") or request.get("JobName") or arn
            self.resources[arn] = Resource(
                kind, name, arn, call.now, self.durations[kind], self.failures.get(kind), request=request
            )
            return {f"{kind}Arn": arn}

        return create

    def _refuse(self, kind: str) -> None:
        if kind in self.rejections:
            raise AwsError(REFUSED, self.rejections[kind])

    def _describer(self, kind: str) -> Callable[[TaskCall], dict[str, Any]]:
        def describe(call: TaskCall) -> dict[str, Any]:
            arn = call.parameters[f"{kind}Arn"]
            self.describes.append((kind, arn, call.now))
            if self.throttle.get(kind, 0) > 0:
                self.throttle[kind] -= 1
                raise AwsError("Personalize.PersonalizeException", "Rate exceeded (ThrottlingException)")
            if arn in self.existing and arn not in self.resources:
                self.resources[arn] = Resource(kind, arn.rsplit("/", 1)[1], arn, -86400.0, 0.0)
            if arn in self.existing_status and arn not in self.resources:
                status, reason = self.existing_status[arn]
                self.resources[arn] = Resource(
                    kind, arn.rsplit("/", 1)[1], arn, -86400.0, 0.0, fail_reason=reason, status=status
                )
            resource = self.resources.get(arn)
            if resource is None:
                raise AwsError("Personalize.ResourceNotFoundException", f"{arn} does not exist")
            done = call.now >= resource.completes_at
            status = "CREATE IN_PROGRESS"
            body: dict[str, Any] = {
                f"{kind}Arn": arn,
                "CreationDateTime": _iso(resource.created_at),
                "LastUpdatedDateTime": _iso(min(call.now, resource.completes_at)),
            }
            if resource.status is not None:
                status = resource.status
                if resource.fail_reason and kind not in NO_FAILURE_REASON:
                    body["FailureReason"] = resource.fail_reason
            elif done and resource.fail_reason:
                status = "CREATE FAILED"
                if kind not in NO_FAILURE_REASON:
                    body["FailureReason"] = resource.fail_reason
            elif done:
                status = "ACTIVE"
                if resource.seen_active_at is None:
                    resource.seen_active_at = call.now
            body["Status"] = status
            return {kind: body}

        return describe

    # ---- the rest

    def _validate(self, call: TaskCall) -> dict[str, Any]:
        """What the validator Lambda's handler does (`lambda/training/validate_config/handler.py`)."""
        module = load_validator()
        versions = load_lambda("training/validate_config", "data_versions")
        self.validations.append(call.now)
        self.s3.now = call.now
        target = module.Target(
            partition="aws",
            region="eu-central-1",
            account="123456789012",
            bucket=call.parameters["Bucket"],
            role_arn=ROLE_ARN,
        )
        reads = versions.RecordingS3(self.s3)
        result: dict[str, Any] = module.validate_upload(
            reads,
            target,
            call.parameters["Key"],
            call.parameters["StartTime"],
            call.parameters["Source"].get("VersionId"),
        )
        if "Plan" in result:
            key = versions.state_key(TRAINING_STATE_PREFIX, result["DatasetGroupName"])
            result["Data"] = versions.data_state(self.s3, reads.read, call.parameters["Bucket"], key)
        return result

    def _look_for_earlier_runs(self, call: TaskCall) -> dict[str, Any]:
        """The run-queue Lambda: the earlier runs still RUNNING at this call's virtual time."""
        self.queue_looks.append(call.now)
        running = [r for r in self.earlier_runs if r.until > call.now]
        group = call.parameters["Key"].split("/")[1]
        return {
            "Proceed": not running,
            "Ahead": len(running),
            "HeldBy": running[0].arn if running else "",
            "HeldSince": running[0].started if running else "",
            "DatasetGroupName": group,
        }

    def _put_object(self, call: TaskCall) -> dict[str, Any]:
        if self.refuse_record:
            raise AwsError("S3.S3Exception", "Access Denied (Service: S3, Status Code: 403)")
        body = call.parameters["Body"]
        version = self.s3.put(call.parameters["Key"], body.encode() if isinstance(body, str) else body)
        return {"VersionId": version, "ETag": '"etag"'}

    def _put_events(self, call: TaskCall) -> dict[str, Any]:
        for entry in call.parameters["Entries"]:
            detail = entry["Detail"]
            self.events.append(
                {
                    "DetailType": entry["DetailType"],
                    "Source": entry["Source"],
                    "Detail": json.loads(detail) if isinstance(detail, str) else detail,
                    "At": call.now,
                }
            )
        return {"Entries": [{"EventId": f"e-{len(self.events)}"}], "FailedEntryCount": 0}

    def _publish(self, call: TaskCall) -> dict[str, Any]:
        message = call.parameters["Message"]
        self.emails.append(
            {
                "Subject": call.parameters.get("Subject"),
                "Message": json.loads(message) if isinstance(message, str) else message,
            }
        )
        return {"MessageId": f"m-{len(self.emails)}"}

    # ---- questions tests ask

    def events_of(self, detail_type: str) -> list[dict[str, Any]]:
        """Details of the events of one detail-type, in order."""
        return [e["Detail"] for e in self.events if e["DetailType"] == detail_type]

    def created_kinds(self) -> list[str]:
        """Kinds of the resources created, in order."""
        return [kind for kind, _ in self.creates]


def _iso(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def upload_input(key: str = CONFIG_KEY, version: str = "v1") -> dict[str, Any]:
    """Execution input as the dispatcher (`object_trigger.OncePerObjectVersion`) starts the run with."""
    return {"Source": {"Bucket": BUCKET, "Key": key, "VersionId": version, "ETag": "etag-1", "Size": 3215}}


def scheduled_input(key: str = CONFIG_KEY) -> dict[str, Any]:
    """Execution input as the dataset group's schedule starts the run with (the plan's `Schedule.Input`)."""
    return {"Source": {"Bucket": BUCKET, "Key": key}, "Trigger": "schedule"}
