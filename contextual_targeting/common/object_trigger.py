"""OncePerObjectVersion: an S3 object created starts a workflow exactly once per object version.

S3 and EventBridge deliver at least once, and the EventBridge target for Step Functions cannot name the
execution. So the rule starts a small dispatcher, which starts the target under a name derived from the
object version: StartExecution is idempotent for the same name and input while that run is open, and
answers ExecutionAlreadyExists once it has ended. Duplicates end in the dispatcher; the target only ever
sees one run per object version, and a manual start of the target is never refused.

Target execution input: `{"Source": {"Bucket", "Key", "VersionId", "ETag", "Size"}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contextual_targeting.common.workflow_kit import add_sdk_retry, logged_state_machine
from contextual_targeting.operations.delivery import workflow_target

# The optimized `states:startExecution` integration names errors `StepFunctions.<Java SDK exception>`;
# the aws-sdk integration (`aws-sdk:sfn:startExecution`, not used here) would say `Sfn.` instead.
EXECUTION_ALREADY_EXISTS = "StepFunctions.ExecutionAlreadyExistsException"
# The API reference names the error without the suffix: a duplicate must end here under either name.
EXECUTION_ALREADY_EXISTS_ERRORS = ("StepFunctions.ExecutionAlreadyExists", EXECUTION_ALREADY_EXISTS)
START_RETRYABLE = [
    # Too many open executions. AWS's nested-workflow guide retries the name without the suffix; the
    # integration's naming rule (as for ExecutionAlreadyExists) gives the suffixed one: match both.
    "StepFunctions.ExecutionLimitExceeded",
    "StepFunctions.ExecutionLimitExceededException",
    # Errors the API model does not declare (throttling "Rate exceeded", 5xx) arrive as the SDK's generic
    # service error, and network failures as its client error (as Lambda.AWSLambdaException and
    # Lambda.SdkClientException do for lambda:invoke).
    "StepFunctions.AWSStepFunctionsException",
    "StepFunctions.SdkClientException",
]
DISPATCH_TIMEOUT = cdk.Duration.minutes(5)


@dataclass(frozen=True, kw_only=True)
class OncePerObjectVersionProps:
    """Which objects start which workflow."""

    bucket: s3.IBucket
    """Versioned bucket with EventBridge notifications on (the version id names the run)."""
    key_filter: Mapping[str, Any]
    """EventBridge `object.key` matcher, e.g. `{"prefix": "pinpoint/"}` or `{"wildcard": "train/*.json"}`."""
    target: sfn.IStateMachine
    """Standard workflow started once per object version (Express workflows do not deduplicate names)."""
    description: str
    """What the trigger does, for the rule's description and the dispatcher's comment."""


class OncePerObjectVersion(Construct):
    """EventBridge rule + dispatcher state machine: one run of `target` per created object version."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OncePerObjectVersionProps) -> None:
        super().__init__(scope, construct_id)
        # The StartExecution task grants states:StartExecution on the target, and nothing else.
        machine = logged_state_machine(
            self,
            "DispatchWorkflow",
            definition=build_dispatch_workflow(self, target=props.target),
            timeout=DISPATCH_TIMEOUT,
            comment=f"{props.description} (one run per object version)",
        )
        self.state_machine: sfn.IStateMachine = machine
        # Default bus: S3 sends its events there.
        self.rule: events.IRule = events.Rule(
            self,
            "ObjectCreated",
            description=props.description,
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [props.bucket.bucket_name]},
                    "object": {"key": [dict(props.key_filter)]},
                },
            ),
            targets=[workflow_target(machine)],
        )


def build_dispatch_workflow(scope: Construct, *, target: sfn.IStateMachine) -> sfn.Chain:
    """Dispatcher: start `target` under a name derived from bucket, key and version, once per version."""
    # S3 names a field `version-id`: Step Functions paths need bracket notation for names with punctuation
    # other than "_" (https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html),
    # and the intrinsic functions below take plain paths, so the fields are copied to plain names first.
    read = sfn.Pass(
        scope,
        "ReadObject",
        state_name="Read the object version",
        parameters={
            "Source": {
                "Bucket": sfn.JsonPath.string_at("$.detail.bucket.name"),
                "Key": sfn.JsonPath.string_at("$.detail.object.key"),
                "VersionId": sfn.JsonPath.string_at("$.detail.object['version-id']"),
                "ETag": sfn.JsonPath.string_at("$.detail.object.etag"),
                "Size": sfn.JsonPath.number_at("$.detail.object.size"),
            }
        },
    )
    bucket = sfn.JsonPath.string_at("$.Source.Bucket")
    key = sfn.JsonPath.string_at("$.Source.Key")
    version = sfn.JsonPath.string_at("$.Source.VersionId")
    start = tasks.StepFunctionsStartExecution(
        scope,
        "StartRun",
        state_name="Start one run for this object version",
        state_machine=target,
        integration_pattern=sfn.IntegrationPattern.REQUEST_RESPONSE,
        # A duplicate delivery must send the same name and the same input, or StartExecution refuses it even
        # while the first run is open: linking to the parent would add the dispatcher's execution id.
        associate_with_parent=False,
        # SHA-256 hex is 64 characters: within the 80-character limit, and free of characters names forbid.
        name=sfn.JsonPath.hash(sfn.JsonPath.format("{}/{}?versionId={}", bucket, key, version), "SHA-256"),
        input=sfn.TaskInput.from_object({"Source": sfn.JsonPath.object_at("$.Source")}),
        result_selector={"ExecutionArn": sfn.JsonPath.string_at("$.ExecutionArn")},
        result_path="$.Run",
    )
    add_sdk_retry(start, START_RETRYABLE)
    already = sfn.Succeed(scope, "AlreadyStarted", state_name="This object version already started a run")
    start.add_catch(already, errors=list(EXECUTION_ALREADY_EXISTS_ERRORS), result_path="$.Error")
    return read.next(start).next(sfn.Succeed(scope, "Started", state_name="The run has started"))
