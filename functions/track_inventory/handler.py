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

from event_processing import sqs_batch
from event_processing.dynamodb import write_conditionally
from track_inventory.logic import inventory_write
from track_inventory.models import ThingGroupEvent, parse_registry_event

INVENTORY_TABLE = os.environ["INVENTORY_TABLE"]

logger = Logger()
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
gc.freeze()
gc.enable()


def track_inventory(record: Mapping[str, Any]) -> str:
    event = parse_registry_event(record["body"])
    subject = {"thingGroupName": event.thingGroupName} if isinstance(event, ThingGroupEvent) else {
        "thingName": event.thingName
    }
    with logger.append_context_keys(eventId=event.eventId, operation=event.operation, **subject):
        applied = write_conditionally(dynamodb, INVENTORY_TABLE, inventory_write(event, int(time.time() * 1000)))
        logger.info("Inventory updated" if applied else "Stale or repeated event ignored")
    return "InventoryUpdated" if applied else "StaleEventsIgnored"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sqs_batch.consume(event, track_inventory, logger=logger, metrics=metrics)
