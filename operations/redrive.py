"""Reading and redriving a stack's dead-letter queues: the SQS calls, and the targets a redrive sends to (a
queue, a function, a topic), behind small functions and a `Targets` protocol that the deployed stack (aws.py)
and the local runtime (local.py) implement.

Reading a queue receives every message, which hides it from other readers for `HOLD_S`, and then makes what
it did not redrive visible again at once: if the tool is stopped halfway, what it held comes back by itself.
A message leaves its dead-letter queue only after what redrives it succeeded (sent, invocation accepted,
published); a failure leaves it where it was. A message redriven twice is processed twice, which every handler
of the app takes: they are idempotent by construction (conditional writes, deterministic ids).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from operations.dead_letters import (
    DeadLetter,
    DeadLetterQueue,
    Function,
    InvokeFunction,
    QueuedMessage,
    Republish,
    SendToQueue,
    Step,
    classify,
    find_dead_letter_queues,
)
from operations.stack import OperationsError, StackResources

HOLD_S = 300  # how long the messages being read stay hidden from other readers
WAIT_S = 1  # long polling: a short poll samples only some of SQS's servers and can miss messages
MAX_MESSAGES = 10  # per ReceiveMessage and per batch call
MOVE_TASK_TIMEOUT_S = 600.0
_MOVE_TASK_POLL_S = 2.0
_MOVE_TASK_DONE = ("COMPLETED", "CANCELLED", "FAILED")
# A task still running when the wait ends goes on; ListMessageMoveTasks shows how far it got.
_MOVE_TASK_RESULTS = {"COMPLETED": "moved back", "RUNNING": "being moved back"}
REJECTED_SKIPPED = (
    "rejected as malformed: redrive it with --include-rejected once a fix that accepts it is deployed "
    "(until then it is rejected again)"
)


class Targets(Protocol):
    """Where redriven messages go."""

    def send(self, queue_url: str, body: str, message_attributes: Mapping[str, Mapping[str, Any]]) -> None: ...

    def invoke(self, function: Function, payload: Any) -> None:
        """Asynchronously (InvocationType Event), as the function's event source invokes it."""

    def publish(self, topic: str, payload: bytes) -> None: ...


def read_messages(sqs: Any, queue_url: str, *, wait_s: int = WAIT_S, hold_s: int = HOLD_S) -> list[QueuedMessage]:
    """Every message of the queue that can be received now, hidden for `hold_s` from other readers."""
    counted = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    expected = int(counted["Attributes"]["ApproximateNumberOfMessages"])
    messages: dict[str, QueuedMessage] = {}
    while expected and len(messages) < expected:
        received = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=MAX_MESSAGES,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=hold_s,
            WaitTimeSeconds=wait_s,
        ).get("Messages", [])
        if not received:
            break
        messages.update((m["MessageId"], QueuedMessage.received(m)) for m in received)
    return list(messages.values())


