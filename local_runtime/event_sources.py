"""How Lambda feeds functions here: SQS event source mappings, SNS subscriptions, and the queue of
asynchronous invocations (an IoT rule's lambda action, an SNS notification; see async_invocations.py); and, on
each poll too, what the work of the functions sets off: the messages they published (broker.py) and the
delivery streams' buffers that are due (firehose.py).

The pollers run when asked (`poll`, `run_for`, `drain`), one batch at a time: a mapping's
ScalingConfig.MaximumConcurrency is recorded, not used to run batches in parallel, and a batching window is
not waited for (a poll takes what the queue has, up to BatchSize). A drain ends by flushing every delivery
stream's buffer.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

from local_runtime.account import REGION
from local_runtime.activity import BatchDelivered, Observer
from local_runtime.assembly import Resource, Stack
from local_runtime.async_invocations import AsyncInvocations, sns_event
from local_runtime.broker import Broker
from local_runtime.cloud import QUEUE, EmbeddedAws, LambdaSubscription
from local_runtime.device_defender import MitigationTasks
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.firehose import DeliveryStreams
from local_runtime.functions import Invocation, LocalFunction, LocalFunctions

MAPPING = "AWS::Lambda::EventSourceMapping"
PERMISSION = "AWS::Lambda::Permission"
DEFAULT_BATCH_SIZE = 10  # Lambda's default for SQS
_SQS_MAX_MESSAGES = 10  # per ReceiveMessage
_IDLE_POLL_S = 0.1
_MAPPING_PROPERTIES = {
    "EventSourceArn", "FunctionName", "BatchSize", "Enabled", "FunctionResponseTypes", "ScalingConfig",
    "MaximumBatchingWindowInSeconds", "Tags",
}  # fmt: skip


@dataclass(frozen=True)
class SqsMapping:
    resource: Resource
    function: LocalFunction
    queue_url: str
    queue_arn: str
    queue: str  # the queue's logical id
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    batching_window_s: int
    enabled: bool


@dataclass(frozen=True)
class QueueState:
    visible: int
    in_flight: int
    delayed: int
    visibility_timeout_s: int

    @property
    def idle(self) -> bool:
        return self.visible == self.in_flight == self.delayed == 0


class DrainTimeout(LocalRuntimeError):
    pass


def load_mappings(stack: Stack, cloud: EmbeddedAws, functions: LocalFunctions) -> list[SqsMapping]:
    """Every event source mapping of the stack; anything but an SQS queue feeding a runnable function is refused."""
    return [_mapping(resource, cloud, functions) for resource in stack.of_type(MAPPING)]


def _mapping(resource: Resource, cloud: EmbeddedAws, functions: LocalFunctions) -> SqsMapping:
    properties = resource.properties
    unknown = sorted(set(properties) - _MAPPING_PROPERTIES)
    if unknown:
        raise NotEmulated(f"{resource.label}: event source mapping property {', '.join(unknown)} is not emulated")
    resolve = cloud.resolver.resolve_string
    source_arn = resolve(properties.get("EventSourceArn"), f"{resource.logical_id}.EventSourceArn")
    queues = [
        logical_id
        for logical_id, physical in cloud.physical.items()
        if cloud.stack.resources[logical_id].type == QUEUE and physical.attributes["Arn"] == source_arn
    ]
    if not queues:
        raise NotEmulated(
            f"{resource.label}: its source {source_arn} is not an SQS queue of this stack; only SQS is emulated"
        )
    function_name = resolve(properties["FunctionName"], f"{resource.logical_id}.FunctionName")
    function = functions.for_arn(function_name)
    if function is None:
        raise NotEmulated(
            f"{resource.label}: {function_name} is not a function this runtime can run "
            "(`python -m local_runtime functions` says why)"
        )
    return SqsMapping(
        resource=resource,
        function=function,
        queue_url=cloud.physical[queues[0]].ref,
        queue_arn=source_arn,
        queue=queues[0],
        batch_size=int(properties.get("BatchSize", DEFAULT_BATCH_SIZE)),
        report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
        maximum_concurrency=properties.get("ScalingConfig", {}).get("MaximumConcurrency"),
        batching_window_s=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
        enabled=properties.get("Enabled", True) not in (False, "false", "False"),
    )


def sqs_event(messages: list[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda builds from received SQS messages."""
    return {"Records": [_sqs_record(message, queue_arn) for message in messages]}


