"""Draw a Step Functions definition (ASL) as a Mermaid flowchart: states as nodes, Parallel branches and Map
item processors as nested subgraphs, Next/Choice edges solid, Catch edges dotted.

Only the definition is read, so a drawing is exactly as true as the synthesized template it comes from.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Characters Mermaid reads as syntax even inside a quoted label, written as its entity codes instead.
# `#` first: every other replacement starts with one.
_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "|": "#124;",
    "`": "#96;",
    ";": "#59;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
}
# Control characters and line/paragraph separators: each would end the Mermaid statement.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})
_STATES_PREFIX = re.compile(r"^arn:[^:]+:states:::")
_LAMBDA_FUNCTION = re.compile(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function:(?P<name>[^:]+)")
_CDK_HASH = re.compile(r"[0-9A-F]{8}$")

# Choice operators (without the `Path` suffix, which compares with another path) -> how they read.
_COMPARISONS = {
    "StringEquals": "==",
    "NumericEquals": "==",
    "BooleanEquals": "==",
    "TimestampEquals": "==",
    "StringLessThan": "<",
    "NumericLessThan": "<",
    "TimestampLessThan": "<",
    "StringGreaterThan": ">",
    "NumericGreaterThan": ">",
    "TimestampGreaterThan": ">",
    "StringLessThanEquals": "<=",
    "NumericLessThanEquals": "<=",
    "TimestampLessThanEquals": "<=",
    "StringGreaterThanEquals": ">=",
    "NumericGreaterThanEquals": ">=",
    "TimestampGreaterThanEquals": ">=",
    "StringMatches": "matches",
}
_TESTS = {"IsPresent": ("is present", "is absent"), "IsNull": ("is null", "is not null")}
_TYPE_TESTS = {"IsString": "a string", "IsNumeric": "a number", "IsBoolean": "a boolean"}
_TYPE_TESTS |= {"IsTimestamp": "a timestamp"}


def escape(text: str) -> str:
    """Text for a quoted Mermaid label: quotes, brackets, pipes, `#`, `;`, HTML and line breaks (any
    control or separator character) as entity codes."""
    return "".join(
        _ENTITIES.get(ch) or (f"#{ord(ch)};" if unicodedata.category(ch) in _BREAKING else ch) for ch in text
    )


def condition_text(rule: Mapping[str, Any]) -> str:
    """A Choice rule as one readable line, e.g. `$.Validation.Valid == false and $.Plan is present`."""
    for combinator, joiner in (("And", " and "), ("Or", " or ")):
        if combinator in rule:
            parts = [condition_text(r) for r in rule[combinator]]
            return joiner.join(f"({p})" if (" and " in p or " or " in p) else p for p in parts)
    if "Not" in rule:
        return f"not ({condition_text(rule['Not'])})"
    variable = str(rule.get("Variable", "?"))
    for operator, value in rule.items():
        if operator in ("Variable", "Next"):
            continue
        if operator in _TESTS:
            yes, no = _TESTS[operator]
            return f"{variable} {yes if value else no}"
        if operator in _TYPE_TESTS:
            return f"{variable} is {'' if value else 'not '}{_TYPE_TESTS[operator]}"
        base = operator.removesuffix("Path")
        if base in _COMPARISONS:
            shown = str(value) if operator.endswith("Path") else json.dumps(value, ensure_ascii=False)
            return f"{variable} {_COMPARISONS[base]} {shown}"
        return f"{variable} {operator} {json.dumps(value, ensure_ascii=False)}"
    return variable


def resource_text(state: Mapping[str, Any], lambda_name: Callable[[str], str | None]) -> str:
    """What a Task calls: `aws-sdk:personalize:createSchema`, `lambda: <function>`, `sns:publish`."""
    resource = str(state.get("Resource", ""))
    name = lambda_name(resource)
    if name:
        return f"lambda: {name}"
    short = _STATES_PREFIX.sub("", resource)
    if short.startswith("lambda:invoke"):
        function = lambda_name(str((state.get("Parameters") or {}).get("FunctionName", "")))
        return f"{short}: {function}" if function else short
    return short


def lambda_function_name(resource: str) -> str | None:
    """The function of a Lambda ARN, without the CDK hash suffix of its logical id."""
    match = _LAMBDA_FUNCTION.match(resource)
    return _CDK_HASH.sub("", match["name"]) if match else None


@dataclass
class _Drawing:
    lambda_name: Callable[[str], str | None]
    lines: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def new_id(self, prefix: str = "s") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def node_id(self, name: str) -> str:
        # State names are unique in a whole definition (AWS requires it), so one id per name.
        if name not in self.ids:
            self.ids[name] = self.new_id()
        return self.ids[name]

    def graph(self, machine: Mapping[str, Any], indent: str, *, root: bool) -> None:
        """Declare every state of `machine` (and its nested graphs); collect the edges."""
        states: Mapping[str, Any] = machine.get("States", {})
        start = self.new_id("start")
        self.lines.append(f'{indent}{start}(("start")):::marker')
        self.edges.append(f"{start} --> {self.node_id(str(machine['StartAt']))}")
        end: str | None = None
        for name, state in states.items():
            self.state(name, state, indent)
            if state.get("End") and state.get("Type") not in ("Succeed", "Fail"):
                if end is None:
                    end = self.new_id("end")
                    self.lines.append(f'{indent}{end}(("{"end" if root else "branch end"}")):::marker')
                self.edges.append(f"{self.node_id(name)} --> {end}")

    def state(self, name: str, state: Mapping[str, Any], indent: str) -> None:
        node = self.node_id(name)
        kind = str(state.get("Type", ""))
        label = escape(name)
        if kind == "Task":
            self.lines.append(
                f'{indent}{node}["{label}<br/>{escape(resource_text(state, self.lambda_name))}"]'
            )
        elif kind == "Choice":
            self.lines.append(f'{indent}{node}{{"{label}"}}')
        elif kind == "Wait":
            self.lines.append(f'{indent}{node}(["{label}"]):::wait')
        elif kind == "Succeed":
            self.lines.append(f'{indent}{node}(["{label}"]):::succeed')
        elif kind == "Fail":
            self.lines.append(f'{indent}{node}(["{label}"]):::fail')
        elif kind in ("Parallel", "Map"):
            self.container(node, label, kind, state, indent)
        else:
            self.lines.append(f'{indent}{node}("{label}")')
        self.exits(node, state)

    def container(self, node: str, label: str, kind: str, state: Mapping[str, Any], indent: str) -> None:
        if kind == "Map":
            items = state.get("ItemsPath")
            title = f"{label}<br/>Map{escape(f': each item of {items}') if items else ''}"
            branches = [state.get("ItemProcessor") or state.get("Iterator") or {}]
        else:
            title = f"{label}<br/>Parallel"
            branches = list(state.get("Branches", []))
        self.lines.append(f'{indent}subgraph {node}["{title}"]')
        self.lines.append(f"{indent}  direction TB")
        if len(branches) == 1:
            self.graph(branches[0], indent + "  ", root=False)
        else:
            for number, branch in enumerate(branches, start=1):
                sub = self.new_id("branch")
                self.lines.append(f'{indent}  subgraph {sub}["branch {number}"]')
                self.lines.append(f"{indent}    direction TB")
                self.graph(branch, indent + "    ", root=False)
                self.lines.append(f"{indent}  end")
        self.lines.append(f"{indent}end")

    def exits(self, node: str, state: Mapping[str, Any]) -> None:
        if "Next" in state:
            self.edges.append(f"{node} --> {self.node_id(str(state['Next']))}")
        for rule in state.get("Choices", []):
            text = escape(condition_text(rule))
            self.edges.append(f'{node} -->|"{text}"| {self.node_id(str(rule["Next"]))}')
        if "Default" in state:
            self.edges.append(f'{node} -->|"otherwise"| {self.node_id(str(state["Default"]))}')
        for catcher in state.get("Catch", []):
            errors = escape("catch " + ", ".join(catcher.get("ErrorEquals", [])))
            self.edges.append(f'{node} -.->|"{errors}"| {self.node_id(str(catcher["Next"]))}')


def flowchart(
    definition: Mapping[str, Any], lambda_name: Callable[[str], str | None] = lambda_function_name
) -> str:
    """The Mermaid source (`flowchart TD ...`) of one state machine definition."""
    drawing = _Drawing(lambda_name)
    drawing.graph(definition, "  ", root=True)
    return "\n".join(
        [
            "flowchart TD",
            *drawing.lines,
            *(f"  {edge}" for edge in drawing.edges),
            "  classDef marker fill:#eee,stroke:#999,color:#555",
            "  classDef wait fill:#fff7e0,stroke:#c90",
            "  classDef succeed fill:#e6f4ea,stroke:#2e7d32",
            "  classDef fail fill:#fdecea,stroke:#c62828",
        ]
    )
