"""CustomerProfilesSegmentImporter: ready segments -> Amazon Connect Customer Profiles segment definitions.

Customer Profiles has no "these users form segment X" call, so membership is a profile attribute: each run
uploads the segment's users (joined with their contact data) with `segment_<segment name>` = `true`
and the users who dropped out since the previous run with `false`; one segment definition per query selects
the profiles whose attribute is `true`, created on the first run and reused afterwards, so its ARN stays
stable for Amazon Connect outbound campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_customerprofiles as customerprofiles
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contextual_targeting.common.nag import acknowledge, objects_finding, resource_finding
from contextual_targeting.common.workflow_kit import logged_state_machine, python_function
from contextual_targeting.contracts.events import EVENT_SOURCE, SEGMENT_READY
from contextual_targeting.contracts.layout import (
    EXPIRY_TAG_KEY,
    EXPIRY_TAG_VALUE,
    SEGMENTS_PREFIX,
    TRAIN_PREFIX,
)
from contextual_targeting.destinations.customer_profiles.workflow import upload_schedule, upload_workflow
from contextual_targeting.destinations.customer_profiles.workflow_inputs import (
    ProfilesTarget,
    WorkflowFunctions,
    WorkflowSettings,
)
from contextual_targeting.operations.delivery import workflow_target

PROFILE_PRINCIPAL = "profile.amazonaws.com"
# A domain needs no Amazon Connect instance, but only a domain named like this can be linked to one later.
DOMAIN_NAME_PREFIX = "amazon-connect-"
DOMAIN_NAME_LIMIT = 64
STATE_PREFIX = "destinations/customer-profiles/"
# bench/customer_profiles_bench.py: a 5M-user segment against 6M contacts builds in 23 s at 507 MB peak RSS;
# 3008 MB leaves room for larger segments and contact files and buys ~1.7 vCPU for the CPU-bound join.
UPLOAD_FILE_MEMORY_MB = 3008
DEFAULT_CONTACTS_KEY = TRAIN_PREFIX + "{dataset_group}/users.csv"
DEFAULT_UPLOAD_TIMEOUT = cdk.Duration.hours(6)
DEFAULT_SLOT_TIMEOUT = cdk.Duration.hours(12)
# The domain's DefaultExpirationDays covers every profile in it, also those Amazon Connect creates once the
# domain is linked, not only this pipeline's uploads (which carry their own DataExpiry): a year by default.
DEFAULT_DOMAIN_EXPIRATION_DAYS = 366
# CreateDomain DefaultExpirationDays and CreateUploadJob DataExpiry: `expirationDaysInteger`, 1..1098
# (botocore data/customer-profiles service-2.json).
MAX_EXPIRATION_DAYS = 1098
# What grant_read gives on objects, beyond the object wildcard itself.
READ_FINDINGS = ["Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*"]


@dataclass(frozen=True, kw_only=True)
class CustomerProfilesSegmentImporterProps:
    """What the Customer Profiles destination needs from the rest of the stack."""

    segments_bucket: s3.IBucket
    """The data bucket: segment files (`segments/`) and contact file (read), member files (state prefix)."""
    event_bus: events.IEventBus
    """The pipeline bus: `Segment Ready` comes in, `Customer Profiles Segment State Change` goes out."""
    notification_topic: sns.ITopic
    """One email per upload run goes through this topic."""
    domain_name: str | None = None
    """An existing Customer Profiles domain to upload into (default: create `amazon-connect-...`)."""
    contacts_key: str = DEFAULT_CONTACTS_KEY
    """Contact file key in the data bucket, `{dataset_group}` replaced (default: the training users)."""
    id_column: str = "USER_ID"
    """Contact file column holding the user id (the ids of the segment files)."""
    email_column: str = "E_MAIL"
    """Contact file column holding the email address ("" for none)."""
    phone_column: str = ""
    """Contact file column holding the phone number in E.164 ("" for none, the default)."""
    max_concurrent_uploads: int = 2
    """At most this many segments upload (or wait for their upload job) at a time."""
    data_expiry_days: int = 14
    """Days Customer Profiles keeps the data each upload job brings (its `DataExpiry`, 1-1098); a segment must
    be refreshed within this time."""
    domain_expiration_days: int = DEFAULT_DOMAIN_EXPIRATION_DAYS
    """`DefaultExpirationDays` of the domain this construct creates (1-1098; ignored with `domain_name`): it
    applies to every profile in the domain, including those Amazon Connect creates once it is linked."""
    state_prefix: str = STATE_PREFIX
    """Key prefix in the data bucket for member files and upload files."""
    upload_timeout: cdk.Duration = DEFAULT_UPLOAD_TIMEOUT
    """How long the workflow waits for an upload job (default 6 hours)."""
    slot_timeout: cdk.Duration = DEFAULT_SLOT_TIMEOUT
    """How long an execution waits for an upload slot (default 12 hours)."""


class CustomerProfilesSegmentImporter(Construct):
    """Turns ready segments into Customer Profiles segment definitions through upload jobs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: CustomerProfilesSegmentImporterProps
    ) -> None:
        super().__init__(scope, construct_id)
        _check_props(props)
        self.domain_name: str = props.domain_name or self._create_domain(props)
        self.domain_arn: str = cdk.Stack.of(self).format_arn(
            service="profile", resource="domains", resource_name=self.domain_name
        )
        functions = WorkflowFunctions(
            gate=python_function(
                self,
                "UploadGate",
                component="destinations/customer_profiles/gate",
                description="Lets at most N Customer Profiles uploads run at a time, in start order",
                memory_size=256,
                timeout=cdk.Duration.seconds(30),
            ),
            upload_file=self._upload_file_function(props),
            send=self._send_function(props),
        )
        machine = self._upload_machine(props, functions)
        self.state_machine: sfn.IStateMachine = machine
        self.segment_ready_rule = events.Rule(
            self,
            "SegmentReadyRule",
            description="Segment Ready -> Customer Profiles upload workflow",
            event_bus=props.event_bus,
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=[SEGMENT_READY]),
            targets=[workflow_target(machine)],
        )

    def _upload_file_function(self, props: CustomerProfilesSegmentImporterProps) -> lambda_.IFunction:
        """The join Lambda: reads segments and contacts, reads and writes member and upload files."""
        bucket = props.segments_bucket
        function = python_function(
            self,
            "UploadFile",
            component="destinations/customer_profiles/upload_file",
            description="Joins a ready segment with contacts and the previous members into an upload file",
            memory_size=UPLOAD_FILE_MEMORY_MB,
            timeout=cdk.Duration.minutes(15),
            environment={
                "STATE_PREFIX": props.state_prefix,
                "CONTACTS_KEY": props.contacts_key,
                "ID_COLUMN": props.id_column,
                "EMAIL_COLUMN": props.email_column,
                "PHONE_COLUMN": props.phone_column,
                # Run files left behind by an execution that timed out expire with the bucket's lifecycle.
                "EXPIRY_TAG": f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}",
            },
        )
        bucket.grant_read(function, f"{SEGMENTS_PREFIX}*")
        bucket.grant_read(function, _contacts_pattern(props))
        bucket.grant_read_write(function, _state_pattern(props))
        assert function.role is not None
        acknowledge(
            function.role,
            "IAM5",
            "The upload-file Lambda reads any segment file under segments/ and the contact file of any "
            "dataset group, and reads and writes member and upload files under the state prefix: keys are "
            "chosen at run time. The wildcard actions are what grant_read/grant_read_write give on them.",
            findings=[
                objects_finding(bucket, f"{SEGMENTS_PREFIX}*"),
                objects_finding(bucket, _contacts_pattern(props)),
                objects_finding(bucket, _state_pattern(props)),
                *READ_FINDINGS,
                "Action::s3:DeleteObject*",
                "Action::s3:Abort*",
            ],
        )
        return function

    def _send_function(self, props: CustomerProfilesSegmentImporterProps) -> lambda_.IFunction:
        """The send Lambda: reads upload files, asks Customer Profiles where to send them."""
        function = python_function(
            self,
            "SendUploadFile",
            component="destinations/customer_profiles/send",
            description="Streams an upload file from S3 to a Customer Profiles upload job",
            memory_size=512,
            timeout=cdk.Duration.minutes(15),
        )
        props.segments_bucket.grant_read(function, _state_pattern(props))
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["profile:GetUploadJobPath"], resources=[self.domain_arn])
        )
        assert function.role is not None
        acknowledge(
            function.role,
            "IAM5",
            "The send Lambda reads the upload file of any run under the state prefix (keys chosen at run "
            "time).",
            findings=[objects_finding(props.segments_bucket, _state_pattern(props)), *READ_FINDINGS],
        )
        return function

    def _upload_machine(
        self, props: CustomerProfilesSegmentImporterProps, functions: WorkflowFunctions
    ) -> sfn.StateMachine:
        """The upload workflow's state machine, allowed to email and the gate allowed to list its runs."""
        stack = cdk.Stack.of(self)
        state_objects_arn = props.segments_bucket.arn_for_objects(_state_pattern(props))
        machine = logged_state_machine(
            self,
            "UploadWorkflow",
            definition=upload_workflow(
                self,
                target=ProfilesTarget(
                    domain_name=self.domain_name,
                    domain_arn=self.domain_arn,
                    data_expiry_days=props.data_expiry_days,
                ),
                functions=functions,
                settings=WorkflowSettings(
                    max_concurrent_uploads=props.max_concurrent_uploads,
                    slot_checks=max(int(props.slot_timeout.to_minutes()), 1),
                    upload_schedule=upload_schedule(props.upload_timeout),
                ),
                state_objects_arn=state_objects_arn,
                bus=props.event_bus,
                topic=props.notification_topic,
            ),
            timeout=props.slot_timeout.plus(props.upload_timeout).plus(cdk.Duration.hours(1)),
            comment="Segment Ready -> upload file -> Customer Profiles upload job -> segment definition",
        )
        props.notification_topic.grant_publish(machine)
        # A policy of its own: the gate's default policy naming the machine would close a dependency cycle
        # (machine -> gate function -> gate policy -> machine).
        iam.Policy(
            self,
            "UploadGateListExecutions",
            roles=[functions.gate.role] if functions.gate.role else [],
            statements=[
                iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machine.state_machine_arn])
            ],
        )
        acknowledge(
            machine.role,
            "IAM5",
            "Segment definitions are named per query at run time (domains/<domain>/segment-definitions/*); "
            "member and upload files are keyed per dataset group, query and run under the state prefix. "
            "lambda:InvokeFunction on a function's versions (`:*`) is how LambdaInvoke grants its function.",
            findings=[
                resource_finding(stack, f"{self.domain_arn}/segment-definitions/*"),
                objects_finding(props.segments_bucket, _state_pattern(props)),
                *(
                    resource_finding(stack, f.function_arn) + ":*"
                    for f in (functions.gate, functions.upload_file, functions.send)
                ),
            ],
        )
        acknowledge(
            machine.role,
            "IAM5",
            "kms:GenerateDataKey* on the notification topic's own key only, as SNS needs to encrypt a "
            "message published to a KMS-encrypted topic.",
            findings=["Action::kms:GenerateDataKey*"],
        )
        return machine

    def _create_domain(self, props: CustomerProfilesSegmentImporterProps) -> str:
        """A Customer Profiles domain encrypted with a key of its own; returns its name."""
        stack = cdk.Stack.of(self)
        name = DOMAIN_NAME_PREFIX + cdk.Names.unique_resource_name(
            self, max_length=DOMAIN_NAME_LIMIT - len(DOMAIN_NAME_PREFIX), separator="-"
        )
        key = kms.Key(
            self,
            "DomainKey",
            description="Encrypts the Customer Profiles domain of contextual-targeting",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7),
            # The profiles are rebuilt from the segments and the contact file by the next runs.
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # Confused-deputy protection: Customer Profiles acting for this account only.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CustomerProfilesUse",
                principals=[iam.ServicePrincipal(PROFILE_PRINCIPAL)],
                actions=["kms:GenerateDataKey", "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        # No DataStore or Matching: neither CreateSegmentDefinition's API reference nor the admin guide's
        # segment pages (connect/latest/adminguide/segmentation-admin-website.html) name a domain setting
        # that segments on a custom profile attribute need; AWS::CustomerProfiles::Domain DataStore reads
        # "Property description not available", the API only "Set to true to enabled data store". Not settled
        # by the docs: if CreateSegmentDefinition is refused on a live domain, enable DataStore here first.
        domain = customerprofiles.CfnDomain(
            self,
            "Domain",
            domain_name=name,
            default_expiration_days=props.domain_expiration_days,
            default_encryption_key=key.key_arn,
        )
        domain.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        self.encryption_key: kms.IKey | None = key
        return domain.ref  # Ref is the domain name; using it orders the domain before its users


def _contacts_pattern(props: CustomerProfilesSegmentImporterProps) -> str:
    """Key pattern of every dataset group's contact file."""
    return props.contacts_key.replace("{dataset_group}", "*")


def _state_pattern(props: CustomerProfilesSegmentImporterProps) -> str:
    """Key pattern of the member and upload files."""
    return f"{props.state_prefix}*"


def _check_props(props: CustomerProfilesSegmentImporterProps) -> None:
    """Fail at synth on settings the service would reject at run time."""
    for name in ("data_expiry_days", "domain_expiration_days"):
        if not 1 <= getattr(props, name) <= MAX_EXPIRATION_DAYS:
            raise ValueError(f"{name}: {getattr(props, name)} is outside 1..{MAX_EXPIRATION_DAYS}")
    if props.max_concurrent_uploads < 1:
        raise ValueError("max_concurrent_uploads must be at least 1")
    if not (props.email_column or props.phone_column):
        raise ValueError("a contact file column is needed: email_column or phone_column")
    if not props.state_prefix.endswith("/") or props.state_prefix.startswith(SEGMENTS_PREFIX):
        raise ValueError(f"state_prefix {props.state_prefix!r} must end with / and lie outside segments/")
    if "{dataset_group}" not in props.contacts_key and "*" in props.contacts_key:
        raise ValueError("contacts_key names one object: use {dataset_group}, not *")
