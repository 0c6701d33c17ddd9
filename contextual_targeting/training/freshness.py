"""Skip unchanged data: a scheduled run whose training files, query files and config are the same object
versions as the last successful run's has nothing new to learn, and ends before it bills anything.

The validator reports the versions it read (`$.Validation.Data`: Fingerprint, Files, StateKey, Unchanged,
LastSuccess; `lambda/training/validate_config/data_versions.py`). A successful run records them in
`state/training/<dataset-group>/last-success.json` in the data bucket, which no lifecycle rule expires.
A config upload (or a manual start) always trains.
"""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry
from contextual_targeting.training.schedule import SCHEDULE_TRIGGER

# S3 declares no throttling error for PutObject: SlowDown and 5xx arrive as the generic S3 error.
S3_RETRYABLE = ["S3.S3Exception", "S3.SdkClientException"]


def nothing_new(scope: Construct, *, train: sfn.IChainable, skip: sfn.IChainable) -> sfn.Choice:
    """Skip a scheduled run on data the last successful run already trained on; train otherwise."""
    return (
        sfn.Choice(scope, "NewData", state_name="Is there new data to train on?")
        .when(
            sfn.Condition.and_(
                sfn.Condition.string_equals("$.Trigger", SCHEDULE_TRIGGER),
                sfn.Condition.boolean_equals("$.Validation.Data.Unchanged", True),
            ),
            skip,
        )
        .otherwise(train)
    )


def record_data_versions(scope: Construct, *, state_objects_arn: str, then: sfn.IChainable) -> sfn.IChainable:
    """After a successful run: note what it trained on for the next scheduled run, then go on to `then`.

    A failed write is no reason to call the run failed: the next scheduled run then just trains again."""
    note = sfn.Pass(
        scope,
        "NoteDataVersions",
        state_name="Note the data this run trained on",
        parameters={
            "Fingerprint": sfn.JsonPath.string_at("$.Validation.Data.Fingerprint"),
            "Files": sfn.JsonPath.object_at("$.Validation.Data.Files"),
            "ExecutionArn": sfn.JsonPath.execution_id,
            "Started": sfn.JsonPath.execution_start_time,
            "ConfigKey": sfn.JsonPath.string_at("$.Source.Key"),
            "Trigger": sfn.JsonPath.string_at("$.Trigger"),
        },
        result_path="$.Trained",
    )
    record = tasks.CallAwsService(
        scope,
        "RecordDataVersions",
        state_name="Record the data versions of this run",
        service="s3",
        action="putObject",
        iam_action="s3:PutObject",
        iam_resources=[state_objects_arn],
        parameters={
            "Bucket": sfn.JsonPath.string_at("$.Source.Bucket"),
            "Key": sfn.JsonPath.string_at("$.Validation.Data.StateKey"),
            "Body": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.Trained")),
            "ContentType": "application/json",
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    add_sdk_retry(record, S3_RETRYABLE)
    record.add_catch(then, errors=[sfn.Errors.ALL], result_path="$.RecordError")
    return note.next(record).next(then)
