"""The local Step Functions harness, for the tests: it lives in `contextual_targeting.local` (the demo runs
workflows with it too); these names stay importable from here."""

from contextual_targeting.local import (
    HISTORY_EVENT_LIMIT,
    PAYLOAD_LIMIT_BYTES,
    AwsError,
    Execution,
    HarnessError,
    InvalidDefinitionError,
    Outbox,
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
