"""The demo's local stand-ins on their own: the Personalize scoring rule and output lines, the stack's
EventBridge rules matched locally, the Customer Profiles upload URL and profiles, the Lambda runtime."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from contextual_targeting.local.bus import elsewhere_of, matches, rules_from_template, targets_of
from contextual_targeting.local.demo import substitutions
from contextual_targeting.local.lambdas import LocalLambdas, NoStandInError
from contextual_targeting.local.personalize import AffinityScorer, parse_query
from contextual_targeting.local.profiles import CustomerProfilesStandIn
from contextual_targeting.local.synth import asset_sources
from contextual_targeting.stack import ContextualTargetingStack

DAY = 86400.0
ITEMS = [
    {"ITEM_ID": "a", "GENRES": "Action|Drama"},
    {"ITEM_ID": "b", "GENRES": "Comedy"},
    {"ITEM_ID": "c", "GENRES": "action"},
]


def interactions(*rows: tuple[str, str, float]) -> list[dict[str, str]]:
    return [{"USER_ID": u, "ITEM_ID": i, "TIMESTAMP": str(t)} for u, i, t in rows]


# ---- Personalize: the scoring rule


def test_queries_read_as_conditions_on_item_fields() -> None:
    assert parse_query('ITEMS.genres = "Action"') == [("genres", {"action"})]
    assert parse_query('ITEMS.GENRES = "A" and ITEMS.year IN ("1", "2")') == [
        ("genres", {"a"}),
        ("year", {"1", "2"}),
    ]
    assert parse_query(r'ITEMS.title = "say \"hi\""') == [("title", {'say "hi"'})]
    with pytest.raises(ValueError, match="cannot read"):
        parse_query("ITEMS.genres != 'Action'")


def test_recent_interactions_with_matching_items_rank_first() -> None:
    scorer = AffinityScorer(
        interactions(
            ("old", "a", 0),  # a year before the newest interaction: half the weight
            ("recent", "c", 365 * DAY),
            ("twice-old", "a", 0),
            ("twice-old", "c", 0),
            ("comedy-only", "b", 365 * DAY),
        ),
        ITEMS,
    )
    assert scorer.rank(parse_query('ITEMS.genres = "Action"'), 10) == ["recent", "twice-old", "old"]
    assert scorer.rank(parse_query('ITEMS.genres = "Action"'), 2) == ["recent", "twice-old"]
    # Every condition must hold (only item a is Action and Drama); equal scores go by user id.
    assert scorer.rank(parse_query('ITEMS.genres = "Action" AND ITEMS.genres = "Drama"'), 10) == [
        "old",
        "twice-old",
    ]


def test_ties_go_by_user_id() -> None:
    scorer = AffinityScorer(interactions(("u2", "a", 5), ("u1", "a", 5), ("u3", "c", 5)), ITEMS)
    assert scorer.rank(parse_query('ITEMS.genres = "action"'), 10) == ["u1", "u2", "u3"]


def test_output_lines_have_personalizes_shape_and_errors_are_lines_too() -> None:
    scorer = AffinityScorer(interactions(("u1", "a", 5)), ITEMS)
    line = scorer.answer(json.dumps({"itemAttributes": 'ITEMS.genres = "Action"'}), 5)
    assert list(line) == ["input", "output", "error"]
    assert line == {
        "input": {"itemAttributes": 'ITEMS.genres = "Action"'},
        "output": {"usersList": ["u1"]},
        "error": None,
    }
    unknown = scorer.answer(json.dumps({"itemAttributes": 'ITEMS.mood = "dark"'}), 5)
    assert unknown["output"] is None
    assert "ITEMS.mood is not a field" in unknown["error"]
    broken = scorer.answer("{not json", 5)
    assert broken["input"] == "{not json"
    assert broken["output"] is None
    assert broken["error"].startswith("the input line is not JSON")


# ---- EventBridge: the stack's own rules


def test_the_stacks_rules_start_the_workflows_they_name(template: Template) -> None:
    tpl = template.to_json()
    subs = substitutions(tpl)
    rules = rules_from_template(tpl, subs)
    bucket = subs[next(k for k in tpl["Resources"] if k.startswith("TrainingDataBucket"))]
    bus = subs[next(k for k in tpl["Resources"] if k.startswith("TrainingEventBus"))]

    def s3_event(key: str, bucket_name: str = bucket) -> dict[str, Any]:
        return {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket_name}, "object": {"key": key}},
        }

    assert [t[:32] for t in targets_of(rules, "default", s3_event("train/g/g_config.json"))] == [
        "TrainingConfigTriggerDispatchWor"
    ]
    assert targets_of(rules, "default", s3_event("train/g/interactions.csv")) == []
    assert targets_of(rules, "default", s3_event("train/g/g_config.json", "another-bucket")) == []
    ready = {"source": "contextual-targeting", "detail-type": "Segment Ready", "detail": {}}
    assert [t[:30] for t in targets_of(rules, bus, ready)] == ["CustomerProfilesUploadWorkflow"]
    assert targets_of(rules, "default", ready) == []
    job = {
        "source": "contextual-targeting",
        "detail-type": "Personalize Batch Segment Job State Change",
        "detail": {"Status": "ACTIVE"},
    }
    assert [t[:28] for t in targets_of(rules, f"arn:aws:events:r:a:event-bus/{bus}", job)] == [
        "SegmentPostprocessorWorkflow"
    ]
    assert targets_of(rules, bus, {**job, "detail": {"Status": "CREATE FAILED"}}) == []


def test_targets_that_do_not_run_locally_are_named_not_run() -> None:
    # GIVEN a rule with a state machine target, a topic target and a state machine given transformed input
    template = {
        "Resources": {
            "Machine": {"Type": "AWS::StepFunctions::StateMachine"},
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {"source": ["aws.states"]},
                    "Targets": [
                        {"Arn": {"Ref": "Machine"}, "Id": "a"},
                        {"Arn": {"Ref": "Topic"}, "Id": "b", "InputTransformer": {"InputTemplate": "x"}},
                        {"Arn": {"Ref": "Machine"}, "Id": "c", "InputPath": "$.detail"},
                    ],
                },
            },
        }
    }
    (rule,) = rules_from_template(template, {})
    # THEN only the whole-event state machine target runs; the others are listed
    assert rule.targets == ("Machine",)
    assert rule.elsewhere == ("Topic", "Machine")
    assert elsewhere_of([rule], "default", {"source": "aws.states"}) == ["Topic", "Machine"]


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"k": [{"wildcard": "train/*/*_config.json"}]}, {"k": "train/a/b/c_config.json"}, True),
        ({"k": [{"wildcard": "train/*_config.json"}]}, {"k": "train/x_config.jsonl"}, False),
        ({"k": [{"prefix": "pinpoint/"}]}, {"k": "pinpoint/a.csv"}, True),
        ({"k": [{"suffix": ".csv"}]}, {"k": "a.json"}, False),
        ({"k": [{"exists": False}]}, {}, True),
        ({"k": [{"exists": True}]}, {}, False),
        ({"k": [{"anything-but": ["a", "b"]}]}, {"k": "c"}, True),
        ({"k": [{"anything-but": "a"}]}, {"k": "a"}, False),
        ({"k": [{"numeric": [">", 0, "<=", 5]}]}, {"k": 5}, True),
        ({"k": [{"equals-ignore-case": "ACTIVE"}]}, {"k": "active"}, True),
        ({"k": ["a"]}, {"k": ["b", "a"]}, True),
        ({"d": {"s": ["ACTIVE"]}}, {"d": {"s": "FAILED"}}, False),
        ({"d": {"s": ["ACTIVE"]}}, {"d": "flat"}, False),
        (
            {"$or": [{"s": ["TIMED_OUT"]}, {"s": ["FAILED"], "e": [{"prefix": "SNS."}]}]},
            {"s": "TIMED_OUT"},
            True,
        ),
        (
            {"$or": [{"s": ["TIMED_OUT"]}, {"s": ["FAILED"], "e": [{"prefix": "SNS."}]}]},
            {"s": "FAILED", "e": "X"},
            False,
        ),
        (
            {"$or": [{"s": ["TIMED_OUT"]}, {"s": ["FAILED"], "e": [{"prefix": "SNS."}]}]},
            {"s": "FAILED", "e": "SNS.A"},
            True,
        ),
    ],
)
def test_event_patterns(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


# ---- Customer Profiles


def _profiles() -> CustomerProfilesStandIn:
    return CustomerProfilesStandIn(now=lambda: 0.0, region="eu-central-1", account="123456789012")


def _job(stand_in: CustomerProfilesStandIn) -> str:
    fields = {
        "UserId": {"Source": "_source.UserId", "Target": "_profile.AccountNumber"},
        "Email": {"Source": "_source.Email", "Target": "_profile.EmailAddress"},
        "Member": {"Source": "_source.Member", "Target": "_profile.Attributes.segment_x"},
    }
    job_id = stand_in._create_job({"Fields": fields, "UniqueKey": "UserId", "DisplayName": "x"})["JobId"]
    return str(job_id)


def _headers(token: str) -> dict[str, str]:
    md5 = base64.b64encode(hashlib.md5(base64.b64decode(token), usedforsecurity=False).digest()).decode()
    return {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": token,
        "x-amz-server-side-encryption-customer-key-md5": md5,
    }


def test_the_upload_url_wants_the_jobs_sse_c_headers() -> None:
    stand_in = _profiles()
    job_id = _job(stand_in)
    token = stand_in.get_upload_job_path(DomainName="d", JobId=job_id)["ClientToken"]
    wrong = {**_headers(token), "x-amz-server-side-encryption-customer-key-md5": "bm9wZQ=="}
    assert stand_in.receive(job_id, wrong, b"UserId\n")[0] == 400
    assert stand_in.receive(job_id, _headers(token), b"UserId\n") == (200, "")


def test_uploads_keep_profiles_and_a_blank_mapped_cell_fails_its_row() -> None:
    # GIVEN a segment definition on the attribute, and a first upload of 1 and 2
    stand_in = _profiles()
    attribute = {"segment_x": {"DimensionType": "INCLUSIVE", "Values": ["true"]}}
    groups = {"Groups": [{"Dimensions": [{"ProfileAttributes": {"Attributes": attribute}}]}]}
    stand_in._create_definition({"SegmentDefinitionName": "x", "SegmentGroups": groups})
    # WHEN a second upload has a blank mapped cell for 1 (the service's behaviour is not documented)
    for body in (
        b"UserId,Email,Member\n1,a@x,true\n2,b@x,true\n",
        b"UserId,Email,Member\n1,,false\n3,c@x,true\n",
    ):
        job_id = _job(stand_in)
        token = stand_in.get_upload_job_path(DomainName="d", JobId=job_id)["ClientToken"]
        stand_in.receive(job_id, _headers(token), body)
        stand_in._start_job({"JobId": job_id})
    # THEN that row fails, visibly, and changes nothing
    assert [p["AccountNumber"] for p in stand_in.members("x")] == ["1", "2", "3"]
    assert stand_in.profiles["1"]["EmailAddress"] == "a@x"
    assert stand_in.jobs[job_id].results == {"CreatedRecords": 1, "UpdatedRecords": 0, "FailedRecords": 1}
    assert "blank mapped cells (Email)" in stand_in.jobs[job_id].status_reason


# ---- the Lambda runtime


def test_functions_get_no_client_for_a_service_without_a_stand_in(
    stack: ContextualTargetingStack, template: Template, tmp_path: Path
) -> None:
    tpl = template.to_json()
    lambdas = LocalLambdas.from_template(
        tpl, asset_sources(stack), substitutions(tpl), region="eu-central-1", clients={}
    )
    gate = next(
        arn for arn, f in lambdas.functions.items() if f.logical_id.startswith("CustomerProfilesUploadGate")
    )
    event = {
        "StateMachineArn": "arn",
        "ExecutionArn": "arn:e",
        "StartTime": "2026-01-01T00:00:00Z",
        "Limit": 2,
    }
    with pytest.raises(NoStandInError, match="stepfunctions"):
        lambdas.invoke(gate, event)