def _sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue in the shape (and camel case) of Lambda's event; binary values base64."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def records_left(
    invocation: Invocation, message_ids: list[str], report_batch_item_failures: bool
) -> tuple[set[str], str | None]:
    """The records Lambda leaves in the queue after an invocation, and why all of them when it is all.

    With ReportBatchItemFailures, AWS documents: a null or empty response or `batchItemFailures` is a success;
    an itemIdentifier that is empty, null, under another key or not a message of the batch fails the batch."""
    everything = set(message_ids)
    if invocation.error is not None:
        return everything, f"the function failed ({invocation.error.type})"
    if not report_batch_item_failures:
        return set(), None
    response = invocation.result
    if response is None or response == {}:
        return set(), None
    failures = response.get("batchItemFailures") if isinstance(response, dict) else "invalid"
    if failures is None or failures == []:
        return set(), None
    if not isinstance(failures, list):
        return everything, "the response is not a valid batchItemFailures response"
    left = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything, f"batchItemFailures holds {failure!r}, not a message id of the batch"
        left.add(identifier)
    return left, None


@dataclass(frozen=True)
class SnsSubscription:
    subscription: LambdaSubscription
    function: LocalFunction


def load_sns_subscriptions(cloud: EmbeddedAws, functions: LocalFunctions) -> list[SnsSubscription]:
    """Every SNS subscription of a function; one the function's resource policy does not let SNS invoke is
    refused, as SNS's deliveries to it would fail."""
    found = []
    for subscription in cloud.lambda_subscriptions:
        function = functions.for_arn(subscription.function_arn)
        if function is None:
            raise NotEmulated(
                f"{subscription.resource.label}: {subscription.function_arn} is not a function this runtime can run"
            )
        denied = invoke_denied(cloud, function, "sns.amazonaws.com", subscription.topic_arn)
        if denied:
            raise NotEmulated(f"{subscription.resource.label}: {denied}")
        found.append(SnsSubscription(subscription, function))
    return found


def invoke_denied(cloud: EmbeddedAws, function: LocalFunction, principal: str, source_arn: str) -> str | None:
    """Why `principal` may not invoke `function` on behalf of `source_arn` under the function's resource policy
    (its AWS::Lambda::Permission resources), or None when it may."""
    resolve = cloud.resolver.resolve
    for permission in cloud.stack.of_type(PERMISSION):
        properties = permission.properties
        target = resolve(properties.get("FunctionName"), f"{permission.logical_id}.FunctionName")
        if not function.answers_to(target) or properties.get("Principal") != principal:
            continue
        if properties.get("Action") not in ("lambda:InvokeFunction", "lambda:*"):
            continue
        allowed_source = properties.get("SourceArn")
        if allowed_source is None or resolve(allowed_source, f"{permission.logical_id}.SourceArn") == source_arn:
            return None
    return (
        f"no AWS::Lambda::Permission lets {principal} invoke {function.function_name} for {source_arn}, "
        "so AWS would refuse every invocation"
    )


