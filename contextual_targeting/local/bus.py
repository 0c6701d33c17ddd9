"""The stack's EventBridge rules, read from the synthesized template: which state machine an event starts.

Supports what event patterns commonly use: value lists, nested objects, `$or`, `prefix`, `suffix`,
`wildcard`, `equals-ignore-case`, `anything-but`, `exists` and `numeric`. State machine targets given the
whole event run locally; other targets (topics, functions, queues, transformed input) are listed in
`Rule.elsewhere` and not run: the local run says so rather than guess what they would do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contextual_targeting.local.harness import render_tokens

DEFAULT_BUS = "default"


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One rule: the bus it listens on, its pattern, and the state machines it starts."""

    logical_id: str
    bus: str
    pattern: dict[str, Any]
    targets: tuple[str, ...]
    """Logical ids of the target state machines."""
    elsewhere: tuple[str, ...] = ()
    """Logical ids of the targets that do not run locally."""


def rules_from_template(template: Mapping[str, Any], substitutions: Mapping[str, Any]) -> list[Rule]:
    """Every enabled rule of the template, its bus and pattern rendered with the same substitutions."""
    resources = template.get("Resources", {})
    known = [*resources, *template.get("Parameters", {})]
    machines = {k for k, v in resources.items() if v.get("Type") == "AWS::StepFunctions::StateMachine"}
    rules = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        props = resource["Properties"]
        if props.get("State", "ENABLED") != "ENABLED" or "EventPattern" not in props:
            continue
        targets, elsewhere = [], []
        for target in props.get("Targets", []):
            arn = target.get("Arn")
            ref = arn.get("Ref") if isinstance(arn, dict) else None
            if ref in machines and not {"Input", "InputPath", "InputTransformer"} & set(target):
                targets.append(str(ref))
            else:
                elsewhere.append(str(ref or _get_att_id(arn) or arn))
        bus = render_tokens(props.get("EventBusName", DEFAULT_BUS), substitutions, known)
        rules.append(
            Rule(
                logical_id=logical_id,
                bus=bus_name(str(bus)),
                pattern=render_tokens(props["EventPattern"], substitutions, known),
                targets=tuple(targets),
                elsewhere=tuple(elsewhere),
            )
        )
    return rules


def elsewhere_of(rules: list[Rule], bus: str, event: Mapping[str, Any]) -> list[str]:
    """Logical ids of the targets the event would reach on that bus that do not run locally."""
    return [
        t
        for rule in rules
        if rule.bus == bus_name(bus) and matches(rule.pattern, event)
        for t in rule.elsewhere
    ]


def _get_att_id(arn: Any) -> str | None:
    if isinstance(arn, dict) and isinstance(arn.get("Fn::GetAtt"), list):
        return str(arn["Fn::GetAtt"][0])
    return None


def bus_name(name_or_arn: str) -> str:
    """`arn:aws:events:r:a:event-bus/name` or `name` -> `name`."""
    return name_or_arn.rsplit("event-bus/", 1)[-1]


def targets_of(rules: list[Rule], bus: str, event: Mapping[str, Any]) -> list[str]:
    """Logical ids of the state machines the event starts on that bus, in rule order."""
    found: list[str] = []
    for rule in rules:
        if rule.bus == bus_name(bus) and matches(rule.pattern, event):
            found += [t for t in rule.targets if t not in found]
    return found


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether an event matches an EventBridge event pattern."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        present = key in event
        value = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not _matches_any(expected, value, present):
                return False
        else:
            raise ValueError(f"event pattern field {key!r} must be an object or a list: {expected!r}")
    return True


def _matches_any(rules: list[Any], value: Any, present: bool) -> bool:
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, Mapping):
            if "exists" in rule:
                if bool(rule["exists"]) == present:
                    return True
                continue
            if present and any(_matches_filter(rule, v) for v in values):
                return True
        elif present and any(v == rule for v in values):
            return True
    return False


def _matches_filter(rule: Mapping[str, Any], value: Any) -> bool:
    ((kind, argument),) = rule.items()
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(_text(argument))
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(_text(argument))
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(argument).casefold()
    if kind == "wildcard":
        regex = ".*".join(re.escape(part) for part in str(argument).split("*"))
        return isinstance(value, str) and re.fullmatch(regex, value, re.DOTALL) is not None
    if kind == "anything-but":
        excluded = argument if isinstance(argument, list) else [argument]
        if isinstance(argument, Mapping):
            return not _matches_filter(argument, value)
        return value not in excluded
    if kind == "numeric":
        return isinstance(value, int | float) and not isinstance(value, bool) and _numeric(argument, value)
    raise ValueError(f"event pattern filter {kind!r} is not supported locally")


def _text(argument: Any) -> str:
    # `{"prefix": {"equals-ignore-case": "x"}}` is not used here; plain strings are.
    return str(argument)


def _numeric(conditions: list[Any], value: float) -> bool:
    checks = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "=": lambda a, b: a == b,
    }
    pairs = zip(conditions[::2], conditions[1::2], strict=True)
    return all(checks[str(op)](value, float(bound)) for op, bound in pairs)
