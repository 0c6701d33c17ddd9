"""PersonalizeTrainingPipeline: the data bucket, the Personalize service role and the pipeline event bus."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from contextual_targeting.layout import BATCH_PREFIX, TRAIN_PREFIX
from contextual_targeting.nag import acknowledge, objects_finding
from contextual_targeting.storage import secure_bucket

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"


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
