"""The dead letters of a stack: which queues hold them, what each message in them is, why it is there and how
it can be redriven. Plain logic on the template and on the messages' values; no AWS calls (redrive.py makes
them).

A queue holds dead letters when a redrive policy moves a work queue's poison messages to it, a Lambda
asynchronous invocation's OnFailure destination is it, a function rejects malformed events to it
(`DEAD_LETTER_QUEUE_URL`, see functions/event_processing/rejections.py), or a topic rule's errorAction sends to
it. What a message in it is (its kind), and how a redrive sends it back:

- failed-record: a work queue's record whose deliveries failed maxReceiveCount times, moved here by SQS (which
  says from where: `DeadLetterQueueSourceArn`). Back to that queue: by a message move task when every message
  of the dead-letter queue is one, else by SendMessage.
- rejected-record: a record the queue's consumer rejected as malformed (`rejectionReason`, `sourceQueueArn`).
  SendMessage to that queue, only when asked: unless a fix for it is deployed, it is rejected again.
- lambda-failure: Lambda's invocation record, once the retries of an asynchronous invocation failed (its
  OnFailure destination). The function invoked asynchronously again with the record's requestPayload.
- rejected-event: an event a function invoked asynchronously rejected as malformed (`rejectionReason`,
  `rejectedBy`), kept as the function got it. That function invoked asynchronously with it, only when asked.
- rule-error: a topic rule's errorAction message (ruleName, topic, base64OriginalPayload, failures). The payload
  published again on its topic, which runs every rule on that topic again; on a reserved topic (IoT Core takes
  no publish there), sent to the failed SQS actions' queues if the rule is `SELECT * FROM ...`, else shown only.
- unknown: anything else; shown only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping, NamedTuple

from local_runtime.intrinsics import references
from local_runtime.sqs_redrive import SOURCE_ATTRIBUTE
from operations.stack import FUNCTION, QUEUE, TOPIC_RULE, StackResources

EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
REJECTIONS_VARIABLE = "DEAD_LETTER_QUEUE_URL"  # where event_processing.rejections sends what a function rejects
REJECTION_ATTRIBUTE = "rejectionReason"
_SELECT_ALL = re.compile(r"\s*SELECT\s+\*\s+FROM\s+'[^']+'\s*", re.IGNORECASE)
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_PEM_KEPT = 40  # characters of a PEM block shown, enough to tell certificates apart, not to use one


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str  # its construct path in the stack (e.g. Presence/DeadLetters), or its logical id
    url: str
    arn: str


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str  # its handler's package (e.g. ingest_telemetry), or its logical id
    function_name: str
    arn: str


@dataclass(frozen=True)
class SourceQueue:
    queue: Queue
    max_receive_count: int
    consumer: str | None  # the function its event source mapping feeds


@dataclass(frozen=True)
class SqsAction:
    queue: Queue
    use_base64: bool


@dataclass(frozen=True)
class Rule:
    name: str
    sql: str
    sqs_actions: tuple[SqsAction, ...]

    @property
    def selects_the_message_unchanged(self) -> bool:
        return _SELECT_ALL.fullmatch(self.sql) is not None


@dataclass(frozen=True)
class DeadLetterQueue:
    queue: Queue
    source_queues: tuple[SourceQueue, ...]  # their redrive policies move poison messages here
    rejecting: tuple[Function, ...]  # reject malformed events here
    on_failure: tuple[Function, ...]  # Lambda's OnFailure destination of their asynchronous invocations
    rules: tuple[Rule, ...]  # their errorAction sends here

    def source(self, arn: str | None) -> SourceQueue | None:
        return next((source for source in self.source_queues if source.queue.arn == arn), None)

    def function(self, name_or_arn: str) -> Function | None:
        unqualified = ":".join(name_or_arn.split(":")[:7])  # without a version or alias (e.g. :$LATEST)
        for function in (*self.rejecting, *self.on_failure):
            if unqualified in (function.function_name, function.arn):
                return function
        return None

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    @property
    def holds(self) -> str:
        """What arrives here, in words."""
        parts = []
        if self.source_queues:
            names = ", ".join(source.queue.name for source in self.source_queues)
            counts = sorted({source.max_receive_count for source in self.source_queues})
            parts.append(f"records of {names} that failed {'/'.join(map(str, counts))} deliveries")
        if self.rejecting:
            parts.append(f"what {', '.join(f.name for f in self.rejecting)} rejected as malformed")
        if self.on_failure:
            parts.append(f"Lambda's record of the failed invocations of {', '.join(f.name for f in self.on_failure)}")
        if self.rules:
            parts.append(f"the errors of {len(self.rules)} topic rules")
        return "; ".join(parts)


def find_dead_letter_queues(stack: StackResources) -> list[DeadLetterQueue]:
    """Every queue of the stack that holds dead letters, in template order; a resource that does not exist
    (absent from `stack.physical`) is left out."""
    resources, physical = stack.resources, stack.physical
    queues = {
        logical_id: Queue(
            logical_id,
            _display_name(resource.cdk_path, logical_id),
            physical[logical_id].ref,
            physical[logical_id].attributes["Arn"],
        )
        for logical_id, resource in resources.items()
        if resource.type == QUEUE and logical_id in physical
    }
    functions = {
        logical_id: Function(
            logical_id,
            _function_name(resource.properties.get("Handler"), logical_id),
            physical[logical_id].ref,
            physical[logical_id].attributes["Arn"],
        )
        for logical_id, resource in resources.items()
        if resource.type == FUNCTION and logical_id in physical
    }
    consumers = {}
    for mapping in _of_type(stack, EVENT_SOURCE_MAPPING):
        for queue in _refs(mapping.properties.get("EventSourceArn"), queues):
            for function in _refs(mapping.properties.get("FunctionName"), functions):
                consumers[queue] = functions[function].name
    sources: dict[str, list[SourceQueue]] = {}
    for logical_id, resource in resources.items():
        policy = resource.properties.get("RedrivePolicy") if resource.type == QUEUE else None
        if isinstance(policy, dict) and logical_id in queues:
            for target in _refs(policy.get("deadLetterTargetArn"), queues):
                count = int(policy.get("maxReceiveCount", 0))
                sources.setdefault(target, []).append(SourceQueue(queues[logical_id], count, consumers.get(logical_id)))
    rejecting: dict[str, list[Function]] = {}
    for logical_id, function in functions.items():
        variables = resources[logical_id].properties.get("Environment", {}).get("Variables", {})
        for target in _refs(variables.get(REJECTIONS_VARIABLE), queues):
            rejecting.setdefault(target, []).append(function)
    on_failure: dict[str, list[Function]] = {}
    for config in _of_type(stack, EVENT_INVOKE_CONFIG):
        destination = config.properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        for target in _refs(destination, queues):
            for function in _refs(config.properties.get("FunctionName"), functions):
                on_failure.setdefault(target, []).append(functions[function])
    rules: dict[str, list[Rule]] = {}
    for rule_id, resource in resources.items():
        if resource.type != TOPIC_RULE or rule_id not in physical:
            continue
        payload = resource.properties["TopicRulePayload"]
        sqs_actions = tuple(
            SqsAction(queues[queue], action["Sqs"].get("UseBase64") in (True, "true"))
            for action in payload.get("Actions", [])
            if "Sqs" in action
            for queue in _refs(action["Sqs"].get("QueueUrl"), queues)
        )
        rule = Rule(physical[rule_id].ref, payload.get("Sql", ""), sqs_actions)
        for target in _refs(payload.get("ErrorAction", {}).get("Sqs", {}).get("QueueUrl"), queues):
            rules.setdefault(target, []).append(rule)
    return [
        DeadLetterQueue(
            queue,
            tuple(sources.get(logical_id, ())),
            tuple(rejecting.get(logical_id, ())),
            tuple(on_failure.get(logical_id, ())),
            tuple(rules.get(logical_id, ())),
        )
        for logical_id, queue in queues.items()
        if any(logical_id in found for found in (sources, rejecting, on_failure, rules))
    ]


def _of_type(stack: StackResources, resource_type: str) -> list[Any]:
    return [resource for resource in stack.resources.values() if resource.type == resource_type]


def _refs(value: Any, among: Mapping[str, Any]) -> list[str]:
    return sorted(logical_id for logical_id in references(value) if logical_id in among)


def _display_name(cdk_path: str | None, logical_id: str) -> str:
    """Presence/DeadLetters for DeviceBackend/Presence/DeadLetters/Queue/Resource."""
    if not cdk_path:
        return logical_id
    parts = cdk_path.split("/")[1:]
    while parts and parts[-1] in ("Resource", "Queue"):
        parts.pop()
    return "/".join(parts) or logical_id


def _function_name(handler: Any, logical_id: str) -> str:
    return handler.split(".")[0] if isinstance(handler, str) and "." in handler else logical_id


# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedMessage:
    """A message as ReceiveMessage returns it (with `All` system and message attributes)."""

    message_id: str
    receipt_handle: str
    body: str
    message_attributes: Mapping[str, Mapping[str, Any]]
    attributes: Mapping[str, str]  # the system attributes (SentTimestamp, ApproximateReceiveCount...)

    @staticmethod
    def received(message: Mapping[str, Any]) -> QueuedMessage:
        return QueuedMessage(
            message["MessageId"],
            message["ReceiptHandle"],
            message["Body"],
            message.get("MessageAttributes", {}),
            message.get("Attributes", {}),
        )

    def attribute(self, name: str) -> str | None:
        value = self.message_attributes.get(name)
        return None if value is None else value.get("StringValue")


class SendToQueue(NamedTuple):
    queue: Queue
    body: str
    message_attributes: Mapping[str, Mapping[str, Any]]

    def describe(self) -> str:
        return f"SendMessage to {self.queue.name}"


class InvokeFunction(NamedTuple):
    function: Function
    payload: Any  # the event, a JSON value

    def describe(self) -> str:
        return f"invoke {self.function.name} asynchronously"


class Republish(NamedTuple):
    topic: str
    payload: bytes

    def describe(self) -> str:
        return f"publish on {self.topic} (every rule on the topic runs again)"


Step = SendToQueue | InvokeFunction | Republish


@dataclass(frozen=True)
class DeadLetter:
    message: QueuedMessage
    kind: str
    reason: str  # why it is a dead letter
    steps: tuple[Step, ...]  # what redrives it; none when it cannot be
    not_redrivable: str | None = None  # why, when there are no steps
    rejected: bool = False  # a function refused it as malformed: redriven only when asked
    moved_by_sqs: bool = False  # SQS moved it here from its source queue: a message move task takes it back
    content: Any = None  # the event or payload, as show prints it
    details: tuple[str, ...] = ()


def classify(message: QueuedMessage, dead_letters: DeadLetterQueue) -> DeadLetter:
    document = _json(message.body)
    rejection = message.attribute(REJECTION_ATTRIBUTE)
    if rejection is not None:
        return _rejected(message, dead_letters, rejection, document)
    moved_from = message.attributes.get(SOURCE_ATTRIBUTE)
    if moved_from is not None:
        return _failed_record(message, dead_letters, moved_from, document)
    if isinstance(document, dict) and {"requestContext", "requestPayload", "responseContext"} <= set(document):
        return _lambda_failure(message, dead_letters, document)
    if isinstance(document, dict) and {"ruleName", "topic", "base64OriginalPayload", "failures"} <= set(document):
        return _rule_error(message, dead_letters, document)
    only_source = len(dead_letters.source_queues) == 1 and not (dead_letters.on_failure or dead_letters.rules)
    if only_source:  # SQS did not say where it came from, and only one queue sends here
        return _failed_record(message, dead_letters, dead_letters.source_queues[0].queue.arn, document)
    return DeadLetter(
        message,
        "unknown",
        "not a message this stack's queues, functions or rules put here",
        (),
        "the tool does not know where it came from",
        content=document if document is not None else message.body,
    )


def _rejected(message: QueuedMessage, dead_letters: DeadLetterQueue, rejection: str, document: Any) -> DeadLetter:
    content = document if document is not None else message.body
    source_arn, rejected_by = message.attribute("sourceQueueArn"), message.attribute("rejectedBy")
    if source_arn is not None:  # rejected by a queue's consumer (event_processing.sqs_batch)
        source = dead_letters.source(source_arn)
        consumer = source.consumer if source is not None and source.consumer else "its consumer"
        reason = f"{consumer} rejected it as malformed: {rejection}"
        letter = DeadLetter(message, "rejected-record", reason, (), rejected=True, content=content)
        if source is None:
            return replace(letter, not_redrivable=f"it came from {source_arn}, not a queue of this dead-letter queue")
        return replace(letter, steps=(SendToQueue(source.queue, message.body, {}),))
    function = dead_letters.function(rejected_by) if rejected_by is not None else None
    by = function.name if function is not None else rejected_by or "a function"
    reason = f"{by} rejected it as malformed: {rejection}"
    letter = DeadLetter(message, "rejected-event", reason, (), rejected=True, content=content)
    if rejected_by is None:
        return replace(letter, not_redrivable="it does not say where it came from")
    if function is None:
        return replace(letter, not_redrivable=f"{rejected_by} is not a function of this stack that rejects here")
    if document is None:
        return replace(letter, not_redrivable="its body is not the JSON event the function was given")
    return replace(letter, steps=(InvokeFunction(function, document),))


def _failed_record(message: QueuedMessage, dead_letters: DeadLetterQueue, moved_from: str, document: Any) -> DeadLetter:
    content = document if document is not None else message.body
    source = dead_letters.source(moved_from)
    if source is None:
        return DeadLetter(
            message, "failed-record", f"SQS moved it here from {moved_from}", (),
            f"{moved_from} is not a queue whose dead-letter queue this is", content=content,
        )  # fmt: skip
    consumer = f" to {source.consumer}" if source.consumer else ""
    reason = f"its {source.max_receive_count} deliveries{consumer} from {source.queue.name} failed"
    attributes = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.message_attributes.items()
    }  # what SendMessage takes of what ReceiveMessage gives
    steps = (SendToQueue(source.queue, message.body, attributes),)
    moved_by_sqs = SOURCE_ATTRIBUTE in message.attributes
    return DeadLetter(message, "failed-record", reason, steps, moved_by_sqs=moved_by_sqs, content=content)


def _lambda_failure(message: QueuedMessage, dead_letters: DeadLetterQueue, record: Mapping[str, Any]) -> DeadLetter:
    context = record["requestContext"] if isinstance(record["requestContext"], dict) else {}
    arn = str(context.get("functionArn", ""))
    function = dead_letters.function(arn) if arn else None
    error = record.get("responsePayload")
    if isinstance(error, dict):
        error_text = f"{error.get('errorType', 'error')}: {error.get('errorMessage', '')}"
    else:
        error_text = "no error given"
    name = function.name if function is not None else arn or "a function"
    attempts, condition = context.get("approximateInvokeCount", "?"), context.get("condition", "no condition given")
    letter = DeadLetter(
        message,
        "lambda-failure",
        f"Lambda gave up on {name} after {attempts} attempts ({condition}): {error_text}",
        (),
        content=record["requestPayload"],
        details=(f"request {context.get('requestId', '?')} at {record.get('timestamp', '?')}",),
    )
    if function is None:
        why = f"{arn or 'its function'} is not a function of this stack whose failures come here"
        return replace(letter, not_redrivable=why)
    return replace(letter, steps=(InvokeFunction(function, record["requestPayload"]),))


def _rule_error(message: QueuedMessage, dead_letters: DeadLetterQueue, error: Mapping[str, Any]) -> DeadLetter:
    listed = error["failures"] if isinstance(error["failures"], list) else []
    failures = [failure for failure in listed if isinstance(failure, dict)]
    details = tuple(
        f"{failure.get('failedAction', '?')} {failure.get('failedResource', '?')}: {failure.get('errorMessage', '')}"
        for failure in failures
    ) + (f"published by {error.get('clientId', '?')} on {error['topic']}",)
    actions = ", ".join(str(failure.get("failedAction", "?")) for failure in failures) or "its actions"
    letter = DeadLetter(message, "rule-error", f"rule {error['ruleName']}: {actions} failed", (), details=details)
    try:
        payload = base64.b64decode(str(error["base64OriginalPayload"]), validate=True)
    except binascii.Error:
        return replace(letter, not_redrivable="its base64OriginalPayload is not base64")
    letter = replace(letter, content=_payload_content(payload))
    rule, topic = dead_letters.rule(str(error["ruleName"])), str(error["topic"])
    if rule is None:
        return replace(letter, not_redrivable=f"{error['ruleName']} is not a rule of this stack whose errors come here")
    if not topic.startswith("$"):
        return replace(letter, steps=(Republish(topic, payload),))
    # IoT Core takes no publish on its reserved topics (and one on $aws/things/... would act on a shadow or a job
    # again): the failed actions get the message again instead, when the rule handed them the message as it came.
    reserved = f"{topic} is a reserved topic, which IoT Core takes no publish on, and"
    if not rule.selects_the_message_unchanged:
        why = f"{reserved} the rule's SQL reshapes the message: what its actions got cannot be rebuilt"
        return replace(letter, not_redrivable=why)
    steps: list[Step] = []
    for failure in failures:
        action = _failed_sqs_action(rule, failure)
        if action is None:
            why = f"{reserved} the failed {failure.get('failedAction')} is not one of the rule's SQS actions"
            return replace(letter, not_redrivable=why)
        if action.use_base64:
            steps.append(SendToQueue(action.queue, base64.b64encode(payload).decode(), {}))
            continue
        try:
            steps.append(SendToQueue(action.queue, payload.decode("utf-8"), {}))
        except UnicodeDecodeError:
            why = "its payload is not UTF-8 text, which the rule's SQS action cannot send (useBase64 is off)"
            return replace(letter, not_redrivable=why)
    if not steps:
        return replace(letter, not_redrivable="it names no failed action")
    return replace(letter, steps=tuple(steps))


def _failed_sqs_action(rule: Rule, failure: Mapping[str, Any]) -> SqsAction | None:
    """The rule's SQS action a failure names (its failedResource: the queue's URL, or its name)."""
    if failure.get("failedAction") != "SqsAction":
        return None
    resource = str(failure.get("failedResource", ""))
    for action in rule.sqs_actions:
        name = action.queue.url.rsplit("/", 1)[-1]
        if resource in (action.queue.url, action.queue.arn, name):
            return action
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _payload_content(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(payload)} bytes, not UTF-8; base64 {base64.b64encode(payload).decode()}>"
    document = _json(text)
    return document if document is not None else text


# ----------------------------------------------------------------------------------------------------------
def without_certificates(text: str) -> str:
    """`text` with every PEM block (certificate, key, CSR) cut to its first characters."""
    return _PEM.sub(lambda match: f"{match[0][:_PEM_KEPT]}... ({len(match[0])} characters of PEM not shown)", text)


def summary(letter: DeadLetter) -> str:
    """One line: the message, its kind and reason, and what a redrive does with it."""
    reason = without_certificates(letter.reason)
    return f"{letter.message.message_id}  {letter.kind}: {reason}  -> {redrive_plan(letter)}"


def redrive_plan(letter: DeadLetter) -> str:
    if not letter.steps:
        return f"not redrivable: {letter.not_redrivable}"
    plan = "; ".join(step.describe() for step in letter.steps)
    return f"{plan} (only with --include-rejected)" if letter.rejected else plan


def show(letter: DeadLetter) -> list[str]:
    """Everything about the message, PEMs cut short."""
    message = letter.message
    lines = [
        f"message {message.message_id}",
        f"  kind: {letter.kind}",
        f"  reason: {letter.reason}",
        *(f"  {detail}" for detail in letter.details),
        f"  redrive: {redrive_plan(letter)}",
    ]
    sent, receives = message.attributes.get("SentTimestamp"), message.attributes.get("ApproximateReceiveCount")
    if sent is not None and sent.isdigit():
        at = datetime.fromtimestamp(int(sent) / 1000, timezone.utc).isoformat(timespec="seconds")
        lines.append(f"  sent to this queue at {at}, received {receives or '?'} times")
    for name, value in sorted(message.message_attributes.items()):
        lines.append(f"  attribute {name}: {value.get('StringValue', '<binary>')}")
    content = letter.content if isinstance(letter.content, str) else json.dumps(letter.content, indent=2)
    lines.append("  content:")
    lines += [f"    {line}" for line in content.splitlines()]
    return without_certificates("\n".join(lines)).splitlines()
