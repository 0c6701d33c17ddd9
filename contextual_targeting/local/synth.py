"""Synthesize the stack in this process, as `app.py` and the tests do, for the demo and the diagrams."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = REPO_ROOT / "cdk.json"
STACK_NAME = "ContextualTargeting"
# The tests' fixed environment (tests/helpers.py): the same template whether the tests or the command synth.
ACCOUNT = "123456789012"
REGION = "eu-central-1"

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
    """The stack's CloudFormation template with these destinations and the feature flags of cdk.json.

    aws_cdk is imported here, after `use_local_node`: its import starts jsii's Node process.
    """
    use_local_node()
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack

    settings = ContextualTargetingSettings(destinations=destinations)

    context = json.loads(CDK_JSON.read_text())["context"]
    app = cdk.App(context=context)
    stack = ContextualTargetingStack(
        app, STACK_NAME, settings=settings, env=cdk.Environment(account=ACCOUNT, region=REGION)
    )
    return dict(Template.from_stack(stack).to_json())
