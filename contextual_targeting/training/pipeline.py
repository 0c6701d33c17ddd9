"""PersonalizeTrainingPipeline: data bucket, Personalize role, event bus and the training workflow.

A config upload (`train/<dataset-group>/<name>_config.json`) starts the training workflow
(`training_workflow.py`) once per object version, through `object_trigger.OncePerObjectVersion`.
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
from contextual_targeting.contracts.layout import BATCH_PREFIX, TRAIN_PREFIX
from contextual_targeting.training.workflow import TrainingWorkflowProps, build_training_workflow

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"
CONFIG_KEY_PATTERN = f"{TRAIN_PREFIX}*/*_config.json"
"""EventBridge wildcard for config uploads; the validator rejects deeper keys that `*` also matches."""


@dataclass(frozen=True, kw_only=True)
class PersonalizeTrainingPipelineProps:
    """What the training pipeline needs from the rest of the stack."""

    access_logs_bucket: s3.IBucket
    """Receives the data bucket's server access logs."""
    notification_topic: sns.ITopic
    """Run summaries are emailed through this topic."""


class PersonalizeTrainingPipeline(Construct):
    """Trains an Item-Attribute-Affinity solution from uploaded data and runs its batch segment jobs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: PersonalizeTrainingPipelineProps
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)

        bucket = secure_bucket(
            self, "DataBucket", access_logs=props.access_logs_bucket, log_prefix="personalize-data/"
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
        validator = python_function(
            self,
            "ConfigValidator",
            component="training/validate_config",
            description="Validates a training config and its files and returns the training run plan",
            memory_size=256,
            timeout=cdk.Duration.seconds(60),
            environment={"PERSONALIZE_ROLE_ARN": role.role_arn},
        )
        for prefix in (TRAIN_PREFIX, BATCH_PREFIX):
            bucket.grant_read(validator, f"{prefix}*")
        assert validator.role is not None
        acknowledge(
            validator.role,
            "IAM5",
            "The validator reads the config, the first line of each CSV and the query files: keys under "
            "train/ and batch/ chosen by the uploader (grant_read adds s3:GetObject*/GetBucket*/List*).",
            findings=[
                *(objects_finding(bucket, f"{prefix}*") for prefix in (TRAIN_PREFIX, BATCH_PREFIX)),
                "Action::s3:GetBucket*",
                "Action::s3:GetObject*",
                "Action::s3:List*",
            ],
        )

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
                ),
            ),
            # Longer than the per-resource bounds added up, so a stuck resource fails with an email first.
            timeout=cdk.Duration.hours(48),
            comment="Training config upload -> validated plan -> Personalize resources -> batch segment jobs",
            # The config and the plan hold names and schemas, no secrets: keep them in the logs for debugging.
            include_execution_data=True,
        )
        # SnsPublish grants sns:Publish only; the topic is KMS-encrypted and grant_publish adds
        # kms:GenerateDataKey*/kms:Decrypt on its key, without which every email would fail.
        props.notification_topic.grant_publish(machine)
        self._acknowledge_workflow_role(stack, machine, validator)

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

    def _acknowledge_workflow_role(
        self, stack: cdk.Stack, machine: sfn.StateMachine, validator: lambda_.IFunction
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
            "lambda:InvokeFunction on the validator's versions (`:*`) is how LambdaInvoke grants it.",
            findings=[*findings, resource_finding(stack, validator.function_arn) + ":*"],
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
