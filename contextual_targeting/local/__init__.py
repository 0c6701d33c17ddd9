"""Run the synthesized workflows on this machine: the local Step Functions harness (harness.py, runner.mjs)
that the tests and `contextual-targeting demo` share, and the demo's local stand-ins for AWS."""

from .harness import (
    HISTORY_EVENT_LIMIT,
    PAYLOAD_LIMIT_BYTES,
    AwsError,
    Execution,
    HarnessError,
    InvalidDefinitionError,
    RunawayExecutionError,
    ScriptExhaustedError,
    TaskCall,
    UnscriptedCallError,
    WorkflowHungError,
    definition_from_chainable,
    definition_from_template,
    render_tokens,
    retry_interval,
    run_workflow,
    script,
)
from .outbox import Outbox

__all__ = [
    "HISTORY_EVENT_LIMIT",
    "PAYLOAD_LIMIT_BYTES",
    "AwsError",
    "Execution",
    "HarnessError",
    "InvalidDefinitionError",
    "Outbox",
    "RunawayExecutionError",
    "ScriptExhaustedError",
    "TaskCall",
    "UnscriptedCallError",
    "WorkflowHungError",
    "definition_from_chainable",
    "definition_from_template",
    "render_tokens",
    "retry_interval",
    "run_workflow",
    "script",
]
