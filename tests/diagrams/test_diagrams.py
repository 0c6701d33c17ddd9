"""docs/diagrams/ is drawn from the synthesized workflows: the committed drawings must match them, a renamed
state must show, and hostile state names must not break the Mermaid syntax."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

from contextual_targeting.diagrams.generate import (
    DIAGRAMS_DIR,
    OVERVIEW,
    render,
    slug_words,
    stale,
    workflows,
    write,
)
from contextual_targeting.diagrams.mermaid import condition_text, escape, flowchart

TRAINING_PAGE = "training-workflow.md"


@pytest.fixture(scope="module")
def templates(template: Template, full_template: Template) -> dict[str, dict[str, Any]]:
    """Both stack configurations, as `make diagrams` synthesizes them."""
    return {"default": dict(template.to_json()), "with Pinpoint": dict(full_template.to_json())}


def _renamed(template: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The template with one state renamed in the training workflow's definition (name and transitions)."""
    changed = copy.deepcopy(template)
    for logical_id, resource in changed["Resources"].items():
        if logical_id.startswith("TrainingTrainingWorkflow") and resource["Type"].endswith("StateMachine"):
            # The definition is JSON text inside the template's JSON: names are escaped twice.
            text = json.dumps(resource["Properties"]["DefinitionString"]).replace(_twice(old), _twice(new))
            resource["Properties"]["DefinitionString"] = json.loads(text)
    return changed


def _twice(name: str) -> str:
    return json.dumps(json.dumps(name)[1:-1])[1:-1]


