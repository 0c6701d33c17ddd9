"""OncePerObjectVersion: rule, dispatcher IAM and cdk-nag in a bare stack, and the dispatcher executed locally
(local harness) against a Step Functions that answers StartExecution as its API reference documents."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from contextual_targeting.common.object_trigger import (
    EXECUTION_ALREADY_EXISTS,
    EXECUTION_ALREADY_EXISTS_ERRORS,
    START_RETRYABLE,
    OncePerObjectVersion,
    OncePerObjectVersionProps,
    build_dispatch_workflow,
)
from contextual_targeting.common.storage import access_log_bucket, secure_bucket
from contextual_targeting.local import (
    AwsError,
    Execution,
    TaskCall,
    definition_from_chainable,
    definition_from_template,
    run_workflow,
    script,
)
from tests.helpers import CDK_CONTEXT, EVENTS_ROOT, TEST_ENV

EVENTS = EVENTS_ROOT
TARGET_ARN = "arn:aws:states:eu-central-1:123456789012:stateMachine:Target"
READ = "Read the object version"
START = "Start one run for this object version"
ALREADY_STARTED = "This object version already started a run"
STARTED = "The run has started"


@pytest.fixture(scope="module")
def stack() -> cdk.Stack:
    """A bare stack: one versioned bucket, one target workflow, a prefix trigger and a wildcard trigger."""
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "Test", env=TEST_ENV)
    bucket = secure_bucket(stack, "Data", access_logs=access_log_bucket(stack, "Logs"), log_prefix="d/")
    target = sfn.StateMachine(
        stack, "Target", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Work"))
    )
    for construct_id, key_filter in (
        ("PrefixTrigger", {"prefix": "pinpoint/"}),
        ("WildcardTrigger", {"wildcard": "train/*/*_config.json"}),
    ):
        OncePerObjectVersion(
            stack,
            construct_id,
            props=OncePerObjectVersionProps(
                bucket=bucket, key_filter=key_filter, target=target, description=f"{construct_id} test"
            ),
        )
    return stack


@pytest.fixture(scope="module")
def template(stack: cdk.Stack) -> Template:
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def definition(template: Template) -> dict[str, Any]:
    """The synthesized dispatcher, its target rendered as a real-looking state machine ARN."""
    return definition_from_template(
        template.to_json(), "PrefixTriggerDispatchWorkflow", {"Target": TARGET_ARN}
    )


def logical_id(template: Template, type_: str, prefix: str) -> str:
    [found] = [k for k in template.find_resources(type_) if k.startswith(prefix)]
    return found


# ---- template


@pytest.mark.parametrize(
    ("prefix", "key_filter"),
    [("PrefixTrigger", {"prefix": "pinpoint/"}), ("WildcardTrigger", {"wildcard": "train/*/*_config.json"})],
)
def test_rule_matches_created_objects_of_the_bucket_and_starts_the_dispatcher(
    template: Template, prefix: str, key_filter: dict[str, str]
) -> None:
    rule = template.find_resources("AWS::Events::Rule")[logical_id(template, "AWS::Events::Rule", prefix)]
    props = rule["Properties"]
    assert props["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": logical_id(template, "AWS::S3::Bucket", "Data")}]},
            "object": {"key": [key_filter]},
        },
    }
    # S3 sends its events to the default bus; the dispatcher gets the whole event, untransformed.
    assert "EventBusName" not in props
    [target] = props["Targets"]
    dispatcher = logical_id(template, "AWS::StepFunctions::StateMachine", f"{prefix}DispatchWorkflow")
    assert target["Arn"] == {"Ref": dispatcher}
    assert "Input" not in target
    assert "InputTransformer" not in target


def test_dispatcher_may_start_the_target_and_nothing_else(template: Template) -> None:
    target = logical_id(template, "AWS::StepFunctions::StateMachine", "Target")
    for prefix in ("PrefixTrigger", "WildcardTrigger"):
        policy = template.find_resources("AWS::IAM::Policy")[
            logical_id(template, "AWS::IAM::Policy", f"{prefix}DispatchWorkflowRoleDefaultPolicy")
        ]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        scoped = [s for s in statements if s["Resource"] != "*"]
        assert scoped == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": target}}]
        # The rest is X-Ray and log delivery, which have no resource-level permissions.
        unscoped = {a for s in statements if s["Resource"] == "*" for a in s["Action"]}
        assert {a.split(":")[0] for a in unscoped} == {"logs", "xray"}


def test_dispatcher_logs_traces_and_times_out(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "DefinitionString": Match.any_value(),
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ERROR", "IncludeExecutionData": False}),
        },
    )
    definition = definition_from_template(template.to_json(), "WildcardTriggerDispatchWorkflow")
    assert definition["TimeoutSeconds"] == 300


def test_triggers_pass_aws_solutions_checks(stack: cdk.Stack) -> None:
    report = AwsSolutionsChecks().validate_scope(stack)
    violations = [
        f"{v.rule_name} at {c.construct_path}"
        for v in report.violations
        for c in v.violating_resources
        if "Trigger/" in c.construct_path
    ]
    assert violations == []


def test_builder_renders_the_start_task_with_catch_and_retry() -> None:
    # GIVEN the chain alone, as the construct builds it
    stack = cdk.Stack(cdk.App(context=CDK_CONTEXT), "Chain", env=TEST_ENV)
    target = sfn.StateMachine.from_state_machine_arn(stack, "Target", TARGET_ARN)
    definition = definition_from_chainable(build_dispatch_workflow(stack, target=target))
    # THEN the object's fields are read first, then one optimized StartExecution task, not linked to the
    # dispatcher, with a small, fixed input
    states = definition["States"]
    assert definition["StartAt"] == READ
    fields = {"Bucket.$", "Key.$", "VersionId.$", "ETag.$", "Size.$"}
    assert set(states[READ]["Parameters"]["Source"]) == fields
    assert states[READ]["Next"] == START
    start = states[START]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert start["Parameters"]["StateMachineArn"] == TARGET_ARN
    assert start["Parameters"]["Input"] == {"Source.$": "$.Source"}
    assert [c["ErrorEquals"] for c in start["Catch"]] == [list(EXECUTION_ALREADY_EXISTS_ERRORS)]
    assert states[start["Catch"][0]["Next"]] == {"Type": "Succeed"}
    assert [r["ErrorEquals"] for r in start["Retry"]] == [START_RETRYABLE]
    assert states[start["Next"]] == {"Type": "Succeed"}


# JsonPath's member-name-shorthand (letters, digits, "_"): other names need bracket notation.
_SHORTHAND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(r"\$\$?((?:\.[^.\s,()\[\]']+|\[[^\]]*\])*)")


def _paths(node: Any) -> list[str]:
    """Every JSONPath in `.$` fields (intrinsic function arguments included) and in *Path fields."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key.endswith(".$") or key.endswith("Path")):
                found += [m.group(0) for m in _PATH.finditer(value)]
            else:
                found += _paths(value)
    elif isinstance(node, list):
        for item in node:
            found += _paths(item)
    return found


