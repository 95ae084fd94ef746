"""Keeps the thing inventory in DynamoDB from IoT Core registry events delivered through SQS."""

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
from event_processing.dynamodb import Table
from track_inventory.logic import record_registry_event
from track_inventory.models import ThingGroupEvent, parse_registry_event

INVENTORY_TABLE = os.environ["INVENTORY_TABLE"]
MEMBERSHIPS_ENDED_METRIC = "MembershipsEnded"

logger = Logger()
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
inventory = Table(dynamodb, INVENTORY_TABLE)
gc.freeze()
gc.enable()


def track_inventory(record: Mapping[str, Any]) -> str:
    event = parse_registry_event(record["body"])
    subject = {"thingGroupName": event.thingGroupName} if isinstance(event, ThingGroupEvent) else {
        "thingName": event.thingName
    }
    with logger.append_context_keys(eventId=event.eventId, operation=event.operation, **subject):
        recorded = record_registry_event(event, inventory, int(time.time() * 1000))
        logger.info("Inventory updated" if recorded.applied else "Stale or repeated event ignored")
        if recorded.memberships_ended:
            logger.info("Memberships of the deleted thing ended", extra={"membershipsEnded": recorded.memberships_ended})
            metrics.add_metric(name=MEMBERSHIPS_ENDED_METRIC, unit=MetricUnit.Count, value=recorded.memberships_ended)
    return "InventoryUpdated" if recorded.applied else "StaleEventsIgnored"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sqs_batch.consume(event, track_inventory, logger=logger, metrics=metrics)
