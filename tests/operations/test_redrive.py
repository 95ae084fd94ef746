"""A redrive on a queue in moto (in process): a message leaves its dead-letter queue only once what redrives
it succeeded, and a dry run leaves every message where it was and visible to every reader."""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

import boto3
import pytest
from moto import mock_aws

from local_runtime.assembly import template_resources
from operations.dead_letters import Function
from operations.local import LOCAL_ACCOUNT
from operations.redrive import DeadLetters
from operations.stack import StackResources, physical_of

TEMPLATE = {
    "Resources": {
        "DeadLetters": {
            "Type": "AWS::SQS::Queue",
            "Metadata": {"aws:cdk:path": "Stack/Telemetry/DeadLetters/Queue/Resource"},
        },
        "Ingest": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Handler": "ingest_telemetry.handler.handler"},
        },
        "IngestConfig": {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": {"Ref": "Ingest"},
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["DeadLetters", "Arn"]}}},
            },
        },
    }
}


class Targets:
    """Accepts the first invocation, refuses the others as Lambda would under throttling."""

    def __init__(self) -> None:
        self.invoked: list[Any] = []

    def send(self, queue_url: str, body: str, message_attributes: Mapping[str, Any]) -> None:
        raise AssertionError("nothing is sent to a queue here")

    def invoke(self, function: Function, payload: Any) -> None:
        if self.invoked:
            raise RuntimeError("TooManyRequestsException: Rate exceeded")
        self.invoked.append(payload)

    def publish(self, topic: str, payload: bytes) -> None:
        raise AssertionError("nothing is published here")


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=LOCAL_ACCOUNT.region)


def lambda_record(number: int, function_arn: str) -> str:
    context = {"functionArn": f"{function_arn}:$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": 3}
    return json.dumps({"requestContext": context, "requestPayload": {"n": number}, "responseContext": {}})


def test_a_message_whose_redrive_fails_stays_and_is_reported_while_the_others_leave(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    physical = {
        "DeadLetters": physical_of("AWS::SQS::Queue", url, LOCAL_ACCOUNT),
        "Ingest": physical_of("AWS::Lambda::Function", "Stack-Ingest", LOCAL_ACCOUNT),
    }
    stack = StackResources("Stack", template_resources(TEMPLATE), physical, LOCAL_ACCOUNT)
    for number in (1, 2):
        sqs.send_message(QueueUrl=url, MessageBody=lambda_record(number, physical["Ingest"].attributes["Arn"]))
    targets = Targets()
    tool = DeadLetters(stack, sqs, targets, wait_s=0)
    [queue] = tool.select("Telemetry/DeadLetters")

    dry_run = tool.redrive(queue, dry_run=True)
    assert [o.result for o in dry_run.outcomes] == ["would be redriven"] * 2 and targets.invoked == []
    assert len(tool.read(queue)) == 2  # visible again at once

    report = tool.redrive(queue)
    assert sorted(o.result for o in report.outcomes) == ["failed", "redriven"] and report.failed
    [failed] = [o for o in report.outcomes if o.result == "failed"]
    assert failed.detail == (
        "invoke ingest_telemetry asynchronously: RuntimeError: TooManyRequestsException: Rate exceeded"
    )
    [left] = tool.read(queue)
    assert left.message.message_id == failed.letter.message.message_id
    [invoked] = targets.invoked
    assert {invoked["n"], left.content["n"]} == {1, 2}  # each message once: redriven, or still here
