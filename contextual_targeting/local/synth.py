"""Synthesize the stack in this process, as `app.py` and the tests do, for the demo and the diagrams."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = REPO_ROOT / "cdk.json"
STACK_NAME = "ContextualTargeting"
# The tests' fixed environment (tests/helpers.py): the same template whether the tests or the command synth.
ACCOUNT = "123456789012"
REGION = "eu-central-1"

_CDK_HASH = re.compile(r"[0-9A-F]{8}$")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")

CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    "default": ("customer-profiles",),
    "with Pinpoint": ("customer-profiles", "pinpoint"),
}
"""The stack configurations (their destinations) whose workflows are drawn: the default, and every one on."""


def use_local_node() -> None:
    """Put the repository's Node 22 (`node_modules/.bin`) first on PATH: jsii runs on it, as under `make`."""
    local = REPO_ROOT / "node_modules" / ".bin"
    path = os.environ.get("PATH", "")
    if local.is_dir() and not path.startswith(str(local)):
        os.environ["PATH"] = f"{local}{os.pathsep}{path}"


def synthesize(destinations: tuple[str, ...] = CONFIGURATIONS["default"]) -> dict[str, Any]:
    """The stack's CloudFormation template with these destinations and the feature flags of cdk.json."""
    return synthesized_stack(build_stack(destinations)).template


def build_stack(destinations: tuple[str, ...] = CONFIGURATIONS["default"]) -> Any:
    """The stack (a `ContextualTargetingStack`) with these destinations, as `app.py` builds it.

    aws_cdk is imported here, after `use_local_node`: its import starts jsii's Node process.
    """
    use_local_node()
    import aws_cdk as cdk

    from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack

    context = json.loads(CDK_JSON.read_text())["context"]
    app = cdk.App(context=context)
    stack = ContextualTargetingStack(
        app,
        STACK_NAME,
        settings=ContextualTargetingSettings(destinations=destinations),
        env=cdk.Environment(account=ACCOUNT, region=REGION),
    )
    return stack


@dataclass(frozen=True, kw_only=True)
class SynthesizedStack:
    """A synthesized stack as the demo runs it: the template, and where each Lambda's code comes from."""

    template: dict[str, Any]
    code: dict[str, Path]
    """Logical id of every Lambda function and layer -> the folder its asset is built from."""


def asset_sources(stack: Any) -> dict[str, Path]:
    """Logical id -> source folder of every Lambda function and layer built from a local asset."""
    from aws_cdk import aws_lambda as lambda_

    sources: dict[str, Path] = {}
    for construct in stack.node.find_all():
        if not isinstance(construct, lambda_.Function | lambda_.LayerVersion):
            continue
        code = construct.node.try_find_child("Code")
        stage = code.node.try_find_child("Stage") if code is not None else None
        source = getattr(stage, "source_path", None)
        resource = construct.node.default_child
        if source and resource is not None:
            sources[str(stack.resolve(resource.logical_id))] = Path(source)  # type: ignore[attr-defined]
    return sources


def synthesized_stack(stack: Any) -> SynthesizedStack:
    """The template and Lambda sources of an already built stack (the tests pass theirs)."""
    from aws_cdk.assertions import Template

    return SynthesizedStack(template=dict(Template.from_stack(stack).to_json()), code=asset_sources(stack))


def logical_words(logical_id: str) -> list[str]:
    """Words of a logical id without CDK's hash, a word repeated right after itself said once:
    `TrainingTrainingWorkflow650BD35D` -> training, workflow."""
    words = [w.lower() for w in _WORDS.findall(_CDK_HASH.sub("", logical_id))]
    return [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]


def without_hash(logical_id: str) -> str:
    """A logical id without the 8 hex digits CDK appends."""
    return _CDK_HASH.sub("", logical_id)
