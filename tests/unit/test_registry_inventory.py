"""Registry events to inventory items, on plain values: parsing, ordering, duplicates, tombstones."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings

from event_processing.fields import MalformedEvent
from events import load_event, sqs_bodies
from tests.lifecycle_histories import delivered
from tests.memory_table import MemoryTable
from tests.registry_histories import GROUPS, THING, registry_history
from track_inventory.logic import (
    TOMBSTONE_SECONDS,
    deletion_key,
    group_key,
    membership_key,
    record_registry_event,
    thing_key,
)
from track_inventory.models import ThingGroupMembershipEvent, parse_registry_event

PROCESSED_AT = 1_900_000_000_000


def apply(table: MemoryTable, *bodies: dict) -> list[bool]:
    """Each event as the function records it; whether its own write happened."""
    return [record(table, body).applied for body in bodies]


def record(table: MemoryTable, body: dict):
    return record_registry_event(parse_registry_event(json.dumps(body)), table, PROCESSED_AT)


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


def test_a_membership_removed_and_added_again_in_the_same_millisecond_ends_as_a_member_in_every_order():
    added, removed, added_again = sqs_bodies("track_inventory/membership_readded_same_millisecond")
    assert removed["timestamp"] == added_again["timestamp"] and removed["membershipId"] != added_again["membershipId"]
    items = []
    for order in itertools.permutations([added, removed, added_again]):
        table = MemoryTable()
        apply(table, *order, *order)  # and each delivered twice
        items.append(table.get(**membership_key("MyThing", "MyChildThingGroup")))
    assert all(item == items[0] for item in items)
    assert (items[0]["member"], items[0]["membershipId"]) == (True, added_again["membershipId"])
    assert "expiresAt" not in items[0]


def test_a_membership_added_and_removed_in_the_same_millisecond_ends_removed_in_either_order():
    added, removed, _ = sqs_bodies("track_inventory/membership_readded_same_millisecond")
    added = added | {"timestamp": removed["timestamp"]}
    for order in ([added, removed], [removed, added]):
        table = MemoryTable()
        apply(table, *order)
        item = table.get(**membership_key("MyThing", "MyChildThingGroup"))
        assert (item["member"], item["membershipId"]) == (False, removed["membershipId"])


def _memberships(table: MemoryTable) -> dict[str, dict]:
    return {group: table.get(**membership_key("MyThing", group)) for group in ("MyChildThingGroup", "MyRootThingGroup")}


def test_deleting_a_thing_ends_its_memberships_and_a_late_addition_cannot_revive_them():
    created, added_child, added_root, deleted, late_repeat = sqs_bodies("track_inventory/thing_deleted_with_memberships")
    table = MemoryTable()
    outcomes = [record(table, body) for body in (created, added_child, added_root, deleted, late_repeat)]
    assert [(o.applied, o.memberships_ended) for o in outcomes] == [(True, 0), (True, 0), (True, 0), (True, 2), (False, 0)]
    for group, item in _memberships(table).items():
        assert item == {
            **membership_key("MyThing", group),
            "thingName": "MyThing",
            "thingGroupName": group,
            "thingId": deleted["thingId"],
            "member": False,
            "thingDeleted": True,
            "eventTimestamp": deleted["timestamp"],
            "updatedAt": PROCESSED_AT,
            "expiresAt": PROCESSED_AT // 1000 + TOMBSTONE_SECONDS,
        }
    assert table.get(**deletion_key("MyThing", deleted["thingId"]))["eventTimestamp"] == deleted["timestamp"]


def test_memberships_delivered_after_their_things_deletion_end_all_the_same():
    created, added_child, added_root, deleted, _ = sqs_bodies("track_inventory/thing_deleted_with_memberships")
    in_order, deletion_first = MemoryTable(), MemoryTable()
    apply(in_order, created, added_child, added_root, deleted)
    assert [record(deletion_first, body).memberships_ended for body in (deleted, created, added_root, added_child)] == [0, 0, 1, 1]
    assert deletion_first.items == in_order.items
    assert all(item["member"] is False for item in _memberships(deletion_first).values())


def test_memberships_of_a_thing_created_again_under_the_name_are_not_ended_by_the_old_deletion():
    created, added_child, _, deleted, _ = sqs_bodies("track_inventory/thing_deleted_with_memberships")
    later = deleted["timestamp"] + 1_000
    recreated = created | {"thingId": "new-thing-id", "timestamp": later, "eventId": "again"}
    added_to_new = added_child | {"thingId": "new-thing-id", "timestamp": later + 1, "membershipId": "new", "eventId": "n"}
    table = MemoryTable()
    # The new thing's events first; the old thing's addition and deletion arrive late.
    apply(table, recreated, added_to_new, added_child, deleted)
    item = table.get(**membership_key("MyThing", "MyChildThingGroup"))
    assert (item["member"], item["thingId"], item["membershipId"]) == (True, "new-thing-id", "new")
    assert "thingDeleted" not in item


def test_a_deletion_in_the_same_millisecond_as_an_addition_of_that_thing_ends_it():
    created, added_child, _, deleted, _ = sqs_bodies("track_inventory/thing_deleted_with_memberships")
    added_child = added_child | {"timestamp": deleted["timestamp"]}
    for order in ([created, added_child, deleted], [created, deleted, added_child]):
        table = MemoryTable()
        apply(table, *order)
        assert table.get(**membership_key("MyThing", "MyChildThingGroup"))["thingDeleted"] is True


def _membership_state(table: MemoryTable) -> dict[str, bool]:
    items = {group: table.get(**membership_key(THING, group)) for group in GROUPS}
    return {group: bool(item and item["member"]) for group, item in items.items()}


@settings(max_examples=300, deadline=None)
@given(data=registry_history().flatmap(lambda made: delivered(made[0]).map(lambda order: (made, order))))
def test_any_delivery_order_with_duplicates_ends_in_the_items_of_the_in_order_sequence(data):
    (history, truth), delivery = data
    in_order, shuffled = MemoryTable(), MemoryTable()
    apply(in_order, *(event.body for event in history))
    apply(shuffled, *delivery)
    assert shuffled.items == in_order.items
    assert _membership_state(in_order) == {group: group in truth.groups for group in GROUPS}
