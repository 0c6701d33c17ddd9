"""PinpointSegmentImporter: ready segments -> endpoint ids -> Amazon Pinpoint static segments.

Amazon Pinpoint reached end of support on 2026-10-30; the stack includes this destination only when
asked (`-c pinpoint=true`). The `Segment Ready` event and segment file stay the contract.

Two workflows:
- prepare (on `Segment Ready`): one endpoint export of the project, a streaming join Lambda, the `Id` file
  under the import prefix;
- import (once per object version created under the import prefix, through
  `object_trigger.OncePerObjectVersion`): inspects the file, `CreateImportJob` with `DefineSegment`, polls
  `GetImportJob` with backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_pinpoint as pinpoint
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.nag import acknowledge, objects_finding, resource_finding
from contextual_targeting.common.object_trigger import OncePerObjectVersion, OncePerObjectVersionProps
from contextual_targeting.common.storage import secure_bucket
from contextual_targeting.common.workflow_kit import backoff_schedule, logged_state_machine, python_function
from contextual_targeting.contracts.events import EVENT_SOURCE, SEGMENT_READY
from contextual_targeting.contracts.layout import PINPOINT_IMPORT_PREFIX, SEGMENTS_PREFIX
from contextual_targeting.destinations.pinpoint.target import PinpointTarget
from contextual_targeting.destinations.pinpoint.workflows import import_workflow, prepare_workflow
from contextual_targeting.operations.delivery import workflow_target

PINPOINT_PRINCIPAL = "pinpoint.amazonaws.com"
PINPOINT_EXPORT_PREFIX = "exports/"
# bench/pinpoint_join_bench.py, 5M users against 10M endpoints: 96 s, peak RSS 1.43 GB. 3008 MB leaves ~2x
# headroom for larger exports and buys ~1.7 vCPU (the join is single-threaded, CPU-bound).
JOIN_MEMORY_MB = 3008
# Durations are immutable, so module constants are safe dataclass defaults.
DEFAULT_EXPORT_TIMEOUT = cdk.Duration.hours(1)
DEFAULT_IMPORT_TIMEOUT = cdk.Duration.hours(2)
DEFAULT_EXPORT_RETENTION = cdk.Duration.days(3)
# What grant_read gives on objects, beyond the object wildcard itself.
READ_FINDINGS = ["Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*"]


@dataclass(frozen=True, kw_only=True)
class PinpointSegmentImporterProps:
    """What the Pinpoint destination needs from the rest of the stack."""

    access_logs_bucket: s3.IBucket
    """Receives the segment-import bucket's server access logs."""
    event_bus: events.IEventBus
    """The pipeline bus: `Segment Ready` comes in, import state changes go out."""
    notification_topic: sns.ITopic
    """Import results are emailed through this topic."""
    segments_bucket: s3.IBucket
    """Holds the segment files (`segments/...`) that `Segment Ready` points to; read-only here."""
    project_name: str = "personalize"
    """Name of the Pinpoint project created when `application_id` is not given."""
    application_id: str | None = None
    """An existing Pinpoint project to import into instead of creating one (default: create)."""
    import_prefix: str = PINPOINT_IMPORT_PREFIX
    """Key prefix in the segment-import bucket whose new files are imported."""
    export_prefix: str = PINPOINT_EXPORT_PREFIX
    """Key prefix in the segment-import bucket where endpoint exports land (never imported)."""
    channels: Sequence[str] = ()
    """Channel types a segment's endpoints are kept for, e.g. ("EMAIL",) (default: every channel)."""
    export_timeout: cdk.Duration = DEFAULT_EXPORT_TIMEOUT
    """How long the prepare workflow waits for the endpoint export (default 1 hour)."""
    import_timeout: cdk.Duration = DEFAULT_IMPORT_TIMEOUT
    """How long the import workflow waits for an import job (default 2 hours)."""
    export_retention: cdk.Duration = DEFAULT_EXPORT_RETENTION
    """Endpoint exports hold personal data: they expire after this (default 3 days)."""


