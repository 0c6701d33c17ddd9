"""Event delivery that loses nothing: every rule target retries, then dead-letters into one queue per stack.

EventBridge retries a failed delivery (throttling, a service fault) with backoff for `MAX_EVENT_AGE`, then
puts the event into the stack's dead-letter queue; errors that retrying cannot fix (a missing permission, a
deleted target) go there at once. `contextual-targeting dead-letters --redrive` delivers them again after a
fix, and an alarm says when the queue is not empty.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from contextual_targeting.common.nag import acknowledge

DEAD_LETTER_QUEUE_ID = "DeadLetters"
# EventBridge backs off exponentially (with jitter): a delivery failing for a few hours is an outage or a
# misconfiguration that a person should look at, and the event waits for them in the queue.
RETRY_ATTEMPTS = 185
MAX_EVENT_AGE = cdk.Duration.hours(6)
# The longest SQS keeps a message: time to notice the alarm, fix the cause and redrive.
RETENTION = cdk.Duration.days(14)


def dead_letter_queue(scope: IConstruct) -> sqs.IQueue:
    """The stack's one queue of events EventBridge could not deliver (created on first use)."""
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child(DEAD_LETTER_QUEUE_ID)
    if isinstance(existing, sqs.Queue):
        return existing
    queue = sqs.Queue(
        stack,
        DEAD_LETTER_QUEUE_ID,
        # SSE-SQS: encrypted at rest without a key policy for events.amazonaws.com to get right.
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    acknowledge(
        queue,
        "SQS3",
        "This queue is the dead-letter queue of the stack's EventBridge rule targets; a message that cannot "
        "be redriven stays in it (14 days) for a person, so it needs no dead-letter queue of its own.",
    )
    return queue


def workflow_target(machine: sfn.IStateMachine) -> targets.SfnStateMachine:
    """Rule target that starts `machine` with the event as input, retried and dead-lettered."""
    return targets.SfnStateMachine(
        machine,
        dead_letter_queue=dead_letter_queue(machine),
        retry_attempts=RETRY_ATTEMPTS,
        max_event_age=MAX_EVENT_AGE,
    )
