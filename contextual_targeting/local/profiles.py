"""A local stand-in for Amazon Connect Customer Profiles: segment definitions, upload jobs, and the profiles
the uploaded files create, plus the presigned upload URL as a local HTTP server on 127.0.0.1.

The workflow's SDK calls (`createSegmentDefinition`, `getSegmentDefinition`, `createUploadJob`,
`startUploadJob`, `getUploadJob`) and the send Lambda's `get_upload_job_path` are answered here; the Lambda
PUTs the file to the local server, which checks the SSE-C headers the real URL requires. A started job reads
the received file with the job's field mappings and finishes `JOB_SECONDS` later on the virtual clock.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contextual_targeting.local.harness import AwsError, TaskCall

STAND_IN = "local stand-in for Amazon Connect Customer Profiles"
JOB_SECONDS = 45
"""Virtual seconds from StartUploadJob to the job's end."""
PROFILE = "_profile."
ATTRIBUTES = "Attributes."


@dataclass
class UploadJob:
    """One upload job."""

    job_id: str
    display_name: str
    fields: dict[str, dict[str, str]]
    unique_key: str
    data_expiry: int
    created_at: float
    client_token: str
    started_at: float | None = None
    body: bytes | None = None
    results: dict[str, int] = field(
        default_factory=lambda: {"CreatedRecords": 0, "UpdatedRecords": 0, "FailedRecords": 0}
    )
    status_reason: str | None = None


@dataclass
class SegmentDefinition:
    """One segment definition: the profiles whose attribute has one of the values."""

    name: str
    arn: str
    display_name: str
    description: str
    attribute: str
    values: list[str]


