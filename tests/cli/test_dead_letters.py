"""`contextual-targeting dead-letters [--redrive]` against moto SQS, EventBridge, Step Functions and SNS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contextual_targeting.cli import stack_outputs as keys
from contextual_targeting.cli.dead_letters import DeadLetter, Redriver, receive_all
from contextual_targeting.contracts.events import EVENT_SOURCE, SEGMENT_READY
from tests.cli.support import ACCOUNT, REGION, TRAINING, aws, deploy_stack, invoke

__all__ = ["aws"]  # fixture

BUS = "pipeline-bus"
SEGMENT_RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{BUS}/SegmentReadyRule"
S3_RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ConfigObjectCreated"
UPLOAD = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:UploadWorkflow"


def _event(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-30T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def segment_ready(name: str) -> dict[str, Any]:
    return _event(EVENT_SOURCE, SEGMENT_READY, {"SegmentName": name, "UserCount": 3})


def object_created(key: str) -> dict[str, Any]:
    return _event("aws.s3", "Object Created", {"bucket": {"name": "data"}, "object": {"key": key}})


class Pipeline:
    """The moto side: the dead-letter queue, the pipeline bus with a rule that copies events to a sink queue,
    and the state machines the rules start."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.dlq = self.sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        self.sink = self.sqs.create_queue(QueueName="sink")["QueueUrl"]
        sink_arn = self.sqs.get_queue_attributes(QueueUrl=self.sink, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.create_event_bus(Name=BUS)
        self.events.put_rule(
            Name="SegmentReadyRule", EventBusName=BUS, EventPattern=json.dumps({"source": [EVENT_SOURCE]})
        )
        self.events.put_targets(
            Rule="SegmentReadyRule", EventBusName=BUS, Targets=[{"Id": "sink", "Arn": sink_arn}]
        )
        role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
        definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
        self.dispatch = self.sfn.create_state_machine(name="Dispatch", definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
        deploy_stack({keys.TRAINING_STATE_MACHINE: TRAINING, keys.DEAD_LETTER_QUEUE_URL: self.dlq})

    def dead_letter(self, event: dict[str, Any], *, rule: str, target: str) -> str:
        """A message as EventBridge writes it to a dead-letter queue."""
        attributes = {
            "RULE_ARN": rule,
            "TARGET_ARN": target,
            "ERROR_CODE": "SDK_CLIENT_ERROR",
            "ERROR_MESSAGE": "Unable to invoke the target",
            "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
            "RETRY_ATTEMPTS": "185",
        }
        return str(
            self.sqs.send_message(
                QueueUrl=self.dlq,
                MessageBody=json.dumps(event),
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )["MessageId"]
        )

    def queued(self, url: str) -> list[dict[str, Any]]:
        """Every message now in a queue (bodies parsed), left in it."""
        found: dict[str, Any] = {}
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            new = [m for m in messages if m["MessageId"] not in found]
            if not new:
                return list(found.values())
            found.update({m["MessageId"]: json.loads(m["Body"]) for m in new})

    def executions(self, machine: str) -> list[dict[str, Any]]:
        return [
            json.loads(self.sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in self.sfn.list_executions(stateMachineArn=machine)["executions"]
        ]


@pytest.fixture
def pipeline(aws: None) -> Pipeline:
    return Pipeline()


def test_listing_shows_every_dead_letter_and_keeps_it(pipeline: Pipeline) -> None:
    # GIVEN two undelivered events
    pipeline.dead_letter(segment_ready("bingewatch-action"), rule=SEGMENT_RULE, target=UPLOAD)
    pipeline.dead_letter(
        object_created("train/bingewatch/bingewatch_config.json"), rule=S3_RULE, target=UPLOAD
    )
    # WHEN they are listed
    result = invoke("dead-letters")
    # THEN each is named with its rule, target and error, and both stay in the queue, visible again
    assert result.exit_code == 0, result.output
    assert (
        "contextual-targeting Segment Ready  rule SegmentReadyRule -> UploadWorkflow: SDK_CLIENT_ERROR"
        in (result.output)
    )
    assert "aws.s3 Object Created  rule ConfigObjectCreated" in result.output
    assert len(pipeline.queued(pipeline.dlq)) == 2
    assert pipeline.queued(pipeline.sink) == []


def test_redrive_puts_pipeline_events_again_once_and_starts_targets_of_aws_events(pipeline: Pipeline) -> None:
    # GIVEN a Segment Ready event whose destination was not started, and an S3 event whose dispatcher was not
    ready = segment_ready("bingewatch-action")
    created = object_created("train/bingewatch/bingewatch_config.json")
    pipeline.dead_letter(ready, rule=SEGMENT_RULE, target=UPLOAD)
    pipeline.dead_letter(created, rule=S3_RULE, target=pipeline.dispatch)

    # WHEN they are redriven
    result = invoke("dead-letters", "--redrive")

    # THEN the pipeline's event is on its bus again, exactly once (the bus's rule copied it once)
    assert result.exit_code == 0, result.output
    assert "redriven: 2" in result.output
    [copied] = pipeline.queued(pipeline.sink)
    assert copied["source"] == EVENT_SOURCE
    assert copied["detail-type"] == SEGMENT_READY
    assert copied["detail"] == ready["detail"]
    # AND the S3 event (PutEvents refuses aws.* sources) started its target with the event, as the rule would
    assert pipeline.executions(pipeline.dispatch) == [created]
    # AND the queue is empty; a second redrive finds nothing to deliver twice
    assert pipeline.queued(pipeline.dlq) == []
    assert "no dead letters" in invoke("dead-letters", "--redrive").output
    assert len(pipeline.queued(pipeline.sink)) == 1


class FailingPutEvents:
    """EventBridge that accepts some entries only (per-entry results), or refuses the whole call."""

    def __init__(self, real: Any, *, refuse: set[str] | None = None, down: bool = False) -> None:
        self.real, self.refuse, self.down = real, refuse or set(), down
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        if self.down:
            raise ClientError({"Error": {"Code": "InternalException", "Message": "down"}}, "PutEvents")
        results = []
        for entry in Entries:
            if json.loads(entry["Detail"])["SegmentName"] in self.refuse:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results.append(self.real.put_events(Entries=[entry])["Entries"][0])
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def _redriver(pipeline: Pipeline, events: Any) -> Redriver:
    return Redriver(
        sqs=pipeline.sqs,
        events=events,
        sfn=pipeline.sfn,
        sns=boto3.client("sns", region_name=REGION),
        queue_url=pipeline.dlq,
    )


def test_an_entry_putevents_did_not_accept_stays_in_the_queue(pipeline: Pipeline) -> None:
    # GIVEN two dead letters, and EventBridge accepting only the first of the two entries
    pipeline.dead_letter(segment_ready("accepted"), rule=SEGMENT_RULE, target=UPLOAD)
    refused = pipeline.dead_letter(segment_ready("refused"), rule=SEGMENT_RULE, target=UPLOAD)
    events = FailingPutEvents(pipeline.events, refuse={"refused"})
    # WHEN they are redriven
    result = _redriver(pipeline, events).redrive(receive_all(pipeline.sqs, pipeline.dlq))
    # THEN one PutEvents call carried both; only the accepted one was deleted
    assert len(events.calls) == 1
    assert [letter.message_id for letter, _ in result.left] == [refused]
    assert "InternalFailure" in result.left[0][1]
    assert [e["detail"]["SegmentName"] for e in pipeline.queued(pipeline.dlq)] == ["refused"]
    assert [e["detail"]["SegmentName"] for e in pipeline.queued(pipeline.sink)] == ["accepted"]


def test_nothing_is_deleted_when_putevents_fails(pipeline: Pipeline) -> None:
    pipeline.dead_letter(segment_ready("a"), rule=SEGMENT_RULE, target=UPLOAD)
    pipeline.dead_letter(segment_ready("b"), rule=SEGMENT_RULE, target=UPLOAD)
    result = _redriver(pipeline, FailingPutEvents(pipeline.events, down=True)).redrive(
        receive_all(pipeline.sqs, pipeline.dlq)
    )
    assert result.redriven == []
    assert len(result.left) == 2
    assert sorted(e["detail"]["SegmentName"] for e in pipeline.queued(pipeline.dlq)) == ["a", "b"]


def test_a_failed_start_and_a_message_that_is_not_an_event_stay(pipeline: Pipeline) -> None:
    # GIVEN an S3 event whose target no longer exists, and a body that is not an event
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Deleted"
    pipeline.dead_letter(object_created("pinpoint/x.csv"), rule=S3_RULE, target=missing)
    pipeline.sqs.send_message(QueueUrl=pipeline.dlq, MessageBody="not json")
    # WHEN they are redriven
    result = invoke("dead-letters", "--redrive")
    # THEN both stay, each with its reason, and the command fails
    assert result.exit_code == 1
    assert "redriven: 0" in result.output
    assert len(pipeline.sqs.receive_message(QueueUrl=pipeline.dlq, MaxNumberOfMessages=10)["Messages"]) == 2


def test_watch_warns_about_dead_letters(pipeline: Pipeline) -> None:
    pipeline.dead_letter(segment_ready("x"), rule=SEGMENT_RULE, target=UPLOAD)
    result = invoke("watch", "missing-run")
    assert "1 event(s) EventBridge could not deliver wait in the dead-letter queue" in result.output


@pytest.mark.parametrize(
    ("rule_arn", "bus"),
    [
        (SEGMENT_RULE, BUS),
        (S3_RULE, "default"),
        (f"arn:aws-cn:events:cn-north-1:{ACCOUNT}:rule/a-bus.with_dots/r", "a-bus.with_dots"),
        ("", "default"),
    ],
)
def test_the_bus_comes_from_the_rule_arn(rule_arn: str, bus: str) -> None:
    letter = DeadLetter(message_id="m", receipt_handle="h", body="{}", attributes={"RULE_ARN": rule_arn})
    assert letter.bus == bus
    assert letter.event is None  # `{}` is not an event
