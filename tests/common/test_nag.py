"""cdk-nag AwsSolutions checks: the stack passes, and the check itself catches what it should."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.common.nag import acknowledge, objects_finding
from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack
from tests.helpers import CDK_CONTEXT, TEST_ENV


def _violations(scope: cdk.Stack) -> list[str]:
    report = AwsSolutionsChecks().validate_scope(scope)
    return [
        f"{violation.rule_name} at {construct.construct_path}"
        for violation in report.violations
        for construct in violation.violating_resources
    ]


@pytest.mark.parametrize("stack_fixture", ["stack", "full_stack"])
def test_stack_passes_aws_solutions_checks(stack_fixture: str, request: pytest.FixtureRequest) -> None:
    stack: ContextualTargetingStack = request.getfixturevalue(stack_fixture)
    assert _violations(stack) == []


def _bucket_and_role(acknowledged: bool) -> cdk.Stack:
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "Probe", env=TEST_ENV)
    bucket = s3.Bucket(stack, "Bucket", enforce_ssl=True)
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("personalize.amazonaws.com"))
    role.add_to_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("in/*")])
    )
    if acknowledged:
        acknowledge(role, "IAM5", "probe", findings=[objects_finding(bucket, "in/*")])
    acknowledge(bucket, "S1", "probe")
    return stack


def test_unacknowledged_wildcard_is_reported_and_a_named_finding_silences_only_itself() -> None:
    # GIVEN a role with an object wildcard, once without and once with its acknowledgment
    # WHEN the checks run
    plain = _violations(_bucket_and_role(acknowledged=False))
    acknowledged = _violations(_bucket_and_role(acknowledged=True))
    # THEN the wildcard is an error until acknowledged by its exact finding
    assert any(v.startswith("AwsSolutions-IAM5[Resource::<Bucket83908E77.Arn>/in/*]") for v in plain)
    assert acknowledged == []


def test_every_acknowledgment_states_a_reason(full_stack: ContextualTargetingStack) -> None:
    reasons = [
        reason
        for construct in full_stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for reason in dict(entry.data).values()
    ]
    assert reasons, (
        "the stack acknowledges some findings; none found means this test looks in the wrong place"
    )
    assert all(len(str(reason)) > 20 for reason in reasons)


def test_settings_have_no_secrets_field() -> None:
    # The stack takes no credentials or tokens: everything sensitive stays with AWS IAM.
    fields = ContextualTargetingSettings.__dataclass_fields__
    assert not {
        name for name in fields if any(word in name for word in ("secret", "password", "token", "key"))
    }
