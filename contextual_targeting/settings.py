"""Deployment choices: what `app.py` reads from CDK context and the stack is built from."""

from __future__ import annotations

from dataclasses import dataclass

from contextual_targeting.destinations.registry import DESTINATION_NAMES


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
    pinpoint_project_name: str = "personalize"
    """Name of the Pinpoint project to create."""
    pinpoint_application_id: str | None = None
    """Import into this existing Pinpoint project instead of creating one."""

    def __post_init__(self) -> None:
        """Refuse a destination name the stack does not know (a typo would silently deploy nothing)."""
        unknown = sorted(set(self.destinations) - set(DESTINATION_NAMES))
        if unknown:
            known = ", ".join(DESTINATION_NAMES)
            raise ValueError(f"unknown destination {', '.join(unknown)}: choose from {known}")

    def wants(self, destination: str) -> bool:
        """Whether the stack deploys this destination."""
        return destination in self.destinations
