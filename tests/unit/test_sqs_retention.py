"""The runtime's retention check on ReceiveMessage (local_runtime/sqs_retention.py): moto's decision, without
computing the queue's attributes (each a pass over every message) for every message received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, sqs_backends

from local_runtime import sqs_retention

ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        uninstall = sqs_retention.install()
        try:
            yield boto3.client("sqs", region_name=REGION)
        finally:
            uninstall()


def test_a_message_past_the_queues_retention_period_is_not_received(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="readings", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    [old] = sqs_backends[ACCOUNT][REGION].get_queue("readings")._messages
    old.sent_timestamp -= 61_000  # sent 61 s ago, as far as the queue knows

    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    sqs.send_message(QueueUrl=url, MessageBody="fresh")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["fresh"]


def test_receiving_does_not_compute_the_queues_attributes(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="lifecycle")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(10)])

    def attributes(_: Queue) -> dict[str, Any]:
        raise AssertionError("the queue's attributes were computed on receive")

    monkeypatch.setattr(Queue, "attributes", property(attributes))
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
