"""What every test folder shares: the repository's paths, the stack as `app.py` builds it, Lambda loading."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import aws_cdk as cdk

from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack

REPO = Path(__file__).resolve().parents[1]
LAMBDA_ROOT = REPO / "lambda"
EVENTS_ROOT = REPO / "tests" / "events"
# cdk.App() in tests does not read cdk.json: pass its context (feature flags) explicitly.
CDK_CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
TEST_ENV = cdk.Environment(account="123456789012", region="eu-central-1")
# The Lambdas' shared layer (`/opt/python` in Lambda): handlers import its modules by bare name.
SHARED_LAMBDA_CODE = LAMBDA_ROOT / "shared" / "python"
if str(SHARED_LAMBDA_CODE) not in sys.path:
    sys.path.insert(0, str(SHARED_LAMBDA_CODE))


def build_stack(settings: ContextualTargetingSettings | None = None) -> ContextualTargetingStack:
    """A fresh app holding the stack, as `app.py` builds it, in a fixed account and region."""
    app = cdk.App(context=CDK_CONTEXT)
    return ContextualTargetingStack(
        app, "ContextualTargeting", settings=settings or ContextualTargetingSettings(), env=TEST_ENV
    )


def load_lambda(component: str, module: str) -> ModuleType:
    """Import `lambda/<component>/<module>.py` under a unique name (every Lambda has a `handler.py`)."""
    folder = LAMBDA_ROOT / component
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the handlers import their sibling module by its bare name
    name = f"{component.replace('/', '_')}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{module}.py")
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded
