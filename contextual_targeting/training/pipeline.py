"""PersonalizeTrainingPipeline: data bucket, Personalize role, event bus and the training workflow.

A config upload (`train/<dataset-group>/<name>_config.json`) starts the training workflow
(`training_workflow.py`) once per object version, through `object_trigger.OncePerObjectVersion`; a config
with a `schedule` block also starts it on that schedule (`schedule.py`). The data bucket's lifecycle rules
(`data_lifecycle_rules`) keep storage bounded and never touch what the next run needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.nag import acknowledge, objects_finding, resource_finding
from contextual_targeting.common.object_trigger import OncePerObjectVersion, OncePerObjectVersionProps
from contextual_targeting.common.storage import secure_bucket
from contextual_targeting.common.workflow_kit import logged_state_machine, python_function
from contextual_targeting.contracts.layout import (
    BATCH_PREFIX,
    EXPIRY_TAG_KEY,
    EXPIRY_TAG_VALUE,
    TRAIN_PREFIX,
    TRAINING_STATE_PREFIX,
)
from contextual_targeting.training.run_queue import DEFAULT_QUEUE_WAIT
from contextual_targeting.training.schedule import ScheduleTarget, TrainingSchedules
from contextual_targeting.training.workflow import TrainingWorkflowProps, build_training_workflow

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"
CONFIG_KEY_PATTERN = f"{TRAIN_PREFIX}*/*_config.json"
"""EventBridge wildcard for config uploads; the validator rejects deeper keys that `*` also matches."""
DEFAULT_NONCURRENT_VERSION_RETENTION = cdk.Duration.days(30)
DEFAULT_RUN_OUTPUT_RETENTION = cdk.Duration.days(30)


@dataclass(frozen=True, kw_only=True)
class PersonalizeTrainingPipelineProps:
    """What the training pipeline needs from the rest of the stack."""

    access_logs_bucket: s3.IBucket
    """Receives the data bucket's server access logs."""
    notification_topic: sns.ITopic
    """Run summaries are emailed through this topic."""
    noncurrent_version_retention: cdk.Duration = DEFAULT_NONCURRENT_VERSION_RETENTION
    """Overwritten or deleted objects of the data bucket are kept this long as noncurrent versions (default
    30 days): an overwritten training file or config stays recoverable that long."""
    run_output_retention: cdk.Duration = DEFAULT_RUN_OUTPUT_RETENTION
    """Objects tagged for expiry are deleted once they are this old (default 30 days): batch segment job
    outputs and segment folders of superseded runs, the destinations' per-run files."""
    queue_wait: cdk.Duration = DEFAULT_QUEUE_WAIT
    """How long a training run waits for an earlier run of its dataset group (default 12 hours)."""


def data_lifecycle_rules(
    *, noncurrent_version_retention: cdk.Duration, run_output_retention: cdk.Duration
) -> list[s3.LifecycleRule]:
    """The data bucket's lifecycle: what expires, and nothing the next run needs.

    Current configs, CSVs and query files, the latest run's job output and segments, the destinations'
    member lists and the training state never expire. A prefix rule cannot tell a job output
    (`batch/<dsg>/<solution>/<job>/`) from the query file next to it, nor a Customer Profiles run folder from
    the member list it sits beside, so run files expire by tag (`contracts/layout.py`, EXPIRY_TAG_KEY).
    """
    return [
        s3.LifecycleRule(
            id="NoncurrentVersionsAndIncompleteUploads",
            noncurrent_version_expiration=noncurrent_version_retention,
            # The delete markers left once every older version has expired.
            expired_object_delete_marker=True,
            abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
        ),
        s3.LifecycleRule(
            id="SupersededRunFiles",
            tag_filters={EXPIRY_TAG_KEY: EXPIRY_TAG_VALUE},
            expiration=run_output_retention,
        ),
    ]


