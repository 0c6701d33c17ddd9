"""Workflow logs: level ERROR without execution data by default (segments carry user ids), full logging only
when a deployment asks for it with `-c workflowLogLevel=ALL`."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from app import settings_from_context
from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack
from tests.helpers import build_stack


def _logging(template: Template) -> dict[str, dict[str, Any]]:
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    return {name: machine["Properties"]["LoggingConfiguration"] for name, machine in machines.items()}


@pytest.fixture(scope="module")
def debug_stack() -> ContextualTargetingStack:
    """Every destination, workflows logging everything."""
    return build_stack(
        ContextualTargetingSettings(destinations=("customer-profiles", "pinpoint"), workflow_log_level="ALL")
    )


def test_every_workflow_logs_errors_only_without_execution_data_by_default(full_template: Template) -> None:
    logging = _logging(full_template)
    assert len(logging) >= 7  # training, two dispatchers, post-processor, both destinations
    for name, config in logging.items():
        assert config["Level"] == "ERROR", name
        assert config["IncludeExecutionData"] is False, name
        assert config["Destinations"], name


def test_full_logging_is_a_deployment_choice_for_every_workflow(
    debug_stack: ContextualTargetingStack,
) -> None:
    for name, config in _logging(Template.from_stack(debug_stack)).items():
        assert config["Level"] == "ALL", name
        assert config["IncludeExecutionData"] is True, name
        assert config["Destinations"], name


def test_the_debug_stack_passes_aws_solutions_checks(debug_stack: ContextualTargetingStack) -> None:
    report = AwsSolutionsChecks().validate_scope(debug_stack)
    assert [v.rule_name for v in report.violations] == []


@pytest.mark.parametrize(
    ("value", "level"), [(None, "ERROR"), ("ALL", "ALL"), ("all", "ALL"), ("ERROR", "ERROR")]
)
def test_app_reads_the_log_level_from_context(value: str | None, level: str) -> None:
    app = cdk.App(context={} if value is None else {"workflowLogLevel": value})
    assert settings_from_context(app).workflow_log_level == level


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="workflowLogLevel 'DEBUG': choose ERROR or ALL"):
        settings_from_context(cdk.App(context={"workflowLogLevel": "DEBUG"}))
