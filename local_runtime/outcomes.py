"""Whether each published message was accepted or rejected, once the work it set off is done.

A message is rejected when what its rules sent on (the SELECT's output, as a queue, a function or a topic got
it) ends as one of:
    - a message with a `rejectionReason` attribute in a queue no function consumes: a function refused it
      (the functions' dead-letter queues; event_processing.rejections);
    - a message in another queue's dead-letter queue: SQS moved it there after its function failed on it
      maxReceiveCount times;
    - an asynchronous invocation that failed with no retry left (it went to the function's OnFailure
      destination or dead-letter queue, or was dropped);
or when one of its rules could not evaluate its SQL on it, or one of its actions failed. A rejection whose
content no published message accounts for (a message a function published, for instance) is listed apart.
The match is by content: of identical messages, each rejection goes to the first one not yet rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local_runtime.activity import AsyncInvoked, RuleFired
from local_runtime.cloud import QUEUE
from local_runtime.event_sources import dead_letter_sources, peek_messages
from local_runtime.iot_sql.values import json_text
from local_runtime.runtime import LocalRuntime

REJECTION_REASON = "rejectionReason"


@dataclass(frozen=True)
class Rejection:
    where: str  # the queue's logical id, or the function's name
    reason: str
    content: Any  # the rejected message as its queue or function had it: its JSON value, or its text


@dataclass(frozen=True)
class Sent:
    """One published message and what its rules made of it."""

    payload: bytes
    fired: tuple[RuleFired, ...]

    def contents(self) -> list[Any]:
        # As the functions and queues that reject them see outputs: JSON parsed back, Decimals as floats.
        outputs = [
            fired.output if isinstance(fired.output, bytes) else json.loads(json_text(fired.output))
            for fired in self.fired
            if fired.output is not None
        ]
        return [_value(self.payload), *outputs]

    def rule_failures(self) -> list[str]:
        failures = []
        for fired in self.fired:
            if fired.rule_not_found:
                failures.append(f"rule {fired.rule}: RuleNotFound (Basic Ingest to a rule that is missing or disabled)")
            if fired.sql_error is not None:
                failures.append(f"rule {fired.rule}: its SQL failed: {fired.sql_error}")
            failures += [f"rule {fired.rule}: {a.action} {a.target} failed: {a.error}" for a in fired.actions if a.error]
        return failures


def rejections(runtime: LocalRuntime) -> list[Rejection]:
    """Every rejection of the run so far, queues first (in template order), then failed asynchronous invocations."""
    sqs = runtime.cloud.client("sqs")
    consumed = {mapping.queue for mapping in runtime.event_sources.mappings}
    moved_by_sqs = dead_letter_sources(runtime.cloud)
    found = []
    for resource in runtime.cloud.created:
        # Receiving from a queue with a RedrivePolicy counts toward moving its messages: those are not peeked.
        if resource.type != QUEUE or resource.logical_id in consumed or "RedrivePolicy" in resource.properties:
            continue
        for message in peek_messages(sqs, runtime.cloud.physical[resource.logical_id].ref):
            reason = message.get("MessageAttributes", {}).get(REJECTION_REASON, {}).get("StringValue")
            if reason is None and resource.logical_id in moved_by_sqs:
                sources = ", ".join(moved_by_sqs[resource.logical_id])
                reason = f"moved by SQS from {sources} after its function failed on it (maxReceiveCount)"
            if reason is not None:
                found.append(Rejection(resource.logical_id, reason, _value(message["Body"].encode())))
    for activity in runtime.activities:
        invocation = activity.invocation if isinstance(activity, AsyncInvoked) else None
        if invocation is not None and invocation.error is not None and not activity.retry_pending:
            reason = f"{invocation.error.type}: {invocation.error.message} (attempt {activity.attempt}, no retry left)"
            found.append(Rejection(invocation.function, reason, activity.event))
    return found


def attribute(sent: list[Sent], found: list[Rejection]) -> tuple[list[list[str]], list[Rejection]]:
    """Per message sent, why it was rejected (empty: accepted); and the rejections no message sent accounts for."""
    reasons: list[list[str]] = [message.rule_failures() for message in sent]
    taken: list[list[Any]] = [[] for _ in sent]
    contents = [message.contents() for message in sent]
    unaccounted = []
    for rejection in found:
        candidates = [index for index, values in enumerate(contents) if rejection.content in values]
        if not candidates:
            unaccounted.append(rejection)
            continue
        fresh = [index for index in candidates if rejection.content not in taken[index]]
        index = (fresh or candidates)[0]
        taken[index].append(rejection.content)
        reasons[index].append(f"{rejection.reason} ({rejection.where})")
    return reasons, unaccounted


def _value(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
