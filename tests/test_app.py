"""app.py reads the deployment choices from CDK context and rejects bad ones clearly."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from app import settings_from_context
from contextual_targeting.stack import ContextualTargetingSettings


def test_defaults_are_customer_profiles_only_and_no_email() -> None:
    settings = settings_from_context(cdk.App())
    assert settings == ContextualTargetingSettings()
    assert settings.destinations == ("customer-profiles",)
    assert settings.email is None


def test_context_values_from_the_cli_are_strings() -> None:
    app = cdk.App(
        context={
            "email": "me@example.com",
            "destinations": " pinpoint , customer-profiles,pinpoint",
            "customerProfilesDomainName": "amazon-connect-marketing",
            "pinpointProjectName": "bingewatch",
            "pinpointApplicationId": "abc123",
        }
    )
    assert settings_from_context(app) == ContextualTargetingSettings(
        email="me@example.com",
        destinations=("pinpoint", "customer-profiles"),
        customer_profiles_domain_name="amazon-connect-marketing",
        pinpoint_project_name="bingewatch",
        pinpoint_application_id="abc123",
    )


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"pinpoint": "true"}, ("customer-profiles", "pinpoint")),
        ({"pinpoint": "false"}, ("customer-profiles",)),
        ({"destinations": "pinpoint", "pinpoint": "true"}, ("pinpoint",)),
    ],
)
def test_the_older_pinpoint_switch_adds_pinpoint(context: dict[str, str], expected: tuple[str, ...]) -> None:
    assert settings_from_context(cdk.App(context=context)).destinations == expected


def test_a_flag_that_is_not_a_boolean_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="context 'pinpoint': expected true or false, got 'maybe'"):
        settings_from_context(cdk.App(context={"pinpoint": "maybe"}))


def test_an_unknown_destination_is_rejected_by_name() -> None:
    with pytest.raises(
        ValueError, match="unknown destination pinpont: choose from customer-profiles, pinpoint"
    ):
        settings_from_context(cdk.App(context={"destinations": "pinpont"}))


def test_retentions_and_the_queue_wait_come_from_context() -> None:
    app = cdk.App(
        context={
            "noncurrentVersionRetentionDays": "7",
            "runOutputRetentionDays": 90,
            "trainingQueueWaitHours": "4",
        }
    )
    settings = settings_from_context(app)
    assert settings.noncurrent_version_retention_days == 7
    assert settings.run_output_retention_days == 90
    assert settings.training_queue_wait_hours == 4


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"runOutputRetentionDays": "a month"}, "context 'runOutputRetentionDays': expected a whole number"),
        ({"noncurrentVersionRetentionDays": "0"}, "noncurrent_version_retention_days must be at least 1"),
    ],
)
def test_a_bad_retention_is_rejected_by_name(context: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from_context(cdk.App(context=context))


def test_customer_profiles_domain_expiration_comes_from_context() -> None:
    assert settings_from_context(cdk.App()).customer_profiles_domain_expiration_days == 366
    app = cdk.App(context={"customerProfilesDomainExpirationDays": "1098"})
    assert settings_from_context(app).customer_profiles_domain_expiration_days == 1098
    with pytest.raises(ValueError, match=r"customer_profiles_domain_expiration_days must be 1\.\.1098"):
        settings_from_context(cdk.App(context={"customerProfilesDomainExpirationDays": "2000"}))
