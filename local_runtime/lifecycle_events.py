"""The lifecycle events IoT Core publishes for a device's sessions, as its developer guide documents them
(https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html): on
`$aws/events/presence/connected|disconnected/<clientId>` and `$aws/events/subscriptions/subscribed|
unsubscribed/<clientId>`, with the session's identifier, the principal, the client's address and a version
number that orders one client ID's connections.

The version number is "monotonically increasing ... for each client ID connection"; a connection's connect and
disconnect carry the same one, and it resets to 0 when the client ID has not been connected for about an hour.
Client IDs holding `#` or `+` get no lifecycle events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

VERSION_RESET_AFTER_MS = 60 * 60_000  # "If a client is not connected for approximately one hour"

# The disconnect reasons the guide lists, and whether the client asked for the disconnect.
CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
CONNECTION_LOST = "CONNECTION_LOST"
DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"
AUTH_ERROR = "AUTH_ERROR"
CLIENT_ERROR = "CLIENT_ERROR"
CUSTOMAUTH_TTL_EXPIRATION = "CUSTOMAUTH_TTL_EXPIRATION"
SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"


@dataclass(frozen=True)
class SessionIdentity:
    """What every lifecycle event of one connection carries."""

    client_id: str
    session_identifier: str
    principal_identifier: str
    ip_address: str
    version_number: int


class VersionNumbers:
    """The version number of each client ID's connections: one more than its last connection's, or 0 when it
    has been disconnected for about an hour (or never connected)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int | None]] = {}  # client id -> (version, disconnected at ms; None: connected)

    def next_connection(self, client_id: str, now_ms: int) -> int:
        last = self._last.get(client_id)
        if last is None or (last[1] is not None and now_ms - last[1] >= VERSION_RESET_AFTER_MS):
            version = 0
        else:
            version = last[0] + 1
        self._last[client_id] = (version, None)
        return version

    def disconnected(self, client_id: str, version: int, now_ms: int) -> None:
        last = self._last.get(client_id)
        if last is not None and last[0] == version:  # a later connection of the client ID is not ended by it
            self._last[client_id] = (version, now_ms)


def publishes_lifecycle_events(client_id: str) -> bool:
    return "#" not in client_id and "+" not in client_id


def connected_event(session: SessionIdentity, now_ms: int) -> tuple[str, bytes]:
    return f"$aws/events/presence/connected/{session.client_id}", _encode(
        {
            "clientId": session.client_id,
            "timestamp": now_ms,
            "eventType": "connected",
            "sessionIdentifier": session.session_identifier,
            "principalIdentifier": session.principal_identifier,
            "ipAddress": session.ip_address,
            "versionNumber": session.version_number,
        }
    )


def disconnected_event(session: SessionIdentity, reason: str, now_ms: int) -> tuple[str, bytes]:
    return f"$aws/events/presence/disconnected/{session.client_id}", _encode(
        {
            "clientId": session.client_id,
            "timestamp": now_ms,
            "eventType": "disconnected",
            "sessionIdentifier": session.session_identifier,
            "principalIdentifier": session.principal_identifier,
            "clientInitiatedDisconnect": reason == CLIENT_INITIATED_DISCONNECT,
            "disconnectReason": reason,
            "versionNumber": session.version_number,
        }
    )


def subscription_event(session: SessionIdentity, event_type: str, topics: list[str], now_ms: int) -> tuple[str, bytes]:
    """`event_type` is "subscribed" or "unsubscribed"; `topics` the topic filters of one SUBSCRIBE (those IoT
    granted) or UNSUBSCRIBE."""
    return f"$aws/events/subscriptions/{event_type}/{session.client_id}", _encode(
        {
            "clientId": session.client_id,
            "timestamp": now_ms,
            "eventType": event_type,
            "sessionIdentifier": session.session_identifier,
            "principalIdentifier": session.principal_identifier,
            "topics": topics,
        }
    )


def _encode(event: dict[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
