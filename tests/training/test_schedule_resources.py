"""PersonalizeTrainingPipeline's resources for scheduled retraining and bounded storage: the schedule group,
the scheduler role, the workflow's Scheduler and S3 calls against botocore's models, the run-queue Lambda's
access, and the data bucket's lifecycle rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from contextual_targeting.common.storage import access_log_bucket
from contextual_targeting.contracts.layout import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE
from contextual_targeting.local import definition_from_template
from contextual_targeting.training.pipeline import (
    PersonalizeTrainingPipeline,
    PersonalizeTrainingPipelineProps,
)
from tests.helpers import CDK_CONTEXT, TEST_ENV

SDK_PREFIX = "arn:aws:states:::aws-sdk:"


def _stack(**props: Any) -> cdk.Stack:
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "TrainingOnly", env=TEST_ENV)
    PersonalizeTrainingPipeline(
        stack,
        "Training",
        props=PersonalizeTrainingPipelineProps(
            access_logs_bucket=access_log_bucket(stack, "Logs"),
            notification_topic=sns.Topic(stack, "Topic"),
            **props,
        ),
    )
    return stack


@pytest.fixture(scope="module")
def tpl() -> Template:
    return Template.from_stack(_stack())


@pytest.fixture(scope="module")
def definition(tpl: Template) -> dict[str, Any]:
    return definition_from_template(tpl.to_json(), "TrainingTrainingWorkflow")


def _states(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])
        if "ItemProcessor" in state:
            yield from _states(state["ItemProcessor"]["States"])


def _policy_statements(tpl: Template, role_prefix: str) -> list[dict[str, Any]]:
    policies = tpl.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": Match.string_like_regexp(f"^{role_prefix}")}]}}
    )
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# ---- schedules


def test_the_stack_owns_one_schedule_group(tpl: Template) -> None:
    tpl.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)
    group = next(iter(tpl.find_resources("AWS::Scheduler::ScheduleGroup").values()))
    assert "Name" not in group.get("Properties", {}), "no physical name: CloudFormation generates one"
    assert group["DeletionPolicy"] == "Delete"


def test_only_scheduler_for_this_account_and_group_assumes_the_schedule_role(tpl: Template) -> None:
    tpl.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "scheduler.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": "123456789012"},
                            "ArnEquals": {
                                "aws:SourceArn": {
                                    "Fn::GetAtt": [Match.string_like_regexp("TrainingSchedulesGroup"), "Arn"]
                                }
                            },
                        },
                    }
                ]
            }
        },
    )


def _is_training_workflow(resource: Any) -> bool:
    return isinstance(resource, dict) and str(resource.get("Ref", "")).startswith("TrainingTrainingWorkflow")


def test_the_schedule_role_may_only_start_the_training_workflow(tpl: Template) -> None:
    (statement,) = _policy_statements(tpl, "TrainingSchedulesRole")
    assert _actions(statement) == ["states:StartExecution"]
    assert _is_training_workflow(statement["Resource"])


def test_the_workflow_passes_the_schedule_role_only_to_scheduler(tpl: Template) -> None:
    statements = _policy_statements(tpl, "TrainingTrainingWorkflowRole")
    passes = [s for s in statements if "iam:PassRole" in _actions(s)]
    by_role = {s["Resource"]["Fn::GetAtt"][0].rstrip("0123456789ABCDEF"): s["Condition"] for s in passes}
    assert by_role == {
        "TrainingSchedulesRole": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        "TrainingPersonalizeRole": {"StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}},
    }


def test_scheduler_calls_are_scoped_to_the_stacks_group(tpl: Template) -> None:
    statements = _policy_statements(tpl, "TrainingTrainingWorkflowRole")
    scheduler = [s for s in statements if any(a.startswith("scheduler:") for a in _actions(s))]
    granted = {a for s in scheduler for a in _actions(s)}
    assert granted == {
        "scheduler:getSchedule",
        "scheduler:createSchedule",
        "scheduler:updateSchedule",
        "scheduler:deleteSchedule",
    }
    for statement in scheduler:
        text = json.dumps(statement["Resource"])
        assert ":scheduler:eu-central-1:123456789012:schedule/" in text
        assert "TrainingSchedulesGroup" in text


def _check_shape(shape: Any, value: Any, where: str) -> list[str]:
    """PascalCase keys of `value` (`.$` suffixes dropped) against a botocore shape, recursively."""
    problems: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        members = {name[0].upper() + name[1:]: member for name, member in shape.members.items()}
        keys = {k.removesuffix(".$"): v for k, v in value.items()}
        for key, item in keys.items():
            if key not in members:
                problems.append(f"{where}.{key} is not a member of {shape.name}")
            else:
                problems += _check_shape(members[key], item, f"{where}.{key}")
        required = {name[0].upper() + name[1:] for name in shape.required_members}
        problems += [f"{where}.{key} is required" for key in required - set(keys)]
    return problems


@pytest.mark.parametrize("service", ["scheduler", "s3"])
def test_every_sdk_call_matches_the_service_model(definition: dict[str, Any], service: str) -> None:
    # GIVEN every SDK task of the service in the synthesized definition
    model = botocore.session.get_session().get_service_model(service)
    operations = {op.lower(): op for op in model.operation_names}
    tasks = [
        s
        for s in _states(definition["States"])
        if str(s.get("Resource", "")).startswith(f"{SDK_PREFIX}{service}:")
    ]
    # THEN each parameter key is a member of the operation's input (nested ones too) and none is missing
    actions = sorted(t["Resource"].rsplit(":", 1)[1] for t in tasks)
    expected = {
        "scheduler": ["createSchedule", "deleteSchedule", "getSchedule", "updateSchedule"],
        "s3": ["putObject"],
    }
    assert actions == expected[service]
    problems = []
    for state in tasks:
        action = state["Resource"].rsplit(":", 1)[1]
        operation = model.operation_model(operations[action.lower()])
        problems += _check_shape(operation.input_shape, state["Parameters"], action)
    assert problems == []


def test_the_schedule_errors_the_workflow_names_are_the_scheduler_models() -> None:
    model = botocore.session.get_session().get_service_model("scheduler")
    errors = {
        f"Scheduler.{e.name}" for op in model.operation_names for e in model.operation_model(op).error_shapes
    }
    from contextual_targeting.training.schedule import SCHEDULE_NOT_FOUND, SCHEDULER_RETRYABLE

    assert {SCHEDULE_NOT_FOUND, *SCHEDULER_RETRYABLE} <= errors


# ---- run queue


def test_the_run_queue_lists_and_describes_only_training_executions(tpl: Template) -> None:
    statements = _policy_statements(tpl, "TrainingRunQueueServiceRole")
    queue = {a: s["Resource"] for s in statements for a in _actions(s) if a.startswith("states:")}
    assert set(queue) == {"states:ListExecutions", "states:DescribeExecution"}
    assert _is_training_workflow(queue["states:ListExecutions"])
    described = json.dumps(queue["states:DescribeExecution"])
    assert ":execution:" in described
    assert "TrainingTrainingWorkflow" in described


def test_the_workflow_records_data_versions_only_under_the_state_prefix(tpl: Template) -> None:
    statements = _policy_statements(tpl, "TrainingTrainingWorkflowRole")
    puts = [s for s in statements if "s3:PutObject" in _actions(s)]
    assert len(puts) == 1
    assert json.dumps(puts[0]["Resource"]).endswith('"/state/training/*"]]}')


# ---- lifecycle


def _rules(template: Template) -> dict[str, dict[str, Any]]:
    buckets = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"NotificationConfiguration": Match.any_value()}}
    )
    (bucket,) = [b for name, b in buckets.items() if name.startswith("TrainingDataBucket")]
    return {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}


def test_the_data_bucket_expires_old_versions_run_files_and_stale_uploads(tpl: Template) -> None:
    rules = _rules(tpl)
    assert rules == {
        "NoncurrentVersionsAndIncompleteUploads": {
            "Id": "NoncurrentVersionsAndIncompleteUploads",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "ExpiredObjectDeleteMarker": True,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        "SupersededRunFiles": {
            "Id": "SupersededRunFiles",
            "Status": "Enabled",
            "TagFilters": [{"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}],
            "ExpirationInDays": 30,
        },
    }


def test_no_rule_expires_current_objects_by_prefix(tpl: Template) -> None:
    # Current configs, CSVs, query files, the latest run's output and segments, member lists and the
    # training state are only ever expired by the tag the pipeline sets on superseded run files.
    for rule in _rules(tpl).values():
        if "ExpirationInDays" in rule or "ExpirationDate" in rule:
            assert "Prefix" not in rule
            assert rule["TagFilters"] == [{"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}]


def test_retentions_are_settings() -> None:
    rules = _rules(
        Template.from_stack(
            _stack(
                noncurrent_version_retention=cdk.Duration.days(7), run_output_retention=cdk.Duration.days(90)
            )
        )
    )
    assert rules["NoncurrentVersionsAndIncompleteUploads"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 7
    }
    assert rules["SupersededRunFiles"]["ExpirationInDays"] == 90
