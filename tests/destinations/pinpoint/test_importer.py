"""PinpointSegmentImporter: rules, role trust, IAM scope, the end-of-support switch, SDK call shapes."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.destinations.pinpoint.importer import (
    PinpointSegmentImporter,
    PinpointSegmentImporterProps,
)
from contextual_targeting.local.harness import definition_from_template
from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack
from tests.destinations.support import (
    assert_subscribes_to_segment_ready,
    role_statements,
    statement_actions,
)
from tests.helpers import TEST_ENV, build_stack


def test_switch_off_leaves_pinpoint_out(template: Template) -> None:
    # The default stack (no `-c pinpoint=true`) deploys on accounts where Pinpoint is gone.
    text = json.dumps(template.to_json())
    assert "AWS::Pinpoint::" not in text
    assert "mobiletargeting" not in text
    assert "pinpoint.amazonaws.com" not in text
    assert not [k for k in template.to_json()["Resources"] if k.startswith("Pinpoint")]
    assert "PinpointImportStateMachineArn" not in template.to_json().get("Outputs", {})


def test_switch_on_adds_the_project_and_the_state_machine_outputs(full_template: Template) -> None:
    full_template.resource_count_is("AWS::Pinpoint::App", 1)
    outputs = full_template.to_json()["Outputs"]
    for name in (
        "PinpointPrepareStateMachineArn",
        "PinpointImportStateMachineArn",
        "PinpointDispatchStateMachineArn",
    ):
        assert name in outputs


def test_existing_application_id_creates_no_project() -> None:
    stack = build_stack(
        ContextualTargetingSettings(destinations=("pinpoint",), pinpoint_application_id="0123abcd")
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Pinpoint::App", 0)
    text = json.dumps(template.to_json())
    assert ":apps/0123abcd" in text


def test_stack_with_pinpoint_is_cdk_nag_clean(full_stack: ContextualTargetingStack) -> None:
    # Other components are checked by their own tests: only this construct's findings count here.
    result = AwsSolutionsChecks().validate_scope(full_stack)
    ours = [
        (v.rule_name, r.construct_path)
        for v in result.violations
        for r in v.violating_resources
        if r.construct_path.startswith("ContextualTargeting/Pinpoint/")
    ]
    assert ours == []


def test_segment_ready_rule_starts_the_prepare_workflow(full_template: Template) -> None:
    assert_subscribes_to_segment_ready(
        full_template, bus="TrainingEventBus", machine="PinpointPrepareWorkflow"
    )


def test_import_rule_listens_to_the_import_prefix_only_on_the_default_bus(full_template: Template) -> None:
    rules = [
        r
        for r in full_template.find_resources("AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"]
        .get("Ref", "")
        .startswith("PinpointImportTriggerDispatchWorkflow")
    ]
    assert len(rules) == 1
    props = rules[0]["Properties"]
    assert "EventBusName" not in props  # S3 delivers to the default bus
    assert props["EventPattern"]["detail-type"] == ["Object Created"]
    assert props["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "pinpoint/"}]}
    assert props["EventPattern"]["source"] == ["aws.s3"]
    assert props["EventPattern"]["detail"]["bucket"]["name"][0]["Ref"].startswith(
        "PinpointSegmentImportBucket"
    )
    # Exports land under exports/, which the rule's prefix does not match.
    assert not "exports/".startswith("pinpoint/")
    # The dispatcher starts the import workflow once per object version (common/test_object_trigger.py).
    dispatcher = definition_from_template(full_template.to_json(), "PinpointImportTriggerDispatchWorkflow")
    read = dispatcher["States"][dispatcher["StartAt"]]
    start = dispatcher["States"][read["Next"]]
    assert start["Parameters"]["StateMachineArn"].startswith("arn:aws:fake:::PinpointImportWorkflow")


def test_segment_import_bucket_sends_events_and_expires_exports(full_template: Template) -> None:
    full_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"Prefix": "exports/", "ExpirationInDays": 3, "Status": "Enabled"})]
                )
            },
        },
    )


def test_pinpoint_role_trusts_pinpoint_for_this_account_and_project_only(full_template: Template) -> None:
    full_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "pinpoint.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": "123456789012"},
                            "ArnLike": {
                                "aws:SourceArn": {
                                    "Fn::Join": [
                                        "",
                                        [
                                            "arn:aws:mobiletargeting:eu-central-1:123456789012:apps/",
                                            {"Ref": Match.string_like_regexp("^PinpointProject")},
                                        ],
                                    ]
                                }
                            },
                        },
                    }
                ]
            }
        },
    )


def test_pinpoint_role_reads_only_the_import_prefix_and_writes_only_the_export_prefix(
    full_template: Template,
) -> None:
    statements = role_statements(full_template, "PinpointPinpointRole")
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"ReadImportFiles", "ListImportPrefix", "WriteExports", "LocateBucket"}
    assert by_sid["ReadImportFiles"]["Action"] == "s3:GetObject"
    assert by_sid["ReadImportFiles"]["Resource"]["Fn::Join"][1][-1] == "/pinpoint/*"
    assert by_sid["WriteExports"]["Action"] == "s3:PutObject"
    assert by_sid["WriteExports"]["Resource"]["Fn::Join"][1][-1] == "/exports/*"
    assert by_sid["ListImportPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["pinpoint/*"]}}
    assert all("s3:PutObject" not in statement_actions(s) for s in statements if s["Sid"] != "WriteExports")


def test_workflows_call_pinpoint_on_this_project_only_and_pass_the_role(full_template: Template) -> None:
    expected = {
        "PinpointPrepareWorkflowRole": {
            "mobiletargeting:CreateExportJob": "",
            "mobiletargeting:GetExportJob": "/jobs/export/*",
        },
        "PinpointImportWorkflowRole": {
            "mobiletargeting:CreateImportJob": "",
            "mobiletargeting:GetImportJob": "/jobs/import/*",
        },
    }
    for role, calls in expected.items():
        statements = role_statements(full_template, role)
        for action, job_suffix in calls.items():
            [statement] = [s for s in statements if action in statement_actions(s)]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            rendered = [json.dumps(r) for r in resources]
            assert all("apps/" in r and "PinpointProject" in r for r in rendered), rendered
            if job_suffix:
                assert any(job_suffix in r for r in rendered), rendered
        assert any(
            "iam:PassRole" in statement_actions(s)
            and s["Resource"]["Fn::GetAtt"][0].startswith("PinpointPinpointRole")
            for s in statements
        )
        assert not [
            s
            for s in statements
            if any(a.startswith("mobiletargeting") for a in statement_actions(s)) and s["Resource"] == "*"
        ]


def test_workflows_pass_the_pinpoint_role_to_pinpoint_only(full_template: Template) -> None:
    # GIVEN the roles of the two Pinpoint workflows
    for role in ("PinpointPrepareWorkflowRole", "PinpointImportWorkflowRole"):
        # WHEN we read their iam:PassRole statements
        passes = [s for s in role_statements(full_template, role) if "iam:PassRole" in statement_actions(s)]
        # THEN each names the Pinpoint role and lets it go to Pinpoint alone
        assert passes, role
        for statement in passes:
            assert statement["Resource"]["Fn::GetAtt"][0].startswith("PinpointPinpointRole"), statement
            assert statement["Condition"] == {
                "StringEquals": {"iam:PassedToService": "pinpoint.amazonaws.com"}
            }, statement


def test_join_lambda_reads_segments_only_and_has_room_for_5m_users(full_template: Template) -> None:
    full_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Description": Match.string_like_regexp("streaming join"),
            "MemorySize": 3008,
            "Timeout": 900,
            "Environment": {"Variables": Match.object_like({"IMPORT_PREFIX": "pinpoint/", "CHANNELS": ""})},
        },
    )
    statements = role_statements(full_template, "PinpointEndpointJoinServiceRole")
    resources = json.dumps([s["Resource"] for s in statements])
    assert "/segments/*" in resources
    assert "/train/" not in resources
    assert "/batch/" not in resources


def test_botocore_pinpoint_model_accepts_every_sdk_call(full_template: Template) -> None:
    # Parameter names are checked against the pinpoint service model botocore ships.
    model = botocore.session.get_session().get_service_model("pinpoint")
    tpl = full_template.to_json()
    checked = set()
    for name in ("PinpointPrepareWorkflow", "PinpointImportWorkflow"):
        for state in definition_from_template(tpl, name)["States"].values():
            resource = state.get("Resource", "")
            if ":aws-sdk:pinpoint:" not in resource:
                continue
            action = resource.rsplit(":", 1)[1]
            operation = model.operation_model(action[0].upper() + action[1:])
            _check_members(state["Parameters"], operation.input_shape, operation.name)
            for path in state.get("ResultSelector", {}).values():
                top = path.removeprefix("$.").split(".")[0]
                assert top in operation.output_shape.members, (operation.name, path)
            checked.add(operation.name)
    assert checked == {"CreateExportJob", "GetExportJob", "CreateImportJob", "GetImportJob"}
    assert "TooManyRequestsException" in [
        e.name for e in model.operation_model("CreateImportJob").error_shapes
    ]


def _check_members(params: dict[str, Any], shape: Any, where: str) -> None:
    missing = [m for m in shape.required_members if m not in params and f"{m}.$" not in params]
    assert not missing, f"{where}: required {missing} missing"
    for key, value in params.items():
        member = key.removesuffix(".$")
        assert member in shape.members, f"{where}: {member} is not a member of {shape.name}"
        if isinstance(value, dict) and shape.members[member].type_name == "structure":
            _check_members(value, shape.members[member], f"{where}.{member}")


def test_overlapping_prefixes_are_refused() -> None:
    stack = cdk.Stack(cdk.App(), "T", env=TEST_ENV)
    bucket = s3.Bucket(stack, "B")
    props: dict[str, Any] = {
        "access_logs_bucket": bucket,
        "event_bus": events.EventBus(stack, "Bus"),
        "notification_topic": sns.Topic(stack, "Topic"),
        "segments_bucket": bucket,
    }
    with pytest.raises(ValueError, match="must not overlap"):
        PinpointSegmentImporter(
            stack,
            "P",
            props=PinpointSegmentImporterProps(
                **props, import_prefix="pinpoint/", export_prefix="pinpoint/exports/"
            ),
        )
    with pytest.raises(ValueError, match="key prefix"):
        PinpointSegmentImporter(
            stack, "Q", props=PinpointSegmentImporterProps(**props, import_prefix="pinpoint")
        )
