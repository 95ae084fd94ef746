"""Consume an SQS batch record by record and report partial batch failures.

A record that can never be processed (MalformedEvent) is moved to the dead-letter queue at once with its
reason, counted and logged, and reported as done: it neither fails the rest of the batch nor loops through
retries, and it is not lost. Any other error leaves the record to SQS (it is listed in `batchItemFailures`),
which redelivers it and, after the queue's maxReceiveCount, moves it to the same dead-letter queue.

This is the contract of Lambda's ReportBatchItemFailures, written out rather than taken from Powertools'
batch utility: that utility imports asyncio and every event data class, about 30 ms of cold start for a loop.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from event_processing.fields import MalformedEvent
from event_processing.rejections import reject

MALFORMED_METRIC = "MalformedEvents"
FAILED_METRIC = "FailedEvents"  # left to SQS to redeliver


class BatchFailed(Exception):
    """Every record of the batch failed: the invocation fails, as Lambda expects, and SQS redelivers it."""


def _reject(record: dict[str, Any], reason: str) -> None:
    source = {"sourceQueueArn": record.get("eventSourceARN") or "unknown", "sourceMessageId": record["messageId"]}
    reject(record["body"], reason, source)


def sent_at_ms(record: Mapping[str, Any], now_ms: int) -> int:
    """When SQS received the record's message (its SentTimestamp, epoch ms), or `now_ms` for a record that
    does not say (an event written by hand)."""
    sent = (record.get("attributes") or {}).get("SentTimestamp")
    return int(sent) if isinstance(sent, str) and sent.isdigit() else now_ms


def consume(
    event: dict[str, Any],
    handle_record: Callable[[Mapping[str, Any]], str],
    *,
    logger: Logger,
    metrics: Metrics,
) -> dict[str, Any]:
    """Runs `handle_record` on each record (its `body`, and `attributes` such as SentTimestamp); it returns the
    name of the metric to count for the record."""
    records = event["Records"]
    failures = []
    for record in records:
        try:
            outcome = handle_record(record)
        except MalformedEvent as rejection:
            try:
                _reject(record, str(rejection))
            except Exception:
                logger.exception("Could not reject an event; SQS will redeliver it", extra={"messageId": record["messageId"]})
                failures.append({"itemIdentifier": record["messageId"]})
                metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
                continue
            logger.warning(
                "Rejected a malformed event to the dead-letter queue",
                extra={"messageId": record["messageId"], "reason": str(rejection)},
            )
            metrics.add_metric(name=MALFORMED_METRIC, unit=MetricUnit.Count, value=1)
        except Exception:
            logger.exception("Event failed; SQS will redeliver it", extra={"messageId": record["messageId"]})
            failures.append({"itemIdentifier": record["messageId"]})
            metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
    if records and len(failures) == len(records):
        raise BatchFailed(f"All {len(records)} records of the batch failed")
    return {"batchItemFailures": failures}
