"""The Customer Profiles destination as the stack deploys it (the default destination)."""

from __future__ import annotations

from constructs import Construct

from contextual_targeting.destinations import (
    DeployedDestination,
    Destination,
    SharedResources,
    StackOutput,
)
from contextual_targeting.destinations.customer_profiles.importer import (
    CustomerProfilesSegmentImporter,
    CustomerProfilesSegmentImporterProps,
)


def build(scope: Construct, shared: SharedResources) -> DeployedDestination:
    """The importer under `CustomerProfiles`, uploading into the configured domain or one of its own."""
    props = CustomerProfilesSegmentImporterProps(
        segments_bucket=shared.segments_bucket,
        event_bus=shared.event_bus,
        notification_topic=shared.notification_topic,
        domain_name=shared.settings.customer_profiles_domain_name,
        domain_expiration_days=shared.settings.customer_profiles_domain_expiration_days,
    )
    importer = CustomerProfilesSegmentImporter(scope, "CustomerProfiles", props=props)
    return DeployedDestination(
        construct=importer,
        outputs=[
            StackOutput("CustomerProfilesDomainName", importer.domain_name, "Customer Profiles domain"),
            StackOutput(
                "CustomerProfilesStateMachineArn",
                importer.state_machine.state_machine_arn,
                "Segment Ready -> Customer Profiles segment definition",
            ),
        ],
    )


DESTINATION = Destination(name="customer-profiles", build=build)
