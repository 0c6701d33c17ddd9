#!/usr/bin/env python3
"""CDK app entry point: the only place that reads the environment and CDK context."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack


def _flag(app: cdk.App, key: str, default: bool) -> bool:
    """Read a boolean context value given as true/false (the CLI passes strings)."""
    value = app.node.try_get_context(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"context {key!r}: expected true or false, got {value!r}")


def _list(app: cdk.App, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Read a comma-separated context value (`-c destinations=customer-profiles,pinpoint`)."""
    value = app.node.try_get_context(key)
    if value is None or value == "":
        return default
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def _int(app: cdk.App, key: str, default: int) -> int:
    """Read a whole-number context value (`-c runOutputRetentionDays=60`)."""
    value = app.node.try_get_context(key)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(f"context {key!r}: expected a whole number, got {value!r}") from None


def _destinations(app: cdk.App) -> tuple[str, ...]:
    """`-c destinations=a,b`; the older `-c pinpoint=true` adds Pinpoint to them."""
    destinations = _list(app, "destinations", default=("customer-profiles",))
    if _flag(app, "pinpoint", default=False) and "pinpoint" not in destinations:
        destinations = (*destinations, "pinpoint")
    return destinations


def settings_from_context(app: cdk.App) -> ContextualTargetingSettings:
    """Collect the deployment choices given with `-c key=value` or in cdk.json."""
    return ContextualTargetingSettings(
        email=app.node.try_get_context("email") or None,
        destinations=_destinations(app),
        customer_profiles_domain_name=app.node.try_get_context("customerProfilesDomainName") or None,
        customer_profiles_domain_expiration_days=_int(app, "customerProfilesDomainExpirationDays", 366),
        pinpoint_project_name=app.node.try_get_context("pinpointProjectName") or "personalize",
        pinpoint_application_id=app.node.try_get_context("pinpointApplicationId") or None,
        workflow_log_level=str(app.node.try_get_context("workflowLogLevel") or "ERROR").upper(),
        noncurrent_version_retention_days=_int(app, "noncurrentVersionRetentionDays", 30),
        run_output_retention_days=_int(app, "runOutputRetentionDays", 30),
        training_queue_wait_hours=_int(app, "trainingQueueWaitHours", 12),
    )


def main() -> None:
    """Synthesize the stack, with the cdk-nag AwsSolutions checks as part of synth."""
    app = cdk.App()
    ContextualTargetingStack(
        app,
        app.node.try_get_context("stackName") or "ContextualTargeting",
        settings=settings_from_context(app),
        # Environment-agnostic unless the CLI knows an account (it then sets these two variables).
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        ),
        description="contextual-targeting: ML audience segments from Amazon Personalize",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
