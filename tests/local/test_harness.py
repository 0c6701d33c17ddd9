"""The local Step Functions harness: scripted AWS answers, failure branches and the virtual clock."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from aws_cdk.assertions import Capture, Template

from contextual_targeting.local import (
    PAYLOAD_LIMIT_BYTES,
    AwsError,
    InvalidDefinitionError,
    RunawayExecutionError,
    ScriptExhaustedError,
    TaskCall,
    UnscriptedCallError,
    WorkflowHungError,
    definition_from_chainable,
    definition_from_template,
    render_tokens,
    retry_interval,
    run_workflow,
    script,
)
from contextual_targeting.local.harness import NODE, REPO_ROOT, RUNNER
from tests.helpers import CDK_CONTEXT

pytestmark = pytest.mark.slow

DESCRIBE = "aws-sdk:personalize:describeSolutionVersion"
CREATE = "aws-sdk:personalize:createSolutionVersion"


def _stack() -> cdk.Stack:
    """A bare stack in an app with the project's feature flags."""
    app = cdk.App(context=CDK_CONTEXT)
    return cdk.Stack(app, "Harness", env=cdk.Environment(account="123456789012", region="eu-central-1"))


def _sdk(
    stack: cdk.Stack, name: str, action: str, parameters: dict[str, Any], **kwargs: Any
) -> tasks.CallAwsService:
    return tasks.CallAwsService(
        stack,
        name,
        service="personalize",
        action=action,
        parameters=parameters,
        iam_resources=["*"],
        **kwargs,
    )


def _training_chain(stack: cdk.Stack) -> sfn.IChainable:
    """Create a solution version, then poll Describe every `$.pollSeconds` until ACTIVE or CREATE FAILED."""
    create = _sdk(
        stack,
        "Create solution version",
        "createSolutionVersion",
        {"SolutionArn": sfn.JsonPath.string_at("$.solutionArn")},
        result_path="$.created",
    )
    create.add_retry(
        errors=["Personalize.LimitExceededException"],
        interval=cdk.Duration.seconds(30),
        backoff_rate=2,
        max_attempts=3,
    )
    describe = _sdk(
        stack,
        "Describe solution version",
        "describeSolutionVersion",
        {"SolutionVersionArn": sfn.JsonPath.string_at("$.created.SolutionVersionArn")},
        result_selector={
            "status": sfn.JsonPath.string_at("$.SolutionVersion.Status"),
            "reason": sfn.JsonPath.string_at("$.SolutionVersion.FailureReason"),
        },
        result_path="$.version",
    )
    failed = sfn.Fail(
        stack,
        "Training failed",
        error="SolutionVersionFailed",
        cause_path=sfn.JsonPath.string_at("$.version.reason"),
    )
    crashed = sfn.Fail(
        stack,
        "Personalize error",
        error_path=sfn.JsonPath.string_at("$.error.Error"),
        cause_path=sfn.JsonPath.string_at("$.error.Cause"),
    )
    create.add_catch(crashed, errors=["States.ALL"], result_path="$.error")
    wait = sfn.Wait(stack, "Wait for training", time=sfn.WaitTime.seconds_path("$.pollSeconds"))
    return create.next(describe).next(
        sfn.Choice(stack, "Trained?")
        .when(sfn.Condition.string_equals("$.version.status", "ACTIVE"), sfn.Succeed(stack, "Trained"))
        .when(sfn.Condition.string_equals("$.version.status", "CREATE FAILED"), failed)
        .otherwise(wait.next(describe))
    )


def _status_after(seconds: float, *, since: str = "Create solution version") -> Any:
    """Describe handler: CREATE IN_PROGRESS until `seconds` after `since` was entered, then ACTIVE."""

    def describe(call: TaskCall) -> dict[str, Any]:
        status = "ACTIVE" if call.since(since) >= seconds else "CREATE IN_PROGRESS"
        return {"SolutionVersion": {"Status": status, "FailureReason": "", "SolutionVersionArn": "sv"}}

    return describe


