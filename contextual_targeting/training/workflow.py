"""The training workflow: validate an uploaded config, then schemas, dataset group, datasets, imports,
solutions, solution versions and batch segment jobs, announcing every state change and emailing the result.

Execution input (what `object_trigger.OncePerObjectVersion` starts it with, once per config object version):
`{"Source": {"Bucket", "Key", "VersionId", "ETag", "Size"}}`; the config is read at `VersionId` (the latest
version when it is absent). A manual start with the same input is a new run. The dataset group's schedule
(`schedule.py`) starts it with `{"Source": {"Bucket", "Key"}, "Trigger": "schedule"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import (
    LAMBDA_THROTTLED,
    add_sdk_retry,
    put_event,
    report_outcome,
)
from contextual_targeting.contracts.events import TRAINING_RUN_STATE_CHANGE, personalize_state_change
from contextual_targeting.training.create_and_wait import (
    ALREADY_EXISTS,
    BATCH_SEGMENT_JOB,
    DATASET,
    DATASET_GROUP,
    DATASET_IMPORT_JOB,
    LONG,
    QUICK,
    SOLUTION,
    SOLUTION_VERSION,
    TRAINING,
    CallWithPlannedRequest,
    CreateAndWait,
    CreateAndWaitProps,
    PollSchedule,
    personalize_arn,
    retry_personalize,
)
from contextual_targeting.training.freshness import nothing_new, record_data_versions
from contextual_targeting.training.run_queue import DEFAULT_QUEUE_WAIT, wait_for_earlier_runs
from contextual_targeting.training.schedule import SCHEDULE_TRIGGER, ScheduleTarget, sync_schedule

FILE_CHECK_INTERVAL = 30
"""Seconds between two looks for training files the config needs but the bucket does not have yet."""
FILE_CHECKS = 20
"""Looks for missing files before the run fails (FILE_CHECKS x FILE_CHECK_INTERVAL = 10 minutes)."""


@dataclass(frozen=True, kw_only=True)
class TrainingWorkflowProps:
    """The resources the training workflow uses."""

    bus: events.IEventBus
    """Receives the state-change events."""
    topic: sns.ITopic
    """Emails the run summary."""
    validator: lambda_.IFunction
    """Validates the config and returns the run plan (`lambda/training/validate_config`)."""
    personalize_role: iam.IRole
    """Handed to Personalize for imports and batch segment jobs."""
    run_queue: lambda_.IFunction
    """Says whether an earlier run of the dataset group is still running (`lambda/training/run_queue`)."""
    schedules: ScheduleTarget
    """Where the dataset groups' schedules live and the role they start this workflow with."""
    state_objects_arn: str
    """S3 objects a successful run records its data versions in (`state/training/*` of the data bucket)."""
    queue_wait: cdk.Duration = DEFAULT_QUEUE_WAIT
    """How long a run waits for an earlier run of its dataset group before it gives up."""
    quick: PollSchedule = QUICK
    """Dataset groups, datasets, solutions."""
    imports: PollSchedule = LONG
    training: PollSchedule = TRAINING
    segments: PollSchedule = LONG


def build_training_workflow(scope: Construct, *, props: TrainingWorkflowProps) -> sfn.IChainable:
    """The whole workflow as one chain (tests render and run it alone):

    start -> wait for an earlier run of the dataset group -> validate the config (waiting for files it names)
      -> create, update or delete the schedule -> new data? -> train and segment -> record the data versions
      -> report the run
         `-> scheduled and nothing new: report "no new data"
      `-> waited too long, invalid, files never came, or any step failed: report the failure
    report: one run-level event and one email (`report_outcome`), then the execution succeeds or fails
    """
    report = report_outcome(
        scope, "training run", bus=props.bus, topic=props.topic, detail_type=TRAINING_RUN_STATE_CHANGE
    )
    failed = _failure_report(scope).next(report)
    validate = _validate_config(scope, props, failed)
    train = _train_and_segment(scope, props, failed)
    train.next(
        record_data_versions(
            scope, state_objects_arn=props.state_objects_arn, then=_success_report(scope).next(report)
        )
    )
    fresh = nothing_new(scope, train=train, skip=_no_new_data_report(scope).next(report))
    schedule = sync_schedule(scope, target=props.schedules, then=fresh, failed=failed)
    validate.next(_config_ready(scope, validate, schedule, failed))
    queue = wait_for_earlier_runs(
        scope, function=props.run_queue, bus=props.bus, bound=props.queue_wait, then=validate, failed=failed
    )
    begin = sfn.Pass(
        scope,
        "Begin",
        state_name="Start the training run",
        result=sfn.Result.from_object({"Checks": 0}),
        result_path="$.Files",
    )  # the validation loop counts its looks for missing files from here
    return begin.next(_note_trigger(scope, then=queue))


