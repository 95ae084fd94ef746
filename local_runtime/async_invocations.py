"""Lambda's asynchronous invocations (an IoT rule's lambda action, an SNS subscription): the internal queue,
the retries of a failed invocation, and where the event goes after them.

As on Lambda: a failed invocation is retried MaximumRetryAttempts times (2 unless an EventInvokeConfig says
otherwise); then its invocation record goes to the OnFailure destination, or else the event to the function's
dead-letter queue (DeadLetterConfig); a success goes to the OnSuccess destination. Destinations and dead-letter
targets may be SQS queues, SNS topics or functions of the stack; anything else is refused when the runtime
loads. Lambda waits about a minute, then two, between attempts; here a retry runs at the next poll, so a
scenario does not wait minutes. MaximumEventAgeInSeconds is recorded, not applied (events here are seconds old).
"""

from __future__ import annotations

import datetime
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from local_runtime.activity import AsyncInvoked, Observer
from local_runtime.assembly import Stack
from local_runtime.cloud import EmbeddedAws
from local_runtime.errors import NotEmulated
from local_runtime.functions import Invocation, LocalFunction, LocalFunctions

EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
DEFAULT_RETRY_ATTEMPTS = 2  # Lambda's default for asynchronous invocations
_CONFIG_PROPERTIES = {"FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"}


@dataclass(frozen=True)
class Destination:
    kind: str  # sqs, sns or lambda
    arn: str
    target: str  # a queue URL, topic ARN or function ARN


@dataclass(frozen=True)
class AsyncSettings:
    maximum_retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter: Destination | None = None


def load_async_settings(stack: Stack, cloud: EmbeddedAws, functions: LocalFunctions) -> dict[str, AsyncSettings]:
    """Per function ARN: its EventInvokeConfig and dead-letter target. A qualifier other than $LATEST is refused
    (the runtime has no versions or aliases)."""
    settings: dict[str, AsyncSettings] = {}
    resolve = cloud.resolver.resolve
    for spec in functions.specs:
        target = spec.resource.properties.get("DeadLetterConfig", {}).get("TargetArn")
        if target is not None:
            arn = cloud.physical[spec.logical_id].attributes["Arn"]
            dead_letter = _destination(resolve(target, f"{spec.logical_id}.DeadLetterConfig"), cloud, spec.resource.label)
            settings[arn] = AsyncSettings(dead_letter=dead_letter)
    for config in stack.of_type(EVENT_INVOKE_CONFIG):
        properties = config.properties
        unknown = sorted(set(properties) - _CONFIG_PROPERTIES)
        if unknown:
            raise NotEmulated(f"{config.label}: EventInvokeConfig property {', '.join(unknown)} is not emulated")
        if properties.get("Qualifier", "$LATEST") != "$LATEST":
            raise NotEmulated(f"{config.label}: qualifier {properties['Qualifier']}: there are no versions or aliases here")
        name = resolve(properties["FunctionName"], f"{config.logical_id}.FunctionName")
        function = functions.for_arn(name)
        if function is None:
            raise NotEmulated(f"{config.label}: {name} is not a function this runtime can run")
        destinations = properties.get("DestinationConfig", {})

        def destination(key: str) -> Destination | None:
            arn = destinations.get(key, {}).get("Destination")
            where = f"{config.logical_id}.DestinationConfig.{key}"
            return None if arn is None else _destination(resolve(arn, where), cloud, config.label)

        previous = settings.get(function.function_arn, AsyncSettings())
        settings[function.function_arn] = AsyncSettings(
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)),
            on_success=destination("OnSuccess"),
            on_failure=destination("OnFailure"),
            dead_letter=previous.dead_letter,
        )
    return settings


def _destination(arn: str, cloud: EmbeddedAws, label: str) -> Destination:
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    for logical_id, physical in cloud.physical.items():
        if arn in physical.attributes.values() or arn == physical.ref:
            if service == "sqs":
                return Destination("sqs", arn, physical.attributes["QueueUrl"])
            if service == "sns":
                return Destination("sns", arn, arn)
            if service == "lambda":
                return Destination("lambda", arn, arn)
    raise NotEmulated(f"{label}: the destination {arn} is not an SQS queue, SNS topic or function of this stack")


@dataclass
class _Pending:
    function: LocalFunction
    event: Any
    source: str
    attempt: int = 1


