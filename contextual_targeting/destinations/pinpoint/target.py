"""The Pinpoint project both workflows work on, and how they call Pinpoint."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam

from contextual_targeting.destinations.kit import ServiceApi

# The SDK service is `pinpoint`, the IAM prefix `mobiletargeting`; the errors are those the pinpoint API
# model declares for throttling and transient faults.
RETRYABLE = ["Pinpoint.TooManyRequestsException", "Pinpoint.InternalServerErrorException"]
PINPOINT = ServiceApi(service="pinpoint", iam_prefix="mobiletargeting", retryable=RETRYABLE)


@dataclass(frozen=True, kw_only=True)
class PinpointTarget:
    """The Pinpoint project the workflows work on, and the role Pinpoint assumes to read and write S3."""

    application_id: str
    """Pinpoint project (application) id."""
    application_arn: str
    """`arn:<partition>:mobiletargeting:<region>:<account>:apps/<id>`."""
    role: iam.IRole
    """Import/export role that Pinpoint assumes."""

    @property
    def api(self) -> ServiceApi:
        """Pinpoint calls on this project."""
        return PINPOINT.scoped(ApplicationId=self.application_id)

    def resources(self, job_kind: str | None = None) -> list[str]:
        """The project, and its import or export jobs when `job_kind` names them."""
        jobs = [f"{self.application_arn}/jobs/{job_kind}/*"] if job_kind else []
        return [self.application_arn, *jobs]