class EventSources:
    """The SQS pollers of every mapping, the SNS subscriptions of functions, the asynchronous invocations
    waiting to run, the messages the functions published, the delivery streams' buffers, and the Device
    Defender mitigation tasks started."""

    def __init__(
        self,
        mappings: list[SqsMapping],
        sns_subscriptions: list[SnsSubscription],
        async_invocations: AsyncInvocations,
        broker: Broker,
        delivery_streams: DeliveryStreams,
        mitigation_tasks: MitigationTasks,
        sqs: Any,
        observer: Observer,
    ) -> None:
        self.mappings = mappings
        self.sns_subscriptions = sns_subscriptions
        self._async = async_invocations
        self._broker = broker
        self._delivery_streams = delivery_streams
        self._mitigation_tasks = mitigation_tasks
        self._sqs = sqs
        self._observer = observer

    def poll(self) -> bool:
        """One receive per enabled mapping and SNS subscription, the waiting asynchronous invocations, then the
        messages all these functions published and the mitigation tasks they started; the delivery streams
        flush what is due. True if anything ran."""
        delivered = False
        for mapping in self.mappings:
            if mapping.enabled:
                delivered |= self._poll_mapping(mapping)
        for subscription in self.sns_subscriptions:
            delivered |= self._poll_subscription(subscription)
        delivered |= self._async.run_pending()
        delivered |= self._broker.poll()
        delivered |= self._mitigation_tasks.run_pending()
        self._delivery_streams.flush_due()
        return delivered

    def _poll_subscription(self, subscription: SnsSubscription) -> bool:
        relay = subscription.subscription.relay_queue_url
        messages = self._sqs.receive_message(QueueUrl=relay, MaxNumberOfMessages=_SQS_MAX_MESSAGES).get("Messages", [])
        for message in messages:
            # SNS invokes a subscribed function asynchronously, one notification per invocation.
            event = sns_event(json.loads(message["Body"]), subscription.subscription.subscription_arn)
            topic = subscription.subscription.topic_arn.rsplit(":", 1)[-1]
            self._async.invoke(subscription.function, event, f"SNS topic {topic}")
            self._sqs.delete_message(QueueUrl=relay, ReceiptHandle=message["ReceiptHandle"])
        return bool(messages)

    def run_for(self, seconds: float) -> None:
        """Keeps polling for `seconds`, as Lambda's pollers do while time passes (a scenario's sleep)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.poll():
                time.sleep(min(_IDLE_POLL_S, max(0.0, end - time.monotonic())))

    def drain(self, timeout_s: float) -> None:
        """Polls until every mapped queue is empty, with nothing delayed or in flight, then flushes the delivery
        streams."""
        deadline = time.monotonic() + timeout_s
        while True:
            delivered = self.poll()
            if not delivered and self._async.waiting == 0 and all(state.idle for state in self.queue_states().values()):
                self._delivery_streams.flush()
                return
            # Checked after deliveries too: a record that fails and comes back at once would loop forever.
            if time.monotonic() > deadline:
                busy = "; ".join(
                    f"{queue}: {state.visible} visible, {state.delayed} delayed, {state.in_flight} in flight "
                    f"(visible again {state.visibility_timeout_s} s after their last receive)"
                    for queue, state in self.queue_states().items()
                    if not state.idle
                )
                raise DrainTimeout(f"The queues did not drain within {timeout_s:g} s: {busy}")
            if not delivered:
                time.sleep(_IDLE_POLL_S)

    def queue_states(self) -> dict[str, QueueState]:
        states = {
            mapping.queue: queue_state(self._sqs, mapping.queue_url) for mapping in self.mappings if mapping.enabled
        }
        for subscription in self.sns_subscriptions:
            name = f"SNS subscription {subscription.subscription.resource.logical_id}"
            states[name] = queue_state(self._sqs, subscription.subscription.relay_queue_url)
        return states

    def _poll_mapping(self, mapping: SqsMapping) -> bool:
        messages = self._receive(mapping)
        if not messages:
            return False
        invocation = mapping.function.invoke(sqs_event(messages, mapping.queue_arn))
        ids = [message["MessageId"] for message in messages]
        left, whole_batch = records_left(invocation, ids, mapping.report_batch_item_failures)
        # Failed records are left as they are: SQS makes them visible again after the visibility timeout and
        # moves them to the dead-letter queue after maxReceiveCount receives.
        done = [message for message in messages if message["MessageId"] not in left]
        for start in range(0, len(done), _SQS_MAX_MESSAGES):
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(done[start : start + _SQS_MAX_MESSAGES])
            ]
            self._sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=entries)
        self._observer(
            BatchDelivered(
                queue=mapping.queue,
                function=mapping.function.name,
                records=len(messages),
                invocation=invocation,
                left_in_queue=tuple(message_id for message_id in ids if message_id in left),
                whole_batch_failed=whole_batch,
            )
        )
        return True

    def _receive(self, mapping: SqsMapping) -> list[dict[str, Any]]:
        """Up to BatchSize messages, each once: a message whose visibility timeout is shorter than the gathering
        (0 s, say) is visible again to the next receive, and Lambda never puts one message twice in a batch.
        The newest copy is kept, since SQS deletes only with the newest receipt handle."""
        messages: dict[str, dict[str, Any]] = {}
        while len(messages) < mapping.batch_size:
            received = self._sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(_SQS_MAX_MESSAGES, mapping.batch_size - len(messages)),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            new = [message for message in received if message["MessageId"] not in messages]
            messages.update((message["MessageId"], message) for message in received)
            if not new:
                break
        return list(messages.values())


def queue_state(sqs: Any, queue_url: str) -> QueueState:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return QueueState(
        visible=int(attributes["ApproximateNumberOfMessages"]),
        in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        delayed=int(attributes["ApproximateNumberOfMessagesDelayed"]),
        visibility_timeout_s=int(attributes["VisibilityTimeout"]),
    )


def peek_messages(sqs: Any, queue_url: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The messages of a queue (up to `limit`) without consuming them: received, then made visible again at once."""
    messages: list[dict[str, Any]] = []
    while limit is None or len(messages) < limit:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=_SQS_MAX_MESSAGES, MessageAttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        if not received:
            break
        messages += received
    for start in range(0, len(messages), _SQS_MAX_MESSAGES):
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
            for index, message in enumerate(messages[start : start + _SQS_MAX_MESSAGES])
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    return messages


def dead_letter_sources(cloud: EmbeddedAws) -> dict[str, list[str]]:
    """Per queue that is another's dead-letter queue (RedrivePolicy), the queues whose messages SQS moves there."""
    sources: dict[str, list[str]] = {}
    for resource in cloud.created:
        target = resource.properties.get("RedrivePolicy", {}).get("deadLetterTargetArn", {})
        arn = cloud.resolver.resolve(target, f"{resource.logical_id}.RedrivePolicy") if target else None
        for logical_id, physical in cloud.physical.items():
            if arn and physical.attributes.get("Arn") == arn:
                sources.setdefault(logical_id, []).append(resource.logical_id)
    return sources
