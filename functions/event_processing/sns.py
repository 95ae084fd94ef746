"""SNS both ways: the messages of an SNS event, as Lambda delivers it to a subscribed function (one record per
invocation; more are read one by one all the same; a malformed event raises MalformedEvent, for the caller to
keep in its dead-letter queue with the reason), and the notifications the functions publish."""

from __future__ import annotations

import json
from typing import Any, Mapping, NamedTuple

from event_processing.fields import MalformedEvent

# SNS's largest message: 256 KiB; its longest subject: 100 characters.
MAX_MESSAGE_LENGTH = 256 * 1024
MAX_SUBJECT_LENGTH = 100


class SnsMessage(NamedTuple):
    record: Mapping[str, Any]  # the whole record, to keep in the dead-letter queue when its message is refused
    message_id: str
    message: str


def sns_messages(event: Any) -> list[SnsMessage]:
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        raise MalformedEvent("Records must be a non-empty list of SNS records")
    messages = []
    for record in records:
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        if not isinstance(sns, Mapping):
            raise MalformedEvent("Records[].Sns must be an object")
        message = sns.get("Message")
        if not isinstance(message, str) or not message:
            raise MalformedEvent("Records[].Sns.Message must be a non-empty string")
        if len(message) > MAX_MESSAGE_LENGTH:
            raise MalformedEvent(f"Records[].Sns.Message is longer than SNS allows ({MAX_MESSAGE_LENGTH})")
        messages.append(SnsMessage(record, str(sns.get("MessageId") or "unknown"), message))
    return messages


def kept_event(record: Mapping[str, Any]) -> str:
    """A refused record as the dead-letter queue keeps it: an SNS event of that one record, which
    `sam local invoke -e` and the local runtime's `invoke` replay once the cause is fixed."""
    return json.dumps({"Records": [record]})


def publish(client: Any, topic_arn: str, subject: str, message: Mapping[str, Any], attributes: Mapping[str, Any]) -> None:
    """`message` as JSON, under `subject` cut to what SNS takes, with `attributes` for subscription filter
    policies: a string is a String attribute, a list of strings a String.Array."""
    client.publish(
        TopicArn=topic_arn,
        Subject=subject[:MAX_SUBJECT_LENGTH],
        Message=json.dumps(message),
        MessageAttributes={
            name: {"DataType": "String.Array", "StringValue": json.dumps(value)}
            if isinstance(value, list)
            else {"DataType": "String", "StringValue": value}
            for name, value in attributes.items()
        },
    )
