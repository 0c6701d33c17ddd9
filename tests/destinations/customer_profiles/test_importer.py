"""CustomerProfilesSegmentImporter in a bare stack: rule, domain, IAM scope, cdk-nag, props checks."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.destinations.customer_profiles.importer import (
    CustomerProfilesSegmentImporter,
    CustomerProfilesSegmentImporterProps,
)
from tests.destinations.support import (
    assert_subscribes_to_segment_ready,
    role_statements,
    statement_actions,
)
from tests.helpers import CDK_CONTEXT, TEST_ENV


def probe(**props: Any) -> tuple[cdk.Stack, CustomerProfilesSegmentImporter]:
    """The construct in a bare stack with its own data bucket, bus and KMS-encrypted topic."""
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "Probe", env=TEST_ENV)
    importer = CustomerProfilesSegmentImporter(
        stack,
        "CustomerProfiles",
        props=CustomerProfilesSegmentImporterProps(
            segments_bucket=s3.Bucket(stack, "Data"),
            event_bus=events.EventBus(stack, "Bus"),
            notification_topic=sns.Topic(stack, "Topic", master_key=kms.Key(stack, "TopicKey")),
            **props,
        ),
    )
    return stack, importer


@pytest.fixture(scope="module")
def stack() -> cdk.Stack:
    """The default construct."""
    return probe()[0]


@pytest.fixture(scope="module")
def template(stack: cdk.Stack) -> Template:
    """Its template."""
    return Template.from_stack(stack)


def resources(statement: dict[str, Any]) -> list[str]:
    """The statement's resources rendered as text (tokens as JSON)."""
    resource = statement["Resource"]
    return [
        r if isinstance(r, str) else json.dumps(r)
        for r in (resource if isinstance(resource, list) else [resource])
    ]


def test_segment_ready_rule_starts_the_upload_workflow(template: Template) -> None:
    assert_subscribes_to_segment_ready(template, bus="Bus", machine="CustomerProfilesUploadWorkflow")


def test_domain_is_created_linkable_encrypted_and_expiring(template: Template) -> None:
    (domain,) = template.find_resources("AWS::CustomerProfiles::Domain").values()
    props = domain["Properties"]
    assert props["DomainName"].startswith("amazon-connect-")
    assert len(props["DomainName"]) <= 64
    assert props["DefaultExpirationDays"] == 366
    assert props["DefaultEncryptionKey"]["Fn::GetAtt"][0].startswith("CustomerProfilesDomainKey")
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    key_policy = json.dumps(template.find_resources("AWS::KMS::Key"))
    assert "profile.amazonaws.com" in key_policy
    assert "aws:SourceAccount" in key_policy


def test_existing_domain_creates_no_domain_and_scopes_iam_to_it() -> None:
    stack, importer = probe(domain_name="amazon-connect-existing")
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::CustomerProfiles::Domain", 0)
    assert importer.domain_name == "amazon-connect-existing"
    text = json.dumps(template.to_json())
    assert "domains/amazon-connect-existing" in text
    assert "domains/amazon-connect-existing/segment-definitions/*" in text


def test_customer_profiles_permissions_are_scoped_to_the_domain(template: Template) -> None:
    profile = [
        s
        for s in role_statements(template, "CustomerProfilesUploadWorkflowRole")
        if statement_actions(s)[0].startswith("profile:")
    ]
    granted = sorted(a for s in profile for a in statement_actions(s))
    assert granted == [
        "profile:CreateSegmentDefinition",
        "profile:CreateUploadJob",
        "profile:GetSegmentDefinition",
        "profile:GetUploadJob",
        "profile:StartUploadJob",
    ]
    for statement in profile:
        for resource in resources(statement):
            assert "arn:aws:profile:eu-central-1:123456789012:domains/" in resource
            assert "CustomerProfilesDomain" in resource
            assert resource.endswith(('"}]]}', '/segment-definitions/*"]]}'))
    # The uploading Lambda may fetch the upload path (and its key) of this domain only.
    (send,) = [
        s
        for s in role_statements(template, "CustomerProfilesSendUploadFile")
        if "profile:GetUploadJobPath" in statement_actions(s)
    ]
    assert statement_actions(send) == ["profile:GetUploadJobPath"]
    assert "segment-definitions" not in resources(send)[0]


