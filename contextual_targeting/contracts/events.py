"""The pipeline's public event contract: one source, one detail-type per kind of state change.

Every event goes onto the pipeline's custom bus with `source` = EVENT_SOURCE. Destinations
subscribe to SEGMENT_READY; its detail is documented field by field in docs/segments.md
("The `Segment Ready` event"), the other events in docs/training.md ("What a run emits").
"""

EVENT_SOURCE = "contextual-targeting"

# Training workflow: `Personalize <Resource> State Change`, detail at least
# {Arn, Status, DatasetGroupName, DatasetGroupArn}; batch segment jobs add {JobName, OutputS3Uri}.
PERSONALIZE_STATE_CHANGE = "Personalize {resource} State Change"
BATCH_SEGMENT_JOB_STATE_CHANGE = PERSONALIZE_STATE_CHANGE.format(resource="Batch Segment Job")
# One per training run, at its end: {Status, DatasetGroupName, ConfigKey, ExecutionArn, ...}.
TRAINING_RUN_STATE_CHANGE = "Training Workflow State Change"

# Post-processing: one per non-empty segment, detail
# {SegmentName, Query, SegmentUri, UserCount, JobArn, JobName, DatasetGroupName, ManifestUri}.
# SegmentName is a function of (dataset group, query) alone: the same in every run (docs/segments.md).
# UserCount counts distinct users: the segment file holds each user once, at its best rank.
SEGMENT_READY = "Segment Ready"
# Post-processing problems (failed query line, empty segment, failed run).
SEGMENT_POSTPROCESSING_STATE_CHANGE = "Segment Postprocessing State Change"

# Pinpoint destination.
PINPOINT_IMPORT_STATE_CHANGE = "Pinpoint Segment Import State Change"


def personalize_state_change(resource: str) -> str:
    """Detail-type for a Personalize resource, e.g. `Personalize Solution Version State Change`."""
    return PERSONALIZE_STATE_CHANGE.format(resource=resource)


# Customer Profiles destination: one per segment upload, detail {SegmentName, SegmentDefinitionArn,
# UploadJobId, Status, ProfilesUploaded, ProfilesFailed, UsersWithoutContact, MembersRemoved, FailureReason}.
CUSTOMER_PROFILES_SEGMENT_STATE_CHANGE = "Customer Profiles Segment State Change"

# Operations: a workflow execution ended FAILED, TIMED_OUT or ABORTED without its own report
# (operations/failures.py), detail {StateMachineArn, ExecutionArn, ExecutionName, Status, Error, Cause}.
WORKFLOW_FAILED = "Workflow Failed"
