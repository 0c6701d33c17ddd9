"""Every bad ending of every workflow reaches a person once: the failure rules against sample status changes.

The rules' patterns are matched with moto's EventBridge pattern matcher (exact values, `prefix`, `$or`);
the workflows' definitions are read to prove that what the rules leave out is what the workflows report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from contextual_targeting.contracts.events import WORKFLOW_FAILED
from contextual_targeting.local import Outbox, definition_from_template, run_workflow
from contextual_targeting.operations.failures import (
    EXECUTION_STATUS_CHANGE,
    REPORT_ERROR_PREFIXES,
    UNCATCHABLE_ERRORS,
)

REGION = "eu-central-1"
ACCOUNT = "123456789012"
# Errors a report tail fails an execution with after emailing it: its own names, and caught ones it keeps.
REPORTED_ERRORS = [
    "CustomerProfiles.UploadFailed",
    "CustomerProfiles.UploadTimedOut",
    "Pinpoint.ImportFailed",
    "InvalidConfig",
    "SolutionVersionFailed",
    "JobNotActive",
    "States.TaskFailed",
    "States.Timeout",
    "States.Permissions",
    "Lambda.Unknown",
    "Personalize.LimitExceededException",
]


def _machine_arn(logical_id: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"


def status_change(machine: str, status: str, error: str | None = None) -> Any:
    """An `aws.states` Execution Status Change event as EventBridge delivers it."""
    arn = _machine_arn(machine)
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:run-1"
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": EXECUTION_STATUS_CHANGE,
        "source": "aws.states",
        "account": ACCOUNT,
        "time": "2026-11-30T10:00:00Z",
        "region": REGION,
        "resources": [execution],
        "detail": {
            "executionArn": execution,
            "stateMachineArn": arn,
            "name": "run-1",
            "status": status,
            "startDate": 1764496800000,
            "stopDate": 1764500400000 if status != "RUNNING" else None,
            "input": "{}",
            "output": None,
            "error": error,
            "cause": f"{error} happened" if error else None,
        },
    }


def failure_rules(template: Template) -> dict[str, dict[str, Any]]:
    """The failure rules by the logical id of the state machine their pattern names."""
    rules = {}
    for rule in template.find_resources("AWS::Events::Rule").values():
        pattern = rule["Properties"]["EventPattern"]
        if pattern.get("source") == ["aws.states"]:
            [ref] = pattern["detail"]["stateMachineArn"]
            assert ref["Ref"] not in rules, ref
            rules[ref["Ref"]] = rule["Properties"]
    return rules


def _pattern(rule: dict[str, Any], machine: str) -> EventPattern:
    text = json.dumps(rule["EventPattern"]).replace(
        json.dumps({"Ref": machine}), json.dumps(_machine_arn(machine))
    )
    return EventPattern(text, json.loads(text))


def _is_dispatcher(machine: str) -> bool:
    return "Dispatch" in machine or machine.startswith("OperationsFailureAlertsPublish")


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_every_state_machine_has_one_failure_rule_and_one_alarm(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    machines = set(template.find_resources("AWS::StepFunctions::StateMachine"))
    assert set(failure_rules(template)) == machines
    alarmed = set()
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        for query in alarm["Properties"].get("Metrics", []):
            stat = query.get("MetricStat", {}).get("Metric", {})
            if stat.get("MetricName") == "ExecutionsFailed":
                [dimension] = stat["Dimensions"]
                alarmed.add(dimension["Value"]["Ref"])
    assert alarmed == machines


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_failure_rules_match_what_no_report_covers_and_nothing_else(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    rules = failure_rules(template)
    for machine, rule in rules.items():
        pattern = _pattern(rule, machine)
        # THEN a run that timed out or was aborted is matched, whatever the workflow
        assert pattern.matches_event(status_change(machine, "TIMED_OUT")), machine
        assert pattern.matches_event(status_change(machine, "ABORTED")), machine
        # AND so is a failure no Catch sees, or one where the report itself could not go out
        for error in [*UNCATCHABLE_ERRORS, "SNS.KMSThrottlingException", "EventBridge.FailedEntry"]:
            assert pattern.matches_event(status_change(machine, "FAILED", error)), (machine, error)
        # AND a failure the workflow reported (and emailed) itself is not emailed again; a dispatcher reports
        # nothing, so all of its failures are
        for error in REPORTED_ERRORS:
            matched = pattern.matches_event(status_change(machine, "FAILED", error))
            assert matched is _is_dispatcher(machine), (machine, error)
        # AND runs that are fine, and other state machines' runs, never are
        for status in ("RUNNING", "SUCCEEDED"):
            assert not pattern.matches_event(status_change(machine, status)), (machine, status)
        other = next(m for m in rules if m != machine)
        assert not pattern.matches_event(status_change(other, "TIMED_OUT"))


def _states(machine: dict[str, Any], covered: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(name, state, whether a catch-all of the state or an enclosing Parallel/Map handles its errors)."""
    for name, state in machine.get("States", {}).items():
        caught = covered or any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", []))
        yield name, state, caught
        for branch in state.get("Branches", []):
            yield from _states(branch, caught)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _states(state[key], caught)


