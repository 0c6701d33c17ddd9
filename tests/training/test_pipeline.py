"""PersonalizeTrainingPipeline: the trigger rule, the state machine, its IAM, the validator, the SDK parameter
names against botocore, the shared polling fragment and cdk-nag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.common.storage import access_log_bucket
from contextual_targeting.local import definition_from_template
from contextual_targeting.training.create_and_wait import LONG, QUICK, TRAINING
from contextual_targeting.training.pipeline import (
    CONFIG_KEY_PATTERN,
    PersonalizeTrainingPipeline,
    PersonalizeTrainingPipelineProps,
)
from tests.helpers import CDK_CONTEXT, TEST_ENV

SDK_PREFIX = "arn:aws:states:::aws-sdk:"


@pytest.fixture(scope="module")
def pipeline_stack() -> cdk.Stack:
    """The construct alone in a bare stack."""
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "TrainingOnly", env=TEST_ENV)
    PersonalizeTrainingPipeline(
        stack,
        "Training",
        props=PersonalizeTrainingPipelineProps(
            access_logs_bucket=access_log_bucket(stack, "Logs"), notification_topic=sns.Topic(stack, "Topic")
        ),
    )
    return stack


@pytest.fixture(scope="module")
def tpl(pipeline_stack: cdk.Stack) -> Template:
    return Template.from_stack(pipeline_stack)


@pytest.fixture(scope="module")
def definition(tpl: Template) -> dict[str, Any]:
    return definition_from_template(tpl.to_json(), "TrainingTrainingWorkflow")


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])
        if "ItemProcessor" in state:
            yield from _states(state["ItemProcessor"]["States"])


def _all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(_states(definition["States"]))


# ---- trigger


def test_config_upload_rule_starts_the_dispatcher_for_config_keys_in_the_data_bucket(tpl: Template) -> None:
    tpl.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [{"Ref": Match.string_like_regexp("TrainingDataBucket")}]},
                    "object": {"key": [{"wildcard": "train/*/*_config.json"}]},
                },
            },
            # The dispatcher, not the training workflow: a repeated delivery must not start a training run.
            "Targets": [
                Match.object_like(
                    {"Arn": {"Ref": Match.string_like_regexp("^TrainingConfigTriggerDispatch")}}
                )
            ],
        },
    )
    assert CONFIG_KEY_PATTERN == "train/*/*_config.json"
    # No default EventBridge bus name: the rule listens where S3 sends its events.
    rules = tpl.find_resources("AWS::Events::Rule")
    assert all("EventBusName" not in r["Properties"] for r in rules.values())


def test_dispatcher_starts_the_training_workflow_once_per_config_version(tpl: Template) -> None:
    dispatcher = definition_from_template(tpl.to_json(), "TrainingConfigTriggerDispatchWorkflow")
    read = dispatcher["States"][dispatcher["StartAt"]]
    start = dispatcher["States"][read["Next"]]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert start["Parameters"]["StateMachineArn"].startswith("arn:aws:fake:::TrainingTrainingWorkflow")
    assert "Name.$" in start["Parameters"]
    # The training workflow reads the object the dispatcher names.
    assert set(read["Parameters"]["Source"]) >= {"Bucket.$", "Key.$"}
    assert start["Parameters"]["Input"] == {"Source.$": "$.Source"}


def test_no_upload_ledger(tpl: Template) -> None:
    tpl.resource_count_is("AWS::DynamoDB::Table", 0)


def test_data_bucket_sends_eventbridge_notifications_natively(tpl: Template) -> None:
    tpl.has_resource_properties(
        "AWS::S3::Bucket",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
    )
    tpl.resource_count_is("Custom::S3BucketNotifications", 0)


# ---- state machine


def test_state_machine_logs_errors_and_traces(tpl: Template) -> None:
    tpl.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ERROR", "IncludeExecutionData": False}),
        },
    )


def test_first_state_only_starts_counting_file_checks(definition: dict[str, Any]) -> None:
    states = _all_states(definition)
    assert definition["StartAt"] == "Start the training run"
    begin = states["Start the training run"]
    assert begin["Type"] == "Pass"
    assert begin["Result"] == {"Checks": 0}
    assert begin["ResultPath"] == "$.Files"
    assert begin["Next"] == "Was the run started by its schedule?"
    assert not [name for name, state in states.items() if "dynamodb" in str(state.get("Resource", ""))]


def test_every_long_running_resource_uses_the_one_polling_fragment(definition: dict[str, Any]) -> None:
    states = _all_states(definition)
    for label in (
        "dataset group",
        "dataset",
        "dataset import job",
        "solution",
        "solution version",
        "batch segment job",
    ):
        # GIVEN the fragment's states for this resource
        create, check, decide = (
            states[f"Create {label}"],
            states[f"Check {label}"],
            states[f"Is the {label} active?"],
        )
        schedule, wait = states[f"Schedule next {label} check"], states[f"Wait for {label}"]
        # THEN they form create -> announce -> check -> decide -> schedule -> wait -> check
        assert states[create["Next"]]["Type"] == "Task"
        assert check["Next"] == f"Is the {label} active?"
        assert decide["Default"] == f"Schedule next {label} check"
        assert schedule["Next"] == f"Wait for {label}"
        assert wait["Next"] == f"Check {label}"
        assert wait["SecondsPath"].endswith(".Poll.Wait")
        assert "Parameters" not in create, "the create request is the plan's, whole"
        assert check["ResultSelector"]["Status.$"].endswith(".Status")
        retried = {e for r in check["Retry"] for e in r["ErrorEquals"]}
        assert "Personalize.PersonalizeException" in retried
        created_retries = {e for r in create["Retry"] for e in r["ErrorEquals"]}
        assert {"Personalize.PersonalizeException", "Personalize.LimitExceededException"} <= created_retries


def test_schedules_back_off_to_a_cap_within_a_bound() -> None:
    assert QUICK.waits() == [5, 10, 20, 40, 60]
    assert LONG.waits() == [40, 80, 160, 320, 600]
    assert TRAINING.waits() == LONG.waits()
    assert TRAINING.limit == 24 * 3600
    assert LONG.limit == 6 * 3600


def test_imports_run_in_parallel_and_reusable_resources_catch_already_exists(
    definition: dict[str, Any],
) -> None:
    states = _all_states(definition)
    assert states["Import datasets"].get("MaxConcurrency", 0) == 0  # 0 or absent: no limit
    for name in ("Create dataset group", "Create dataset", "Create solution", "Create schema"):
        catches = [c["ErrorEquals"] for c in states[name]["Catch"]]
        assert catches[0] == ["Personalize.ResourceAlreadyExistsException"], name
    for name in ("Create dataset import job", "Create solution version", "Create batch segment job"):
        catches = [e for c in states[name]["Catch"] for e in c["ErrorEquals"]]
        assert "Personalize.ResourceAlreadyExistsException" not in catches, name


def test_sdk_parameters_in_the_definition_are_members_of_the_personalize_api(
    definition: dict[str, Any],
) -> None:
    # GIVEN every Personalize SDK task of the synthesized definition
    model = botocore.session.get_session().get_service_model("personalize")
    operations = {op.lower(): op for op in model.operation_names}
    tasks = [
        s
        for _, s in _states(definition["States"])
        if str(s.get("Resource", "")).startswith(f"{SDK_PREFIX}personalize:")
    ]
    assert len(tasks) == 13
    problems = []
    for state in tasks:
        service, action = state["Resource"][len(SDK_PREFIX) :].split(":")
        assert service == "personalize"
        operation = model.operation_model(operations[action.lower()])
        members = {m[0].upper() + m[1:] for m in operation.input_shape.members}
        keys = {k.removesuffix(".$") for k in state.get("Parameters", {})}
        problems += [f"{action}: {k}" for k in keys - members]
        if "Parameters" in state:
            required = {m[0].upper() + m[1:] for m in operation.input_shape.required_members}
            problems += [f"{action}: {k} missing" for k in required - keys]
    # THEN each key maps to a real member (creates send the plan's request: tests/training/test_config.py)
    assert problems == []


# ---- IAM


def _workflow_policy(tpl: Template) -> list[dict[str, Any]]:
    policies = tpl.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("TrainingTrainingWorkflowRole")}]}},
    )
    (policy,) = policies.values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def test_personalize_permissions_are_scoped_to_personalize_resource_types(tpl: Template) -> None:
    statements = _workflow_policy(tpl)
    personalize = [s for s in statements if any(a.startswith("personalize:") for a in _actions(s))]
    granted = {a for s in personalize for a in _actions(s)}
    assert {
        "personalize:createSchema",
        "personalize:createDatasetGroup",
        "personalize:describeDatasetGroup",
        "personalize:createDataset",
        "personalize:describeDataset",
        "personalize:createDatasetImportJob",
        "personalize:describeDatasetImportJob",
        "personalize:createSolution",
        "personalize:describeSolution",
        "personalize:createSolutionVersion",
        "personalize:describeSolutionVersion",
        "personalize:createBatchSegmentJob",
        "personalize:describeBatchSegmentJob",
    } == granted
    allowed_types = {
        "schema",
        "dataset-group",
        "dataset",
        "dataset-import-job",
        "solution",
        "batch-segment-job",
        "filter",
    }
    for statement in personalize:
        for resource in _resources(statement):
            text = json.dumps(resource)
            assert resource != "*"
            assert ":personalize:eu-central-1:123456789012:" in text, text
            kind = text.rsplit(":", 1)[1].split("/")[0]
            assert kind in allowed_types, text


def test_pass_role_only_for_the_personalize_role_and_only_to_personalize(tpl: Template) -> None:
    pass_role = [
        s
        for s in _workflow_policy(tpl)
        if "iam:PassRole" in _actions(s) and "PersonalizeRole" in json.dumps(s["Resource"])
    ]
    assert pass_role
    for statement in pass_role:
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}
        }
        for resource in _resources(statement):
            assert resource == {
                "Fn::GetAtt": [Match.string_like_regexp("TrainingPersonalizeRole"), "Arn"]
            } or ("PersonalizeRole" in json.dumps(resource))


def test_only_xray_and_log_delivery_use_a_star_resource(tpl: Template) -> None:
    star = [s for s in _workflow_policy(tpl) if "*" in _resources(s)]
    actions = {a for s in star for a in _actions(s)}
    assert actions <= {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }, actions


def test_validator_reads_train_and_batch_and_knows_the_role(tpl: Template) -> None:
    tpl.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Description": Match.string_like_regexp("training config"),
            "Environment": {
                "Variables": {
                    "PERSONALIZE_ROLE_ARN": {
                        "Fn::GetAtt": [Match.string_like_regexp("PersonalizeRole"), "Arn"]
                    }
                }
            },
            "Runtime": "python3.13",
        },
    )


# ---- cdk-nag


def test_training_pipeline_passes_aws_solutions_checks(pipeline_stack: cdk.Stack) -> None:
    report = AwsSolutionsChecks().validate_scope(pipeline_stack)
    violations = [
        f"{v.rule_name} at {c.construct_path}"
        for v in report.violations
        for c in v.violating_resources
        if "/Training/" in c.construct_path
    ]
    assert violations == []
