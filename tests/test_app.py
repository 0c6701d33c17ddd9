"""app.py reads the deployment choices from CDK context and rejects bad ones clearly."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from app import settings_from_context
from contextual_targeting.stack import ContextualTargetingSettings


def test_defaults_leave_out_email_and_pinpoint() -> None:
    assert settings_from_context(cdk.App()) == ContextualTargetingSettings()


def test_context_values_from_the_cli_are_strings() -> None:
    app = cdk.App(
        context={
            "email": "me@example.com",
            "pinpoint": "true",
            "pinpointProjectName": "bingewatch",
            "pinpointApplicationId": "abc123",
        }
    )
    assert settings_from_context(app) == ContextualTargetingSettings(
        email="me@example.com",
        pinpoint=True,
        pinpoint_project_name="bingewatch",
        pinpoint_application_id="abc123",
    )


def test_a_flag_that_is_not_a_boolean_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="context 'pinpoint': expected true or false, got 'maybe'"):
        settings_from_context(cdk.App(context={"pinpoint": "maybe"}))
