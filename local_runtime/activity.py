"""What happened while the app ran: the records the rules engine, the event sources, the message broker and
the delivery streams report as they work, for the command line to print and tests to inspect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # for annotations only: functions -> cloud -> firehose -> activity would be a cycle
    from local_runtime.functions import Invocation


@dataclass(frozen=True)
class ActionOutcome:
    action: str  # the rule action's type, as in the template: sqs, lambda, sns, dynamoDBv2, republish, firehose
    target: str  # the queue's (topic's, table's, delivery stream's) logical id, or the function's name
    error: str | None = None  # why it failed; None when it succeeded


@dataclass(frozen=True)
class RuleFired:
    """A rule's topic filter matched a message."""

    rule: str
    topic: str
    actions: tuple[ActionOutcome, ...]
    error_action: ActionOutcome | None = None  # run only when an action failed
    output: Any = None  # what its SELECT made of the message (bytes for a binary payload)
    where_false: bool = False  # its WHERE clause did not hold: no action ran
    sql_error: str | None = None  # its SQL could not be evaluated on this message: no action ran
    rule_not_found: bool = False  # Basic Ingest named a rule that does not exist or is disabled: IoT drops it


@dataclass(frozen=True)
class BatchDelivered:
    """An SQS event source mapping invoked its function with a batch, and settled it."""

    queue: str  # the queue's logical id
    function: str
    records: int
    invocation: Invocation
    left_in_queue: tuple[str, ...]  # message ids not deleted: SQS redelivers them after the visibility timeout
    whole_batch_failed: str | None  # why all the records were left, when they were


@dataclass(frozen=True)
class AsyncInvoked:
    """One attempt of an asynchronous invocation (an IoT rule's lambda action, an SNS subscription) and, after
    the last attempt, where Lambda sent its result."""

    source: str
    invocation: Invocation
    attempt: int = 1
    retry_pending: bool = False
    sent_to: str | None = None  # "OnFailure sqs <arn>", "dead-letter sns <arn>", ...
    event: Any = None  # the event it was invoked with


@dataclass(frozen=True)
class Published:
    """A function published a message through IoT Core (iot-data Publish): the rules whose FROM matches its topic
    ran on it, and every device subscribed to a matching topic filter received it."""

    topic: str
    payload: bytes
    function: str


@dataclass(frozen=True)
class ObjectDelivered:
    """A delivery stream flushed its buffer: one S3 object holding the records that waited."""

    stream: str  # the delivery stream's logical id
    bucket: str
    key: str
    records: int


@dataclass(frozen=True)
class MitigationActionExecuted:
    """An audit mitigation actions task applied one of its actions to one finding (device_defender.py)."""

    task_id: str
    finding_id: str
    action: str  # the mitigation action's name
    action_type: str  # PUBLISH_FINDING_TO_SNS, ADD_THINGS_TO_THING_GROUP, ...
    status: str  # COMPLETED, FAILED, or SKIPPED (an earlier action failed for this finding)
    reason: str | None = None


Activity = RuleFired | BatchDelivered | AsyncInvoked | Published | ObjectDelivered | MitigationActionExecuted
Observer = Callable[[Activity], None]
