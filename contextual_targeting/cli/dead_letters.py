"""`dead-letters`: show the events EventBridge could not deliver, and deliver them again after a fix.

EventBridge puts an undeliverable event into the stack's dead-letter queue with the original event as the
message body and the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE (and retry details).

Redrive, per message, doing what the rule would have done:
- an event of the pipeline's own source is put again on the bus it came from (the bus is in RULE_ARN), so
  the rules of that bus run again;
- an AWS service event (`aws.s3` Object Created, `aws.states` status changes) cannot be put again: PutEvents
  refuses the reserved `aws.` sources. It goes straight to the target that missed it (TARGET_ARN): a state
  machine is started with the event as input, as the rule does; a topic gets the event's detail.
A message is deleted only once its event was accepted (PutEvents is checked entry by entry); anything else
stays in the queue, visible again at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

ATTRIBUTES = ("RULE_ARN", "TARGET_ARN", "ERROR_CODE", "ERROR_MESSAGE", "RETRY_ATTEMPTS")
RESERVED_SOURCE_PREFIX = "aws."
PUT_EVENTS_BATCH = 10
# Long enough to deliver a batch; messages not deleted become visible again when the run ends.
VISIBILITY_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One message of the dead-letter queue."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]

    @property
    def event(self) -> dict[str, Any] | None:
        """The original event, or None when the body is not one."""
        try:
            event = json.loads(self.body)
        except ValueError:
            return None
        return event if isinstance(event, dict) and "source" in event and "detail-type" in event else None

    @property
    def rule_arn(self) -> str:
        """The rule whose target missed the event."""
        return self.attributes.get("RULE_ARN", "")

    @property
    def target_arn(self) -> str:
        """The target that missed the event."""
        return self.attributes.get("TARGET_ARN", "")

    @property
    def bus(self) -> str:
        """The bus the rule lives on: `rule/<bus>/<rule>` for a custom bus, `rule/<rule>` for the default."""
        resource = self.rule_arn.split(":", 5)[-1]
        parts = resource.split("/")
        return parts[1] if len(parts) == 3 else "default"

    def describe(self) -> str:
        """One line: which event, which rule and target, why it was not delivered."""
        event = self.event or {}
        what = f"{event.get('source', '?')} {event.get('detail-type', '(not an event)')}"
        rule = self.rule_arn.rsplit("/", 1)[-1] or "?"
        target = self.target_arn.rsplit(":", 1)[-1] or "?"
        error = self.attributes.get("ERROR_CODE", "?")
        reason = self.attributes.get("ERROR_MESSAGE", "")
        return f"{self.message_id}  {what}  rule {rule} -> {target}: {error} {reason}".rstrip()


@dataclass
class RedriveResult:
    """What a redrive did."""

    redriven: list[DeadLetter] = field(default_factory=list)
    left: list[tuple[DeadLetter, str]] = field(default_factory=list)


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    found = message.get("MessageAttributes") or {}
    return {k: str(v.get("StringValue", "")) for k, v in found.items()}


def receive_all(sqs: Any, queue_url: str, *, limit: int = 1000) -> list[DeadLetter]:
    """Every message of the queue (up to `limit`), hidden from other readers until released or deleted."""
    letters: dict[str, DeadLetter] = {}
    while len(letters) < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in letters]
        if not new:
            break
        for message in new:
            letters[message["MessageId"]] = DeadLetter(
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                body=message.get("Body", ""),
                attributes=_attributes(message),
            )
    return list(letters.values())


def release(sqs: Any, queue_url: str, letters: Iterable[DeadLetter]) -> None:
    """Make messages visible again at once (they stay in the queue)."""
    for letter in letters:
        # On failure the visibility timeout ends on its own.
        with contextlib.suppress(ClientError):
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
            )


def waiting(sqs: Any, queue_url: str) -> int:
    """How many undelivered events wait in the queue (approximate, as SQS counts)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def _batches(items: list[DeadLetter], size: int) -> Iterator[list[DeadLetter]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _entry(letter: DeadLetter, event: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "EventBusName": letter.bus,
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event.get("detail", {})),
        "Resources": list(event.get("resources", [])),
    }
    if event.get("time"):
        with contextlib.suppress(ValueError):  # PutEvents then stamps the time of the redrive
            entry["Time"] = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    return entry


class Redriver:
    """Delivers dead letters again and deletes exactly those that were delivered."""

    def __init__(self, *, sqs: Any, events: Any, sfn: Any, sns: Any, queue_url: str) -> None:
        self.sqs, self.events, self.sfn, self.sns = sqs, events, sfn, sns
        self.queue_url = queue_url

    def redrive(self, letters: list[DeadLetter]) -> RedriveResult:
        """Re-put or deliver each letter; delete what went through; release the rest."""
        result = RedriveResult()
        reput: list[DeadLetter] = []
        for letter in letters:
            event = letter.event
            if event is None:
                result.left.append((letter, "the message body is not an EventBridge event"))
            elif str(event["source"]).startswith(RESERVED_SOURCE_PREFIX):
                self._to_target(letter, event, result)
            else:
                reput.append(letter)
        for batch in _batches(reput, PUT_EVENTS_BATCH):
            self._put(batch, result)
        release(self.sqs, self.queue_url, (letter for letter, _ in result.left))
        return result

    def _put(self, batch: list[DeadLetter], result: RedriveResult) -> None:
        entries = [_entry(letter, letter.event or {}) for letter in batch]
        try:
            answer = self.events.put_events(Entries=entries)
        except ClientError as err:
            for letter in batch:
                result.left.append((letter, f"PutEvents refused: {err}"))
            return
        # One result per entry, in order: an EventId means accepted, an ErrorCode means not.
        for letter, outcome in zip(batch, answer.get("Entries", []), strict=False):
            if outcome.get("EventId"):
                self._delete(letter, result)
            else:
                reason = f"{outcome.get('ErrorCode', 'not accepted')}: {outcome.get('ErrorMessage', '')}"
                result.left.append((letter, reason))
        for letter in batch[len(answer.get("Entries", [])) :]:
            result.left.append((letter, "PutEvents returned no result for it"))

    def _to_target(self, letter: DeadLetter, event: dict[str, Any], result: RedriveResult) -> None:
        service = letter.target_arn.split(":")[2] if letter.target_arn.count(":") >= 5 else ""
        try:
            if service == "states":
                self.sfn.start_execution(stateMachineArn=letter.target_arn, input=json.dumps(event))
            elif service == "sns":
                self.sns.publish(
                    TopicArn=letter.target_arn,
                    Subject="contextual-targeting: redriven notification",
                    Message=json.dumps(
                        {
                            "Redriven": True,
                            "Source": event["source"],
                            "DetailType": event["detail-type"],
                            **event,
                        },
                        indent=2,
                        default=str,
                    ),
                )
            else:
                reason = f"a {event['source']} event cannot be put again and its target {letter.target_arn!r}"
                result.left.append((letter, reason + " is neither a state machine nor a topic"))
                return
        except ClientError as err:
            result.left.append((letter, f"delivery to {letter.target_arn} failed: {err}"))
            return
        self._delete(letter, result)

    def _delete(self, letter: DeadLetter, result: RedriveResult) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=letter.receipt_handle)
        except ClientError as err:
            # Delivered but still queued: a second redrive would deliver it twice, so say so.
            result.left.append((letter, f"delivered, but not deleted from the queue: {err}"))
            return
        result.redriven.append(letter)