def test_s3_access_stays_on_the_prefixes(template: Template) -> None:
    text = json.dumps(role_statements(template, "CustomerProfilesUploadFile"))
    assert "/segments/*" in text
    assert "/train/*/users.csv" in text
    assert "/destinations/customer-profiles/*" in text
    machine = [
        s
        for s in role_statements(template, "CustomerProfilesUploadWorkflowRole")
        if statement_actions(s)[0].startswith("s3:")
    ]
    assert sorted(a for s in machine for a in statement_actions(s)) == [
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:PutObject",
        "s3:PutObjectTagging",
    ]
    for statement in machine:
        assert all("/destinations/customer-profiles/*" in r for r in resources(statement))


def test_gate_lists_only_its_own_machine(template: Template) -> None:
    (listing,) = [
        s
        for s in role_statements(template, "CustomerProfilesUploadGate")
        if "states:ListExecutions" in statement_actions(s)
    ]
    assert listing["Resource"]["Ref"].startswith("CustomerProfilesUploadWorkflow")


def test_the_machine_may_publish_to_the_encrypted_topic(template: Template) -> None:
    granted = role_statements(template, "CustomerProfilesUploadWorkflowRole")
    assert any("sns:Publish" in statement_actions(s) for s in granted)
    assert any(
        "kms:GenerateDataKey*" in statement_actions(s) and "TopicKey" in json.dumps(s["Resource"])
        for s in granted
    )


def test_construct_is_cdk_nag_clean(stack: cdk.Stack) -> None:
    result = AwsSolutionsChecks().validate_scope(stack)
    ours = [
        (v.rule_name, r.construct_path)
        for v in result.violations
        for r in v.violating_resources
        if "/CustomerProfiles/" in r.construct_path
    ]
    assert ours == []


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"data_expiry_days": 0}, "outside 1..1098"),
        ({"data_expiry_days": 1099}, "outside 1..1098"),
        ({"max_concurrent_uploads": 0}, "at least 1"),
        ({"email_column": ""}, "contact file column"),
        ({"state_prefix": "segments/cp/"}, "outside segments/"),
    ],
)
def test_invalid_props_fail_at_synth(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probe(**props)


def test_settings_reach_the_lambdas_and_the_workflow() -> None:
    stack, _ = probe(phone_column="PHONE", max_concurrent_uploads=4, data_expiry_days=30)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "PHONE_COLUMN": "PHONE",
                        "EMAIL_COLUMN": "E_MAIL",
                        "CONTACTS_KEY": "train/{dataset_group}/users.csv",
                    }
                )
            },
            "MemorySize": 3008,
        },
    )
    definition = json.dumps(template.find_resources("AWS::StepFunctions::StateMachine"))
    assert '\\"Limit\\":4' in definition
    assert '\\"DataExpiry\\":30' in definition


def test_domain_expiration_is_its_own_and_upload_jobs_keep_their_data_expiry() -> None:
    # GIVEN a domain that keeps profiles for the maximum, and uploads that expire after 10 days
    stack, _ = probe(domain_expiration_days=1098, data_expiry_days=10)
    template = Template.from_stack(stack)
    # THEN the domain's default covers what Amazon Connect creates, the upload job keeps its DataExpiry
    template.has_resource_properties("AWS::CustomerProfiles::Domain", {"DefaultExpirationDays": 1098})
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    assert '\\"DataExpiry\\":10' in json.dumps(machine["Properties"]["DefinitionString"])


@pytest.mark.parametrize("days", [0, 1099])
def test_domain_expiration_outside_the_api_range_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="domain_expiration_days"):
        probe(domain_expiration_days=days)
