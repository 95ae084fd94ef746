"""ingest_telemetry's decisions as plain values: parsing, thresholds, breaches, the registry cache."""

from __future__ import annotations

import pytest

from event_processing.fields import MalformedEvent
from events import load_event
from ingest_telemetry.enrichment import ThingDirectory
from ingest_telemetry.logic import Limit, Thresholds, breaches, check_timing
from ingest_telemetry.models import Thing, parse_telemetry

SOIL = load_event("ingest_telemetry/soil_valid")  # moisture 34.0, temperature 16.2


def soil(**changes: object) -> dict:
    return {**SOIL, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kind": "weather"}, "kind must be one of environment, soil, power"),
        ({"thingName": "soil/sensor"}, "thingName must be a thing name (1-128 of a-z, A-Z, 0-9, :, _ and -)"),
        ({"ts": 1.5}, "ts must be a whole number >= 0"),
        ({"ts": True}, "ts must be a whole number >= 0"),
        ({"moisture": None}, "moisture must be a number"),
        ({"moisture": True}, "moisture must be a number"),
        ({"moisture": float("nan")}, "moisture must be a number"),
        ({"moisture": -0.1}, "moisture must be from 0 to 100; a sensor cannot report more"),
        ({"temperature": 85.5}, "temperature must be from -40 to 85; a sensor cannot report more"),
        ({"clientId": ""}, "clientId must be a non-empty string"),
    ],
)
def test_an_invalid_reading_is_refused_naming_the_field(changes, reason):
    with pytest.raises(MalformedEvent) as refused:
        parse_telemetry(soil(**changes))
    assert str(refused.value) == reason


def test_a_reading_parses_into_its_kinds_typed_model():
    telemetry = parse_telemetry(SOIL)
    assert type(telemetry.reading).__name__ == "Soil"
    assert telemetry.reading._asdict() == {"moisture": 34.0, "temperature": 16.2}
    assert telemetry.identity == f"soil-sensor-01/soil/{SOIL['ts']}"


def test_the_physical_range_ends_are_valid_readings():
    assert parse_telemetry(soil(moisture=0, temperature=85)).reading == (0, 85)


@pytest.mark.parametrize(
    ("offset_ms", "refused"),
    [(5 * 60 * 1000, False), (5 * 60 * 1000 + 1, True), (-30 * 86_400_000, False), (-30 * 86_400_000 - 1, True)],
)
def test_a_reading_must_be_timed_between_the_history_limit_and_five_minutes_ahead(offset_ms, refused):
    telemetry = parse_telemetry(soil(ts=SOIL["receivedAt"] + offset_ms))
    if refused:
        with pytest.raises(MalformedEvent):
            check_timing(telemetry, history_days=30)
    else:
        check_timing(telemetry, history_days=30)


THRESHOLDS = Thresholds(
    default={"soil": {"moisture": Limit(20, None), "temperature": Limit(0, 30)}},
    groups={
        "seedlings": {"soil": {"moisture": Limit(40, None)}},
        "north": {"soil": {"temperature": Limit(None, 25), "moisture": Limit(10, 80)}},
    },
)


def test_a_group_tightens_and_never_loosens_the_limits():
    assert THRESHOLDS.for_thing("soil", []) == {"moisture": Limit(20, None), "temperature": Limit(0, 30)}
    assert THRESHOLDS.for_thing("soil", ["north"]) == {"moisture": Limit(20, 80), "temperature": Limit(0, 25)}
    assert THRESHOLDS.for_thing("soil", ["north", "seedlings"])["moisture"] == Limit(40, 80)
    assert THRESHOLDS.for_thing("power", ["north"]) == {}


def test_thresholds_read_the_stacks_json():
    text = '{"default":{"soil":{"moisture":{"min":20}}},"groups":{"seedlings":{"soil":{"moisture":{"min":40,"max":90}}}}}'
    assert Thresholds.from_json(text) == Thresholds(
        {"soil": {"moisture": Limit(20, None)}}, {"seedlings": {"soil": {"moisture": Limit(40, 90)}}}
    )


@pytest.mark.parametrize(
    ("moisture", "temperature", "expected"),
    [
        (20, 30, []),  # equal to a limit is within it
        (19.99, 30, [("moisture", "min", 20)]),
        (50, 30.01, [("temperature", "max", 30)]),
        (5, -1, [("moisture", "min", 20), ("temperature", "min", 0)]),
    ],
)
def test_breaches_are_the_measures_outside_their_limits(moisture, temperature, expected):
    telemetry = parse_telemetry(soil(moisture=moisture, temperature=temperature))
    found = breaches(telemetry, THRESHOLDS.for_thing("soil", []))
    assert [(b.measure, b.bound, b.limit) for b in found] == expected


class Registry:
    """IoT's DescribeThing and ListThingGroupsForThing, counting calls."""

    def __init__(self, things: dict[str, list[str]]) -> None:
        self.things = things
        self.calls = 0

    def describe_thing(self, thingName: str) -> dict:
        from botocore.exceptions import ClientError

        self.calls += 1
        if thingName not in self.things:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "DescribeThing")
        return {"thingName": thingName, "attributes": {"site": "a"}}

    def get_paginator(self, operation: str) -> Registry:
        assert operation == "list_thing_groups_for_thing"
        return self

    def paginate(self, thingName: str) -> list[dict]:
        groups = self.things[thingName]
        return [{"thingGroups": [{"groupName": g} for g in groups[:1]]}, {"thingGroups": [{"groupName": g} for g in groups[1:]]}]


def test_the_registry_is_read_again_after_the_cache_period():
    now = [0.0]
    registry = Registry({"a": ["z-group", "b-group"]})
    directory = ThingDirectory(registry, ttl_seconds=300, clock=lambda: now[0])
    assert directory.lookup("a") == Thing(True, None, {"site": "a"}, ("b-group", "z-group"))  # every page read
    now[0] = 299
    directory.lookup("a")
    assert registry.calls == 1
    now[0] = 300
    directory.lookup("a")
    assert registry.calls == 2


def test_an_unregistered_thing_is_remembered_too():
    registry = Registry({})
    directory = ThingDirectory(registry, ttl_seconds=300, clock=lambda: 0.0)
    assert directory.lookup("ghost") == directory.lookup("ghost") == Thing(registered=False)
    assert registry.calls == 1


def test_a_flood_of_thing_names_cannot_grow_the_cache_beyond_its_bound():
    registry = Registry({f"t{n}": [] for n in range(50)})
    directory = ThingDirectory(registry, ttl_seconds=300, clock=lambda: 0.0, max_things=10)
    for n in range(50):
        directory.lookup(f"t{n}")
    directory.lookup("t49")  # recent: still cached
    assert registry.calls == 50
    directory.lookup("t0")  # the least recently used left first
    assert registry.calls == 51