@dataclass
class CustomerProfilesStandIn:
    """Answers `aws-sdk:customerprofiles:*` Tasks and the send Lambda's client; keeps the profiles."""

    now: Callable[[], float]
    region: str
    account: str
    upload_url: Callable[[str], str] = lambda job_id: f"http://127.0.0.1/upload/{job_id}"
    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)
    jobs: dict[str, UploadJob] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Unique key value -> profile (`AccountNumber`, `EmailAddress`, `PhoneNumber`, `Attributes`)."""

    def call(self, action: str, call: TaskCall) -> Any:
        """Answer one SDK action of the upload workflow."""
        request = dict(call.parameters or {})
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "createSegmentDefinition": self._create_definition,
            "getSegmentDefinition": self._get_definition,
            "createUploadJob": self._create_job,
            "startUploadJob": self._start_job,
            "getUploadJob": self._get_job,
        }
        if action not in handlers:
            raise AwsError("CustomerProfiles.BadRequestException", f"the {STAND_IN} does not answer {action}")
        return handlers[action](request)

    # ---- the send Lambda's boto3 client (`customer-profiles`)

    def get_upload_job_path(self, *, DomainName: str, JobId: str) -> dict[str, Any]:  # noqa: N803
        """The presigned URL and the ClientToken (SSE-C key) of a job."""
        del DomainName
        job = self._job(JobId)
        return {
            "Url": self.upload_url(JobId),
            "ClientToken": job.client_token,
            "ValidUntil": _iso(self.now()),
        }

    def receive(self, job_id: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """A PUT to the upload URL: the SSE-C headers must match the job's ClientToken."""
        job = self.jobs.get(job_id)
        if job is None:
            return 404, "<Error><Code>NoSuchUpload</Code></Error>"
        key = base64.b64decode(job.client_token)
        expected = {
            "x-amz-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-server-side-encryption-customer-key": job.client_token,
            "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(
                hashlib.md5(key, usedforsecurity=False).digest()
            ).decode(),
        }
        if any(headers.get(name) != value for name, value in expected.items()):
            return (
                400,
                "<Error><Code>InvalidRequest</Code><Message>SSE-C headers do not match</Message></Error>",
            )
        job.body = body
        return 200, ""

    # ---- segment definitions

    def _create_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["SegmentDefinitionName"])
        if name in self.definitions:
            raise AwsError("CustomerProfiles.BadRequestException", f"segment definition {name} exists")
        attributes = request["SegmentGroups"]["Groups"][0]["Dimensions"][0]["ProfileAttributes"]["Attributes"]
        ((attribute, rule),) = attributes.items()
        definition = SegmentDefinition(
            name=name,
            arn=self._arn(name),
            display_name=str(request.get("DisplayName", "")),
            description=str(request.get("Description", "")),
            attribute=attribute,
            values=list(rule["Values"]),
        )
        self.definitions[name] = definition
        return {
            "SegmentDefinitionName": name,
            "SegmentDefinitionArn": definition.arn,
            "CreatedAt": _iso(self.now()),
        }

    def _get_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        definition = self.definitions.get(str(request["SegmentDefinitionName"]))
        if definition is None:
            raise AwsError(
                "CustomerProfiles.ResourceNotFoundException",
                f"segment definition {request['SegmentDefinitionName']} not found",
            )
        return {
            "SegmentDefinitionName": definition.name,
            "SegmentDefinitionArn": definition.arn,
            "DisplayName": definition.display_name,
            "Description": definition.description,
        }

    def _arn(self, name: str) -> str:
        return f"arn:aws:profile:{self.region}:{self.account}:domains/local/segment-definitions/{name}"

    def members(self, name: str) -> list[dict[str, Any]]:
        """Profiles in the segment definition, by user id."""
        definition = self.definitions[name]
        return sorted(
            (
                p
                for p in self.profiles.values()
                if p.get("Attributes", {}).get(definition.attribute) in definition.values
            ),
            key=lambda p: str(p.get("AccountNumber", "")),
        )

    # ---- upload jobs

    def _create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id = f"local-upload-{len(self.jobs) + 1:04d}"
        token = base64.b64encode(hashlib.sha256(job_id.encode()).digest()).decode()
        self.jobs[job_id] = UploadJob(
            job_id=job_id,
            display_name=str(request.get("DisplayName", "")),
            fields=dict(request["Fields"]),
            unique_key=str(request["UniqueKey"]),
            data_expiry=int(request.get("DataExpiry", 14)),
            created_at=self.now(),
            client_token=token,
        )
        return {"JobId": job_id}

    def _start_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._job(str(request["JobId"]))
        if job.body is None:
            raise AwsError(
                "CustomerProfiles.BadRequestException", f"no file was uploaded for job {job.job_id}"
            )
        job.started_at = self.now()
        self._load(job)
        return {}

    def _get_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._job(str(request["JobId"]))
        answer: dict[str, Any] = {
            "JobId": job.job_id,
            "DisplayName": job.display_name,
            "CreatedAt": _iso(job.created_at),
            "Fields": job.fields,
            "UniqueKey": job.unique_key,
            "DataExpiry": job.data_expiry,
        }
        if job.started_at is None:
            return answer | {"Status": "CREATED"}
        if self.now() < job.started_at + JOB_SECONDS:
            return answer | {"Status": "IN_PROGRESS"}
        status = "PARTIALLY_SUCCEEDED" if job.results["FailedRecords"] else "SUCCEEDED"
        answer |= {
            "Status": status,
            "ResultsSummary": job.results,
            "CompletedAt": _iso(job.started_at + JOB_SECONDS),
        }
        if job.status_reason:
            answer["StatusReason"] = job.status_reason
        return answer

    def _job(self, job_id: str) -> UploadJob:
        if job_id not in self.jobs:
            raise AwsError("CustomerProfiles.ResourceNotFoundException", f"upload job {job_id} not found")
        return self.jobs[job_id]

    def _load(self, job: UploadJob) -> None:
        """Create or update one profile per row. A blank mapped cell fails its row: what the service does with
        one is not documented, so the pipeline must never write one, and the demo shows it if it does."""
        assert job.body is not None
        rows = csv.DictReader(io.StringIO(job.body.decode("utf-8"), newline=""))
        for row in rows:
            key = (row.get(job.unique_key) or "").strip()
            if not key:
                job.results["FailedRecords"] += 1
                job.status_reason = "rows without a value in the unique key column"
                continue
            blank = [column for column in job.fields if not (row.get(column) or "")]
            if blank:
                job.results["FailedRecords"] += 1
                job.status_reason = f"blank mapped cells ({', '.join(blank)}): undocumented behaviour"
                continue
            created = key not in self.profiles
            profile = self.profiles.setdefault(key, {"Attributes": {}})
            for column, mapping in job.fields.items():
                value = row[column]
                target = str(mapping["Target"]).removeprefix(PROFILE)
                if target.startswith(ATTRIBUTES):
                    profile["Attributes"][target.removeprefix(ATTRIBUTES)] = value
                else:
                    profile[target] = value
            job.results["CreatedRecords" if created else "UpdatedRecords"] += 1


class _UploadHandler(BaseHTTPRequestHandler):
    stand_in: CustomerProfilesStandIn

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        job_id = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, text = self.stand_in.receive(job_id, headers, body)
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo reports what happened."""


@contextmanager
def upload_server(stand_in: CustomerProfilesStandIn) -> Iterator[str]:
    """Serve the stand-in's upload URLs on 127.0.0.1 (a free port) while the block runs; yield the base."""
    handler = type("UploadHandler", (_UploadHandler,), {"stand_in": stand_in})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stand_in.upload_url = lambda job_id: f"{base}/upload/{job_id}?X-Amz-Signature=local"
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
