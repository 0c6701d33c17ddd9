"""Fine-grained assertions on the shared infrastructure of ContextualTargetingStack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from contextual_targeting.common.notifications import validate_email
from contextual_targeting.local import definition_from_template
from contextual_targeting.stack import ContextualTargetingSettings
from tests.helpers import build_stack

ACCOUNT = "123456789012"
PERSONALIZE_SOURCE_ARN = "arn:aws:personalize:eu-central-1:123456789012:*"
PERSONALIZE_CONDITIONS = {
    "StringEquals": {"aws:SourceAccount": ACCOUNT},
    "ArnLike": {"aws:SourceArn": PERSONALIZE_SOURCE_ARN},
}


def _logical_id(template: Template, resource_type: str, props: dict[str, Any] | None = None) -> str:
    found = template.find_resources(resource_type, {"Properties": props} if props else None)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found))


def _data_bucket_id(template: Template) -> str:
    found = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"LoggingConfiguration": {"LogFilePrefix": "personalize-data/"}}}
    )
    assert len(found) == 1
    return next(iter(found))


def _same(left: list[Any], right: list[Any]) -> bool:
    """Equal as multisets: CDK may reorder resources when it minimizes policies."""
    return sorted(map(json.dumps, left)) == sorted(map(json.dumps, right))


def _objects(bucket_id: str, pattern: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{pattern}"]]}


HARDENED_BUCKET = {
    "BucketEncryption": {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    },
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    },
    "VersioningConfiguration": {"Status": "Enabled"},
}


@pytest.mark.parametrize("log_prefix", ["personalize-data/", "segment-import/"])
def test_data_buckets_are_hardened_logged_retained_and_emit_eventbridge_notifications(
    full_template: Template, log_prefix: str
) -> None:
    # GIVEN the stack with every option on (the segment-import bucket comes with Pinpoint)
    access_logs = _logical_id(
        full_template,
        "AWS::S3::Bucket",
        {
            "OwnershipControls": Match.any_value(),
            "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 365})]},
        },
    )
    # THEN each data bucket is hardened, logs to the access-log bucket and notifies EventBridge natively
    full_template.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    **HARDENED_BUCKET,
                    "LoggingConfiguration": {
                        "DestinationBucketName": {"Ref": access_logs},
                        "LogFilePrefix": log_prefix,
                    },
                    "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
                }
            ),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_no_custom_resource_rewrites_bucket_notifications(full_template: Template) -> None:
    full_template.resource_count_is("Custom::S3BucketNotifications", 0)
    assert not full_template.find_resources(
        "AWS::Lambda::Function",
        {"Properties": {"Description": Match.string_like_regexp("S3 bucket notification")}},
    )


def test_every_bucket_denies_plain_http(full_template: Template) -> None:
    buckets = full_template.find_resources("AWS::S3::Bucket")
    policies = full_template.find_resources("AWS::S3::BucketPolicy")
    tls_only = {
        policy["Properties"]["Bucket"]["Ref"]
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert tls_only == set(buckets)


def test_access_log_bucket_is_hardened_and_expires_logs(template: Template) -> None:
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    **HARDENED_BUCKET,
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {
                        "Rules": [Match.object_like({"ExpirationInDays": 365, "Status": "Enabled"})]
                    },
                    "LoggingConfiguration": Match.absent(),
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )


def test_personalize_can_read_train_and_batch_and_write_batch_through_the_bucket_policy(
    template: Template,
) -> None:
    bucket = _data_bucket_id(template)
    statements = Capture()
    template.has_resource_properties(
        "AWS::S3::BucketPolicy", {"Bucket": {"Ref": bucket}, "PolicyDocument": {"Statement": statements}}
    )
    personalize = [
        s for s in statements.as_array() if s.get("Principal") == {"Service": "personalize.amazonaws.com"}
    ]
    by_action = {s["Action"]: s for s in personalize}
    assert set(by_action) == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    assert _same(
        by_action["s3:GetObject"]["Resource"], [_objects(bucket, "train/*"), _objects(bucket, "batch/*")]
    )
    assert by_action["s3:PutObject"]["Resource"] == _objects(bucket, "batch/*")
    assert by_action["s3:ListBucket"]["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    for statement in personalize:
        assert statement["Effect"] == "Allow"
        assert statement["Condition"] == PERSONALIZE_CONDITIONS


def test_personalize_role_trusts_only_personalize_for_this_account(template: Template) -> None:
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "personalize.amazonaws.com"},
                        "Condition": PERSONALIZE_CONDITIONS,
                    }
                ]
            }
        },
    )


def test_personalize_role_s3_access_is_limited_to_its_prefixes(template: Template) -> None:
    bucket = _data_bucket_id(template)
    role = _logical_id(
        template,
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "personalize.amazonaws.com"}})]
            }
        },
    )
    statements = Capture()
    template.has_resource_properties(
        "AWS::IAM::Policy", {"Roles": [{"Ref": role}], "PolicyDocument": {"Statement": statements}}
    )
    by_action = {s["Action"]: s for s in statements.as_array()}
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    assert all(s["Effect"] == "Allow" for s in by_action.values())
    assert _same(
        by_action["s3:GetObject"]["Resource"], [_objects(bucket, "train/*"), _objects(bucket, "batch/*")]
    )
    assert by_action["s3:ListBucket"]["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert by_action["s3:PutObject"]["Resource"] == _objects(bucket, "batch/*")


def test_pipeline_has_its_own_event_bus(template: Template) -> None:
    template.resource_count_is("AWS::Events::EventBus", 1)
    bus = _logical_id(template, "AWS::Events::EventBus")
    template.has_output("EventBusArn", {"Value": {"Fn::GetAtt": [bus, "Arn"]}})
    template.has_output("EventBusName", {"Value": {"Ref": bus}})


def test_notification_topic_is_encrypted_with_a_rotating_key_and_tls_only(template: Template) -> None:
    key = _logical_id(
        template,
        "AWS::KMS::Key",
        {"EnableKeyRotation": True, "Description": "Encrypts the contextual-targeting notification topic"},
    )
    topic = _logical_id(template, "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            },
        },
    )
    template.has_output("NotificationTopicArn", {"Value": {"Ref": topic}})


def test_email_subscription_only_when_an_address_is_given(
    template: Template, full_template: Template
) -> None:
    template.resource_count_is("AWS::SNS::Subscription", 0)
    full_template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "marketing@example.com"}
    )


@pytest.mark.parametrize("bad", ["", "marketing", "a@b", "two words@example.com", "a@@example.com"])
def test_invalid_email_is_rejected_naming_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match=r"email: .* is not an email address"):
        build_stack(ContextualTargetingSettings(email=bad or " "))
    with pytest.raises(ValueError, match="email"):
        validate_email(bad)


def test_pinpoint_destination_is_left_out_by_default(template: Template) -> None:
    # Pinpoint reached end of support on 2026-10-30: creating a project fails on today's accounts.
    template.resource_count_is("AWS::Pinpoint::App", 0)
    assert "PinpointApplicationId" not in template.find_outputs("*")
    assert "SegmentImportBucketName" not in template.find_outputs("*")


def test_default_deploy_delivers_to_customer_profiles(template: Template) -> None:
    template.resource_count_is("AWS::CustomerProfiles::Domain", 1)
    assert {"CustomerProfilesDomainName", "CustomerProfilesStateMachineArn"} <= set(
        template.find_outputs("*")
    )


@pytest.mark.parametrize(
    ("destinations", "profiles", "pinpoint"),
    [
        (("pinpoint",), 0, 1),
        (("customer-profiles", "pinpoint"), 1, 1),
        ((), 0, 0),
    ],
)
def test_each_destination_choice_deploys_exactly_its_destinations(
    destinations: tuple[str, ...], profiles: int, pinpoint: int
) -> None:
    template = Template.from_stack(build_stack(ContextualTargetingSettings(destinations=destinations)))
    template.resource_count_is("AWS::CustomerProfiles::Domain", profiles)
    template.resource_count_is("AWS::Pinpoint::App", pinpoint)
    # The destination-neutral part is always there: segments and Segment Ready events.
    assert "SegmentPostprocessorStateMachineArn" in template.find_outputs("*")


def test_pinpoint_project_is_created_with_the_configured_name(full_template: Template) -> None:
    full_template.has_resource_properties("AWS::Pinpoint::App", {"Name": "personalize"})
    project = _logical_id(full_template, "AWS::Pinpoint::App")
    full_template.has_output("PinpointApplicationId", {"Value": {"Ref": project}})


def test_existing_pinpoint_project_is_reused() -> None:
    stack = build_stack(
        ContextualTargetingSettings(
            destinations=("pinpoint",), pinpoint_application_id="0123456789abcdef0123456789abcdef"
        )
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Pinpoint::App", 0)
    template.has_output("PinpointApplicationId", {"Value": "0123456789abcdef0123456789abcdef"})


def test_outputs_the_cli_and_readme_use(template: Template, full_template: Template) -> None:
    assert {"PersonalizeBucketName", "EventBusArn", "EventBusName", "NotificationTopicArn"} <= set(
        template.find_outputs("*")
    )
    assert {"SegmentImportBucketName", "PinpointApplicationId"} <= set(full_template.find_outputs("*"))
    template.has_output("PersonalizeBucketName", {"Value": {"Ref": _data_bucket_id(template)}})


def _states(machine: dict[str, Any]) -> Any:
    """Every state of a definition, nested ones (Parallel branches, Map processors) included."""
    for name, state in machine.get("States", {}).items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _states(state[key])


def test_every_lambda_task_retries_throttling(full_template: Template) -> None:
    # GIVEN every state machine of the stack with both destinations
    machines = full_template.find_resources("AWS::StepFunctions::StateMachine")
    functions = set(full_template.find_resources("AWS::Lambda::Function"))
    lambda_tasks = 0
    for logical_id in machines:
        definition = definition_from_template(full_template.to_json(), logical_id)
        # THEN each Lambda task retries Lambda's throttling error (not in CDK's default retrier)
        for name, state in _states(definition):
            resource = state.get("Resource", "")
            # LambdaInvoke renders `lambda:invoke`, or the function's ARN with payload_response_only.
            if resource.endswith(":lambda:invoke") or resource.rsplit(":", 1)[-1] in functions:
                lambda_tasks += 1
                retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
                assert "Lambda.TooManyRequestsException" in retried, f"{logical_id}: {name}"
    assert lambda_tasks >= 7
