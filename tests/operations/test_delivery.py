"""No lost events: every EventBridge rule target retries and then dead-letters into the stack's queue."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from contextual_targeting.operations.delivery import MAX_EVENT_AGE, RETRY_ATTEMPTS


def _targets(template: Template) -> list[tuple[str, dict[str, Any]]]:
    return [
        (rule_id, target)
        for rule_id, rule in template.find_resources("AWS::Events::Rule").items()
        for target in rule["Properties"]["Targets"]
    ]


def _queue_id(template: Template) -> str:
    queues = template.find_resources("AWS::SQS::Queue")
    assert len(queues) == 1, sorted(queues)
    return next(iter(queues))


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_every_rule_target_retries_then_dead_letters(which: str, request: pytest.FixtureRequest) -> None:
    # GIVEN each synthesized stack (default, and with every option on)
    template: Template = request.getfixturevalue(which)
    queue = _queue_id(template)
    targets = _targets(template)
    assert targets
    # THEN every target of every rule has an explicit retry policy and the stack's dead-letter queue
    for rule_id, target in targets:
        assert target.get("RetryPolicy") == {
            "MaximumEventAgeInSeconds": int(MAX_EVENT_AGE.to_seconds()),
            "MaximumRetryAttempts": RETRY_ATTEMPTS,
        }, rule_id
        assert target.get("DeadLetterConfig") == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}, rule_id


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_dead_letter_queue_is_encrypted_tls_only_and_open_to_the_rules_only(
    which: str, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(which)
    queue = _queue_id(template)
    assert template.find_resources("AWS::SQS::Queue")[queue]["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = template.find_resources("AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue, "Arn"]},
    } in statements
    # One SendMessage grant per rule, each for EventBridge acting for that rule only.
    senders = {
        s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
        for s in statements
        if s["Effect"] == "Allow"
    }
    assert all(
        s["Principal"] == {"Service": "events.amazonaws.com"} and s["Action"] == "sqs:SendMessage"
        for s in statements
        if s["Effect"] == "Allow"
    )
    assert senders == {rule_id for rule_id, _ in _targets(template)}
