"""Structured logs and business metrics of the Lambdas: run identifiers on every line, EMF documents."""

from __future__ import annotations

import ast
import json
import logging
from typing import Any

import pytest
import run_log
from aws_cdk.assertions import Template

from contextual_targeting.common.workflow_kit import METRICS_NAMESPACE
from contextual_targeting.local import definition_from_template
from tests.helpers import EVENTS_ROOT, LAMBDA_ROOT
from tests.test_stack import _states

HANDLERS = sorted(LAMBDA_ROOT.glob("**/handler.py"))


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: str(p.parent.relative_to(LAMBDA_ROOT)))
def test_every_handler_is_logged(path: Any) -> None:
    tree = ast.parse(path.read_text())
    [handler] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
    assert [ast.unparse(d) for d in handler.decorator_list] == ["logged"]


def test_every_log_line_of_a_run_carries_its_identifiers(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a handler that logs through a module logger of its own
    library = logging.getLogger("some_module")

    @run_log.logged
    def handler(event: dict[str, Any], _context: Any) -> str:
        library.info("working on %s", event["Key"])
        run_log.bind(JobId="job-1")
        library.warning("learnt the job")
        return "ok"

    # WHEN it runs on a workflow payload
    with caplog.at_level(logging.INFO):
        result = handler(
            {
                "ExecutionName": "run-1",
                "DatasetGroupName": "bingewatch",
                "SegmentName": "bingewatch-genres-action-x",
                "Key": "segments/bingewatch/job/genres-action.csv",
                "Bucket": "data",
                "UserIds": ["never", "logged"],
            },
            None,
        )

    # THEN every record (start, the module's lines, end) has the identifiers as attributes, which Lambda's
    # JSON formatter writes as keys of the line; nothing else of the payload is copied
    assert result == "ok"
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["invoked", "working", "learnt", "done"]
    for record in caplog.records:
        assert record.ExecutionName == "run-1"  # type: ignore[attr-defined]
        assert record.DatasetGroupName == "bingewatch"  # type: ignore[attr-defined]
        assert record.SegmentName == "bingewatch-genres-action-x"  # type: ignore[attr-defined]
        assert not hasattr(record, "UserIds")
        assert not hasattr(record, "Bucket")
    assert caplog.records[-1].JobId == "job-1"  # type: ignore[attr-defined]
    assert not hasattr(caplog.records[0], "JobId")
    # AND the next invocation starts clean
    with caplog.at_level(logging.INFO):
        caplog.clear()
        handler({"ExecutionName": "run-2", "Key": "k"}, None)
    assert {getattr(r, "ExecutionName", None) for r in caplog.records} == {"run-2"}
    assert not any(hasattr(r, "DatasetGroupName") for r in caplog.records)
    assert not hasattr(caplog.records[0], "JobId")


def test_an_escaping_error_is_logged_with_its_trace_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    @run_log.logged
    def handler(_event: Any, _context: Any) -> None:
        raise ValueError("bad input")

    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="bad input"):
        handler({"ExecutionName": "run-3"}, None)
    [failed] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed.exc_info is not None
    assert failed.exc_info[0] is ValueError
    assert failed.ExecutionName == "run-3"  # type: ignore[attr-defined]


def test_identifiers_are_cut_and_non_strings_ignored() -> None:
    found = run_log.identifiers({"ExecutionName": "x" * 5000, "SegmentName": {"nested": 1}, "JobId": 7})
    assert found == {"ExecutionName": "x" * run_log.MAX_IDENTIFIER, "JobId": "7"}
    assert run_log.identifiers(["not", "a", "mapping"]) == {}


def test_metrics_document_is_embedded_metric_format() -> None:
    document = run_log.metrics_document(
        {"SegmentUsers": 1234},
        dimensions={"DatasetGroup": "bingewatch", "Segment": "genres-action"},
        namespace="NS",
        pipeline="ContextualTargeting",
        timestamp_ms=1_700_000_000_000,
    )
    assert document == {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "NS",
                    "Dimensions": [["Pipeline"], ["Pipeline", "DatasetGroup", "Segment"]],
                    "Metrics": [{"Name": "SegmentUsers", "Unit": "Count"}],
                }
            ],
        },
        "Pipeline": "ContextualTargeting",
        "DatasetGroup": "bingewatch",
        "Segment": "genres-action",
        "SegmentUsers": 1234.0,
    }
    with pytest.raises(ValueError, match="dimension"):
        run_log.metrics_document({"Segment": 1}, dimensions={"Segment": "x"})
    # An empty dimension value would make CloudWatch drop the document.
    assert run_log.metrics_document({"X": 1}, dimensions={"Segment": " "})["Segment"] == "unknown"


def test_split_function_emits_users_per_ready_segment(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.segments.support import handler_module

    summary = json.loads((EVENTS_ROOT / "segment_postprocessor" / "split_request.json").read_text())
    result = {
        "Segments": [
            {"Status": "READY", "Key": "segments/bingewatch/job/genres-action.csv", "UserCount": 5},
            {"Status": "EMPTY", "Key": None, "UserCount": 0},
        ]
    }
    handler_module.emit_segment_metrics(result, summary["DatasetGroupName"])
    [line] = capsys.readouterr().out.splitlines()
    document = json.loads(line)
    assert document["SegmentUsers"] == 5
    assert document["Segment"] == "genres-action"
    assert document["DatasetGroup"] == summary["DatasetGroupName"]


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_every_function_logs_json_and_knows_its_metrics_namespace(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    functions = template.find_resources("AWS::Lambda::Function")
    assert functions
    for logical_id, function in functions.items():
        props = function["Properties"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON", logical_id
        assert props["LoggingConfig"]["ApplicationLogLevel"] == "INFO", logical_id
        assert props["Environment"]["Variables"]["METRICS_NAMESPACE"] == METRICS_NAMESPACE, logical_id
        assert props["Environment"]["Variables"]["PIPELINE_NAME"] == "ContextualTargeting", logical_id


def test_every_lambda_task_passes_the_execution_name(full_template: Template) -> None:
    functions = set(full_template.find_resources("AWS::Lambda::Function"))
    tasks = 0
    for logical_id in full_template.find_resources("AWS::StepFunctions::StateMachine"):
        for name, state in _states(definition_from_template(full_template.to_json(), logical_id)):
            resource = state.get("Resource", "")
            if resource.endswith(":lambda:invoke"):
                payload = state["Parameters"]["Payload"]
            elif resource.rsplit(":", 1)[-1] in functions:
                payload = state["Parameters"]
            else:
                continue
            tasks += 1
            assert payload.get("ExecutionName.$") == "$$.Execution.Name", f"{logical_id}: {name}"
    assert tasks >= 7
