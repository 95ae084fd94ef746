"""Consume an SQS batch record by record and report partial batch failures.

A record that can never be processed (MalformedEvent) is moved to the dead-letter queue at once with its
reason, counted and logged, and reported as done: it neither fails the rest of the batch nor loops through
retries, and it is not lost. Any other error leaves the record to SQS, which redelivers it and, after the
queue's maxReceiveCount, moves it to the same dead-letter queue.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from event_processing.fields import MalformedEvent

MALFORMED_METRIC = "MalformedEvents"

_processor = BatchProcessor(event_type=EventType.SQS)
_sqs_client = None


def _sqs() -> Any:
    # Created on the first rejection only: most containers never need it, and a client costs cold-start time.
    global _sqs_client
    if _sqs_client is None:
        import boto3

        _sqs_client = boto3.client("sqs")
    return _sqs_client


def _reject(record: SQSRecord, reason: str) -> None:
    _sqs().send_message(
        QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"],
        MessageBody=record.body,
        MessageAttributes={
            "rejectionReason": {"DataType": "String", "StringValue": reason[:1024]},
            "sourceQueueArn": {"DataType": "String", "StringValue": record.event_source_arn or "unknown"},
            "sourceMessageId": {"DataType": "String", "StringValue": record.message_id},
        },
    )


def consume(
    event: dict[str, Any],
    context: Any,
    handle_body: Callable[[str], str],
    *,
    logger: Logger,
    metrics: Metrics,
) -> dict[str, Any]:
    """Runs `handle_body` on each record's body; it returns the name of the metric to count for the record."""

    def handle_record(record: SQSRecord) -> None:
        try:
            outcome = handle_body(record.body)
        except MalformedEvent as rejection:
            _reject(record, str(rejection))
            logger.warning(
                "Rejected a malformed event to the dead-letter queue",
                extra={"messageId": record.message_id, "reason": str(rejection)},
            )
            metrics.add_metric(name=MALFORMED_METRIC, unit=MetricUnit.Count, value=1)
            return
        except Exception:
            logger.exception("Event failed; SQS will redeliver it", extra={"messageId": record.message_id})
            raise
        metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)

    return process_partial_response(event=event, record_handler=handle_record, processor=_processor, context=context)
