"""The kinds of device data, one typed model each: what a device publishes on `dt/<app>/<thing>/<kind>`.

Every payload carries `ts`, the device's time of the reading in epoch milliseconds, which with the thing and
the kind is the message's identity; the rest are the kind's measures, each a number within the range a
sensor can physically report (outside it, the reading is invalid rather than alarming).

This module is plain Python with no imports from the project: the app's stack reads it too, so that each
kind's rule selects exactly the fields its model reads, and the configuration's thresholds name only
measures that exist.
"""

from __future__ import annotations

from typing import NamedTuple


class Measure(NamedTuple):
    unit: str
    low: float  # the physically possible range, both ends included
    high: float


class Environment(NamedTuple):
    """The air around the device."""

    temperature: float
    humidity: float


class Soil(NamedTuple):
    """A soil probe."""

    moisture: float
    temperature: float


class Power(NamedTuple):
    """The device's own supply."""

    battery: float
    voltage: float


Reading = Environment | Soil | Power


class Kind(NamedTuple):
    model: type[Reading]
    measures: dict[str, Measure]  # in the model's field order


KINDS: dict[str, Kind] = {
    "environment": Kind(
        Environment, {"temperature": Measure("°C", -40, 85), "humidity": Measure("% relative humidity", 0, 100)}
    ),
    "soil": Kind(Soil, {"moisture": Measure("% volumetric water content", 0, 100), "temperature": Measure("°C", -40, 85)}),
    "power": Kind(Power, {"battery": Measure("% charge", 0, 100), "voltage": Measure("V", 0, 60)}),
}

# A thing name as IoT allows it (it is the third topic level).
THING_NAME_PATTERN = r"[a-zA-Z0-9:_-]{1,128}"


def telemetry_topic(application: str, thing: str, kind: str) -> str:
    """Where a device publishes its readings of `kind` (`thing` may be the MQTT wildcard `+` in a filter)."""
    return f"dt/{application}/{thing}/{kind}"
