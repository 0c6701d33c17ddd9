"""Find the deployed stack's resources from its CloudFormation outputs (the names `stack.py` exports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

DEFAULT_STACK_NAME = "ContextualTargeting"

# Output keys, as `ContextualTargetingStack._output` names them.
PERSONALIZE_BUCKET = "PersonalizeBucketName"
EVENT_BUS_NAME = "EventBusName"
TRAINING_STATE_MACHINE = "TrainingStateMachineArn"
TRAINING_SCHEDULE_GROUP = "TrainingScheduleGroupName"
POSTPROCESSOR_STATE_MACHINE = "SegmentPostprocessorStateMachineArn"
SEGMENT_IMPORT_BUCKET = "SegmentImportBucketName"
PINPOINT_APPLICATION = "PinpointApplicationId"
PINPOINT_PREPARE_STATE_MACHINE = "PinpointPrepareStateMachineArn"
PINPOINT_IMPORT_STATE_MACHINE = "PinpointImportStateMachineArn"
DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
DASHBOARD_NAME = "DashboardName"
CUSTOMER_PROFILES_STATE_MACHINE = "CustomerProfilesStateMachineArn"

# A stack in one of these states has outputs the CLI can trust (an update in flight keeps the old ones).
USABLE_STATUSES = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    }
)


class CliError(Exception):
    """A problem the user can act on: printed as one line, the command exits non-zero."""


@dataclass(frozen=True, kw_only=True)
class StackOutputs:
    """What the CLI needs from the stack; the Pinpoint and workflow entries are absent on older stacks."""

    stack_name: str
    region: str
    values: Mapping[str, str]

    def get(self, key: str) -> str | None:
        """An output's value, or None when the stack does not export it."""
        return self.values.get(key)

    def require(self, key: str) -> str:
        """An output the command cannot work without."""
        value = self.values.get(key)
        if not value:
            raise CliError(
                f"stack {self.stack_name} in {self.region} has no output {key}: deploy the current version "
                "(make deploy)"
            )
        return value

    @property
    def personalize_bucket(self) -> str:
        """The data bucket (train/, batch/, segments/)."""
        return self.require(PERSONALIZE_BUCKET)

    @property
    def segment_import_bucket(self) -> str | None:
        """The Pinpoint segment-import bucket, only when the stack has the Pinpoint destination."""
        return self.get(SEGMENT_IMPORT_BUCKET)


def load_stack_outputs(cloudformation: Any, stack_name: str, region: str) -> StackOutputs:
    """DescribeStacks, with a one-line CliError when the stack is missing or not in a usable state."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as err:
        message = str(err.response.get("Error", {}).get("Message", ""))
        if "does not exist" in message:
            raise CliError(
                f"stack {stack_name} not found in {region}: deploy it (make deploy), or pass the --region "
                "and --stack-name it was deployed with"
            ) from None
        raise
    if not stacks:
        raise CliError(f"stack {stack_name} not found in {region}")
    stack = stacks[0]
    status = str(stack.get("StackStatus", ""))
    if status not in USABLE_STATUSES:
        raise CliError(f"stack {stack_name} in {region} is {status}, not deployed: deploy it (make deploy)")
    values = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
    return StackOutputs(stack_name=stack_name, region=region, values=values)
