"""SQS's dead-letter queue redrive, which moto 5.2.5 lacks: where a message moved to a dead-letter queue came
from, and the message move tasks that move such messages back.

- A message moto moves to a queue's dead-letter queue (its receive count reached the redrive policy's
  maxReceiveCount) carries the system attribute `DeadLetterQueueSourceArn`, the ARN of the queue it came from,
  which ReceiveMessage returns when asked for it or for `All`, as on AWS.
- StartMessageMoveTask
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html): the
  source must be a queue some redrive policy names as its dead-letter queue. Each visible message goes to
  `DestinationArn`, or without it back to the queue its `DeadLetterQueueSourceArn` names, as a new message (a
  new id, no receives; the body and message attributes kept), then leaves the dead-letter queue. AWS moves them
  in the background; here the task is done when the call answers. A message with nowhere to go back to (one
  sent to the dead-letter queue directly, which AWS does not document) fails the task, and it and the messages
  after it stay where they are. `MaxNumberOfMessagesPerSecond` changes nothing here.
- ListMessageMoveTasks: the source's tasks, newest first, `MaxResults` (1-10, 1 unless given) of them.
CancelMessageMoveTask is not answered: a task here is over before it could be cancelled.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any, Callable

SOURCE_ATTRIBUTE = "DeadLetterQueueSourceArn"
_MOVED_FROM = "local_runtime_dead_letter_source_arn"  # set on moto's Message objects
MAX_TASKS_LISTED = 10


def install() -> Callable[[], None]:
    """Adds the above to moto's SQS; returns what undoes it."""
    from moto.core.responses import ActionResult  # moto loads its backends lazily: so does this
    from moto.sqs.exceptions import SQSException
    from moto.sqs.models import Queue, SQSBackend
    from moto.sqs.responses import SQSResponse

    moto_receive = SQSBackend.receive_message
    moto_answer_receive = SQSResponse.receive_message
    tasks: dict[str, list[dict[str, Any]]] = {}  # by source ARN, newest first
    received = threading.local()  # the messages the current request thread's ReceiveMessage returns

    def receive_message(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> list[Any]:
        queue = backend.get_queue(queue_name)
        dead_letters = queue.dead_letter_queue
        before = {message.id for message in queue._messages} if dead_letters is not None else set()
        messages = moto_receive(backend, queue_name, *args, **kwargs)
        if dead_letters is not None:
            for message in dead_letters._messages:
                if message.id in before:
                    setattr(message, _MOVED_FROM, queue.queue_arn)
        received.messages = {message.id: message for message in messages}
        return messages

    def answer_receive(response: SQSResponse) -> ActionResult:
        answer = moto_answer_receive(response)
        asked = set(response._get_param("AttributeNames", []) + response._get_param("MessageSystemAttributeNames", []))
        if asked & {"All", SOURCE_ATTRIBUTE}:
            messages = getattr(received, "messages", {})
            for entry in answer.result.get("Messages", []):  # type: ignore[attr-defined]
                source = getattr(messages.get(entry["MessageId"]), _MOVED_FROM, None)
                if source is not None:
                    entry.setdefault("Attributes", {})[SOURCE_ATTRIBUTE] = source
        return answer

    def queue_of(backend: SQSBackend, arn: Any, parameter: str) -> Queue:
        queue = backend.queues.get(arn.rsplit(":", 1)[-1]) if isinstance(arn, str) else None
        if queue is None or queue.queue_arn != arn:
            message = f"The resource that you specified for the {parameter} parameter doesn't exist."
            raise SQSException("ResourceNotFoundException", message)
        return queue

    def start_message_move_task(response: SQSResponse) -> ActionResult:
        backend = response.sqs_backend
        source = queue_of(backend, response._get_param("SourceArn"), "SourceArn")
        if not any(queue.dead_letter_queue is source for queue in backend.queues.values()):
            raise SQSException("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
        destination_arn = response._get_param("DestinationArn")
        destination = queue_of(backend, destination_arn, "DestinationArn") if destination_arn else None
        visible = [message for message in source._messages if message.visible and not message.delayed]
        task: dict[str, Any] = {
            "Status": "COMPLETED",
            "SourceArn": source.queue_arn,
            "ApproximateNumberOfMessagesMoved": 0,
            "ApproximateNumberOfMessagesToMove": len(visible),
            "StartedTimestamp": int(time.time() * 1000),
        }
        if destination_arn:
            task["DestinationArn"] = destination_arn
        for message in visible:
            back_to = getattr(message, _MOVED_FROM, None)
            target = destination or (backend.queues.get(back_to.rsplit(":", 1)[-1]) if back_to else None)
            if target is None:
                task["Status"] = "FAILED"
                task["FailureReason"] = (
                    f"Message {message.id} has no source queue to go back to"
                    if back_to is None
                    else f"Message {message.id}'s source queue {back_to} does not exist"
                )
                break
            backend.send_message(target.name, message.body, message_attributes=message.message_attributes)
            source._messages.remove(message)
            source.pending_messages.discard(message)
            task["ApproximateNumberOfMessagesMoved"] += 1
        tasks.setdefault(source.queue_arn, []).insert(0, task)
        handle = {"taskId": str(uuid.uuid4()), "sourceArn": source.queue_arn}
        return ActionResult({"TaskHandle": base64.b64encode(json.dumps(handle).encode()).decode()})

    def list_message_move_tasks(response: SQSResponse) -> ActionResult:
        source = queue_of(response.sqs_backend, response._get_param("SourceArn"), "SourceArn")
        count = response._get_param("MaxResults", 1)
        if not 1 <= count <= MAX_TASKS_LISTED:
            raise SQSException("InvalidParameterValue", f"Value {count} for parameter MaxResults is invalid: 1 to 10.")
        return ActionResult({"Results": tasks.get(source.queue_arn, [])[:count]})

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    SQSResponse.receive_message = answer_receive  # type: ignore[method-assign]
    SQSResponse.start_message_move_task = start_message_move_task  # type: ignore[attr-defined]
    SQSResponse.list_message_move_tasks = list_message_move_tasks  # type: ignore[attr-defined]

    def uninstall() -> None:
        SQSBackend.receive_message = moto_receive  # type: ignore[method-assign]
        SQSResponse.receive_message = moto_answer_receive  # type: ignore[method-assign]
        for name in ("start_message_move_task", "list_message_move_tasks"):
            if name in vars(SQSResponse):
                delattr(SQSResponse, name)

    return uninstall
