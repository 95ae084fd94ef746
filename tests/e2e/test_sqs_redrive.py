"""SQS's dead-letter redrive, which the local runtime adds to moto: where a moved message came from
(DeadLetterQueueSourceArn), and message move tasks (StartMessageMoveTask, ListMessageMoveTasks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_runtime import LocalRuntime
from tests.e2e.assemblies import queue, write_assembly

POISON_AFTER_ONE = {
    "VisibilityTimeout": 0,
    "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}, "maxReceiveCount": 1},
}


def redrive_assembly(tmp_path: Path) -> Path:
    sources = {"A": queue(**POISON_AFTER_ONE), "B": queue(**POISON_AFTER_ONE)}
    return write_assembly(tmp_path / "assembly", {"DeadLetters": queue(), **sources, "Elsewhere": queue()})


class Queues:
    def __init__(self, runtime: LocalRuntime) -> None:
        self.sqs = runtime.cloud.client("sqs")
        self.url = {name: runtime.cloud.physical[name].ref for name in ("DeadLetters", "A", "B", "Elsewhere")}
        self.arn = {name: runtime.cloud.physical[name].attributes["Arn"] for name in self.url}

    def poison(self, name: str, body: str, **options: Any) -> None:
        """Sent, then received once without being deleted: the next receive moves it to the dead-letter queue."""
        self.sqs.send_message(QueueUrl=self.url[name], MessageBody=body, **options)
        assert len(self.sqs.receive_message(QueueUrl=self.url[name])["Messages"]) == 1
        assert "Messages" not in self.sqs.receive_message(QueueUrl=self.url[name])

    def messages(self, name: str, **options: Any) -> list[dict[str, Any]]:
        url = self.url[name]
        return self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, **options).get(
            "Messages", []
        )


def test_a_message_moved_to_a_dead_letter_queue_says_which_queue_it_came_from_when_asked(tmp_path: Path) -> None:
    with LocalRuntime(redrive_assembly(tmp_path)) as runtime:
        queues = Queues(runtime)
        queues.poison("A", "from a")
        queues.poison("B", "from b")
        asked = queues.messages("DeadLetters", MessageSystemAttributeNames=["DeadLetterQueueSourceArn"])
        assert sorted((m["Body"], m["Attributes"]["DeadLetterQueueSourceArn"]) for m in asked) == [
            ("from a", queues.arn["A"]), ("from b", queues.arn["B"]),
        ]  # fmt: skip
        everything = queues.messages("DeadLetters", MessageSystemAttributeNames=["All"])
        assert all("DeadLetterQueueSourceArn" in m["Attributes"] for m in everything)
        assert all("Attributes" not in m for m in queues.messages("DeadLetters"))


def test_a_message_move_task_takes_each_message_back_to_its_source_queue_as_a_new_message(tmp_path: Path) -> None:
    with LocalRuntime(redrive_assembly(tmp_path)) as runtime:
        queues = Queues(runtime)
        queues.poison("A", "from a", MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}})
        queues.poison("B", "from b")
        moved_ids = {m["MessageId"] for m in queues.messages("DeadLetters")}
        assert queues.sqs.start_message_move_task(SourceArn=queues.arn["DeadLetters"])["TaskHandle"]
        [task] = queues.sqs.list_message_move_tasks(SourceArn=queues.arn["DeadLetters"])["Results"]
        counts = (task["ApproximateNumberOfMessagesMoved"], task["ApproximateNumberOfMessagesToMove"])
        assert (task["Status"], counts) == ("COMPLETED", (2, 2))
        assert queues.messages("DeadLetters") == []
        [back_in_a] = queues.messages("A", MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
        [back_in_b] = queues.messages("B")
        assert (back_in_a["Body"], back_in_b["Body"]) == ("from a", "from b")
        assert back_in_a["MessageAttributes"]["trace"]["StringValue"] == "t-1"
        assert back_in_a["Attributes"]["ApproximateReceiveCount"] == "1"  # a new message: this is its first receive
        assert {back_in_a["MessageId"], back_in_b["MessageId"]}.isdisjoint(moved_ids)


def test_a_move_task_with_a_destination_moves_everything_there(tmp_path: Path) -> None:
    with LocalRuntime(redrive_assembly(tmp_path)) as runtime:
        queues = Queues(runtime)
        queues.poison("A", "from a")
        queues.sqs.send_message(QueueUrl=queues.url["DeadLetters"], MessageBody="sent here directly")
        queues.sqs.start_message_move_task(SourceArn=queues.arn["DeadLetters"], DestinationArn=queues.arn["Elsewhere"])
        assert sorted(m["Body"] for m in queues.messages("Elsewhere")) == ["from a", "sent here directly"]
        [task] = queues.sqs.list_message_move_tasks(SourceArn=queues.arn["DeadLetters"])["Results"]
        assert (task["Status"], task["DestinationArn"]) == ("COMPLETED", queues.arn["Elsewhere"])


def test_a_message_with_no_source_to_go_back_to_fails_the_task_and_stays(tmp_path: Path) -> None:
    with LocalRuntime(redrive_assembly(tmp_path)) as runtime:
        queues = Queues(runtime)
        queues.sqs.send_message(QueueUrl=queues.url["DeadLetters"], MessageBody="sent here directly")
        queues.sqs.start_message_move_task(SourceArn=queues.arn["DeadLetters"])
        [task] = queues.sqs.list_message_move_tasks(SourceArn=queues.arn["DeadLetters"], MaxResults=10)["Results"]
        assert (task["Status"], task["ApproximateNumberOfMessagesMoved"]) == ("FAILED", 0)
        assert task["FailureReason"].endswith("has no source queue to go back to")
        assert [m["Body"] for m in queues.messages("DeadLetters")] == ["sent here directly"]


def test_a_queue_no_redrive_policy_names_cannot_be_the_source_of_a_move_task(tmp_path: Path) -> None:
    with LocalRuntime(redrive_assembly(tmp_path)) as runtime:
        queues = Queues(runtime)
        with pytest.raises(ClientError, match="Source queue must be configured as a Dead Letter Queue"):
            queues.sqs.start_message_move_task(SourceArn=queues.arn["Elsewhere"])
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            queues.sqs.list_message_move_tasks(SourceArn=queues.arn["Elsewhere"] + "-gone")
