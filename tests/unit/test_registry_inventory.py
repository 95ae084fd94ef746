"""Registry events to inventory items, on plain values: parsing, ordering, duplicates, tombstones."""

from __future__ import annotations

import json

import pytest

from event_processing.fields import MalformedEvent
from events import load_event, sqs_bodies
from tests.memory_table import MemoryTable
from track_inventory.logic import TOMBSTONE_SECONDS, group_key, inventory_write, membership_key, thing_key
from track_inventory.models import ThingGroupMembershipEvent, parse_registry_event

PROCESSED_AT = 1_900_000_000_000


def apply(table: MemoryTable, *bodies: dict) -> list[bool]:
    return [table.write(inventory_write(parse_registry_event(json.dumps(body)), PROCESSED_AT)) for body in bodies]


def test_created_thing_is_recorded_with_its_attributes_and_version():
    table = MemoryTable()
    assert apply(table, *sqs_bodies("track_inventory/thing_created")) == [True]
    assert table.get(**thing_key("MyThing")) == {
        **thing_key("MyThing"),
        "thingName": "MyThing",
        "thingId": "b604f69c-aa9a-4d4a-829e-c480e958a0b5",
        "attributes": {"attribute3": "value3", "attribute1": "value1", "attribute2": "value2"},
        "versionNumber": 1,
        "deleted": False,
        "eventTimestamp": 1502210967087,
        "updatedAt": PROCESSED_AT,
    }


def test_update_replaces_type_and_attributes():
    table = MemoryTable()
    apply(table, *sqs_bodies("track_inventory/thing_created"), *sqs_bodies("track_inventory/thing_updated"))
    item = table.get(**thing_key("MyThing"))
    assert (item["versionNumber"], item["thingTypeName"], item["attributes"]["attribute1"]) == (2, "Thermostat", "newValue1")


def test_stale_and_repeated_updates_are_ignored():
    table = MemoryTable()
    # v3 first, then the late v1 and v2, then v3 again
    assert apply(table, *sqs_bodies("track_inventory/out_of_order")) == [True, False, False, False]
    item = table.get(**thing_key("MyThing"))
    assert item["versionNumber"] == 3 and item["attributes"] == {"attribute1": "newValue1", "firmware": "2.4.1"}


def test_delete_leaves_a_tombstone_that_expires_and_that_a_late_update_cannot_revive():
    table = MemoryTable()
    created, updated = sqs_bodies("track_inventory/thing_created")[0], sqs_bodies("track_inventory/thing_updated")[0]
    (deleted,) = sqs_bodies("track_inventory/thing_deleted")
    assert deleted["versionNumber"] == updated["versionNumber"]  # a delete repeats the last version
    assert apply(table, created, deleted, updated, created) == [True, True, False, False]
    item = table.get(**thing_key("MyThing"))
    assert item["deleted"] is True
    assert item["expiresAt"] == PROCESSED_AT // 1000 + TOMBSTONE_SECONDS


def test_a_thing_created_again_under_a_deleted_name_is_a_new_thing():
    table = MemoryTable()
    (deleted,) = sqs_bodies("track_inventory/thing_deleted")
    recreated = sqs_bodies("track_inventory/thing_created")[0] | {
        "thingId": "new-thing-id", "timestamp": deleted["timestamp"] + 1000, "eventId": "again"
    }
    stale_of_old = sqs_bodies("track_inventory/thing_updated")[0]
    assert apply(table, deleted, recreated, stale_of_old) == [True, True, False]
    item = table.get(**thing_key("MyThing"))
    assert (item["thingId"], item["deleted"], item["versionNumber"]) == ("new-thing-id", False, 1)
    assert "expiresAt" not in item


def test_group_and_membership_are_recorded_under_the_thing():
    table = MemoryTable()
    assert apply(table, *sqs_bodies("track_inventory/group_membership")) == [True, True, True]
    assert table.get(**group_key("MyChildThingGroup"))["description"] == "My child thing group"
    membership = table.get(**membership_key("MyThing", "MyChildThingGroup"))
    assert (membership["member"], membership["thingId"]) == (True, "b604f69c-aa9a-4d4a-829e-c480e958a0b5")


def test_removal_arriving_before_the_addition_leaves_the_thing_out_of_the_group():
    table = MemoryTable()
    assert apply(table, *sqs_bodies("track_inventory/membership_removed_out_of_order")) == [True, False]
    assert table.get(**membership_key("MyThing", "MyChildThingGroup"))["member"] is False


def test_membership_names_come_from_the_arns():
    added = parse_registry_event(json.dumps(sqs_bodies("track_inventory/group_membership")[2]))
    assert isinstance(added, ThingGroupMembershipEvent)
    assert (added.thingName, added.thingGroupName) == ("MyThing", "MyChildThingGroup")


@pytest.mark.parametrize(
    "index, reason",
    [
        (1, "eventType must be one of THING_EVENT, THING_GROUP_EVENT, THING_GROUP_MEMBERSHIP_EVENT, thingEvent"),
        (2, "thingArn is not an IoT thing ARN"),
        (3, "versionNumber must be a whole number >= 0"),
        (4, "thingName must be 1-128 characters"),
    ],
)
def test_each_malformed_sample_is_rejected_with_a_reason(index, reason):
    body = load_event("track_inventory/malformed")["Records"][index]["body"]
    with pytest.raises(MalformedEvent, match=reason):
        parse_registry_event(body)


def test_attributes_must_be_strings():
    body = sqs_bodies("track_inventory/thing_created")[0] | {"attributes": {"count": 3}}
    with pytest.raises(MalformedEvent, match="attributes"):
        parse_registry_event(json.dumps(body))


def test_the_2018_spelling_of_the_event_types_is_still_accepted():
    table = MemoryTable()
    assert apply(table, *sqs_bodies("track_inventory/format_2018")) == [True, True, True]
    assert table.get(**membership_key("MyThing", "MyChildThingGroup"))["member"] is True
    assert table.get(**group_key("MyChildThingGroup"))["parentGroupName"] == "MyRootThingGroup"