def release(sqs: Any, queue_url: str, messages: Sequence[QueuedMessage]) -> None:
    """Visible to every reader again, at once."""
    for start in range(0, len(messages), MAX_MESSAGES):
        entries = [
            {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
            for index, message in enumerate(messages[start : start + MAX_MESSAGES])
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def delete(sqs: Any, queue_url: str, message: QueuedMessage) -> None:
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message.receipt_handle)


@dataclass(frozen=True)
class MoveTask:
    status: str  # RUNNING (still, when the wait ended), COMPLETED, CANCELLED or FAILED
    moved: int
    failure: str | None


def move_back(
    sqs: Any,
    source_arn: str,
    *,
    timeout_s: float = MOVE_TASK_TIMEOUT_S,
    poll_s: float = _MOVE_TASK_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> MoveTask:
    """Starts a message move task from the dead-letter queue back to each message's source queue (no
    DestinationArn), then waits for it to end (ListMessageMoveTasks), at most `timeout_s`."""
    sqs.start_message_move_task(SourceArn=source_arn)
    waited = 0.0
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1)["Results"]
        if task["Status"] in _MOVE_TASK_DONE or waited >= timeout_s:
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            return MoveTask(task["Status"], moved, task.get("FailureReason"))
        sleep(poll_s)
        waited += poll_s


@dataclass(frozen=True)
class Outcome:
    letter: DeadLetter
    result: str  # redriven, moved back, being moved back, would be redriven, would be moved back, skipped, failed
    detail: str


@dataclass
class RedriveReport:
    dead_letters: DeadLetterQueue
    outcomes: list[Outcome] = field(default_factory=list)
    move_task: MoveTask | None = None

    @property
    def failed(self) -> bool:
        return any(outcome.result == "failed" for outcome in self.outcomes)


class DeadLetters:
    """The dead-letter queues of a stack, read and redriven through `sqs` (a boto3 SQS client) and `targets`."""

    def __init__(self, stack: StackResources, sqs: Any, targets: Targets, *, wait_s: int = WAIT_S) -> None:
        self.stack = stack
        self.queues = find_dead_letter_queues(stack)
        self._sqs = sqs
        self._targets = targets
        self._wait_s = wait_s

    def select(self, name: str | None) -> list[DeadLetterQueue]:
        """Every dead-letter queue, or the one `name` names: its construct path (Presence/DeadLetters), logical id,
        queue name or URL."""
        if name is None:
            return list(self.queues)
        chosen = [q for q in self.queues if name in (q.queue.name, q.queue.logical_id, q.queue.url, q.queue.arn)]
        if not chosen:
            known = ", ".join(q.queue.name for q in self.queues)
            raise OperationsError(f"No dead-letter queue {name!r} in {self.stack.name}; it has: {known}")
        return chosen

    def read(self, dead_letters: DeadLetterQueue) -> list[DeadLetter]:
        """What the queue holds now; every message stays in it."""
        messages = read_messages(self._sqs, dead_letters.queue.url, wait_s=self._wait_s)
        release(self._sqs, dead_letters.queue.url, messages)
        return [classify(message, dead_letters) for message in messages]

    def redrive(
        self,
        dead_letters: DeadLetterQueue,
        *,
        dry_run: bool = False,
        include_rejected: bool = False,
        message_ids: Sequence[str] = (),
    ) -> RedriveReport:
        """Redrives the queue's messages (those of `message_ids` only, when given) that can be, rejected ones only
        with `include_rejected`; with `dry_run`, says what it would do and changes nothing."""
        url = dead_letters.queue.url
        messages = read_messages(self._sqs, url, wait_s=self._wait_s)
        report = RedriveReport(dead_letters)
        held = {message.message_id: message for message in messages}
        try:
            letters = [classify(message, dead_letters) for message in messages]
            chosen = [letter for letter in letters if not message_ids or letter.message.message_id in message_ids]
            planned = []
            for letter in chosen:
                if not letter.steps:
                    report.outcomes.append(Outcome(letter, "skipped", f"not redrivable: {letter.not_redrivable}"))
                elif letter.rejected and not include_rejected:
                    report.outcomes.append(Outcome(letter, "skipped", REJECTED_SKIPPED))
                else:
                    planned.append(letter)
            # A message move task takes every message of the queue back where SQS moved it from: only when that
            # is what each message in it is, and all of them are to go.
            by_move_task = bool(planned) and len(planned) == len(letters) and all(p.moved_by_sqs for p in planned)
            if dry_run or by_move_task:
                release(self._sqs, url, messages)
                held.clear()
            if by_move_task:
                if dry_run:
                    report.outcomes += [Outcome(p, "would be moved back", "by a message move task") for p in planned]
                else:
                    report.move_task = task = move_back(self._sqs, dead_letters.queue.arn)
                    result = _MOVE_TASK_RESULTS.get(task.status, "failed")
                    detail = f"message move task {task.status}" + (f": {task.failure}" if task.failure else "")
                    report.outcomes += [Outcome(letter, result, detail) for letter in planned]
                return report
            for letter in planned:
                plan = "; ".join(step.describe() for step in letter.steps)
                if dry_run:
                    report.outcomes.append(Outcome(letter, "would be redriven", plan))
                    continue
                try:
                    for step in letter.steps:
                        self._take(step)
                except Exception as error:  # one message failing must not stop the others; it stays, reported
                    report.outcomes.append(Outcome(letter, "failed", f"{plan}: {type(error).__name__}: {error}"))
                    continue
                delete(self._sqs, url, letter.message)
                del held[letter.message.message_id]
                report.outcomes.append(Outcome(letter, "redriven", plan))
            return report
        finally:
            release(self._sqs, url, list(held.values()))

    def _take(self, step: Step) -> None:
        if isinstance(step, SendToQueue):
            self._targets.send(step.queue.url, step.body, step.message_attributes)
        elif isinstance(step, InvokeFunction):
            self._targets.invoke(step.function, step.payload)
        elif isinstance(step, Republish):
            self._targets.publish(step.topic, step.payload)
