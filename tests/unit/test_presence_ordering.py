"""The ordering of lifecycle events, on plain values: which event wins, for every documented case."""

from __future__ import annotations

import json

from hypothesis import given, settings

from events import sqs_bodies
from tests.lifecycle_histories import MINUTE, delivered, fleet_history
from tests.memory_table import MemoryTable
from track_presence.logic import connectivity_write
from track_presence.models import parse_lifecycle_event

PROCESSED_AT = 1_900_000_000_000


def apply(table: MemoryTable, *bodies: dict) -> list[bool]:
    return [table.write(connectivity_write(parse_lifecycle_event(json.dumps(body)), PROCESSED_AT)) for body in bodies]


def state(table: MemoryTable, client_id: str) -> dict:
    return table.get(clientId=client_id)


def test_connect_then_disconnect_leaves_the_client_offline_since_the_disconnect():
    table = MemoryTable()
    (connected,), (disconnected,) = sqs_bodies("track_presence/connected"), sqs_bodies("track_presence/disconnected")
    assert apply(table, connected, disconnected) == [True, True]
    item = state(table, "sensor-0042")
    assert item == {
        "clientId": "sensor-0042",
        "connected": False,
        "since": disconnected["timestamp"],
        "sessionIdentifier": connected["sessionIdentifier"],
        "principalIdentifier": connected["principalIdentifier"],
        "versionNumber": 12,
        "disconnectReason": "CLIENT_INITIATED_DISCONNECT",
        "clientInitiatedDisconnect": True,
        "updatedAt": PROCESSED_AT,
    }


def test_repeated_events_are_ignored_and_change_nothing():
    table = MemoryTable()
    assert apply(table, *sqs_bodies("track_presence/duplicate")) == [True, False, True, False]
    assert state(table, "sensor-0042")["connected"] is False


def test_out_of_order_events_end_in_the_newest_connection():
    table = MemoryTable()
    # connect v13, then the older connection's disconnect v12 and connect v12 arrive late
    assert apply(table, *sqs_bodies("track_presence/out_of_order")) == [True, False, False]
    item = state(table, "sensor-0042")
    assert (item["connected"], item["versionNumber"]) == (True, 13)


def test_disconnect_of_the_replaced_connection_does_not_mark_the_new_one_offline():
    table = MemoryTable()
    connect_new, kicked_old = sqs_bodies("track_presence/stale_session")
    assert kicked_old["disconnectReason"] == "DUPLICATE_CLIENTID"
    assert kicked_old["timestamp"] > connect_new["timestamp"]  # the kick is timestamped after the new connect
    assert apply(table, connect_new, kicked_old) == [True, False]
    item = state(table, "sensor-0042")
    assert (item["connected"], item["sessionIdentifier"], item["ipAddress"]) == (True, connect_new["sessionIdentifier"], "198.51.100.23")


def test_same_connection_disconnect_arriving_first_still_wins_over_its_connect():
    table = MemoryTable()
    (connected,), (disconnected,) = sqs_bodies("track_presence/connected"), sqs_bodies("track_presence/disconnected")
    assert apply(table, disconnected, connected) == [True, False]
    assert state(table, "sensor-0042")["connected"] is False


def test_version_reset_after_an_hour_offline_is_newer_and_a_late_old_version_is_not():
    table = MemoryTable()
    old_disconnect, reset_connect, late_copy = sqs_bodies("track_presence/version_reset")
    assert reset_connect["versionNumber"] < old_disconnect["versionNumber"]
    assert apply(table, old_disconnect, reset_connect, late_copy) == [True, True, False]
    item = state(table, "sensor-0042")
    assert (item["connected"], item["versionNumber"]) == (True, 0)


def test_version_reset_connect_arriving_before_the_old_disconnect_still_wins():
    table = MemoryTable()
    old_disconnect, reset_connect, _ = sqs_bodies("track_presence/version_reset")
    assert apply(table, reset_connect, old_disconnect) == [True, False]
    assert state(table, "sensor-0042")["connected"] is True


def test_2018_format_orders_a_session_by_connect_then_disconnect():
    table = MemoryTable()
    disconnected, connected = sqs_bodies("track_presence/format_2018")
    assert apply(table, disconnected, connected) == [True, False]
    item = state(table, "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6")
    assert item["connected"] is False and "versionNumber" not in item


def _2018(event_type: str, session: str, timestamp: int) -> dict:
    return {
        "clientId": "legacy",
        "timestamp": timestamp,
        "eventType": event_type,
        "sessionIdentifier": session,
        "principalIdentifier": "000000000000/AIDA:user",
    }


def test_2018_format_disconnect_of_an_older_session_just_after_a_new_connect_is_a_takeover():
    table = MemoryTable()
    t = 1_460_065_214_626
    assert apply(table, _2018("connected", "new", t), _2018("disconnected", "old", t + 2_000)) == [True, False]
    assert state(table, "legacy")["sessionIdentifier"] == "new"


def test_2018_format_disconnect_of_another_session_long_after_the_connect_applies():
    table = MemoryTable()
    t = 1_460_065_214_626
    assert apply(table, _2018("connected", "first", t), _2018("disconnected", "second", t + 30 * MINUTE)) == [True, True]
    assert state(table, "legacy")["connected"] is False


def test_2018_format_later_session_connect_wins_over_an_earlier_one():
    table = MemoryTable()
    t = 1_460_065_214_626
    assert apply(table, _2018("connected", "b", t + 5_000), _2018("connected", "a", t)) == [True, False]
    assert state(table, "legacy")["sessionIdentifier"] == "b"


def test_connect_clears_the_previous_disconnect_reason():
    table = MemoryTable()
    (disconnected,) = sqs_bodies("track_presence/disconnected")
    _, reset_connect, _ = sqs_bodies("track_presence/version_reset")
    apply(table, disconnected, reset_connect)
    item = state(table, "sensor-0042")
    assert item["connected"] is True
    assert "disconnectReason" not in item and "clientInitiatedDisconnect" not in item


def _expected_final_states(history) -> dict[str, dict]:
    """What really happened last, per client: the newest connection, and whether it has ended."""
    final: dict[str, dict] = {}
    for event in history:
        body = event.body
        current = final.get(body["clientId"])
        if body["disconnectReason" if "disconnectReason" in body else "eventType"] == "DUPLICATE_CLIENTID":
            continue  # ends a connection that was already replaced
        if current is None or body["eventType"] == "connected" or current["session"] == body["sessionIdentifier"]:
            final[body["clientId"]] = {"session": body["sessionIdentifier"], "connected": body["eventType"] == "connected"}
    return final


@settings(max_examples=300, deadline=None)
@given(data=fleet_history().flatmap(lambda history: delivered(history).map(lambda order: (history, order))))
def test_any_delivery_order_with_duplicates_ends_in_the_state_of_the_in_order_sequence(data):
    history, delivery = data
    in_order, shuffled = MemoryTable(), MemoryTable()
    apply(in_order, *(event.body for event in history))
    apply(shuffled, *delivery)
    assert shuffled.items == in_order.items
    for client_id, expected in _expected_final_states(history).items():
        item = state(in_order, client_id)
        assert (item["sessionIdentifier"], item["connected"]) == (expected["session"], expected["connected"])