class PinpointSegmentImporter(Construct):
    """Turns ready segments into Amazon Pinpoint static segments through S3-triggered imports."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PinpointSegmentImporterProps) -> None:
        super().__init__(scope, construct_id)
        _check_prefixes(props.import_prefix, props.export_prefix)
        self.import_prefix = props.import_prefix
        self.export_prefix = props.export_prefix
        bucket = secure_bucket(
            self, "SegmentImportBucket", access_logs=props.access_logs_bucket, log_prefix="segment-import/"
        )
        bucket.add_lifecycle_rule(prefix=props.export_prefix, expiration=props.export_retention)
        self.bucket: s3.IBucket = bucket
        self.application_id: str = props.application_id or self._create_project(props.project_name)
        self.application_arn = cdk.Stack.of(self).format_arn(
            service="mobiletargeting", resource="apps", resource_name=self.application_id
        )
        role = self._pinpoint_role(bucket, props)
        self.pinpoint_role: iam.IRole = role
        target = PinpointTarget(
            application_id=self.application_id, application_arn=self.application_arn, role=role
        )
        join = self._join_function(bucket, props)
        inspect = self._inspect_function(bucket, props)
        self.prepare_state_machine: sfn.IStateMachine = self._prepare_machine(target, join, props)
        self.import_state_machine: sfn.IStateMachine = self._import_machine(target, inspect, props)
        self.segment_ready_rule = events.Rule(
            self,
            "SegmentReadyRule",
            description="Segment Ready -> Pinpoint prepare workflow",
            event_bus=props.event_bus,
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=[SEGMENT_READY]),
            targets=[workflow_target(self.prepare_state_machine)],
        )
        # Only the import prefix starts imports, so the export prefix (and anything else in the bucket)
        # never does.
        trigger = OncePerObjectVersion(
            self,
            "ImportTrigger",
            props=OncePerObjectVersionProps(
                bucket=bucket,
                key_filter={"prefix": props.import_prefix},
                target=self.import_state_machine,
                description="New file under the import prefix -> Pinpoint import",
            ),
        )
        self.import_rule: events.IRule = trigger.rule
        self.dispatch_state_machine: sfn.IStateMachine = trigger.state_machine

    def _create_project(self, name: str) -> str:
        """A Pinpoint project; returns its id."""
        project = pinpoint.CfnApp(self, "Project", name=name)
        cdk.Validations.of(project).acknowledge(
            cdk.Acknowledgment(
                id="CloudFormation-Validate::W3696",
                reason="Pinpoint reached end of support on 2026-10-30: this project is created only with "
                "-c pinpoint=true, for accounts that still have access (or pass pinpointApplicationId).",
            )
        )
        # Same fact for cfn-lint, which otherwise fails `make synth` on the end-of-support warning.
        project.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3696"]}})
        return project.ref

    def _join_function(self, bucket: s3.IBucket, props: PinpointSegmentImporterProps) -> lambda_.IFunction:
        """The streaming join: reads segments and endpoint exports, writes import files."""
        join = python_function(
            self,
            "EndpointJoin",
            component="destinations/pinpoint/endpoint_join",
            description="Resolves a ready segment's users to Pinpoint endpoint ids (streaming join)",
            memory_size=JOIN_MEMORY_MB,
            timeout=cdk.Duration.minutes(15),
            environment={
                "IMPORT_BUCKET": bucket.bucket_name,
                "IMPORT_PREFIX": props.import_prefix,
                "CHANNELS": ",".join(props.channels),
            },
        )
        props.segments_bucket.grant_read(join, f"{SEGMENTS_PREFIX}*")
        bucket.grant_read(join, f"{props.export_prefix}*")
        bucket.grant_put(join, f"{props.import_prefix}*")
        assert join.role is not None
        acknowledge(
            join.role,
            "IAM5",
            "The join reads any segment file under segments/ and any export part under the export prefix, "
            "and writes import files under the import prefix: keys are chosen at run time. "
            "s3:GetObject*/List*/Abort* are the read and multipart-upload actions grant_read/grant_put "
            "give on those prefixes only.",
            findings=[
                objects_finding(props.segments_bucket, f"{SEGMENTS_PREFIX}*"),
                objects_finding(bucket, f"{props.export_prefix}*"),
                objects_finding(bucket, f"{props.import_prefix}*"),
                *READ_FINDINGS,
                "Action::s3:Abort*",
            ],
        )
        return join

    def _inspect_function(self, bucket: s3.IBucket, props: PinpointSegmentImporterProps) -> lambda_.IFunction:
        """The import-file inspector: reads the first bytes of files under the import prefix."""
        inspect = python_function(
            self,
            "ImportFileInspector",
            component="destinations/pinpoint/import_file",
            description="Decides how Pinpoint imports a file dropped under the import prefix",
            memory_size=256,
            timeout=cdk.Duration.seconds(30),
            environment={"IMPORT_PREFIX": props.import_prefix},
        )
        bucket.grant_read(inspect, f"{props.import_prefix}*")
        assert inspect.role is not None
        acknowledge(
            inspect.role,
            "IAM5",
            "The inspector reads the first bytes of any file under the import prefix "
            "(keys chosen by uploaders).",
            findings=[objects_finding(bucket, f"{props.import_prefix}*"), *READ_FINDINGS],
        )
        return inspect

    def _prepare_machine(
        self, target: PinpointTarget, join: lambda_.IFunction, props: PinpointSegmentImporterProps
    ) -> sfn.StateMachine:
        """The prepare workflow's state machine (`Segment Ready` -> import file)."""
        machine = logged_state_machine(
            self,
            "PrepareWorkflow",
            definition=prepare_workflow(
                self,
                target=target,
                export_bucket=self.bucket.bucket_name,
                export_prefix=props.export_prefix,
                join_function=join,
                bus=props.event_bus,
                topic=props.notification_topic,
                export_schedule=backoff_schedule(props.export_timeout),
            ),
            timeout=props.export_timeout.plus(cdk.Duration.minutes(30)),
            comment="Segment Ready -> Pinpoint endpoint export -> join -> Id import file",
        )
        self._may_run_jobs(machine, "export", join)
        return machine

    def _import_machine(
        self, target: PinpointTarget, inspect: lambda_.IFunction, props: PinpointSegmentImporterProps
    ) -> sfn.StateMachine:
        """The import workflow's state machine (import file -> static segment)."""
        machine = logged_state_machine(
            self,
            "ImportWorkflow",
            definition=import_workflow(
                self,
                target=target,
                inspect_function=inspect,
                bus=props.event_bus,
                topic=props.notification_topic,
                import_schedule=backoff_schedule(props.import_timeout),
            ),
            timeout=props.import_timeout.plus(cdk.Duration.minutes(30)),
            comment="Import file -> Pinpoint static segment (CreateImportJob with DefineSegment), polled",
        )
        self._may_run_jobs(machine, "import", inspect)
        return machine

    def _may_run_jobs(self, machine: sfn.StateMachine, kind: str, function: lambda_.IFunction) -> None:
        """Let `machine` hand Pinpoint its role; acknowledge the job and Lambda-version wildcards it holds."""
        # Only towards Pinpoint: the role is named in CreateImportJob/CreateExportJob and nowhere else.
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.pinpoint_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": PINPOINT_PRINCIPAL}},
            )
        )
        acknowledge(
            machine.role,
            "IAM5",
            f"GetImportJob/GetExportJob take the job id Pinpoint chose: {kind} jobs of this project "
            "only. lambda:InvokeFunction on the function's versions (`:*`) is how LambdaInvoke grants "
            "its one function.",
            findings=[
                resource_finding(self, f"{self.application_arn}/jobs/{kind}/*"),
                resource_finding(self, function.function_arn) + ":*",
            ],
        )

    def _pinpoint_role(self, bucket: s3.Bucket, props: PinpointSegmentImporterProps) -> iam.Role:
        """Role Pinpoint assumes for this project only: read the import prefix, write the export prefix."""
        stack = cdk.Stack.of(self)
        role = iam.Role(
            self,
            "PinpointRole",
            description="Lets Amazon Pinpoint read import files and write endpoint exports",
            # Confused-deputy protection: only Pinpoint acting for this account and project.
            assumed_by=iam.ServicePrincipal(
                PINPOINT_PRINCIPAL,
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": self.application_arn},
                },
            ),
        )
        imports = bucket.arn_for_objects(f"{props.import_prefix}*")
        exports = bucket.arn_for_objects(f"{props.export_prefix}*")
        for statement in (
            iam.PolicyStatement(sid="ReadImportFiles", actions=["s3:GetObject"], resources=[imports]),
            iam.PolicyStatement(
                sid="ListImportPrefix",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{props.import_prefix}*"]}},
            ),
            iam.PolicyStatement(sid="WriteExports", actions=["s3:PutObject"], resources=[exports]),
            iam.PolicyStatement(
                sid="LocateBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]
            ),
        ):
            role.add_to_policy(statement)
        acknowledge(
            role,
            "IAM5",
            "Pinpoint reads whichever file is imported (import prefix only) and writes export parts it names "
            "itself (export prefix only).",
            findings=[
                objects_finding(bucket, f"{props.import_prefix}*"),
                objects_finding(bucket, f"{props.export_prefix}*"),
            ],
        )
        return role


def _check_prefixes(import_prefix: str, export_prefix: str) -> None:
    """Exports must never land where a new file starts an import."""
    for name, value in (("import_prefix", import_prefix), ("export_prefix", export_prefix)):
        if not value.endswith("/") or value.startswith("/"):
            raise ValueError(
                f"{name}: {value!r} must be a key prefix like 'pinpoint/' (no leading, one trailing /)"
            )
    if export_prefix.startswith(import_prefix) or import_prefix.startswith(export_prefix):
        raise ValueError(
            f"export_prefix {export_prefix!r} and import_prefix {import_prefix!r} must not overlap: "
            "every export would start an import"
        )
