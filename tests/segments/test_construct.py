"""SegmentPostprocessor construct: trigger rule, function, IAM scoping, cdk-nag, its place in the stack."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Capture, Match, Template
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.common.storage import access_log_bucket, secure_bucket
from contextual_targeting.contracts.events import BATCH_SEGMENT_JOB_STATE_CHANGE, EVENT_SOURCE
from contextual_targeting.segments.postprocessor import SegmentPostprocessor, SegmentPostprocessorProps
from tests.helpers import CDK_CONTEXT, TEST_ENV


@pytest.fixture(scope="module")
def stack() -> cdk.Stack:
    """A bare stack holding the construct and the resources it is given."""
    app = cdk.App(context=CDK_CONTEXT)
    stack = cdk.Stack(app, "Test", env=TEST_ENV)
    bucket = secure_bucket(stack, "Data", access_logs=access_log_bucket(stack, "Logs"), log_prefix="d/")
    topic = sns.Topic(
        stack, "Topic", master_key=kms.Key(stack, "Key", enable_key_rotation=True), enforce_ssl=True
    )
    SegmentPostprocessor(
        stack,
        "SegmentPostprocessor",
        props=SegmentPostprocessorProps(
            bucket=bucket, event_bus=events.EventBus(stack, "Bus"), notification_topic=topic
        ),
    )
    return stack


@pytest.fixture(scope="module")
def template(stack: cdk.Stack) -> Template:
    return Template.from_stack(stack)


def logical_id(template: Template, type_: str, prefix: str) -> str:
    [found] = [k for k in template.find_resources(type_) if k.startswith(prefix)]
    return found


def statements(template: Template, policy_prefix: str) -> list[dict[str, Any]]:
    policy = template.find_resources("AWS::IAM::Policy")[
        logical_id(template, "AWS::IAM::Policy", policy_prefix)
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_rule_starts_the_workflow_on_active_batch_segment_jobs_of_the_pipeline_bus(
    template: Template,
) -> None:
    machine = logical_id(template, "AWS::StepFunctions::StateMachine", "SegmentPostprocessorWorkflow")
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": {"Ref": Match.string_like_regexp("^Bus")},
            "EventPattern": {
                "source": [EVENT_SOURCE],
                "detail-type": [BATCH_SEGMENT_JOB_STATE_CHANGE],
                "detail": {"Status": ["ACTIVE"]},
            },
            "Targets": [Match.object_like({"Arn": {"Ref": machine}})],
        },
    )


def test_function_is_arm64_python313_with_measured_memory_and_timeout(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "MemorySize": 2048,
            "Timeout": 300,
            "Environment": {
                "Variables": {
                    "SEGMENTS_BUCKET": {"Ref": Match.string_like_regexp("^Data")},
                    "SEGMENTS_PREFIX": "segments/",
                    "EXPIRY_TAG": "contextual-targeting-retention=expire",
                }
            },
        },
    )


def test_function_reads_only_batch_output_and_writes_only_segments(template: Template) -> None:
    data = logical_id(template, "AWS::S3::Bucket", "Data")
    arn = {"Fn::GetAtt": [data, "Arn"]}
    found = [
        s
        for s in statements(template, "SegmentPostprocessorSplitFunction")
        if not s["Action"][0].startswith("xray")
    ]
    assert found == [
        {"Action": "s3:GetObject", "Effect": "Allow", "Resource": {"Fn::Join": ["", [arn, "/batch/*"]]}},
        {
            "Action": "s3:ListBucket",
            "Condition": {"StringLike": {"s3:prefix": ["batch/*", "segments/*"]}},
            "Effect": "Allow",
            "Resource": arn,
        },
        # Superseded runs' files are tagged for expiry (retention.py); the tags are all it may change there.
        {
            "Action": ["s3:GetObjectTagging", "s3:PutObjectTagging"],
            "Effect": "Allow",
            "Resource": [
                {"Fn::Join": ["", [arn, "/batch/*"]]},
                {"Fn::Join": ["", [arn, "/segments/*"]]},
            ],
        },
        {
            "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [arn, "/segments/*"]]},
        },
    ]


def test_workflow_may_describe_jobs_put_events_on_the_bus_and_publish_to_the_topic(
    template: Template,
) -> None:
    found = {
        s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]): s["Resource"]
        for s in statements(template, "SegmentPostprocessorWorkflowRole")
    }
    assert found["personalize:DescribeBatchSegmentJob"] == (
        "arn:aws:personalize:eu-central-1:123456789012:batch-segment-job/*"
    )
    assert found["events:PutEvents"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::Events::EventBus", "Bus"), "Arn"]
    }
    assert found["sns:Publish"] == {"Ref": logical_id(template, "AWS::SNS::Topic", "Topic")}
    # The topic is KMS-encrypted: publishing needs its key too.
    assert found[("kms:Decrypt", "kms:GenerateDataKey*")] == {
        "Fn::GetAtt": [logical_id(template, "AWS::KMS::Key", "Key"), "Arn"]
    }
    assert not any("s3:" in str(action) for action in found)


def test_state_machine_is_logged_traced_and_bounded(template: Template) -> None:
    definition = Capture()
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ERROR", "IncludeExecutionData": False}),
            "DefinitionString": definition,
        },
    )
    text = "".join(part for part in definition.as_object()["Fn::Join"][1] if isinstance(part, str))
    assert '"TimeoutSeconds":3600' in text


def test_cdk_nag_is_clean(stack: cdk.Stack) -> None:
    result = AwsSolutionsChecks().validate_scope(stack)
    assert result.success, [v.rule_name for v in result.violations]


def test_full_stack_wires_the_postprocessor_to_the_training_bucket_and_bus(full_template: Template) -> None:
    full_template.has_output(
        "SegmentPostprocessorStateMachineArn",
        {"Value": {"Ref": Match.string_like_regexp("^SegmentPostprocessorWorkflow")}},
    )
    full_template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": {"Ref": Match.string_like_regexp("^TrainingEventBus")},
            "EventPattern": Match.object_like({"detail-type": [BATCH_SEGMENT_JOB_STATE_CHANGE]}),
        },
    )
    full_template.has_resource_properties(
        "AWS::Lambda::Function",
        Match.object_like(
            {
                "Environment": {
                    "Variables": Match.object_like(
                        {"SEGMENTS_BUCKET": {"Ref": Match.string_like_regexp("^TrainingDataBucket")}}
                    )
                }
            }
        ),
    )