class PersonalizeTrainingPipeline(Construct):
    """Trains an Item-Attribute-Affinity solution from uploaded data and runs its batch segment jobs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: PersonalizeTrainingPipelineProps
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)

        bucket = secure_bucket(
            self,
            "DataBucket",
            access_logs=props.access_logs_bucket,
            log_prefix="personalize-data/",
            lifecycle_rules=data_lifecycle_rules(
                noncurrent_version_retention=props.noncurrent_version_retention,
                run_output_retention=props.run_output_retention,
            ),
        )
        self.bucket: s3.IBucket = bucket

        self.event_bus: events.IEventBus = events.EventBus(
            self, "EventBus", description="contextual-targeting pipeline state changes"
        )

        # Confused-deputy protection: only Personalize acting for this account may assume the role
        # or touch the bucket.
        personalize_conditions = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="personalize", resource="*")},
        }
        role = iam.Role(
            self,
            "PersonalizeRole",
            assumed_by=iam.ServicePrincipal(PERSONALIZE_PRINCIPAL, conditions=personalize_conditions),
            description="Lets Amazon Personalize read training data and batch queries and write job output",
        )
        self.personalize_role: iam.IRole = role

        # Personalize needs both the role's permissions and a bucket policy for its service principal.
        for statement in _personalize_s3_access(bucket):
            role.add_to_policy(statement)
        acknowledge(
            role,
            "IAM5",
            "Object wildcards are limited to the train/ and batch/ prefixes of the data bucket: "
            "Personalize reads the uploaded files and writes job output under keys chosen at run time.",
            findings=[objects_finding(bucket, f"{prefix}*") for prefix in (TRAIN_PREFIX, BATCH_PREFIX)],
        )
        for statement in _personalize_s3_access(bucket):
            statement.add_service_principal(PERSONALIZE_PRINCIPAL)
            statement.add_conditions(personalize_conditions)
            bucket.add_to_resource_policy(statement)

        self.state_machine: sfn.IStateMachine = self._training_workflow(stack, bucket, role, props)

    def _training_workflow(
        self,
        stack: cdk.Stack,
        bucket: s3.Bucket,
        role: iam.Role,
        props: PersonalizeTrainingPipelineProps,
    ) -> sfn.StateMachine:
        """Validator, state machine and the trigger that starts it once per config upload."""
        validator = self._config_validator(bucket, role)
        run_queue = python_function(
            self,
            "RunQueue",
            component="training/run_queue",
            description="Tells a training run whether an earlier run of its dataset group is still running",
            memory_size=256,
            timeout=cdk.Duration.seconds(60),
        )
        schedules = TrainingSchedules(self, "Schedules")
        self.schedule_group_name: str = schedules.group_name
        machine = logged_state_machine(
            self,
            "TrainingWorkflow",
            definition=build_training_workflow(
                self,
                props=TrainingWorkflowProps(
                    bus=self.event_bus,
                    topic=props.notification_topic,
                    validator=validator,
                    personalize_role=role,
                    run_queue=run_queue,
                    schedules=ScheduleTarget(
                        group_name=schedules.group_name,
                        schedules_arn=schedules.schedules_arn(),
                        role=schedules.role,
                    ),
                    state_objects_arn=bucket.arn_for_objects(f"{TRAINING_STATE_PREFIX}*"),
                    queue_wait=props.queue_wait,
                ),
            ),
            # Longer than the per-resource bounds added up, so a stuck resource fails with an email first;
            # a run may first wait for an earlier run of its dataset group for up to `queue_wait`.
            timeout=cdk.Duration.hours(48).plus(props.queue_wait),
            comment="Training config upload -> validated plan -> Personalize resources -> batch segment jobs",
        )
        # SnsPublish grants sns:Publish only; the topic is KMS-encrypted and grant_publish adds
        # kms:GenerateDataKey*/kms:Decrypt on its key, without which every email would fail.
        props.notification_topic.grant_publish(machine)
        # The schedules may start this workflow and nothing else.
        machine.grant_start_execution(schedules.role)
        self._grant_run_queue(stack, machine, run_queue)
        self._acknowledge_workflow_role(stack, machine, validator, run_queue)
        acknowledge(
            machine.role,
            "IAM5",
            "Schedules are named after dataset groups at run time, inside the stack's own schedule group "
            "(schedule/<group>/*); the data versions of a successful run are recorded under the training "
            "state prefix, keyed by dataset group.",
            findings=[
                resource_finding(stack, schedules.schedules_arn()),
                objects_finding(bucket, f"{TRAINING_STATE_PREFIX}*"),
            ],
        )

        trigger = OncePerObjectVersion(
            self,
            "ConfigTrigger",
            props=OncePerObjectVersionProps(
                bucket=bucket,
                key_filter={"wildcard": CONFIG_KEY_PATTERN},
                target=machine,
                description="Training config uploaded to the data bucket -> training workflow",
            ),
        )
        self.config_rule: events.IRule = trigger.rule
        self.dispatch_state_machine: sfn.IStateMachine = trigger.state_machine
        return machine

    def _config_validator(self, bucket: s3.Bucket, role: iam.Role) -> lambda_.Function:
        """The validator Lambda: reads the config, CSV headers, query files and the last run's record."""
        validator = python_function(
            self,
            "ConfigValidator",
            component="training/validate_config",
            description="Validates a training config and its files and returns the training run plan",
            memory_size=256,
            timeout=cdk.Duration.seconds(60),
            environment={
                "PERSONALIZE_ROLE_ARN": role.role_arn,
                "TRAINING_STATE_PREFIX": TRAINING_STATE_PREFIX,
            },
        )
        for prefix in (TRAIN_PREFIX, BATCH_PREFIX, TRAINING_STATE_PREFIX):
            bucket.grant_read(validator, f"{prefix}*")
        assert validator.role is not None
        acknowledge(
            validator.role,
            "IAM5",
            "The validator reads the config, the first line of each CSV and the query files: keys under "
            "train/ and batch/ chosen by the uploader; and the dataset group's last successful run record "
            "under the training state prefix (grant_read adds s3:GetObject*/GetBucket*/List*).",
            findings=[
                *(
                    objects_finding(bucket, f"{prefix}*")
                    for prefix in (TRAIN_PREFIX, BATCH_PREFIX, TRAINING_STATE_PREFIX)
                ),
                "Action::s3:GetBucket*",
                "Action::s3:GetObject*",
                "Action::s3:List*",
            ],
        )
        return validator

    def _grant_run_queue(
        self, stack: cdk.Stack, machine: sfn.StateMachine, run_queue: lambda_.Function
    ) -> None:
        """The run-queue Lambda lists the workflow's running executions and reads their input."""
        # A policy of its own: the function's default policy naming the machine would close a dependency cycle
        # (machine -> function -> default policy -> machine).
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{machine.state_machine_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        assert run_queue.role is not None
        policy = iam.Policy(
            self,
            "RunQueueReadsExecutions",
            roles=[run_queue.role],
            statements=[
                iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machine.state_machine_arn]),
                iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions]),
            ],
        )
        acknowledge(
            policy,
            "IAM5",
            "DescribeExecution on the training workflow's executions (execution:<machine>:*): the running "
            "executions to look at are only known at run time.",
            findings=[resource_finding(stack, executions)],
        )

    def _acknowledge_workflow_role(
        self,
        stack: cdk.Stack,
        machine: sfn.StateMachine,
        validator: lambda_.IFunction,
        run_queue: lambda_.IFunction,
    ) -> None:
        """Name each wildcard the training workflow's role holds, with the reason it needs it."""
        findings = [
            resource_finding(stack, stack.format_arn(service="personalize", resource=resource)) + "/*"
            for resource in (
                "schema",
                "dataset-group",
                "dataset",
                "dataset-import-job",
                "solution",
                "batch-segment-job",
                "filter",
            )
        ]
        acknowledge(
            machine.role,
            "IAM5",
            "Personalize resource names come from the uploaded config and job names are made per run, so the "
            "workflow is scoped to each Personalize resource type of this account and region. "
            "lambda:InvokeFunction on the validator's and the run queue's versions (`:*`) is how "
            "LambdaInvoke grants it.",
            findings=[
                *findings,
                *(resource_finding(stack, f.function_arn) + ":*" for f in (validator, run_queue)),
            ],
        )
        acknowledge(
            machine.role,
            "IAM5",
            "Publishing to the KMS-encrypted notification topic needs kms:GenerateDataKey* on its key.",
            findings=["Action::kms:GenerateDataKey*"],
        )


def _personalize_s3_access(bucket: s3.IBucket) -> list[iam.PolicyStatement]:
    """Read `train/` and `batch/`, write `batch/` (job output), list the bucket."""
    return [
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[
                bucket.arn_for_objects(f"{TRAIN_PREFIX}*"),
                bucket.arn_for_objects(f"{BATCH_PREFIX}*"),
            ],
        ),
        iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{BATCH_PREFIX}*")]),
        # Listing reveals key names only; Personalize lists the bucket before it reads or writes.
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
    ]