def test_every_path_names_fields_as_step_functions_paths_allow(definition: dict[str, Any]) -> None:
    # Step Functions asks for bracket notation for names outside member-name-shorthand (S3's `version-id`),
    # and intrinsic-function arguments are plain paths: hyphenated names are read once, in brackets.
    paths = _paths(definition["States"])
    assert "$.detail.object['version-id']" in paths
    for path in paths:
        dotted = re.sub(r"\['[^']*'\]", "", path).lstrip("$").split(".")[1:]
        assert all(_SHORTHAND.fullmatch(part) for part in dotted), path


def test_retried_errors_are_step_functions_errors_of_this_integration() -> None:
    # The aws-sdk integration's `Sfn.` names and invented ones (`SFN.ThrottlingException`) never fire here.
    assert EXECUTION_ALREADY_EXISTS == "StepFunctions.ExecutionAlreadyExistsException"
    assert set(EXECUTION_ALREADY_EXISTS_ERRORS) == {
        "StepFunctions.ExecutionAlreadyExists",
        "StepFunctions.ExecutionAlreadyExistsException",
    }
    assert all(name.startswith("StepFunctions.") for name in START_RETRYABLE)
    assert not set(EXECUTION_ALREADY_EXISTS_ERRORS) & set(START_RETRYABLE)