def test_committed_diagrams_match_the_synthesized_workflows(templates: dict[str, dict[str, Any]]) -> None:
    # GIVEN every workflow of both stack configurations
    pages = render(templates)
    # THEN there is one drawing per state machine (plus the overview), and the committed ones are current
    machines = {
        logical_id
        for t in templates.values()
        for logical_id, r in t["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }
    assert len(pages) == len(machines) + 1
    assert stale(pages) == [], "docs/diagrams/ is out of date: run `make diagrams` and commit the result"
    overview = pages[OVERVIEW]
    for page in pages:
        if page != OVERVIEW:
            assert f"]({page})" in overview


def test_a_renamed_state_makes_the_committed_drawing_stale(templates: dict[str, dict[str, Any]]) -> None:
    # GIVEN the training workflow with "Validate config" renamed (in both configurations, as in the code)
    changed = {name: _renamed(t, "Validate config", 'Check the "config"?') for name, t in templates.items()}
    # WHEN the drawings are rendered from it
    pages = render(changed)
    # THEN exactly that workflow's drawing no longer matches what is committed, and it shows the new name
    assert stale(pages) == [TRAINING_PAGE]
    assert "Validate config" not in pages[TRAINING_PAGE]
    assert "Check the #quot;config#quot;?" in pages[TRAINING_PAGE]


def test_write_updates_changed_pages_and_removes_drawings_of_removed_workflows(
    templates: dict[str, dict[str, Any]], tmp_path: Any
) -> None:
    pages = render(templates)
    assert sorted(write(pages, tmp_path)) == sorted(pages)
    (tmp_path / "gone-workflow.md").write_text("old")
    (tmp_path / TRAINING_PAGE).write_text("edited by hand")
    assert write(pages, tmp_path) == ["gone-workflow.md", TRAINING_PAGE]
    assert stale(pages, tmp_path) == []
    assert not (tmp_path / "gone-workflow.md").exists()


def test_every_workflow_of_both_configurations_is_drawn_once(templates: dict[str, dict[str, Any]]) -> None:
    found = {w.slug: w.configurations for w in workflows(templates)}
    # The pipeline's own workflows (other state machines the stack gains are drawn the same way).
    assert {
        "training-workflow": ["default", "with Pinpoint"],
        "training-config-trigger-dispatch-workflow": ["default", "with Pinpoint"],
        "segment-postprocessor-workflow": ["default", "with Pinpoint"],
        "customer-profiles-upload-workflow": ["default", "with Pinpoint"],
        "pinpoint-prepare-workflow": ["with Pinpoint"],
        "pinpoint-import-workflow": ["with Pinpoint"],
        "pinpoint-import-trigger-dispatch-workflow": ["with Pinpoint"],
    }.items() <= found.items()
    assert {p.name for p in DIAGRAMS_DIR.glob("*.md")} == {f"{slug}.md" for slug in found} | {OVERVIEW}


def test_nested_states_are_subgraphs_and_tasks_name_what_they_call(
    templates: dict[str, dict[str, Any]],
) -> None:
    page = render(templates)[TRAINING_PAGE]
    assert re.search(r'subgraph s\d+\["Train and segment<br/>Parallel"\]', page)
    assert re.search(r'subgraph s\d+\["Import datasets<br/>Map: each item of \$\.Plan\.Datasets"\]', page)
    assert '"Validate config<br/>lambda: TrainingConfigValidator"' in page
    assert "aws-sdk:personalize:createSolutionVersion" in page
    # Choice rules label their edges; caught errors are dotted edges.
    assert '-->|"$.Validation.Valid == false"|' in page
    assert '-.->|"catch States.ALL"|' in page


def test_slugs_drop_the_cdk_hash_and_repeated_words() -> None:
    assert slug_words("TrainingTrainingWorkflow650BD35D") == ["training", "workflow"]
    assert slug_words("CustomerProfilesUploadWorkflowAE477D7E") == [
        "customer",
        "profiles",
        "upload",
        "workflow",
    ]


# Mermaid reads these as syntax even inside a quoted label.
SYNTAX = set('"[]{}|<>`;')
HOSTILE = [
    'Is it "done"?',
    "a [b] {c} (d) <e> & f | g; h # i `j`",
    "end",
    "subgraph x",
    "x --> y",
    "%% not a comment",
    "#quot; literally",
    "é ✓ 中文 \u2028",
]


def _decode(text: str) -> str:
    names = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}
    return re.sub(r"#(\w+);", lambda m: chr(int(m[1])) if m[1].isdigit() else names.get(m[1], m[0]), text)


@pytest.mark.parametrize("name", HOSTILE)
def test_escaped_labels_hold_no_mermaid_syntax_and_decode_to_the_name(name: str) -> None:
    escaped = escape(name)
    assert not SYNTAX & set(re.sub(r"#\w+;", "", escaped))
    assert "\n" not in escaped
    assert "\u2028" not in escaped
    assert _decode(escaped) == name


def test_hostile_state_names_stay_inside_their_quotes() -> None:
    states: dict[str, Any] = {n: {"Type": "Pass", "Next": HOSTILE[i + 1]} for i, n in enumerate(HOSTILE[:-1])}
    states[HOSTILE[-1]] = {"Type": "Succeed"}
    states[HOSTILE[0]] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.x", "StringEquals": 'a"|b]', "Next": HOSTILE[1]}],
        "Default": HOSTILE[2],
    }
    chart = flowchart({"StartAt": HOSTILE[0], "States": states})
    # Every label is one quoted string: an even number of quotes per line, none escaped by the name.
    for line in chart.split("\n"):
        assert line.count('"') % 2 == 0, line
    assert chart.count(" --> ") + chart.count(" -->|") >= len(HOSTILE)


def test_choice_rules_read_as_conditions() -> None:
    rule = {
        "And": [
            {"Variable": "$.a", "IsPresent": True},
            {"Not": {"Variable": "$.a", "StringEquals": ""}},
            {
                "Or": [
                    {"Variable": "$.n", "NumericGreaterThanEquals": 3},
                    {"Variable": "$.b", "IsNull": False},
                ]
            },
        ]
    }
    assert condition_text(rule) == '$.a is present and not ($.a == "") and ($.n >= 3 or $.b is not null)'
    assert condition_text({"Variable": "$.x", "StringEqualsPath": "$.y"}) == "$.x == $.y"
