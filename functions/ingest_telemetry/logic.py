"""What to do with a valid reading, as plain values: its thresholds, its breaches, the two writes that store
it, the alert and the command. No AWS here; ingest.py performs what this module decides.

Idempotency comes from the writes' conditions. The latest state changes only for a newer reading, and the
history item is created only if absent. A repeated message therefore changes nothing, and the history item
remembers whether the alert and command of a breach were sent, so a retry after a crash finishes the job
instead of either skipping it or sending it twice.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterable, Mapping, NamedTuple

from event_processing.conditional_writes import Attr, ConditionalWrite, Update
from event_processing.fields import MalformedEvent
from ingest_telemetry.kinds import KINDS
from ingest_telemetry.models import Telemetry, Thing

# A device clock this far ahead of IoT's is wrong: such a reading would stay "latest" until the clock
# caught up, hiding every real one.
MAX_CLOCK_AHEAD_MS = 5 * 60 * 1000
DAY_MS = 24 * 60 * 60 * 1000
COMMAND = "threshold"  # cmd/<app>/<thing>/threshold


class Limit(NamedTuple):
    low: float | None = None
    high: float | None = None

    def tightened(self, other: Limit) -> Limit:
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        return Limit(max(lows) if lows else None, min(highs) if highs else None)


Limits = Mapping[str, Mapping[str, Limit]]  # kind -> measure -> limit


class Thresholds(NamedTuple):
    """The configured limits: for every thing, and per thing group. A thing in several groups gets the
    strictest limit of each (the highest minimum, the lowest maximum): a group can tighten, never loosen."""

    default: Limits
    groups: Mapping[str, Limits]

    @classmethod
    def from_json(cls, text: str) -> Thresholds:
        document = json.loads(text)

        def limits(by_kind: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Limits:
            return {
                kind: {measure: Limit(bounds.get("min"), bounds.get("max")) for measure, bounds in measures.items()}
                for kind, measures in by_kind.items()
            }

        return cls(limits(document["default"]), {group: limits(g) for group, g in document["groups"].items()})

    def for_thing(self, kind: str, groups: Iterable[str]) -> dict[str, Limit]:
        merged = dict(self.default.get(kind, {}))
        for group in sorted(groups):
            for measure, limit in self.groups.get(group, {}).get(kind, {}).items():
                merged[measure] = merged.get(measure, Limit()).tightened(limit)
        return merged


class Breach(NamedTuple):
    measure: str
    value: float
    bound: str  # "min" or "max"
    limit: float

    def as_dict(self, kind: str) -> dict[str, Any]:
        unit = KINDS[kind].measures[self.measure].unit
        return {"measure": self.measure, "value": self.value, "bound": self.bound, "limit": self.limit, "unit": unit}


def check_timing(telemetry: Telemetry, history_days: int) -> None:
    """Refuses readings whose time cannot be right, so they can neither pin the latest state nor expire at once."""
    if telemetry.ts > telemetry.receivedAt + MAX_CLOCK_AHEAD_MS:
        raise MalformedEvent("ts is more than 5 minutes after IoT received the message (the device clock is ahead)")
    if telemetry.ts < telemetry.receivedAt - history_days * DAY_MS:
        raise MalformedEvent(f"ts is older than the {history_days} days the history keeps")


def breaches(telemetry: Telemetry, limits: Mapping[str, Limit]) -> tuple[Breach, ...]:
    """Measures outside their limits; a value equal to a limit is within it."""
    found = []
    for measure, value in zip(telemetry.reading._fields, telemetry.reading):
        limit = limits.get(measure)
        if limit is None:
            continue
        if limit.low is not None and value < limit.low:
            found.append(Breach(measure, value, "min", limit.low))
        elif limit.high is not None and value > limit.high:
            found.append(Breach(measure, value, "max", limit.high))
    return tuple(found)


def _number(value: float) -> Decimal:
    # DynamoDB numbers are decimal; repr gives the shortest text that reads back as the same float.
    return Decimal(repr(value))


def _measures(telemetry: Telemetry) -> dict[str, Decimal]:
    return {measure: _number(value) for measure, value in zip(telemetry.reading._fields, telemetry.reading)}


def latest_write(telemetry: Telemetry, thing: Thing, found: tuple[Breach, ...]) -> ConditionalWrite:
    """The thing's latest state of this kind: written only by a newer reading than the one it holds."""
    return ConditionalWrite(
        key={"thingName": telemetry.thingName, "kind": telemetry.kind},
        update=Update(
            set={
                "ts": telemetry.ts,
                "receivedAt": telemetry.receivedAt,
                "clientId": telemetry.clientId,
                "reading": _measures(telemetry),
                "breaches": [_stored(b, telemetry.kind) for b in found],
                "registered": thing.registered,
                "thingTypeName": thing.thingTypeName,
                "attributes": dict(thing.attributes),
                "thingGroups": list(thing.groups),
            }
        ),
        condition=Attr("ts").missing() | Attr("ts").lt(telemetry.ts),
    )


def series(telemetry: Telemetry) -> str:
    return f"{telemetry.thingName}#{telemetry.kind}"


def history_write(telemetry: Telemetry, found: tuple[Breach, ...], history_days: int) -> ConditionalWrite:
    """The reading in the thing's history of this kind, created once; `notified` is false until the alert and
    the command of its breaches have been sent."""
    values: dict[str, Any] = {
        "receivedAt": telemetry.receivedAt,
        "clientId": telemetry.clientId,
        "reading": _measures(telemetry),
        # DynamoDB's TTL is in epoch seconds.
        "expiresAt": (telemetry.ts + history_days * DAY_MS) // 1000,
    }
    if found:
        values["breaches"] = [_stored(b, telemetry.kind) for b in found]
        values["notified"] = False
    return ConditionalWrite(
        key={"series": series(telemetry), "ts": telemetry.ts}, update=Update(set=values), condition=Attr("series").missing()
    )


def notified_write(telemetry: Telemetry) -> ConditionalWrite:
    return ConditionalWrite(
        key={"series": series(telemetry), "ts": telemetry.ts},
        update=Update(set={"notified": True}),
        condition=Attr("series").exists(),
    )


def _stored(breach: Breach, kind: str) -> dict[str, Any]:
    stored = breach.as_dict(kind)
    stored["value"], stored["limit"] = _number(breach.value), _number(breach.limit)
    return stored


def alert(telemetry: Telemetry, thing: Thing, found: tuple[Breach, ...]) -> dict[str, Any]:
    """The SNS alert: what was out of range, on which thing, and what the registry says about it."""
    return {
        "alertId": telemetry.identity,
        "thingName": telemetry.thingName,
        "kind": telemetry.kind,
        "ts": telemetry.ts,
        "receivedAt": telemetry.receivedAt,
        "reading": telemetry.reading._asdict(),
        "breaches": [b.as_dict(telemetry.kind) for b in found],
        "registered": thing.registered,
        "thingTypeName": thing.thingTypeName,
        "attributes": dict(thing.attributes),
        "thingGroups": list(thing.groups),
    }


def command(telemetry: Telemetry, found: tuple[Breach, ...], command_prefix: str) -> tuple[str, dict[str, Any]]:
    """The command to the device on its command topic. `commandId` repeats if the command is sent again, so
    the device can act on it once."""
    topic = f"{command_prefix}/{telemetry.thingName}/{COMMAND}"
    return topic, {
        "commandId": telemetry.identity,
        "kind": telemetry.kind,
        "ts": telemetry.ts,
        "breaches": [{k: v for k, v in b.as_dict(telemetry.kind).items() if k != "unit"} for b in found],
    }