TRAINING_INPUT = {
    "solutionArn": "arn:aws:personalize:eu-central-1:123456789012:solution/s",
    "pollSeconds": 600,
}
CREATED = {"SolutionVersionArn": "arn:aws:personalize:eu-central-1:123456789012:solution/s/v1"}


def test_happy_path_polls_until_active_on_the_virtual_clock() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    execution = run_workflow(definition, TRAINING_INPUT, {CREATE: CREATED, DESCRIBE: _status_after(1800)})

    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.output["version"] == {"status": "ACTIVE", "reason": ""}
    describes = execution.calls_to("Describe solution version")
    assert [c.now for c in describes] == [0, 600, 1200, 1800]
    assert all(c.parameters == {"SolutionVersionArn": CREATED["SolutionVersionArn"]} for c in describes)
    assert describes[0].state_input["created"] == CREATED
    assert execution.virtual_seconds == 1800
    assert execution.elapsed_for("Wait for training") == 1800
    assert execution.states_entered() == [
        "Create solution version",
        *["Describe solution version", "Trained?", "Wait for training"] * 3,
        "Describe solution version",
        "Trained?",
        "Trained",
    ]
    assert execution.transitions == 13
    assert execution.calls_to(f"arn:aws:states:::{DESCRIBE}") == describes


def test_failed_status_routes_to_fail_state_with_reason() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))
    failed = {"SolutionVersion": {"Status": "CREATE FAILED", "FailureReason": "Not enough interactions"}}

    execution = run_workflow(
        definition,
        TRAINING_INPUT,
        {CREATE: CREATED, DESCRIBE: script(_status_after(10**6), failed)},
    )

    assert execution.status == "FAILED"
    assert (execution.error, execution.cause) == ("SolutionVersionFailed", "Not enough interactions")
    assert execution.states_entered()[-1] == "Training failed"
    assert execution.virtual_seconds == 600


def test_retry_fires_on_the_named_error_and_advances_the_clock() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))
    busy = AwsError("Personalize.LimitExceededException", "Too many jobs in flight")

    execution = run_workflow(
        definition,
        TRAINING_INPUT,
        {CREATE: script(busy, busy, CREATED), DESCRIBE: _status_after(0)},
    )

    assert execution.status == "SUCCEEDED", execution.summary()
    creates = execution.calls_to("Create solution version")
    assert [(c.attempt, c.now, c.error) for c in creates] == [
        (1, 0, "Personalize.LimitExceededException"),
        (2, 30, "Personalize.LimitExceededException"),
        (3, 90, None),
    ]
    assert execution.virtual_seconds == 90
    assert execution.transitions == 6  # 4 states entered + 2 retries
    assert [e["type"] for e in execution.events].count("StateRetried") == 2


def test_catch_routes_an_unretried_error_to_a_fail_state() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    execution = run_workflow(
        definition,
        TRAINING_INPUT,
        {CREATE: AwsError("Personalize.ResourceInUseException", "solution is still being created")},
    )

    assert execution.status == "FAILED"
    assert execution.error == "Personalize.ResourceInUseException"
    assert execution.cause == "solution is still being created"
    assert execution.states_entered() == ["Create solution version", "Personalize error"]
    caught = [e for e in execution.events if e["type"] == "StateCaught"]
    assert caught[0]["state"]["name"] == "Create solution version"
    assert len(execution.calls) == 1, "a retrier for another error must not fire"


def test_retries_exhausted_then_caught() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    execution = run_workflow(
        definition, TRAINING_INPUT, {CREATE: AwsError("Personalize.LimitExceededException", "busy")}
    )

    assert execution.status == "FAILED"
    assert execution.error == "Personalize.LimitExceededException"
    assert [c.now for c in execution.calls] == [0, 30, 90, 210]
    assert execution.virtual_seconds == 210