REPORT_TASKS = {
    "arn:aws:states:::sns:publish": "SNS.",
    "arn:aws:states:::events:putEvents": "EventBridge.",
}


def test_a_reporting_workflow_fails_unreported_only_with_errors_the_rule_matches(
    full_template: Template,
) -> None:
    # GIVEN every workflow that reports its own failures
    machines = [
        m for m in full_template.find_resources("AWS::StepFunctions::StateMachine") if not _is_dispatcher(m)
    ]
    assert len(machines) >= 5
    for machine in machines:
        definition = definition_from_template(full_template.to_json(), machine)
        for name, state, caught in _states(definition):
            if caught:
                continue
            # THEN a state outside every catch-all is a report task (its errors are matched by prefix) ...
            if state["Type"] == "Task":
                assert REPORT_TASKS.get(state["Resource"]) in REPORT_ERROR_PREFIXES, f"{machine}: {name}"
            # ... and no Choice can fail with States.NoChoiceMatched
            if state["Type"] == "Choice":
                assert "Default" in state, f"{machine}: {name}"


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_failure_email_names_workflow_execution_error_and_console_link(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    for machine, rule in failure_rules(template).items():
        [email] = [t for t in rule["Targets"] if "InputTransformer" in t]
        transformer = email["InputTransformer"]
        assert transformer["InputPathsMap"]["detail-error"] == "$.detail.error"
        assert transformer["InputPathsMap"]["detail-cause"] == "$.detail.cause"
        # Placeholders standing for a whole value are unquoted in the template: quote them to parse it.
        message = json.loads(re.sub(r":(<[^<>]+>)", r':"\1"', transformer["InputTemplate"]))
        assert message["Execution"] == "<detail-name>"
        assert message["Status"] == "<detail-status>"
        assert "#/v2/executions/details/<detail-executionArn>" in message["Console"]
        assert message["Workflow"] in rule["Description"], machine


@pytest.fixture(scope="module")
def publisher(full_template: Template) -> dict[str, Any]:
    return definition_from_template(full_template.to_json(), "OperationsFailureAlertsPublishWorkflowFailed")


@pytest.mark.parametrize(
    ("status", "error"),
    [("FAILED", "States.Runtime"), ("TIMED_OUT", None), ("ABORTED", None)],
)
def test_publisher_puts_workflow_failed_with_the_execution_and_its_error(
    publisher: dict[str, Any], status: str, error: str | None
) -> None:
    # GIVEN the status change as the rule delivers it (error and cause are null unless the run FAILED)
    event = status_change("TrainingTrainingWorkflow", status, error)
    if error is None:
        del event["detail"]["error"], event["detail"]["cause"]
    outbox = Outbox(WORKFLOW_FAILED)
    # WHEN the publisher runs on it
    execution = run_workflow(publisher, event, outbox.handlers())
    # THEN one Workflow Failed event names the execution, its status and why
    assert execution.status == "SUCCEEDED", execution.summary()
    assert outbox.detail == {
        "StateMachineArn": _machine_arn("TrainingTrainingWorkflow"),
        "ExecutionArn": event["detail"]["executionArn"],
        "ExecutionName": "run-1",
        "Status": status,
        "Error": error or "none",
        "Cause": f"{error} happened" if error else "none",
    }
