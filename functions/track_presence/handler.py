"""Keeps each MQTT client's connectivity in DynamoDB from IoT Core lifecycle events delivered through SQS."""

from __future__ import annotations

import gc

# A cold start creates objects that live as long as the container, so collecting garbage during it is wasted
# work: about 20 ms of this function's cold start here (a full pass over boto3's objects), more at Lambda's
# CPU share. Collection resumes at the end of this module, without those objects.
gc.disable()

import os
import time
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from event_processing import sqs_batch
from event_processing.dynamodb import write_conditionally
from track_presence.logic import connectivity_write, subscription_write
from track_presence.models import ConnectivityEvent, check_received_in_time, parse_lifecycle_event

CONNECTIVITY_TABLE = os.environ["CONNECTIVITY_TABLE"]
SUBSCRIPTIONS_TABLE = os.environ.get("SUBSCRIPTIONS_TABLE", "")
FIELDS_DROPPED_METRIC = "FieldsDropped"

logger = Logger()
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
gc.freeze()
gc.enable()


def track_presence(record: Mapping[str, Any]) -> str:
    event = parse_lifecycle_event(record["body"])
    now_ms = int(time.time() * 1000)
    check_received_in_time(event, sqs_batch.sent_at_ms(record, now_ms))
    keys = {"clientId": event.clientId, "sessionIdentifier": event.sessionIdentifier, "eventType": event.eventType}
    with logger.append_context_keys(**keys):
        if event.dropped:
            # The field names and why, never their values (principalIdentifier is a credential's id).
            logger.warning(
                "Malformed optional fields dropped; the event is kept", extra={"droppedFields": dict(event.dropped)}
            )
            metrics.add_metric(name=FIELDS_DROPPED_METRIC, unit=MetricUnit.Count, value=len(event.dropped))
        if isinstance(event, ConnectivityEvent):
            applied = write_conditionally(dynamodb, CONNECTIVITY_TABLE, connectivity_write(event, now_ms))
            logger.info(
                "Connectivity updated" if applied else "Stale or repeated event ignored",
                # not "timestamp": that key is the log line's own
                extra={"versionNumber": event.versionNumber, "eventTimestamp": event.timestamp},
            )
            return "ConnectivityUpdated" if applied else "StaleEventsIgnored"
        if not SUBSCRIPTIONS_TABLE:
            logger.info("Subscription tracking is off; event ignored")
            return "SubscriptionEventsIgnored"
        write_conditionally(dynamodb, SUBSCRIPTIONS_TABLE, subscription_write(event, now_ms))
        logger.info("Subscriptions updated", extra={"topicCount": len(event.topics)})
        return "SubscriptionsUpdated"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sqs_batch.consume(event, track_presence, logger=logger, metrics=metrics)
