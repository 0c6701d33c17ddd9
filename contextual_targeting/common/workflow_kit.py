"""Building blocks every workflow of the project shares: state machines, retries, events, emails."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.nag import acknowledge
from contextual_targeting.contracts.events import EVENT_SOURCE

LAMBDA_ROOT = Path(__file__).resolve().parents[2] / "lambda"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13


# LambdaInvoke retries Lambda's service errors by default, but not throttling, which several segments
# arriving at once (one workflow run each) can cause.
LAMBDA_THROTTLED = ["Lambda.TooManyRequestsException"]


def add_sdk_retry(task: sfn.TaskStateBase, errors: Sequence[str], *, max_attempts: int = 6) -> None:
    """Retry throttling/transient service errors with jittered exponential backoff (2 s .. 60 s).

    Name the errors as the service's API model declares them: Personalize declares no throttling
    error, so a throttled call arrives as `Personalize.PersonalizeException`; Pinpoint declares
    `Pinpoint.TooManyRequestsException`.
    """
    task.add_retry(
        errors=[*errors],
        interval=cdk.Duration.seconds(2),
        backoff_rate=2,
        max_attempts=max_attempts,
        max_delay=cdk.Duration.seconds(60),
        jitter_strategy=sfn.JitterType.FULL,
    )


def backoff_schedule(bound: cdk.Duration, *, first: int = 15, cap: int = 300) -> list[int]:
    """Wait seconds before each status check: doubling from `first` to `cap`, summing to at least `bound`."""
    limit = int(bound.to_seconds())
    waits: list[int] = []
    wait = first
    while sum(waits) < limit:
        waits.append(min(wait, cap))
        wait *= 2
    return waits


def poll_job(
    scope: Construct,
    noun: str,
    *,
    check: sfn.TaskStateBase,
    schedule: Sequence[int],
    outcomes: Sequence[tuple[sfn.Condition, sfn.IChainable]],
    gave_up: sfn.IChainable,
) -> sfn.Chain:
    """Wait, `check`, back off along `schedule` until one of `outcomes` holds; `gave_up` after the last check.

    The schedule travels in the state (`$.Poll`), so the loop costs four transitions a check whatever its
    length, and a job that never ends is bounded by `sum(schedule)` seconds of waiting.
    """
    start = sfn.Pass(
        scope,
        f"Start polling {noun}",
        state_name=f"Start waiting for the {noun}",
        parameters={"Schedule": list(schedule), "Attempt": 0, "Seconds": schedule[0]},
        result_path="$.Poll",
    )
    wait = sfn.Wait(
        scope,
        f"Wait for {noun}",
        state_name=f"Wait for the {noun}",
        time=sfn.WaitTime.seconds_path("$.Poll.Seconds"),
    )
    next_attempt = sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.Poll.Attempt"), 1)
    back_off = sfn.Pass(
        scope,
        f"Back off {noun}",
        state_name=f"Back off before checking the {noun} again",
        parameters={
            "Schedule": sfn.JsonPath.list_at("$.Poll.Schedule"),
            "Attempt": next_attempt,
            "Seconds": sfn.JsonPath.array_get_item(
                sfn.JsonPath.list_at("$.Poll.Schedule"), cdk.Token.as_number(next_attempt)
            ),
        },
        result_path="$.Poll",
    )
    done = sfn.Choice(scope, f"Is {noun} done", state_name=f"Is the {noun} done?")
    for condition, outcome in outcomes:
        done.when(condition, outcome)
    done.when(sfn.Condition.number_greater_than_equals("$.Poll.Attempt", len(schedule) - 1), gave_up)
    done.otherwise(back_off.next(wait))
    return start.next(wait).next(check).next(done)


def put_event(
    scope: Construct,
    construct_id: str,
    *,
    bus: events.IEventBus,
    detail_type: str,
    detail: Mapping[str, Any] | sfn.TaskInput,
    state_name: str | None = None,
) -> tasks.EventBridgePutEvents:
    """Task that puts one event with the project's source on the pipeline bus; keeps the state input.

    `detail` is an object of fields (JSON paths allowed) or a ready TaskInput (e.g. one object of the
    state)."""
    task = tasks.EventBridgePutEvents(
        scope,
        construct_id,
        state_name=state_name,
        entries=[
            tasks.EventBridgePutEventsEntry(
                event_bus=bus,
                source=EVENT_SOURCE,
                detail_type=detail_type,
                detail=detail
                if isinstance(detail, sfn.TaskInput)
                else sfn.TaskInput.from_object(dict(detail)),
            )
        ],
        result_path=sfn.JsonPath.DISCARD,
    )
    add_sdk_retry(task, ["EventBridge.EventBridgeException", "EventBridge.InternalException"])
    return task


def notify(
    scope: Construct,
    construct_id: str,
    *,
    topic: sns.ITopic,
    subject: str,
    message: sfn.TaskInput,
    state_name: str | None = None,
) -> tasks.SnsPublish:
    """Task that emails a summary through the notification topic; keeps the state input."""
    task = tasks.SnsPublish(
        scope,
        construct_id,
        state_name=state_name,
        topic=topic,
        subject=subject,
        message=message,
        result_path=sfn.JsonPath.DISCARD,
    )
    add_sdk_retry(
        task, ["SNS.ThrottledException", "SNS.InternalErrorException", "SNS.KmsThrottlingException"]
    )
    return task


def report_outcome(
    scope: Construct,
    noun: str,
    *,
    bus: events.IEventBus,
    topic: sns.ITopic,
    detail_type: str,
    detail_keys: Sequence[str] | None = None,
    subject: str = "",
    quiet: sfn.Condition | None = None,
) -> sfn.Chain:
    """The tail every outcome of a workflow goes through: the report in `$.Report` becomes an event and
    an email (skipped when `quiet` holds), then the execution fails when its `Status` is FAILED (with
    `Error` and `FailureReason`) or succeeds with the report as output.

    The event's detail is the report's `detail_keys`, or, without them, the report's own `Detail` object (for
    outcomes whose fields differ). The subject is fixed, or `$.Report.Subject` when none is given."""
    publish = put_event(
        scope,
        f"Publish {noun}",
        state_name=f"Publish the {noun} outcome",
        bus=bus,
        detail_type=detail_type,
        detail=(
            sfn.TaskInput.from_json_path_at("$.Report.Detail")
            if detail_keys is None
            else {key: sfn.JsonPath.string_at(f"$.Report.{key}") for key in detail_keys}
        ),
    )
    email = notify(
        scope,
        f"Email {noun}",
        state_name=f"Email the {noun} outcome",
        topic=topic,
        subject=subject or sfn.JsonPath.string_at("$.Report.Subject"),
        message=sfn.TaskInput.from_json_path_at("$.Report.Message"),
    )
    failed = sfn.Fail(
        scope,
        f"{noun} failed",
        state_name=f"The {noun} failed",
        error_path="$.Report.Error",
        cause_path="$.Report.FailureReason",
    )
    done = sfn.Succeed(scope, f"{noun} done", state_name=f"The {noun} is done", output_path="$.Report")
    verdict = (
        sfn.Choice(scope, f"Did {noun} fail", state_name=f"Did the {noun} fail?")
        .when(sfn.Condition.string_equals("$.Report.Status", "FAILED"), failed)
        .otherwise(done)
    )
    email.next(verdict)
    if quiet is None:
        return publish.next(email)
    worth_an_email = (
        sfn.Choice(scope, f"Email {noun}?", state_name=f"Is the {noun} outcome worth an email?")
        .when(quiet, verdict)
        .otherwise(email)
    )
    return publish.next(worth_an_email)


def logged_state_machine(
    scope: Construct,
    construct_id: str,
    *,
    definition: sfn.IChainable,
    timeout: cdk.Duration,
    comment: str,
    include_execution_data: bool = True,
) -> sfn.StateMachine:
    """Standard state machine with X-Ray tracing and ALL-level logs kept for 30 days."""
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    machine = sfn.StateMachine(
        scope,
        construct_id,
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group,
            level=sfn.LogLevel.ALL,
            include_execution_data=include_execution_data,
        ),
    )
    acknowledge(
        machine.role,
        "IAM5",
        "X-Ray segments and CloudWatch Logs delivery have no resource-level permissions "
        "(xray:PutTraceSegments, logs:CreateLogDelivery and friends need Resource '*').",
        findings=["Resource::*"],
    )
    return machine


def shared_code_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The stack's one layer of modules several Lambdas import (`lambda/shared/python/`: `s3_streams`)."""
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child("SharedCodeLayer")
    if isinstance(existing, lambda_.LayerVersion):
        return existing
    return lambda_.LayerVersion(
        stack,
        "SharedCodeLayer",
        description="contextual-targeting: streaming S3 helpers shared by the Lambdas",
        code=lambda_.Code.from_asset(str(LAMBDA_ROOT / "shared"), exclude=["**/__pycache__", "*.pyc"]),
        compatible_runtimes=[LAMBDA_RUNTIME],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )


def uses_shared_code(component: str) -> bool:
    """Whether `lambda/<component>/` imports a module of the shared layer (then it deploys with the layer)."""
    shared = "|".join(re.escape(module.stem) for module in (LAMBDA_ROOT / "shared" / "python").glob("*.py"))
    imports = re.compile(rf"^\s*(?:from|import)\s+(?:{shared})\b", re.MULTILINE)
    return any(imports.search(source.read_text()) for source in (LAMBDA_ROOT / component).glob("*.py"))


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    component: str,
    description: str,
    memory_size: int = 512,
    timeout: cdk.Duration | None = None,
    environment: Mapping[str, str] | None = None,
) -> lambda_.Function:
    """Python Lambda from `lambda/<component>/` (`handler.handler`), traced, logs kept 30 days."""
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    function = lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler="handler.handler",
        # __pycache__ would change the asset hash from one machine to the next.
        code=lambda_.Code.from_asset(str(LAMBDA_ROOT / component), exclude=["__pycache__", "*.pyc"]),
        memory_size=memory_size,
        timeout=timeout or cdk.Duration.minutes(1),
        environment=dict(environment or {}),
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        layers=[shared_code_layer(scope)] if uses_shared_code(component) else None,
    )
    assert function.role is not None
    acknowledge(
        function.role,
        "IAM4",
        "AWSLambdaBasicExecutionRole only allows writing the function's own logs.",
        findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    )
    acknowledge(
        function.role,
        "IAM5",
        "X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) has no resource-level permissions.",
        findings=["Resource::*"],
    )
    return function