def _note_trigger(scope: Construct, *, then: sfn.IChainable) -> sfn.Choice:
    """`$.Trigger`: "schedule" for a run the dataset group's schedule started, "upload" for any other."""
    upload = sfn.Pass(
        scope,
        "UploadTrigger",
        state_name="Note a run started by an upload",
        result=sfn.Result.from_string("upload"),
        result_path="$.Trigger",
    )
    # Rules are tried in order: the comparison only ever sees a Trigger that is there.
    upload.next(then)
    return (
        sfn.Choice(scope, "Trigger", state_name="Was the run started by its schedule?")
        .when(sfn.Condition.not_(sfn.Condition.is_present("$.Trigger")), upload)
        .when(sfn.Condition.string_equals("$.Trigger", SCHEDULE_TRIGGER), then)
        .otherwise(upload)
    )


def _validate_config(
    scope: Construct, props: TrainingWorkflowProps, failed: sfn.IChainable
) -> tasks.LambdaInvoke:
    """The validator Lambda checks the config, CSV headers and query files and returns the run plan."""
    validate = tasks.LambdaInvoke(
        scope,
        "Validate",
        state_name="Validate config",
        lambda_function=props.validator,
        payload=sfn.TaskInput.from_object(
            {
                "Bucket": sfn.JsonPath.string_at("$.Source.Bucket"),
                "Key": sfn.JsonPath.string_at("$.Source.Key"),
                # The whole Source, so a manual start without a VersionId still works (latest version).
                "Source": sfn.JsonPath.object_at("$.Source"),
                "StartTime": sfn.JsonPath.string_at("$$.Execution.StartTime"),
                "ExecutionName": sfn.JsonPath.execution_name,
            }
        ),
        payload_response_only=True,
        result_path="$.Validation",
    )
    add_sdk_retry(validate, LAMBDA_THROTTLED)
    validate.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.Failure")
    return validate


