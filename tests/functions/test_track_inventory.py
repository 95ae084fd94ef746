"""track_inventory on SQS batches from events/, against DynamoDB and SQS in moto."""

from __future__ import annotations

from events import load_event
from tests.functions.conftest import emitted


def test_thing_group_and_membership_are_recorded(inventory, capsys):
    assert inventory.invoke(load_event("track_inventory/group_membership")) == {"batchItemFailures": []}
    thing = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="THING")
    assert thing["versionNumber"] == 1 and thing["deleted"] is False
    assert inventory.item("INVENTORY_TABLE", pk="GROUP#MyChildThingGroup", sk="GROUP")["versionNumber"] == 1
    assert inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="GROUP#MyChildThingGroup")["member"] is True
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"InventoryUpdated": 3}
    assert {line.get("thingName") for line in logs if line["message"] == "Inventory updated"} == {"MyThing", None}


def test_updates_delivered_out_of_order_and_twice_end_at_the_newest_version(inventory, capsys):
    inventory.invoke(load_event("track_inventory/out_of_order"))
    thing = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="THING")
    assert thing["versionNumber"] == 3 and thing["attributes"] == {"attribute1": "newValue1", "firmware": "2.4.1"}
    assert emitted(capsys.readouterr().out)[1] == {"InventoryUpdated": 1, "StaleEventsIgnored": 3}


def test_deleted_thing_stays_as_an_expiring_tombstone(inventory):
    inventory.invoke(load_event("track_inventory/thing_created"))
    inventory.invoke(load_event("track_inventory/thing_deleted"))
    inventory.invoke(load_event("track_inventory/thing_updated"))
    thing = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="THING")
    assert thing["deleted"] is True and thing["expiresAt"] > 0


def test_malformed_registry_events_are_kept_in_the_dead_letter_queue(inventory, capsys):
    event = load_event("track_inventory/malformed")
    assert inventory.invoke(event) == {"batchItemFailures": []}
    assert len(inventory.dead_letters()) == 4
    assert emitted(capsys.readouterr().out)[1] == {"InventoryUpdated": 1, "MalformedEvents": 4}


def test_deleting_a_thing_ends_its_memberships_with_one_query_and_a_late_addition_cannot_revive_them(inventory, capsys):
    assert inventory.invoke(load_event("track_inventory/thing_deleted_with_memberships")) == {"batchItemFailures": []}
    for group in ("MyChildThingGroup", "MyRootThingGroup"):
        membership = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk=f"GROUP#{group}")
        assert (membership["member"], membership["thingDeleted"]) == (False, True)
        assert "membershipId" not in membership
    logs, metrics = emitted(capsys.readouterr().out)
    # The late repeat of an addition is stale: the deletion's end of the membership is newer.
    assert metrics == {"InventoryUpdated": 4, "StaleEventsIgnored": 1, "MembershipsEnded": 2}
    ended = [line for line in logs if line["message"] == "Memberships of the deleted thing ended"]
    assert [(line["thingName"], line["membershipsEnded"]) for line in ended] == [("MyThing", 2)]


def test_a_membership_event_processed_after_its_things_deletion_reads_the_deletion_and_ends(inventory, capsys):
    created, added_child, _, deleted, _ = load_event("track_inventory/thing_deleted_with_memberships")["Records"]
    inventory.invoke({"Records": [created, deleted]})
    inventory.invoke({"Records": [added_child]})
    membership = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="GROUP#MyChildThingGroup")
    assert (membership["member"], membership["thingDeleted"]) == (False, True)
    assert emitted(capsys.readouterr().out)[1] == {"InventoryUpdated": 3, "MembershipsEnded": 1}


def test_a_membership_removed_and_added_again_in_the_same_millisecond_is_a_member(inventory):
    event = load_event("track_inventory/membership_readded_same_millisecond")
    added, removed, added_again = event["Records"]
    inventory.invoke({"Records": [added, added_again, removed]})
    membership = inventory.item("INVENTORY_TABLE", pk="THING#MyThing", sk="GROUP#MyChildThingGroup")
    assert (membership["member"], membership["membershipId"]) == (True, "3f1c9e0a-6b7d-4e2f-8a9b-0c1d2e3f4a5b")