def test_unscripted_call_fails_the_test() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    with pytest.raises(
        UnscriptedCallError, match=r"Describe solution version.*describeSolutionVersion"
    ) as info:
        run_workflow(definition, TRAINING_INPUT, {CREATE: CREATED})

    assert "SolutionVersionArn" in str(info.value)


def test_exhausted_script_fails_the_test() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))
    in_progress = {"SolutionVersion": {"Status": "CREATE IN_PROGRESS", "FailureReason": ""}}

    with pytest.raises(ScriptExhaustedError, match="has 2 answers, got call #3"):
        run_workflow(
            definition, TRAINING_INPUT, {CREATE: CREATED, DESCRIBE: script(in_progress, in_progress)}
        )


def test_handler_assertions_propagate_with_the_state_named() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    def create(call: TaskCall) -> dict[str, Any]:
        assert call.parameters == {"SolutionArn": "something else"}
        return CREATED

    with pytest.raises(AssertionError) as info:
        run_workflow(definition, TRAINING_INPUT, {CREATE: create})

    assert any("Create solution version" in note for note in info.value.__notes__)


def test_state_name_handler_wins_over_resource_handler() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    execution = run_workflow(
        definition,
        TRAINING_INPUT,
        {
            CREATE: AwsError("Personalize.ResourceInUseException", "must not be used"),
            "Create solution version": CREATED,
            DESCRIBE: _status_after(0),
        },
    )

    assert execution.status == "SUCCEEDED", execution.summary()


def test_execution_timeout_is_enforced_on_the_virtual_clock() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))
    definition["TimeoutSeconds"] = 3 * 3600

    execution = run_workflow(definition, TRAINING_INPUT, {CREATE: CREATED, DESCRIBE: _status_after(10**6)})

    assert execution.status == "TIMED_OUT"
    assert execution.error == "States.Timeout"
    assert execution.virtual_seconds == 3 * 3600
    assert len(execution.calls_to(DESCRIBE)) == 18  # t = 0, 600, ..., 10200; the wait from 10200 overruns


def test_runaway_loop_is_stopped() -> None:
    definition = definition_from_chainable(_training_chain(_stack()))

    with pytest.raises(RunawayExecutionError, match="more than 50 state transitions"):
        run_workflow(
            definition, TRAINING_INPUT, {CREATE: CREATED, DESCRIBE: _status_after(10**9)}, max_transitions=50
        )


def test_hung_run_fails_with_the_last_events() -> None:
    stack = _stack()
    spin = sfn.Pass(stack, "Spin")
    nap = sfn.Wait(stack, "Nap", time=sfn.WaitTime.duration(cdk.Duration.seconds(1)))
    stop = sfn.Choice(stack, "Stop?").when(sfn.Condition.is_present("$.stop"), sfn.Succeed(stack, "Stopped"))
    definition = definition_from_chainable(spin.next(nap).next(stop.otherwise(spin)))

    # 5 s, not 1: on a busy machine Node alone can take a second to start, and then no event has come yet.
    with pytest.raises(WorkflowHungError, match="after 5 s of wall time") as info:
        run_workflow(definition, {}, {}, timeout=5, max_transitions=10**9)

    message = str(info.value)
    assert "last 20 events" in message
    assert re.search(r"StateEntered '(Spin|Nap)'", message)


