"""Keeps an event that can never be processed in the dead-letter queue, with the reason as a message attribute.

The SQS client is created on the first rejection only: most containers never need it, and a client costs
cold-start time.
"""

from __future__ import annotations

import os
from typing import Any

_sqs_client = None


def _sqs() -> Any:
    global _sqs_client
    if _sqs_client is None:
        import boto3

        _sqs_client = boto3.client("sqs")
    return _sqs_client


def reject(body: str, reason: str, source: dict[str, str]) -> None:
    """`source` says where the event came from (message attribute name -> value)."""
    attributes = {"rejectionReason": reason, **source}
    _sqs().send_message(
        QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"],
        MessageBody=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value[:1024]} for name, value in attributes.items()},
    )
