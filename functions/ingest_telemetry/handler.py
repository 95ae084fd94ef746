"""Device telemetry from the kinds' topic rules (IoT invokes the function asynchronously, one message each):
validated, enriched, stored, and checked against thresholds, with an alert and a command on a breach."""

from __future__ import annotations

import gc

# See track_presence.handler: no garbage collection while the container initialises.
gc.disable()

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from event_processing.fields import MalformedEvent
from event_processing.rejections import reject
from ingest_telemetry.enrichment import ThingDirectory
from ingest_telemetry.ingest import Notifiers, Settings, ingest
from ingest_telemetry.logic import Thresholds
from ingest_telemetry.models import parse_telemetry

REJECTED_METRIC = "ReadingsRejected"

SETTINGS = Settings(
    latest_table=os.environ["LATEST_TABLE"],
    history_table=os.environ["HISTORY_TABLE"],
    alerts_topic_arn=os.environ["ALERTS_TOPIC_ARN"],
    command_prefix=os.environ["COMMAND_TOPIC_PREFIX"],
    history_days=int(os.environ["HISTORY_DAYS"]),
    thresholds=Thresholds.from_json(os.environ["THRESHOLDS"]),
)

logger = Logger()
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
directory = ThingDirectory(boto3.client("iot"), float(os.environ["ENRICHMENT_CACHE_SECONDS"]))
_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    if service not in _clients:
        _clients[service] = boto3.client(service)
    return _clients[service]


notifiers = Notifiers(sns=lambda: _client("sns"), iot_data=lambda: _client("iot-data"))
gc.freeze()
gc.enable()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        telemetry = parse_telemetry(event)
        with logger.append_context_keys(thingName=telemetry.thingName, kind=telemetry.kind, ts=telemetry.ts):
            outcome = ingest(telemetry, dynamodb, directory, notifiers, SETTINGS)
            logger.info(
                outcome.result,
                extra={"breaches": [b.measure for b in outcome.breaches], "latest": outcome.latest, "commanded": outcome.commanded},
            )
    except MalformedEvent as rejection:
        # Kept with its reason, not retried: the same payload would fail the same way every time.
        reject(json.dumps(event), str(rejection), {"rejectedBy": context.function_name})
        logger.warning("Reading rejected to the dead-letter queue", extra={"reason": str(rejection)})
        metrics.add_metric(name=REJECTED_METRIC, unit=MetricUnit.Count, value=1)
        return {"result": REJECTED_METRIC, "reason": str(rejection)}
    metrics.add_metric(name=outcome.result, unit=MetricUnit.Count, value=1)
    return {"result": outcome.result, "breaches": [b.measure for b in outcome.breaches]}
