"""Telemetry as the kind's rule hands it to the function: the payload's fields the rule selected, with
topic(3) AS thingName, topic(4) AS kind, clientid() AS clientId and timestamp() AS receivedAt.

Every reader is strict and names the field, never its value: a payload is the device's data, and a hostile
device must not be able to write into our logs.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, NamedTuple

from event_processing.fields import MalformedEvent, decode_object, one_of, text, whole_number
from ingest_telemetry.kinds import KINDS, THING_NAME_PATTERN, Reading

_THING_NAME = re.compile(THING_NAME_PATTERN)
CLIENT_ID_MAX_LENGTH = 128


class Telemetry(NamedTuple):
    thingName: str
    kind: str
    clientId: str
    ts: int  # the device's time of the reading, epoch ms: with thingName and kind, the message's identity
    receivedAt: int  # IoT's time of receipt, epoch ms
    reading: Reading

    @property
    def identity(self) -> str:
        return f"{self.thingName}/{self.kind}/{self.ts}"


class Thing(NamedTuple):
    """What the registry says about the thing that published."""

    registered: bool
    thingTypeName: str | None = None
    attributes: Mapping[str, str] = {}
    groups: tuple[str, ...] = ()


def parse_telemetry(body: str | Mapping[str, Any]) -> Telemetry:
    event = decode_object(body)
    kind = one_of(event, "kind", tuple(KINDS))
    thing_name = text(event, "thingName", max_length=128)
    if not _THING_NAME.fullmatch(thing_name):
        raise MalformedEvent("thingName must be a thing name (1-128 of a-z, A-Z, 0-9, :, _ and -)")
    spec = KINDS[kind]
    return Telemetry(
        thingName=thing_name,
        kind=kind,
        clientId=text(event, "clientId", max_length=CLIENT_ID_MAX_LENGTH),
        ts=whole_number(event, "ts"),
        receivedAt=whole_number(event, "receivedAt"),
        reading=spec.model(*(_measure(event, name, measure.low, measure.high) for name, measure in spec.measures.items())),
    )


def _measure(event: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = event.get(name)
    # bool is an int subclass; a JSON true is not a measurement.
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise MalformedEvent(f"{name} must be a number")
    if not low <= value <= high:
        raise MalformedEvent(f"{name} must be from {low:g} to {high:g}; a sensor cannot report more")
    return value
