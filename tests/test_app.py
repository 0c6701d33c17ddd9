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