class AsyncInvocations:
    """Lambda's queue of asynchronous invocations; `run_pending` runs what waits, retries included."""

    def __init__(
        self,
        settings: dict[str, AsyncSettings],
        clients: Callable[[str], Any],
        functions: LocalFunctions,
        observer: Observer,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._functions = functions
        self._observer = observer
        self._pending: deque[_Pending] = deque()

    def invoke(self, function: LocalFunction, event: Any, source: str) -> None:
        """Accepted as Lambda accepts an Event invocation (202); it runs at the next `run_pending`."""
        self._pending.append(_Pending(function, event, source))

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def run_pending(self) -> bool:
        """Runs the invocations waiting now (retries queued by them wait for the next call). True if any ran."""
        ran = False
        for _ in range(len(self._pending)):
            pending = self._pending.popleft()
            self._run(pending)
            ran = True
        return ran

    def _run(self, pending: _Pending) -> None:
        settings = self._settings.get(pending.function.function_arn, AsyncSettings())
        invocation = pending.function.invoke(pending.event)
        retry = invocation.error is not None and pending.attempt <= settings.maximum_retry_attempts
        sent_to = None
        if retry:
            self._pending.append(_Pending(pending.function, pending.event, pending.source, pending.attempt + 1))
        elif invocation.error is None and settings.on_success is not None:
            sent_to = self._send("OnSuccess", settings.on_success, _record(pending, invocation, "Success"))
        elif invocation.error is not None and settings.on_failure is not None:
            sent_to = self._send("OnFailure", settings.on_failure, _record(pending, invocation, "RetriesExhausted"))
        elif invocation.error is not None and settings.dead_letter is not None:
            sent_to = self._send_to_dead_letter(settings.dead_letter, pending, invocation)
        self._observer(AsyncInvoked(pending.source, invocation, pending.attempt, retry, sent_to, pending.event))

    def _send(self, when: str, destination: Destination, record: dict[str, Any]) -> str:
        body = json.dumps(record)
        if destination.kind == "sqs":
            self._clients("sqs").send_message(QueueUrl=destination.target, MessageBody=body)
        elif destination.kind == "sns":
            self._clients("sns").publish(TopicArn=destination.target, Message=body)
        else:
            function = self._functions.for_arn(destination.target)
            assert function is not None, "checked when the settings loaded"
            self.invoke(function, record, f"{when} destination of {record['requestContext']['functionArn']}")
        return f"{when} {destination.kind} {destination.arn}"

    def _send_to_dead_letter(self, destination: Destination, pending: _Pending, invocation: Invocation) -> str:
        # The event as it came, with the attributes Lambda documents for a dead-letter message.
        assert invocation.error is not None
        attributes = {
            "RequestID": invocation.request_id,
            "ErrorCode": "200",
            "ErrorMessage": invocation.error.message[:256],
        }
        body = json.dumps(pending.event)
        if destination.kind == "sqs":
            self._clients("sqs").send_message(
                QueueUrl=destination.target,
                MessageBody=body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            )
        elif destination.kind == "sns":
            self._clients("sns").publish(
                TopicArn=destination.target,
                Message=body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            )
        else:
            raise NotEmulated(f"A function's dead-letter target must be an SQS queue or SNS topic, not {destination.arn}")
        return f"dead-letter {destination.kind} {destination.arn}"


def _record(pending: _Pending, invocation: Invocation, condition: str) -> dict[str, Any]:
    """The invocation record Lambda sends to a destination."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if invocation.error is not None:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{pending.function.function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": pending.attempt,
        },
        "requestPayload": pending.event,
        "responseContext": response,
        "responsePayload": invocation.error.as_json() if invocation.error is not None else invocation.result,
    }


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """Lambda's SNS event from the JSON document SNS delivers to an SQS subscriber (the same notification; Lambda's
    shape spells two keys differently)."""
    notification = {
        "Type": envelope["Type"],
        "MessageId": envelope["MessageId"],
        "TopicArn": envelope["TopicArn"],
        "Subject": envelope.get("Subject"),
        "Message": envelope["Message"],
        "Timestamp": envelope["Timestamp"],
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", ""),
        "SigningCertUrl": envelope.get("SigningCertURL", ""),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
        "MessageAttributes": envelope.get("MessageAttributes", {}),
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": notification,
            }
        ]
    }