def test_parallel_branches_keep_their_own_clocks() -> None:
    stack = _stack()
    # Branch A polls every 60 s until 300 s have passed; branch B waits 100 s once, then calls a task.
    poll = _sdk(
        stack, "Describe A", "describeSolutionVersion", {"SolutionVersionArn": "a"}, result_path="$.a"
    )
    branch_a = poll.next(
        sfn.Choice(stack, "A done?")
        .when(sfn.Condition.string_equals("$.a.SolutionVersion.Status", "ACTIVE"), sfn.Pass(stack, "A ok"))
        .otherwise(sfn.Wait(stack, "Wait A", time=sfn.WaitTime.duration(cdk.Duration.seconds(60))).next(poll))
    )
    branch_b = sfn.Wait(stack, "Wait B", time=sfn.WaitTime.duration(cdk.Duration.seconds(100))).next(
        _sdk(stack, "Describe B", "describeSolutionVersion", {"SolutionVersionArn": "b"})
    )
    # A branch that ends in a Wait: its last events are forwarded late; the clock must still count them.
    branch_c = sfn.Wait(stack, "Wait C", time=sfn.WaitTime.duration(cdk.Duration.seconds(200)))
    parallel = sfn.Parallel(stack, "Both", result_path=sfn.JsonPath.DISCARD)
    parallel.branch(branch_a).branch(branch_b).branch(branch_c)
    after = _sdk(stack, "After", "describeSolutionVersion", {"SolutionVersionArn": "after"})
    definition = definition_from_chainable(parallel.next(after))

    def describe(call: TaskCall) -> dict[str, Any]:
        return {"SolutionVersion": {"Status": "ACTIVE" if call.now >= 300 else "CREATE IN_PROGRESS"}}

    execution = run_workflow(definition, {}, {DESCRIBE: describe})

    assert execution.status == "SUCCEEDED", execution.summary()
    assert [c.now for c in execution.calls_to("Describe A")] == [0, 60, 120, 180, 240, 300]
    assert [c.now for c in execution.calls_to("Describe B")] == [100]
    assert [c.now for c in execution.calls_to("After")] == [300]
    assert execution.elapsed_for("Wait A") == 300
    assert execution.elapsed_for(["Wait A", "Wait B"]) == 400
    assert execution.virtual_seconds == 300
    assert {c.lane for c in execution.calls_to("Describe A")} == {(("Both", 0),)}


def test_failing_branch_fails_the_parallel_into_its_catch() -> None:
    stack = _stack()
    parallel = sfn.Parallel(stack, "Imports", result_path="$.imports")
    parallel.branch(_sdk(stack, "Import items", "createDatasetImportJob", {"JobName": "items"}))
    parallel.branch(_sdk(stack, "Import users", "createDatasetImportJob", {"JobName": "users"}))
    parallel.add_catch(
        sfn.Pass(stack, "Report", parameters={"error.$": "$.failure.Error"}), result_path="$.failure"
    )
    definition = definition_from_chainable(parallel.next(sfn.Succeed(stack, "Imported")))

    execution = run_workflow(
        definition,
        {},
        {
            "Import items": {"DatasetImportJobArn": "items"},
            "Import users": AwsError("Personalize.InvalidInputException", "users.csv: bad header"),
        },
    )

    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.output == {"error": "Personalize.InvalidInputException"}
    assert execution.states_entered()[-1] == "Report"
    assert {c.state: c.lane for c in execution.calls} == {
        "Import items": (("Imports", 0),),
        "Import users": (("Imports", 1),),
    }


@pytest.mark.parametrize(("max_concurrency", "expected_now"), [(0, [30, 90, 60]), (1, [30, 120, 180])])
def test_map_iterations_run_on_their_own_clocks(max_concurrency: int, expected_now: list[int]) -> None:
    stack = _stack()
    each = sfn.Map(stack, "Each segment", items_path="$.segments", max_concurrency=max_concurrency)
    each.item_processor(
        sfn.Wait(stack, "Settle", time=sfn.WaitTime.seconds_path("$.delay")).next(
            _sdk(stack, "Process", "describeSolutionVersion", {"SolutionVersionArn.$": "$.name"})
        )
    )
    definition = definition_from_chainable(each)
    segments = [{"name": "a", "delay": 30}, {"name": "b", "delay": 90}, {"name": "c", "delay": 60}]

    execution = run_workflow(
        definition, {"segments": segments}, {"Process": lambda call: {"name": call.parameters}}
    )

    assert execution.status == "SUCCEEDED", execution.summary()
    by_index = sorted(execution.calls, key=lambda c: c.index or 0)
    assert [c.index for c in by_index] == [0, 1, 2]
    assert [c.parameters["SolutionVersionArn"] for c in by_index] == ["a", "b", "c"]
    assert [c.now for c in by_index] == expected_now
    assert execution.virtual_seconds == max(expected_now)
    assert execution.output == [{"name": {"SolutionVersionArn": n}} for n in "abc"]


