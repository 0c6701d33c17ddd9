"""The Customer Profiles destination's workflow: a ready segment -> upload job -> segment definition.

One execution per `Segment Ready` event: wait for an upload slot, write the upload files (join with the
contact file, diff with the previous members; one file per set of columns its rows have, each under 1 GB),
make sure the query's segment definition exists, then for each file create, send, start and poll an upload
job, and keep the members for the next run. The steps are fragments (`fragments.py`); every outcome goes
through one `Report` object and one cleanup/publish/email tail (`outcomes.py`), so the event and the email
never disagree, and a FAILED report always fails the execution.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.workflow_kit import backoff_schedule
from contextual_targeting.destinations.customer_profiles.fragments import (
    JOB_DEFAULTS,
    RESULTS_DEFAULTS,
    EnsureSegmentDefinition,
    KeepMembers,
    NextUploadFile,
    SlotGate,
    StartUploadJob,
    Upload,
    WaitForUploadJob,
    WriteUploadFile,
)
from contextual_targeting.destinations.customer_profiles.outcomes import UploadOutcomes
from contextual_targeting.destinations.customer_profiles.workflow_inputs import (
    ProfilesTarget,
    WorkflowFunctions,
    WorkflowSettings,
)
from contextual_targeting.destinations.kit import chain, read_segment_ready


def upload_schedule(bound: cdk.Duration) -> list[int]:
    """Waits between upload-job checks: uploads of millions of profiles take many minutes, so from 30 s."""
    return backoff_schedule(bound, first=30, cap=600)


def upload_workflow(
    scope: Construct,
    *,
    target: ProfilesTarget,
    functions: WorkflowFunctions,
    settings: WorkflowSettings,
    state_objects_arn: str,
    bus: events.IEventBus,
    topic: sns.ITopic,
) -> sfn.Chain:
    """Upload workflow: `Segment Ready` in, Customer Profiles upload jobs and one segment definition out."""
    # The reports are made first (every step leads to some of them), then the steps in the order they run:
    # that order places each state in the definition, which a deployed stack must keep.
    outcomes = UploadOutcomes(
        scope, settings=settings, state_objects_arn=state_objects_arn, bus=bus, topic=topic
    )
    upload = Upload(
        target=target,
        functions=functions,
        settings=settings,
        state_objects_arn=state_objects_arn,
        outcomes=outcomes,
    )
    return chain(
        read_segment_ready(
            scope,
            fields=["SegmentName", "Query", "Bucket", "Key", "UserCount", "DatasetGroupName"],
            Defaults={"Job": JOB_DEFAULTS, "Results": RESULTS_DEFAULTS},
            Slot={"Attempt": 0},
            Progress={
                "Index": 0,
                "Uploaded": 0,
                "Failed": 0,
                "Note": {"Status": "SUCCEEDED", "StatusReason": ""},
            },
        ),
        SlotGate(scope, "SlotGate", upload),
        WriteUploadFile(scope, "WriteUploadFile", upload),
        EnsureSegmentDefinition(scope, "EnsureSegmentDefinition", upload),
        start_job := StartUploadJob(scope, "StartUploadJob", upload),
        WaitForUploadJob(scope, "WaitForUploadJob", upload),
        # One upload job per upload file (a column set, or a part of one under the size limit).
        NextUploadFile(scope, "NextUploadFile", upload, again=start_job.start_state),
        KeepMembers(scope, "KeepMembers", upload),
    )
