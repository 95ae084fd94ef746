"""One reading, end to end: enrich, check thresholds, store, and on a breach alert and command.

The steps are ordered so that any of them may fail and the whole be retried (IoT invokes the function
asynchronously, and Lambda retries a failed invocation): the latest state first (a retry finds it written
and leaves it), then the history item (created once; it records whether the breach was notified), then the
alert and the command, and last the mark that they were sent. A repeated message costs two conditional
writes that change nothing.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

from event_processing.dynamodb import write_or_get_current
from event_processing.sns import publish
from ingest_telemetry.enrichment import ThingDirectory
from ingest_telemetry.logic import (
    Breach,
    Thresholds,
    alert,
    breaches,
    check_timing,
    command,
    history_write,
    latest_write,
    notified_write,
)
from ingest_telemetry.models import Telemetry



class Settings(NamedTuple):
    latest_table: str
    history_table: str
    alerts_topic_arn: str
    command_prefix: str  # cmd/<app>
    history_days: int
    thresholds: Thresholds


class Outcome(NamedTuple):
    result: str  # the metric to count: ReadingsStored, ThresholdsBreached or DuplicateReadings
    breaches: tuple[Breach, ...] = ()
    latest: bool = False  # the reading is the thing's latest of its kind
    commanded: bool = False


class Notifiers(NamedTuple):
    """Clients made on first use: most readings breach nothing, and a client costs cold-start time."""

    sns: Callable[[], Any]
    iot_data: Callable[[], Any]


def ingest(
    telemetry: Telemetry, dynamodb: Any, directory: ThingDirectory, notifiers: Notifiers, settings: Settings
) -> Outcome:
    check_timing(telemetry, settings.history_days)
    thing = directory.lookup(telemetry.thingName)
    found = breaches(telemetry, settings.thresholds.for_thing(telemetry.kind, thing.groups))
    latest = write_or_get_current(dynamodb, settings.latest_table, latest_write(telemetry, thing, found))
    is_latest = latest.applied or (latest.current or {}).get("ts") == telemetry.ts
    stored = write_or_get_current(dynamodb, settings.history_table, history_write(telemetry, found, settings.history_days))
    if not stored.applied and (not found or (stored.current or {}).get("notified") is not False):
        return Outcome("DuplicateReadings", found, is_latest)
    if not found:
        return Outcome("ReadingsStored", found, is_latest)
    publish(
        notifiers.sns(),
        settings.alerts_topic_arn,
        f"{telemetry.kind} out of range on {telemetry.thingName}",
        alert(telemetry, thing, found),
        {"kind": telemetry.kind, "thingName": telemetry.thingName, "measures": sorted({b.measure for b in found})},
    )
    # A command answers the thing's present state: a late, superseded reading gets an alert and no command.
    if is_latest:
        topic, payload = command(telemetry, found, settings.command_prefix)
        notifiers.iot_data().publish(topic=topic, qos=1, payload=json.dumps(payload).encode())
    write_or_get_current(dynamodb, settings.history_table, notified_write(telemetry))
    return Outcome("ThresholdsBreached", found, is_latest, commanded=is_latest)
