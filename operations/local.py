"""The tools on the local runtime: the stack as the runtime created it, and redrives into its queues, its
functions (Lambda's asynchronous invocation, retries and destinations included) and its rules engine. What a
redrive sets off runs when the runtime's event sources poll (`runtime.drain()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from local_runtime.account import ACCOUNT_ID, PARTITION, REGION
from operations.dead_letters import Function
from operations.redrive import DeadLetters
from operations.stack import Account, OperationsError, StackResources

if TYPE_CHECKING:
    from local_runtime import LocalRuntime

LOCAL_ACCOUNT = Account(PARTITION, REGION, ACCOUNT_ID)


def local_stack(runtime: LocalRuntime) -> StackResources:
    return StackResources(runtime.stack.name, runtime.stack.resources, runtime.cloud.physical, LOCAL_ACCOUNT)


class LocalTargets:
    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime

    def send(self, queue_url: str, body: str, message_attributes: Mapping[str, Mapping[str, Any]]) -> None:
        request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
        if message_attributes:
            request["MessageAttributes"] = message_attributes
        self._runtime.cloud.client("sqs").send_message(**request)

    def invoke(self, function: Function, payload: Any) -> None:
        local = self._runtime.functions.for_arn(function.arn)
        if local is None:
            raise OperationsError(f"{function.name} cannot run on the local runtime")
        self._runtime.start_event_flow().invoke_async(local, payload, "dead-letter redrive")

    def publish(self, topic: str, payload: bytes) -> None:
        self._runtime.publish(topic, payload)


def dead_letters(runtime: LocalRuntime) -> DeadLetters:
    """The runtime's dead-letter queues; its SQS answers at once, so reads need no long polling."""
    return DeadLetters(local_stack(runtime), runtime.cloud.client("sqs"), LocalTargets(runtime), wait_s=0)
