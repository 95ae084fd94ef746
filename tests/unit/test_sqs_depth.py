"""moto's SQS with a cost per message flat in queue depth (local_runtime/sqs_depth.py): moto's decisions on
receive (retention) and send (content-based deduplication), without computing the queue's attributes (each a
pass over every message) for every message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, sqs_backends

from local_runtime import sqs_depth

ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        uninstall = sqs_depth.install()
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




def test_sending_does_not_compute_the_queues_attributes(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    fifo = sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    computed: list[str] = []
    counting = Queue.approximate_number_of_messages_not_visible

    def passes(queue: Queue) -> int:
        computed.append(queue.name)
        return counting.fget(queue)  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "approximate_number_of_messages_not_visible", property(passes))
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(10)])
    sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="1")
    assert computed == []
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "10" and computed == ["events"]


def test_content_based_deduplication_is_what_moto_decides(sqs: Any) -> None:
    deduplicated = sqs.create_queue(
        QueueName="dedup.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for _ in range(2):
        sqs.send_message(QueueUrl=deduplicated, MessageBody="same", MessageGroupId="g")
    assert len(sqs.receive_message(QueueUrl=deduplicated, MaxNumberOfMessages=10)["Messages"]) == 1
    explicit = sqs.create_queue(QueueName="explicit.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError, match="ContentBasedDeduplication"):
        sqs.send_message(QueueUrl=explicit, MessageBody="no id", MessageGroupId="g")
    attributes = sqs.get_queue_attributes(QueueUrl=explicit, AttributeNames=["ContentBasedDeduplication"])["Attributes"]
    assert attributes == {"ContentBasedDeduplication": "false"}