# ---- the dispatcher, executed


def object_created(version: str = "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e") -> dict[str, Any]:
    """The sample S3 `Object Created` event (a key with spaces and non-ASCII) for one object version."""
    event: dict[str, Any] = json.loads((EVENTS / "pinpoint" / "s3_object_created.json").read_text())
    event["detail"]["object"]["version-id"] = version
    return event


def version_text(event: dict[str, Any]) -> bytes:
    """What the execution name is the SHA-256 of: `bucket/key?versionId=<v>`, UTF-8."""
    bucket, s3_object = event["detail"]["bucket"], event["detail"]["object"]
    return f"{bucket['name']}/{s3_object['key']}?versionId={s3_object['version-id']}".encode()


@dataclass
class StepFunctions:
    """StartExecution of a Standard workflow as its API reference states it: the same name and input while
    the execution is open return the same execution; a closed execution or another input is refused."""

    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def start_execution(self, call: TaskCall) -> dict[str, Any]:
        params = call.parameters
        self.calls.append(params)
        given = params["Input"] if isinstance(params["Input"], dict) else json.loads(params["Input"])
        name = params["Name"]
        arn = f"{params['StateMachineArn'].replace(':stateMachine:', ':execution:')}:{name}"
        known = self.executions.get(name)
        if known is not None and (not known["Open"] or known["Input"] != given):
            raise AwsError(EXECUTION_ALREADY_EXISTS, f"Execution Already Exists: '{arn}'")
        if known is None:
            self.executions[name] = {"Input": given, "Open": True}
        return {"ExecutionArn": arn, "StartDate": "2026-01-01T00:00:00Z"}

    def end_all(self) -> None:
        """Every execution started so far finishes."""
        for execution in self.executions.values():
            execution["Open"] = False


def dispatch(definition: dict[str, Any], event: dict[str, Any], handler: Any) -> Execution:
    return run_workflow(definition, event, {"states:startExecution": handler})


@pytest.mark.slow
def test_first_delivery_starts_the_target_under_the_version_name_with_the_object_as_input(
    definition: dict[str, Any],
) -> None:
    # GIVEN a new object version. A short key: aws-local-stepfunctions 3.0.0's States.Hash is SHA-256 only for
    # texts under 56 bytes (one block); longer keys still get stable, distinct names (tests below).
    aws = StepFunctions()
    event = object_created("v1")
    event["detail"]["object"]["key"] = "pinpoint/a b.csv"
    # WHEN its event is delivered
    execution = dispatch(definition, event, aws.start_execution)
    # THEN one run starts, named after bucket/key?versionId=v1, with exactly the object as input
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.states_entered() == [READ, START, STARTED]
    [call] = aws.calls
    assert call["StateMachineArn"] == TARGET_ARN
    assert version_text(event) == b"segment-import-bucket/pinpoint/a b.csv?versionId=v1"
    assert call["Name"] == hashlib.sha256(version_text(event)).hexdigest()
    assert len(call["Name"]) == 64  # within the 80-character execution-name limit
    assert aws.executions[call["Name"]]["Input"] == {
        "Source": {
            "Bucket": "segment-import-bucket",
            "Key": "pinpoint/a b.csv",
            "VersionId": "v1",
            "ETag": "b1946ac92492d2347c6235b4d2611184",
            "Size": 1024,
        }
    }
    assert execution.output["Run"] == {
        "ExecutionArn": TARGET_ARN.replace(":stateMachine:", ":execution:") + ":" + call["Name"]
    }


