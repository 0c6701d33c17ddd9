"""What the destinations' tests share: the `Segment Ready` subscription, the IAM statements of a role."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template


def assert_subscribes_to_segment_ready(template: Template, *, bus: str, machine: str) -> None:
    """A rule on the bus whose logical id starts with `bus` sends `Segment Ready` to the state machine whose
    logical id starts with `machine`: what makes a construct a destination."""
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": {"Ref": Match.string_like_regexp(f"^{bus}")},
            "EventPattern": {"source": ["contextual-targeting"], "detail-type": ["Segment Ready"]},
            "Targets": [Match.object_like({"Arn": {"Ref": Match.string_like_regexp(f"^{machine}")}})],
        },
    )


def role_statements(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    """Statements of the policies attached to the roles whose logical id starts with `role_prefix`."""
    found: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        roles = [r.get("Ref", "") for r in policy["Properties"]["Roles"]]
        if any(r.startswith(role_prefix) for r in roles):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def statement_actions(statement: dict[str, Any]) -> list[str]:
    """The statement's actions as a list (IAM allows one action as a string)."""
    action = statement["Action"]
    return action if isinstance(action, list) else [action]