def _config_ready(
    scope: Construct, validate: sfn.IChainable, go_on: sfn.IChainable, failed: sfn.IChainable
) -> sfn.Choice:
    """Go on with a valid, complete config; fail on an invalid one; wait (bounded) for files still missing."""
    reject = sfn.Pass(
        scope,
        "Reject",
        state_name="Reject config",
        parameters={"Error": "InvalidConfig", "Cause": sfn.JsonPath.string_at("$.Validation.Message")},
        result_path="$.Failure",
    )
    give_up = sfn.Pass(
        scope,
        "GiveUpOnFiles",
        state_name="Give up on missing files",
        parameters={"Error": "TrainingFilesMissing", "Cause": sfn.JsonPath.string_at("$.Validation.Message")},
        result_path="$.Failure",
    )
    count = sfn.Pass(
        scope,
        "CountFileCheck",
        state_name="Count file check",
        parameters={"Checks": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.Files.Checks"), 1)},
        result_path="$.Files",
    )
    wait_for_files = sfn.Wait(
        scope,
        "WaitForFiles",
        state_name="Wait for training files",
        time=sfn.WaitTime.duration(cdk.Duration.seconds(FILE_CHECK_INTERVAL)),
    )
    return (
        sfn.Choice(scope, "ConfigReady", state_name="Is the config valid and complete?")
        .when(sfn.Condition.boolean_equals("$.Validation.Valid", False), reject.next(failed))
        .when(sfn.Condition.is_present("$.Validation.Plan"), go_on)
        .when(sfn.Condition.number_greater_than_equals("$.Files.Checks", FILE_CHECKS), give_up.next(failed))
        .otherwise(count.next(wait_for_files).next(validate))
    )


def _train_and_segment(
    scope: Construct, props: TrainingWorkflowProps, failed: sfn.IChainable
) -> sfn.Parallel:
    """Every Personalize step of the plan, in one Parallel so that one catch covers them all."""
    train = sfn.Parallel(
        scope,
        "Train",
        state_name="Train and segment",
        parameters={
            "Run": sfn.JsonPath.object_at("$.Validation.Plan.Run"),
            "Plan": sfn.JsonPath.object_at("$.Validation.Plan"),
        },
        result_selector={"Solutions": sfn.JsonPath.list_at("$[0].Solutions")},
        result_path="$.Result",
    )
    train.branch(_training_branch(scope, props))
    train.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.Failure")
    return train


def _success_report(scope: Construct) -> sfn.Pass:
    """The run's SUCCEEDED report: its solutions with their batch segment jobs."""
    return sfn.Pass(
        scope,
        "RunSucceeded",
        state_name="Report run success",
        parameters={
            "Status": "SUCCEEDED",
            "Detail": {**_run_detail("SUCCEEDED"), "Solutions": sfn.JsonPath.list_at("$.Result.Solutions")},
            "Subject": "Contextual targeting: training run succeeded",
            "Message": {
                "Result": "SUCCEEDED",
                "DatasetGroup": sfn.JsonPath.string_at("$.Validation.Plan.Run.DatasetGroupName"),
                "Solutions": sfn.JsonPath.list_at("$.Result.Solutions"),
                **_run_email(),
            },
        },
        result_path="$.Report",
    )


def _run_detail(status: str) -> dict[str, object]:
    """Detail shared by the run-level events (the dataset group is the config's folder)."""
    return {
        "Status": status,
        "DatasetGroupName": sfn.JsonPath.array_get_item(
            sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.Source.Key"), "/"), 1
        ),
        "ConfigKey": sfn.JsonPath.string_at("$.Source.Key"),
        "ExecutionArn": sfn.JsonPath.string_at("$$.Execution.Id"),
        "Trigger": sfn.JsonPath.string_at("$.Trigger"),
    }


def _run_email() -> dict[str, object]:
    """Fields shared by the success and failure emails: which upload, when, which execution."""
    return {
        "Config": sfn.JsonPath.format(
            "s3://{}/{}", sfn.JsonPath.string_at("$.Source.Bucket"), sfn.JsonPath.string_at("$.Source.Key")
        ),
        "Started": sfn.JsonPath.string_at("$$.Execution.StartTime"),
        "Execution": sfn.JsonPath.string_at("$$.Execution.Id"),
        "Trigger": sfn.JsonPath.string_at("$.Trigger"),
    }


def _no_new_data_report(scope: Construct) -> sfn.Pass:
    """A scheduled run on the data the last successful run trained on: SKIPPED, nothing created or billed."""
    last = sfn.JsonPath.string_at("$.Validation.Data.LastSuccess.ExecutionArn")
    reason = (
        "The training files, query files and config are the same object versions as those of the last "
        "successful run: nothing was created, nothing was billed."
    )
    return sfn.Pass(
        scope,
        "RunSkipped",
        state_name="Report no new data",
        parameters={
            "Status": "SKIPPED",
            "Detail": {**_run_detail("SKIPPED"), "Reason": "no new data", "LastSuccessfulRun": last},
            "Subject": "Contextual targeting: scheduled training run skipped, no new data",
            "Message": {
                "Result": "SKIPPED: no new data",
                "DatasetGroup": sfn.JsonPath.string_at("$.Validation.Plan.Run.DatasetGroupName"),
                "Reason": reason,
                "LastSuccessfulRun": last,
                **_run_email(),
            },
        },
        result_path="$.Report",
    )


def _failure_report(scope: Construct) -> sfn.Pass:
    """`$.Failure` = {Error, Cause} of the step that failed becomes the run's FAILED report."""
    return sfn.Pass(
        scope,
        "RunFailed",
        state_name="Report run failure",
        parameters={
            "Status": "FAILED",
            "Error": sfn.JsonPath.string_at("$.Failure.Error"),
            "FailureReason": sfn.JsonPath.string_at("$.Failure.Cause"),
            "Detail": {
                **_run_detail("FAILED"),
                "Error": sfn.JsonPath.string_at("$.Failure.Error"),
                "FailureReason": sfn.JsonPath.string_at("$.Failure.Cause"),
            },
            "Subject": "Contextual targeting: training run FAILED",
            "Message": {
                "Result": "FAILED",
                "FailedStep": sfn.JsonPath.string_at("$.Failure.Error"),
                "Reason": sfn.JsonPath.string_at("$.Failure.Cause"),
                **_run_email(),
            },
        },
        result_path="$.Report",
    )


def _training_branch(scope: Construct, props: TrainingWorkflowProps) -> sfn.IChainable:
    """Dataset group, then every dataset (in parallel), then every solution with its batch segment jobs."""
    group = CreateAndWait(
        scope,
        "DatasetGroup",
        props=CreateAndWaitProps(
            resource=DATASET_GROUP,
            node="$.Plan.DatasetGroup",
            bus=props.bus,
            schedule=props.quick,
            create_resources=[personalize_arn(scope, "dataset-group")],
            describe_resources=[personalize_arn(scope, "dataset-group")],
        ),
    )
    datasets = sfn.Map(
        scope,
        "Datasets",
        state_name="Import datasets",
        items_path="$.Plan.Datasets",
        item_selector={
            "Run": sfn.JsonPath.object_at("$.Run"),
            "Item": sfn.JsonPath.object_at("$$.Map.Item.Value"),
        },
        # All imports run at once; the Map ends when the last one is ACTIVE.
        max_concurrency=0,
        result_path=sfn.JsonPath.DISCARD,
    )
    datasets.item_processor(_dataset_iteration(scope, props))
    solutions = sfn.Map(
        scope,
        "Solutions",
        state_name="Train solutions",
        items_path="$.Plan.Solutions",
        item_selector={
            "Run": sfn.JsonPath.object_at("$.Run"),
            "Item": sfn.JsonPath.object_at("$$.Map.Item.Value"),
        },
        max_concurrency=0,
        result_path="$.Solutions",
    )
    solutions.item_processor(_solution_iteration(scope, props))
    return group.next(datasets).next(solutions)


def _dataset_iteration(scope: Construct, props: TrainingWorkflowProps) -> sfn.IChainable:
    """Schema, dataset, import job for one dataset (`$.Item` is one entry of the plan's `Datasets`)."""
    schema = CallWithPlannedRequest(
        scope,
        "CreateSchema",
        state_name="Create schema",
        service="personalize",
        action="createSchema",
        iam_resources=[personalize_arn(scope, "schema")],
        input_path="$.Item.Schema.Request",
        result_path=sfn.JsonPath.DISCARD,
    )
    retry_personalize(schema, creates=True)
    # Schemas have no status: created or already there, they are usable at once.
    schema_ready = put_event(
        scope,
        "SchemaReady",
        state_name="Announce schema ready",
        bus=props.bus,
        detail_type=personalize_state_change("Schema"),
        detail={
            "Arn": sfn.JsonPath.string_at("$.Item.Schema.Arn"),
            "Status": "ACTIVE",
            "DatasetGroupName": sfn.JsonPath.string_at("$.Run.DatasetGroupName"),
            "DatasetGroupArn": sfn.JsonPath.string_at("$.Run.DatasetGroupArn"),
        },
    )
    schema.add_catch(schema_ready, errors=[ALREADY_EXISTS], result_path=sfn.JsonPath.DISCARD)
    schema.add_catch(
        sfn.Fail(
            scope,
            "SchemaFailed",
            state_name="Fail on schema request",
            error="SchemaRequestFailed",
            cause_path="$.Error.Cause",
        ),
        errors=[sfn.Errors.ALL],
        result_path="$.Error",
    )
    dataset = CreateAndWait(
        scope,
        "Dataset",
        props=CreateAndWaitProps(
            resource=DATASET,
            node="$.Item.Dataset",
            bus=props.bus,
            schedule=props.quick,
            create_resources=[personalize_arn(scope, t) for t in ("dataset", "dataset-group", "schema")],
            describe_resources=[personalize_arn(scope, "dataset")],
            # The dataset group can still be settling when its first dataset is created.
            retry_in_use=True,
        ),
    )
    import_job = CreateAndWait(
        scope,
        "ImportJob",
        props=CreateAndWaitProps(
            resource=DATASET_IMPORT_JOB,
            node="$.Item.ImportJob",
            bus=props.bus,
            schedule=props.imports,
            create_resources=[personalize_arn(scope, t) for t in ("dataset-import-job", "dataset")],
            describe_resources=[personalize_arn(scope, "dataset-import-job")],
            pass_role=props.personalize_role,
            retry_in_use=True,
        ),
    )
    return schema.next(schema_ready).next(dataset).next(import_job)


def _solution_iteration(scope: Construct, props: TrainingWorkflowProps) -> sfn.IChainable:
    """Solution, solution version and its batch segment jobs (`$.Item` is one of the plan's `Solutions`)."""
    solution = CreateAndWait(
        scope,
        "Solution",
        props=CreateAndWaitProps(
            resource=SOLUTION,
            node="$.Item",
            bus=props.bus,
            schedule=props.quick,
            create_resources=[personalize_arn(scope, t) for t in ("solution", "dataset-group")],
            describe_resources=[personalize_arn(scope, "solution")],
            retry_in_use=True,
        ),
    )
    version = CreateAndWait(
        scope,
        "SolutionVersion",
        props=CreateAndWaitProps(
            resource=SOLUTION_VERSION,
            node="$.Item.Version",
            bus=props.bus,
            schedule=props.training,
            # A solution version's ARN is solution/<solution>/<id>.
            create_resources=[personalize_arn(scope, "solution")],
            describe_resources=[personalize_arn(scope, "solution")],
            # Another version of the same solution still training.
            retry_in_use=True,
        ),
    )
    jobs = sfn.Map(
        scope,
        "Jobs",
        state_name="Run batch segment jobs",
        items_path="$.Item.Jobs",
        item_selector={
            "Run": sfn.JsonPath.object_at("$.Run"),
            "Version": {"SolutionVersionArn": sfn.JsonPath.string_at("$.Item.Version.Created.Arn")},
            "Item": sfn.JsonPath.object_at("$$.Map.Item.Value"),
        },
        max_concurrency=0,
        result_path="$.Item.JobResults",
    )
    jobs.item_processor(_job_iteration(scope, props))
    summarize = sfn.Pass(
        scope,
        "SummarizeSolution",
        state_name="Summarize solution",
        parameters={
            "Solution": sfn.JsonPath.string_at("$.Item.Name"),
            "SolutionVersionArn": sfn.JsonPath.string_at("$.Item.Version.Created.Arn"),
            "TrainingStarted": sfn.JsonPath.string_at("$.Item.Version.Latest.Resource.CreationDateTime"),
            "TrainingFinished": sfn.JsonPath.string_at("$.Item.Version.Latest.Resource.LastUpdatedDateTime"),
            "BatchSegmentJobs": sfn.JsonPath.list_at("$.Item.JobResults"),
        },
    )
    return solution.next(version).next(jobs).next(summarize)


def _job_iteration(scope: Construct, props: TrainingWorkflowProps) -> sfn.IChainable:
    """One batch segment job (`$.Item` is one of the solution's `Jobs`, `$.Version` its solution version)."""
    # The request comes from the plan; only the solution version's ARN is known at run time.
    prepare = sfn.Pass(
        scope,
        "PrepareJob",
        state_name="Prepare batch segment job",
        parameters={
            "Request": sfn.JsonPath.json_merge(
                sfn.JsonPath.object_at("$.Item.Request"), sfn.JsonPath.object_at("$.Version")
            )
        },
        result_path="$.Item.Ready",
    )
    job_arn = sfn.JsonPath.string_at("$.Item.Created.Arn")
    job = CreateAndWait(
        scope,
        "BatchSegmentJob",
        props=CreateAndWaitProps(
            resource=BATCH_SEGMENT_JOB,
            node="$.Item",
            bus=props.bus,
            schedule=props.segments,
            create_resources=[personalize_arn(scope, t) for t in ("batch-segment-job", "solution", "filter")],
            describe_resources=[personalize_arn(scope, "batch-segment-job")],
            pass_role=props.personalize_role,
            retry_in_use=True,
            # The SegmentPostprocessor reads these keys from the ACTIVE event.
            extra_detail={
                "JobName": sfn.JsonPath.string_at("$.Item.Name"),
                "JobArn": job_arn,
                "OutputS3Uri": sfn.JsonPath.string_at("$.Item.OutputS3Uri"),
                "SolutionVersionArn": sfn.JsonPath.string_at("$.Version.SolutionVersionArn"),
            },
            request_path="$.Item.Ready.Request",
        ),
    )
    summarize = sfn.Pass(
        scope,
        "SummarizeJob",
        state_name="Summarize batch segment job",
        parameters={
            "JobName": sfn.JsonPath.string_at("$.Item.Name"),
            "JobArn": job_arn,
            "Status": sfn.JsonPath.string_at("$.Item.Latest.Status"),
            "OutputS3Uri": sfn.JsonPath.string_at("$.Item.OutputS3Uri"),
            "Started": sfn.JsonPath.string_at("$.Item.Latest.Resource.CreationDateTime"),
            "Finished": sfn.JsonPath.string_at("$.Item.Latest.Resource.LastUpdatedDateTime"),
        },
    )
    return prepare.next(job).next(summarize)
