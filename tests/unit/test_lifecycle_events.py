"""The lifecycle events the device endpoint publishes: IoT's payloads, and its version numbers."""

from __future__ import annotations

import json

from local_runtime.lifecycle_events import (
    CLIENT_INITIATED_DISCONNECT,
    DUPLICATE_CLIENTID,
    VERSION_RESET_AFTER_MS,
    SessionIdentity,
    VersionNumbers,
    connected_event,
    disconnected_event,
    publishes_lifecycle_events,
    subscription_event,
)
from track_presence.models import check_received_in_time, parse_lifecycle_event

NOW = 1_900_000_000_000
SESSION = SessionIdentity("sensor-1", "0f1e2d3c-4b5a-4968-8776-655443322110", "abc123", "127.0.0.1", 3)


def test_connect_and_disconnect_carry_the_connections_identity_and_the_same_version() -> None:
    topic, payload = connected_event(SESSION, NOW)
    assert topic == "$aws/events/presence/connected/sensor-1"
    assert json.loads(payload) == {
        "clientId": "sensor-1", "timestamp": NOW, "eventType": "connected",
        "sessionIdentifier": SESSION.session_identifier, "principalIdentifier": "abc123", "ipAddress": "127.0.0.1",
        "versionNumber": 3,
    }  # fmt: skip
    topic, payload = disconnected_event(SESSION, DUPLICATE_CLIENTID, NOW + 5)
    event = json.loads(payload)
    assert topic == "$aws/events/presence/disconnected/sensor-1"
    assert (event["disconnectReason"], event["clientInitiatedDisconnect"], event["versionNumber"]) == (
        DUPLICATE_CLIENTID, False, 3
    )  # fmt: skip
    assert json.loads(disconnected_event(SESSION, CLIENT_INITIATED_DISCONNECT, NOW)[1])["clientInitiatedDisconnect"]


def test_the_apps_presence_function_reads_every_event_the_endpoint_publishes_without_dropping_a_field() -> None:
    events = [
        connected_event(SESSION, NOW),
        disconnected_event(SESSION, CLIENT_INITIATED_DISCONNECT, NOW),
        subscription_event(SESSION, "subscribed", ["cmd/fleet/sensor-1/#"], NOW),
        subscription_event(SESSION, "unsubscribed", ["cmd/fleet/sensor-1/#"], NOW),
    ]
    for _, payload in events:
        parsed = parse_lifecycle_event(payload.decode())
        check_received_in_time(parsed, received_at_ms=NOW)
        assert not parsed.dropped


def test_each_connection_of_a_client_id_gets_a_higher_version_until_an_hour_disconnected_resets_it() -> None:
    versions = VersionNumbers()
    assert versions.next_connection("sensor-1", NOW) == 0
    versions.disconnected("sensor-1", 0, NOW + 1_000)
    assert versions.next_connection("sensor-1", NOW + 2_000) == 1
    assert versions.next_connection("sensor-1", NOW + 3_000) == 2  # a takeover: the old one had not ended
    versions.disconnected("sensor-1", 1, NOW + 4_000)  # the old connection's end does not end the new one
    assert versions.next_connection("sensor-1", NOW + 4_000 + VERSION_RESET_AFTER_MS) == 3
    versions.disconnected("sensor-1", 3, NOW + 5_000)
    assert versions.next_connection("sensor-1", NOW + 5_000 + VERSION_RESET_AFTER_MS) == 0
    assert versions.next_connection("sensor-2", NOW) == 0


def test_client_ids_with_mqtt_wildcards_get_no_lifecycle_events() -> None:
    assert publishes_lifecycle_events("sensor-1")
    assert not publishes_lifecycle_events("sensor+1") and not publishes_lifecycle_events("a#")
