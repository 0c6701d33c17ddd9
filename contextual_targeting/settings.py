"""Deployment choices: what `app.py` reads from CDK context and the stack is built from."""

from __future__ import annotations

from dataclasses import dataclass

from contextual_targeting.destinations.registry import DESTINATION_NAMES

WORKFLOW_LOG_LEVELS = ("ERROR", "ALL")


@dataclass(frozen=True, kw_only=True)
class ContextualTargetingSettings:
    """Deployment choices, read from CDK context by `app.py`."""

    email: str | None = None
    """Address that receives run summaries (subscription confirmed by email); none when omitted."""
    destinations: tuple[str, ...] = ("customer-profiles",)
    """Destinations to deploy, by name (`destinations.registry`). Amazon Pinpoint reached end of support on
    2026-10-30 (creating a project fails on today's accounts), so the default is Customer Profiles alone."""
    customer_profiles_domain_name: str | None = None
    """Upload into this existing Customer Profiles domain instead of creating one."""
    customer_profiles_domain_expiration_days: int = 366
    """Days profiles live in the Customer Profiles domain the stack creates (its `DefaultExpirationDays`,
    1-1098), including profiles Amazon Connect creates once the domain is linked. The pipeline's own uploads
    expire sooner (14 days, per upload job) unless a run refreshes them."""
    pinpoint_project_name: str = "personalize"
    """Name of the Pinpoint project to create."""
    pinpoint_application_id: str | None = None
    """Import into this existing Pinpoint project instead of creating one."""
    workflow_log_level: str = "ERROR"
    """ERROR: workflow logs hold errors only, without execution data (it holds user ids). ALL: every state
    with its data, for debugging."""
    noncurrent_version_retention_days: int = 30
    """Days the data bucket keeps overwritten and deleted objects as noncurrent versions."""
    run_output_retention_days: int = 30
    """Days after which superseded runs' job outputs and segment folders and the destinations' per-run
    files are deleted (counted from their creation; the latest run's files are kept)."""
    training_queue_wait_hours: int = 12
    """Hours a training run waits for an earlier run of its dataset group before it gives up."""

    def __post_init__(self) -> None:
        """Refuse a destination name the stack does not know (a typo would silently deploy nothing)."""
        unknown = sorted(set(self.destinations) - set(DESTINATION_NAMES))
        if unknown:
            known = ", ".join(DESTINATION_NAMES)
            raise ValueError(f"unknown destination {', '.join(unknown)}: choose from {known}")
        if self.workflow_log_level not in WORKFLOW_LOG_LEVELS:
            raise ValueError(
                f"workflowLogLevel {self.workflow_log_level!r}: choose {' or '.join(WORKFLOW_LOG_LEVELS)}"
            )
        if not 1 <= self.customer_profiles_domain_expiration_days <= 1098:
            raise ValueError(
                "customer_profiles_domain_expiration_days must be 1..1098, "
                f"got {self.customer_profiles_domain_expiration_days}"
            )
        for name in (
            "noncurrent_version_retention_days",
            "run_output_retention_days",
            "training_queue_wait_hours",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def wants(self, destination: str) -> bool:
        """Whether the stack deploys this destination."""
        return destination in self.destinations
