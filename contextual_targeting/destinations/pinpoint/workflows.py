"""The Pinpoint destination's workflows: prepare (users -> endpoint ids) and import (file -> segment).

Each builder returns a chain, so tests can render and run a workflow alone: a short chain of steps
(`fragments.py`), each leading to reports (`outcomes.py`) that end in one publish/email tail.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.destinations.kit import chain, read_segment_ready
from contextual_targeting.destinations.pinpoint.fragments import (
    DEFINITION_DEFAULTS,
    JOB_DEFAULTS,
    ExportEndpoints,
    FindEndpoints,
    Import,
    InspectFile,
    Preparation,
    RunImportJob,
)
from contextual_targeting.destinations.pinpoint.outcomes import ImportOutcomes, PrepareOutcomes
from contextual_targeting.destinations.pinpoint.target import PinpointTarget


def prepare_workflow(
    scope: Construct,
    *,
    target: PinpointTarget,
    export_bucket: str,
    export_prefix: str,
    join_function: lambda_.IFunction,
    bus: events.IEventBus,
    topic: sns.ITopic,
    export_schedule: Sequence[int],
) -> sfn.Chain:
    """Prepare workflow: export the project's endpoints, join them with the segment, write the import file."""
    # The reports are made first (every step leads to some of them), then the steps in the order they run:
    # that order places each state in the definition, which a deployed stack must keep.
    prepare = Preparation(
        target=target,
        export_bucket=export_bucket,
        join_function=join_function,
        schedule=export_schedule,
        outcomes=PrepareOutcomes(scope, export_schedule=export_schedule, bus=bus, topic=topic),
    )
    return chain(
        read_segment_ready(
            scope,
            fields=["SegmentName", "Bucket", "Key", "UserCount"],
            # One export per execution, under a prefix no other run writes to.
            ExportPrefix=sfn.JsonPath.format(export_prefix + "{}/", sfn.JsonPath.execution_name),
        ),
        ExportEndpoints(scope, "ExportEndpoints", prepare),
        FindEndpoints(scope, "FindEndpoints", prepare),
    )


def import_workflow(
    scope: Construct,
    *,
    target: PinpointTarget,
    inspect_function: lambda_.IFunction,
    bus: events.IEventBus,
    topic: sns.ITopic,
    import_schedule: Sequence[int],
) -> sfn.Chain:
    """Import workflow: inspect the file, create a static segment from it and poll the job to its end."""
    job = Import(
        target=target,
        inspect_function=inspect_function,
        schedule=import_schedule,
        outcomes=ImportOutcomes(scope, import_schedule=import_schedule, bus=bus, topic=topic),
    )
    # The input is `{"Source": {...}}` from object_trigger.OncePerObjectVersion; the states below read the
    # object at the top level.
    start = sfn.Pass(
        scope,
        "Import defaults",
        state_name="Start the import",
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Source.Bucket"),
            "Key": sfn.JsonPath.string_at("$.Source.Key"),
            "VersionId": sfn.JsonPath.string_at("$.Source.VersionId"),
            "Defaults": {"Job": JOB_DEFAULTS, "Definition": DEFINITION_DEFAULTS},
        },
    )
    return chain(start, InspectFile(scope, "InspectFile", job), RunImportJob(scope, "RunImportJob", job))
