"""SQS event source mappings: Lambda's event, its partial batch failure contract, redrive, and drain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto.sqs.models import Message

from local_runtime import LocalRuntime
from local_runtime.activity import BatchDelivered
from local_runtime.event_sources import DrainTimeout, records_left
from local_runtime.functions import Invocation, LambdaError
from tests.e2e.assemblies import (
    assert_nothing_left_running,
    python_function,
    queue,
    receive,
    send,
    sqs_mapping,
    write_assembly,
)

# Reports as failed every record whose body starts with "fail"; returns the event for the test to look at.
CONSUMER = '''
def handler(event, context):
    failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"].startswith("fail")]
    return {"batchItemFailures": failures, "event": event}
'''


def consumer_assembly(root: Path, *, max_receive_count: int = 2, **queue_properties: Any) -> Path:
    """The consumer fed by queue Work, whose records go to DeadLetters after `max_receive_count` receives."""
    resources = {
        "Consumer": python_function("consumer"),
        "Work": queue(
            RedrivePolicy={
                "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]},
                "maxReceiveCount": max_receive_count,
            },
            **queue_properties,
        ),
        "DeadLetters": queue(),
        "Mapping": sqs_mapping("Work", "Consumer"),
    }
    return write_assembly(root, resources, {"consumer": {"app.py": CONSUMER}})


def batches(runtime: LocalRuntime) -> list[BatchDelivered]:
    return [activity for activity in runtime.activities if isinstance(activity, BatchDelivered)]


def test_the_function_gets_lambdas_sqs_event(tmp_path: Path) -> None:
    with LocalRuntime(consumer_assembly(tmp_path)) as runtime:
        send(
            runtime,
            "Work",
            "hello",
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": "because"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
        runtime.drain()
        queue_arn = runtime.cloud.physical["Work"].attributes["Arn"]
    [batch] = batches(runtime)
    [record] = batch.invocation.result["event"]["Records"]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue_arn
    assert record["awsRegion"] == "eu-west-1"
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert "md5OfMessageAttributes" in record and record["receiptHandle"]
    system_attributes = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
    assert system_attributes <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "reason": {"stringValue": "because", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }


def test_reported_failures_are_redelivered_then_moved_to_the_dead_letter_queue(tmp_path: Path) -> None:
    with LocalRuntime(consumer_assembly(tmp_path, VisibilityTimeout=1, max_receive_count=2)) as runtime:
        for body in ("ok-1", "fail-1", "ok-2"):
            send(runtime, "Work", body)
        runtime.drain()
        dead = receive(runtime, "DeadLetters")
        states = runtime.event_sources.queue_states()
        port, pids = runtime.cloud.port, runtime.functions.worker_pids
    deliveries = [
        [record["body"] for record in batch.invocation.result["event"]["Records"]] for batch in batches(runtime)
    ]
    # The first batch has all three; the failed record comes back after the visibility timeout, once per
    # receive, and SQS moves it to the dead-letter queue when it would be received a third time.
    assert sorted(deliveries[0]) == ["fail-1", "ok-1", "ok-2"]
    assert deliveries[1:] == [["fail-1"]]
    assert [len(batch.left_in_queue) for batch in batches(runtime)] == [1, 1]
    assert [message["Body"] for message in dead] == ["fail-1"]
    assert states == {"Work": states["Work"]} and states["Work"].idle
    assert_nothing_left_running(pids, port)


def test_a_function_error_leaves_the_whole_batch_and_drain_says_what_is_in_flight(tmp_path: Path) -> None:
    resources = {
        "Failing": python_function("failing"),
        "Work": queue(VisibilityTimeout=60),
        "Mapping": sqs_mapping("Work", "Failing"),
    }
    code = {"failing": {"app.py": "def handler(event, context):\n    raise RuntimeError('down')\n"}}
    with LocalRuntime(write_assembly(tmp_path, resources, code), drain_timeout_s=1) as runtime:
        send(runtime, "Work", "x")
        with pytest.raises(DrainTimeout, match=r"Work: 0 visible, 0 delayed, 1 in flight \(visible again 60 s after"):
            runtime.drain()
    [batch] = batches(runtime)
    assert batch.whole_batch_failed == "the function failed (RuntimeError)"
    assert len(batch.left_in_queue) == 1


def ok(result: Any) -> Invocation:
    return Invocation("f", "r", result, None, 1.0, None, ())


IDS = ["a", "b"]


@pytest.mark.parametrize(
    ("response", "left", "whole_batch"),
    [
        (None, set(), False),
        ({}, set(), False),
        ({"batchItemFailures": None}, set(), False),
        ({"batchItemFailures": []}, set(), False),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}, False),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, set(IDS), True),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, set(IDS), True),
        ({"batchItemFailures": [{"ItemIdentifier": "a"}]}, set(IDS), True),
        ({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, set(IDS), True),
        ("not a response", set(IDS), True),
    ],
)
def test_batch_responses_are_judged_as_aws_documents(response: Any, left: set[str], whole_batch: bool) -> None:
    records, reason = records_left(ok(response), IDS, report_batch_item_failures=True)
    assert records == left
    assert (reason is not None) == whole_batch


def test_without_report_batch_item_failures_only_an_error_keeps_records() -> None:
    assert records_left(ok({"batchItemFailures": [{"itemIdentifier": "a"}]}), IDS, False) == (set(), None)
    failed = Invocation("f", "r", None, LambdaError("ValueError", "x"), 1.0, None, ())
    assert records_left(failed, IDS, False)[0] == set(IDS)


def test_a_delivery_delay_holds_messages_until_it_passes(tmp_path: Path) -> None:
    assembly = consumer_assembly(tmp_path, DelaySeconds=2)
    with LocalRuntime(assembly) as runtime:
        send(runtime, "Work", "{}")
        runtime.run_for(1)
        assert batches(runtime) == []
        assert runtime.event_sources.queue_states()["Work"].delayed == 1
        runtime.drain()
    assert len(batches(runtime)) == 1


def test_a_message_visible_again_while_a_batch_is_gathered_is_in_the_batch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a visibility timeout of 0 s every receive sees the message again; moto's clock, in milliseconds,
    # shows it only when a millisecond has passed, so the test makes every message visible at every receive.
    monkeypatch.setattr(Message, "visible", property(lambda _: True))
    resources = {
        "Consumer": python_function("consumer"),
        "Work": queue(VisibilityTimeout=0),
        "Mapping": sqs_mapping("Work", "Consumer"),
    }
    assembly = write_assembly(tmp_path, resources, {"consumer": {"app.py": CONSUMER}})
    with LocalRuntime(assembly) as runtime:
        send(runtime, "Work", "once")
        runtime.drain()
    [batch] = batches(runtime)
    assert batch.records == 1
    assert [record["body"] for record in batch.invocation.result["event"]["Records"]] == ["once"]


def test_drain_gives_up_on_a_record_that_fails_forever(tmp_path: Path) -> None:
    # No dead-letter queue: the record would come back forever.
    resources = {
        "Consumer": python_function("consumer"),
        "Work": queue(VisibilityTimeout=0),
        "Mapping": sqs_mapping("Work", "Consumer"),
    }
    assembly = write_assembly(tmp_path, resources, {"consumer": {"app.py": CONSUMER}})
    with LocalRuntime(assembly, drain_timeout_s=1) as runtime:
        send(runtime, "Work", "fail forever")
        with pytest.raises(DrainTimeout, match="did not drain within 1 s"):
            runtime.drain()
    assert len(batches(runtime)) > 1
