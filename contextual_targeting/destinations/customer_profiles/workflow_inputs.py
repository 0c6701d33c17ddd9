"""What the Customer Profiles upload workflow is built from: the domain, the Lambdas, the bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_

from contextual_targeting.destinations.kit import ServiceApi

# The SDK service is `customerprofiles`, the IAM prefix `profile`; the errors are those the customer-profiles
# API model declares for throttling and transient faults.
RETRYABLE = ["CustomerProfiles.ThrottlingException", "CustomerProfiles.InternalServerException"]
PROFILES = ServiceApi(service="customerprofiles", iam_prefix="profile", retryable=RETRYABLE)
# Member and upload files under the state prefix of the data bucket; callers retry as fits the call.
STATE_FILES = ServiceApi(service="s3", iam_prefix="s3", retryable=())


@dataclass(frozen=True, kw_only=True)
class ProfilesTarget:
    """The Customer Profiles domain the workflow uploads into, and the upload settings."""

    domain_name: str
    """Name of the Customer Profiles domain."""
    domain_arn: str
    """`arn:<partition>:profile:<region>:<account>:domains/<name>`."""
    data_expiry_days: int
    """Days the uploaded profile data is kept (CreateUploadJob `DataExpiry`)."""

    @property
    def api(self) -> ServiceApi:
        """Customer Profiles calls on this domain."""
        return PROFILES.scoped(DomainName=self.domain_name)


@dataclass(frozen=True, kw_only=True)
class WorkflowFunctions:
    """The Lambdas the workflow invokes."""

    gate: lambda_.IFunction
    """Decides whether an upload slot is free."""
    upload_file: lambda_.IFunction
    """Writes the upload file and the next member file."""
    send: lambda_.IFunction
    """Streams the upload file to the upload job's presigned URL."""


@dataclass(frozen=True, kw_only=True)
class WorkflowSettings:
    """Bounds of the workflow."""

    max_concurrent_uploads: int
    """At most this many executions upload (or wait for their job) at a time."""
    slot_checks: int
    """How many minutes an execution waits for an upload slot, asking once a minute, before giving up."""
    upload_schedule: Sequence[int]
    """Wait seconds before each upload job status check."""
