"""Alarms, the dashboard and the report-metrics Lambda."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from contextual_targeting.contracts.events import CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE, EVENT_SOURCE
from tests.helpers import load_lambda

report_metrics = load_lambda("operations/report_metrics", "handler")


def _text(node: Any) -> str:
    """A CloudFormation string with its tokens rendered as `<Ref>` / `<Id.Attr>`."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return str(separator).join(_text(p) for p in parts)
    if isinstance(node, dict) and "Ref" in node:
        return f"<{node['Ref']}>"
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return "<{}.{}>".format(*node["Fn::GetAtt"])
    raise AssertionError(f"unexpected token {node}")


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_dashboard_names_every_workflow_and_shows_the_figures(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(_text(dashboard["Properties"]["DashboardBody"]))
    titles = [w["properties"].get("title", "") for w in body["widgets"]]
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    # Every workflow has its executions and its duration; the machine's own ARN is in the graph.
    for logical_id in machines:
        graphs = [w for w in body["widgets"] if f"<{logical_id}>" in json.dumps(w)]
        assert {"started", "succeeded", "failed"} <= {
            m[-1]["label"] for g in graphs for m in g["properties"]["metrics"] if isinstance(m[-1], dict)
        }, logical_id
        assert any(t.endswith(": duration") for t in (g["properties"]["title"] for g in graphs)), logical_id
    for title in ("Lambda errors and throttles", "Lambda duration (p95)", "Users per segment"):
        assert title in titles
    assert any(t.startswith("Dead letters") for t in titles)
    expressions = json.dumps(body)
    assert 'MetricName=\\"SegmentUsers\\"' in expressions
    if which == "full_template":
        assert "Users without contact data, per segment" in titles
        assert "Customer Profiles: profiles uploaded and failed" in titles


def test_dashboard_widget_titles_name_the_workflows(full_template: Template) -> None:
    [dashboard] = full_template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(_text(dashboard["Properties"]["DashboardBody"]))
    titles = " ".join(w["properties"].get("title", "") for w in body["widgets"])
    for name in (
        "Training/TrainingWorkflow",
        "Training/ConfigTrigger/DispatchWorkflow",
        "SegmentPostprocessor/Workflow",
        "CustomerProfiles/UploadWorkflow",
        "Pinpoint/PrepareWorkflow",
        "Pinpoint/ImportWorkflow",
        "Pinpoint/ImportTrigger/DispatchWorkflow",
        "Operations/FailureAlerts/PublishWorkflowFailed",
    ):
        assert f"{name}: executions" in titles, name


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_every_alarm_notifies_the_topic_and_stays_quiet_when_idle(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    [topic] = template.find_resources("AWS::SNS::Topic")
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    functions = template.find_resources("AWS::Lambda::Function")
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["TreatMissingData"] == "notBreaching", logical_id
        assert props["AlarmActions"] == [{"Ref": topic}], logical_id
        assert props["OKActions"] == [{"Ref": topic}], logical_id
        assert props["AlarmDescription"].startswith("contextual-targeting: "), logical_id
    metrics = json.dumps(alarms)
    for function in functions:
        for metric in ("Errors", "Throttles"):
            template.has_resource_properties(
                "AWS::CloudWatch::Alarm",
                {
                    "MetricName": metric,
                    "Namespace": "AWS/Lambda",
                    "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
                },
            )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS", "Threshold": 1},
    )
    assert "ProfilesFailed" in metrics  # both stacks deploy Customer Profiles


def test_failed_records_alarm_reads_the_pipeline_figure(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "ContextualTargeting",
            "MetricName": "ProfilesFailed",
            "Dimensions": [{"Name": "Pipeline", "Value": Match.any_value()}],
            "Statistic": "Sum",
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1,
        },
    )


def test_profiles_reports_reach_the_report_metrics_function(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": [EVENT_SOURCE],
                "detail-type": [CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE],
            },
            "Targets": [
                Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("ReportMetrics"), "Arn"]}})
            ],
        },
    )


def test_report_metrics_files_uploaded_and_failed_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    event = json.loads(
        json.dumps(
            {
                "source": EVENT_SOURCE,
                "detail-type": CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE,
                "detail": {
                    "SegmentName": "bingewatch-genres-action-x",
                    "SegmentDefinitionName": "bingewatch-genres-action",
                    "Status": "PARTIALLY_SUCCEEDED",
                    "ProfilesUploaded": 120,
                    "ProfilesFailed": 3,
                },
            }
        )
    )
    assert report_metrics.handler(event, None) == {"Metrics": ["ProfilesFailed", "ProfilesUploaded"]}
    [line] = capsys.readouterr().out.splitlines()
    document = json.loads(line)
    assert document["ProfilesUploaded"] == 120
    assert document["ProfilesFailed"] == 3
    assert document["SegmentDefinition"] == "bingewatch-genres-action"
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["Pipeline"],
        ["Pipeline", "SegmentDefinition"],
    ]


def test_report_metrics_ignores_a_report_without_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_metrics.handler({"detail": {"Status": "FAILED", "ProfilesFailed": "n/a"}}, None) == {
        "Metrics": []
    }
    assert capsys.readouterr().out == ""