def test_timestamp_wait_counts_from_the_virtual_start() -> None:
    stack = _stack()
    chain = sfn.Wait(stack, "Until", time=sfn.WaitTime.timestamp_path("$.until")).next(
        _sdk(stack, "Then", "describeSolutionVersion", {"SolutionVersionArn": "x"})
    )
    definition = definition_from_chainable(chain)

    execution = run_workflow(
        definition,
        {"until": "2026-03-01T01:30:00Z"},
        {"Then": {}},
        context={"Execution": {"StartTime": "2026-03-01T00:00:00Z"}},
    )

    assert execution.calls[0].now == 5400


def test_runner_writes_prior_events_before_the_task_request() -> None:
    """A task request line comes after every event dispatched before the call, branches included."""
    definition = {
        "StartAt": "Fan out",
        "States": {
            "Fan out": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {
                        "StartAt": "Branch wait",
                        "States": {
                            "Branch wait": {"Type": "Wait", "Seconds": 5, "Next": "Branch pass"},
                            "Branch pass": {"Type": "Pass", "Next": "Branch task"},
                            "Branch task": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::sns:publish",
                                "End": True,
                            },
                        },
                    }
                ],
            }
        },
    }
    proc = subprocess.Popen(
        [str(NODE), str(RUNNER)], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write(json.dumps({"definition": definition, "input": {}}) + "\n")
        proc.stdin.flush()
        before_task: list[dict[str, Any]] = []
        for line in proc.stdout:
            message = json.loads(line)
            if message["op"] == "task":
                task = message
                break
            before_task.append(message)
        entered = [(e["type"], e.get("state", {}).get("name")) for e in before_task]
        assert ("StateEntered", "Branch wait") in entered
        assert ("StateExited", "Branch pass") in entered
        assert all(e["seq"] < task["seq"] for e in before_task)
        proc.stdin.write(json.dumps({"id": task["id"], "result": {"MessageId": "m"}}) + "\n")
        proc.stdin.flush()
        end = json.loads(proc.stdout.readlines()[-1])
        assert end == {"op": "end", "output": [{"MessageId": "m"}], "status": "SUCCEEDED"}
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_payload_size_is_measured_in_utf8_bytes() -> None:
    stack = _stack()
    fetch = _sdk(stack, "Fetch", "describeSolutionVersion", {"SolutionVersionArn": "x"}, result_path="$.big")
    definition = definition_from_chainable(fetch)
    user_ids = ["ü" * 10] * 14_000  # 2 bytes a character in UTF-8: ~ 336 KB, above the 256 KB limit

    execution = run_workflow(definition, {"n": 1}, {"Fetch": {"Users": user_ids}})

    assert execution.status == "SUCCEEDED"
    expected = len(
        json.dumps({"n": 1, "big": {"Users": user_ids}}, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert execution.max_payload_bytes == expected
    assert execution.max_payload_bytes > PAYLOAD_LIMIT_BYTES
    assert execution.max_payload_at == "Fetch (output)"


def test_intrinsic_functions_and_context_object() -> None:
    stack = _stack()
    path = sfn.JsonPath
    pass_state = sfn.Pass(
        stack,
        "Intrinsics",
        parameters={
            "sum": path.math_add(path.number_at("$.n"), 1),
            "text": path.format("{}-{}", path.string_at("$.name"), path.execution_name),
            "parsed": path.string_to_json(path.string_at("$.json")),
            "dumped": path.json_to_string(path.object_at("$.obj")),
            "length": path.array_length(path.list_at("$.items")),
            "hash": path.hash(path.string_at("$.name"), "SHA-256"),
            "uuid": path.uuid(),
            "contains": path.array_contains(path.list_at("$.items"), 2),
            "encoded": path.base64_encode(path.string_at("$.name")),
            "start": path.execution_start_time,
            "token": path.task_token,
        },
    )
    definition = definition_from_chainable(pass_state)
    payload = {"n": 41, "name": "genre", "json": '{"a": [1]}', "obj": {"k": "v"}, "items": [1, 2, 3]}

    execution = run_workflow(definition, payload, {})

    assert execution.status == "SUCCEEDED", execution.summary()
    out = execution.output
    assert out["sum"] == 42
    assert out["text"] == "genre-local-execution"
    assert out["parsed"] == {"a": [1]}
    assert json.loads(out["dumped"]) == {"k": "v"}
    assert out["length"] == 3
    assert out["hash"] == hashlib.sha256(b"genre").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", out["uuid"])
    assert out["contains"] is True
    assert out["encoded"] == "Z2VucmU="
    assert out["start"] == "2026-01-01T00:00:00.000Z"
    assert out["token"] == "local-task-token"


def test_state_context_fields_are_not_available_locally() -> None:
    """$$.State.* is not filled in by aws-local-stepfunctions: such a workflow fails loudly, not silently."""
    stack = _stack()
    definition = definition_from_chainable(
        sfn.Pass(stack, "Named", parameters={"entered": sfn.JsonPath.state_entered_time})
    )

    execution = run_workflow(definition, {}, {})

    assert execution.status == "FAILED"
    assert execution.error == "States.Runtime"
    assert "$$.State.EnteredTime" in (execution.cause or "")


def test_synthesized_template_definition_runs_as_deployed() -> None:
    stack = _stack()
    topic = sns.Topic(stack, "Notifications")
    bus = events.EventBus(stack, "PipelineBus")
    function = lambda_.Function(
        stack,
        "Splitter",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
    )
    split = tasks.LambdaInvoke(
        stack,
        "Split",
        lambda_function=function,
        payload=sfn.TaskInput.from_object({"job.$": "$.job"}),
        result_selector={"segments.$": "$.Payload.segments"},
        result_path="$.split",
    )
    announce = tasks.EventBridgePutEvents(
        stack,
        "Announce",
        entries=[
            tasks.EventBridgePutEventsEntry(
                event_bus=bus,
                source="contextual-targeting",
                detail_type="Segment Ready",
                detail=sfn.TaskInput.from_object({"segments.$": "$.split.segments"}),
            )
        ],
        result_path=sfn.JsonPath.DISCARD,
    )
    notify = tasks.SnsPublish(
        stack,
        "Notify",
        topic=topic,
        message=sfn.TaskInput.from_text(sfn.JsonPath.format("{} segments", sfn.JsonPath.string_at("$.job"))),
        result_path=sfn.JsonPath.DISCARD,
    )
    sfn.StateMachine(
        stack,
        "Postprocess",
        definition_body=sfn.DefinitionBody.from_chainable(split.next(announce).next(notify)),
        timeout=cdk.Duration.hours(1),
    )
    template = Template.from_stack(stack)
    topic_arn = "arn:aws:sns:eu-central-1:123456789012:notifications"
    definition = definition_from_template(template.to_json(), "Postprocess", {"Notifications": topic_arn})

    execution = run_workflow(
        definition,
        {"job": "job-1"},
        {
            "lambda:invoke": lambda call: {"Payload": {"segments": ["s1", "s2"]}, "StatusCode": 200},
            "events:putEvents": {"Entries": [{"EventId": "e-1"}], "FailedEntryCount": 0},
            "sns:publish": {"MessageId": "m-1"},
        },
    )

    assert execution.status == "SUCCEEDED", execution.summary()
    # ResultPath null (DISCARD) survives: the publish results are dropped, the input kept.
    assert execution.output == {"job": "job-1", "split": {"segments": ["s1", "s2"]}}
    (invoke,) = execution.calls_to("lambda:invoke")
    assert invoke.parameters["FunctionName"] == f"arn:aws:fake:::{_logical_id(template, 'Splitter')}"
    assert invoke.parameters["Payload"] == {"job": "job-1"}
    (put,) = execution.calls_to("arn:aws:states:::events:putEvents")
    assert put.parameters["Entries"][0]["DetailType"] == "Segment Ready"
    assert put.parameters["Entries"][0]["Detail"] == {"segments": ["s1", "s2"]}
    (publish,) = execution.calls_to("Notify")
    assert publish.parameters == {"TopicArn": topic_arn, "Message": "job-1 segments"}
    assert definition["TimeoutSeconds"] == 3600

    capture = Capture()
    template.has_resource_properties("AWS::StepFunctions::StateMachine", {"DefinitionString": capture})
    assert definition_from_template(template.to_json(), capture, {"Notifications": topic_arn}) == definition


def _logical_id(template: Template, prefix: str) -> str:
    (found,) = [k for k in template.to_json()["Resources"] if re.fullmatch(prefix + "[0-9A-F]{8}", k)]
    return str(found)


def test_resolved_definition_with_tokens_is_rendered() -> None:
    stack = _stack()
    topic = sns.Topic(stack, "Topic")
    publish = tasks.SnsPublish(stack, "Publish", topic=topic, message=sfn.TaskInput.from_text("hello"))
    resolved = stack.resolve(sfn.StateGraph(publish, "test").to_graph_json())

    execution = run_workflow(
        resolved, {}, {"sns:publish": {"MessageId": "m"}}, substitutions={"Topic": "arn:t"}
    )

    assert execution.status == "SUCCEEDED", execution.summary()
    assert execution.calls[0].resource == "arn:aws:states:::sns:publish"
    assert execution.calls[0].parameters == {"TopicArn": "arn:t", "Message": "hello"}


def test_render_tokens() -> None:
    value = {
        "a": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "DataBucketE3889A50"}]]},
        "b": {"Fn::GetAtt": ["FnA1B2C3D4", "Arn"]},
        "c": {"Fn::GetAtt": ["QueueA1B2C3D4", "QueueUrl"]},
        "d": {"Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${Other.Name}"},
        "e": [{"Ref": "Unnamed"}],
    }

    rendered = render_tokens(value, {"DataBucket": "my-bucket", "QueueA1B2C3D4.QueueUrl": "https://q"})

    assert rendered == {
        "a": "arn:aws:s3:::my-bucket",
        "b": "arn:aws:fake:::FnA1B2C3D4",
        "c": "https://q",
        "d": "us-east-1:123456789012:arn:aws:fake:::Other.Name",
        "e": ["arn:aws:fake:::Unnamed"],
    }
    with pytest.raises(InvalidDefinitionError, match="Fn::ImportValue"):
        render_tokens({"Fn::ImportValue": "x"})


def test_unsupported_features_are_refused() -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Assign": {"x": 1}, "End": True}}}

    with pytest.raises(InvalidDefinitionError, match="workflow variables"):
        run_workflow(definition, {}, {})


def test_invalid_definition_is_reported() -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "Missing"}}}

    with pytest.raises(InvalidDefinitionError, match="Missing"):
        run_workflow(definition, {}, {})


def test_retry_interval_backoff_and_cap() -> None:
    retrier = {"IntervalSeconds": 2, "BackoffRate": 2, "MaxDelaySeconds": 60}

    assert [retry_interval(retrier, n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert retry_interval({}, 1) == 1