@pytest.mark.slow
def test_duplicate_delivery_while_the_run_is_open_starts_nothing_new(definition: dict[str, Any]) -> None:
    # GIVEN the first delivery started a run that is still going
    aws = StepFunctions()
    first = dispatch(definition, object_created("v1"), aws.start_execution)
    # WHEN the same event arrives again
    second = dispatch(definition, object_created("v1"), aws.start_execution)
    # THEN StartExecution got the same name and input, so it answered with the same run: still one run
    assert first.status == second.status == "SUCCEEDED", second.summary()
    assert aws.calls[0] == aws.calls[1]
    assert len(aws.executions) == 1
    assert first.output["Run"] == second.output["Run"]


@pytest.mark.slow
def test_duplicate_delivery_after_the_run_ended_ends_as_already_started(definition: dict[str, Any]) -> None:
    # GIVEN the run of this object version has ended
    aws = StepFunctions()
    event = object_created("v1")
    dispatch(definition, event, aws.start_execution)
    aws.end_all()
    # WHEN the event arrives again
    execution = dispatch(definition, event, aws.start_execution)
    # THEN StartExecution refused it and the dispatcher ends successfully without a new run
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.states_entered() == [READ, START, ALREADY_STARTED]
    assert execution.output["Error"]["Error"] == EXECUTION_ALREADY_EXISTS
    assert len(aws.executions) == 1


@pytest.mark.slow
def test_already_exists_without_the_exception_suffix_also_ends_as_already_started(
    definition: dict[str, Any],
) -> None:
    # GIVEN StartExecution's refusal named as the API reference names it (no `Exception` suffix)
    handler = script(AwsError("StepFunctions.ExecutionAlreadyExists", "Execution Already Exists"))
    # WHEN the event is delivered
    execution = dispatch(definition, object_created("v1"), handler)
    # THEN the dispatcher ends as already started, not as a failure
    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.states_entered() == [READ, START, ALREADY_STARTED]


@pytest.mark.slow
def test_a_new_object_version_starts_a_new_run(definition: dict[str, Any]) -> None:
    aws = StepFunctions()
    for version in ("v1", "v2"):
        assert dispatch(definition, object_created(version), aws.start_execution).status == "SUCCEEDED"
    assert len(aws.executions) == 2


@pytest.mark.slow
@pytest.mark.parametrize("error", START_RETRYABLE)
def test_transient_errors_are_retried(definition: dict[str, Any], error: str) -> None:
    # GIVEN StartExecution fails once with a transient error
    aws = StepFunctions()
    handler = script(AwsError(error, "Rate exceeded"), aws.start_execution)
    # WHEN the event is delivered
    execution = dispatch(definition, object_created(), handler)
    # THEN the call is retried after a backoff and the run starts
    assert execution.status == "SUCCEEDED", execution.summary()
    assert [c.attempt for c in execution.calls_to(START)] == [1, 2]
    assert execution.elapsed_for(START) > 0
    assert len(aws.executions) == 1


@pytest.mark.slow
def test_any_other_error_fails_the_dispatcher(definition: dict[str, Any]) -> None:
    # GIVEN the target is gone
    handler = script(
        AwsError("StepFunctions.StateMachineDoesNotExistException", "State Machine Does Not Exist")
    )
    # WHEN an event is delivered
    execution = dispatch(definition, object_created(), handler)
    # THEN the dispatcher fails at once with that error, visible in its execution list
    assert execution.status == "FAILED", execution.summary()
    assert execution.error == "StepFunctions.StateMachineDoesNotExistException"
    assert len(execution.calls_to(START)) == 1
