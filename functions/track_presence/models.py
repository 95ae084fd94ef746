"""Lifecycle events as AWS IoT Core publishes them.

Topics: `$aws/events/presence/{connected,disconnected}/<clientId>` and
`$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>`. Today's connect/disconnect events carry
`versionNumber` (and `ipAddress`, `disconnectReason`, `clientInitiatedDisconnect`, `thingName`); the 2018
format has only clientId, timestamp, eventType, sessionIdentifier and principalIdentifier. Both parse;
fields that are new are optional. Unknown extra fields are ignored, as AWS adds fields over time.
The models are NamedTuples: as typed as dataclasses, and a fraction of their cold-start cost.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal, Mapping, NamedTuple

from event_processing.fields import (
    MalformedEvent,
    decode_object,
    one_of,
    optional_flag,
    optional_text,
    optional_whole_number,
    text,
    whole_number,
)

CONNECTIVITY_EVENT_TYPES = ("connected", "disconnected")
SUBSCRIPTION_EVENT_TYPES = ("subscribed", "unsubscribed")
# MQTT client IDs are at most 128 bytes in AWS IoT Core; IoT publishes no lifecycle events for IDs with # or +.
CLIENT_ID_MAX_LENGTH = 128
MAX_TOPICS = 64


class ConnectivityEvent(NamedTuple):
    clientId: str
    eventType: Literal["connected", "disconnected"]
    timestamp: int
    sessionIdentifier: str
    principalIdentifier: str | None
    versionNumber: int | None
    ipAddress: str | None = None
    disconnectReason: str | None = None
    clientInitiatedDisconnect: bool | None = None
    thingName: str | None = None

    @property
    def connected(self) -> bool:
        return self.eventType == "connected"


class SubscriptionEvent(NamedTuple):
    clientId: str
    eventType: Literal["subscribed", "unsubscribed"]
    timestamp: int
    sessionIdentifier: str
    principalIdentifier: str | None
    topics: frozenset[str]


def parse_lifecycle_event(body: str | Mapping[str, Any]) -> ConnectivityEvent | SubscriptionEvent:
    event = decode_object(body)
    event_type = one_of(event, "eventType", CONNECTIVITY_EVENT_TYPES + SUBSCRIPTION_EVENT_TYPES)
    client_id = text(event, "clientId", max_length=CLIENT_ID_MAX_LENGTH, forbidden="#+")
    common = {
        "clientId": client_id,
        "timestamp": whole_number(event, "timestamp"),
        "sessionIdentifier": text(event, "sessionIdentifier", max_length=256),
        "principalIdentifier": optional_text(event, "principalIdentifier", max_length=2048),
    }
    if event_type in SUBSCRIPTION_EVENT_TYPES:
        return SubscriptionEvent(eventType=event_type, topics=_topics(event), **common)
    return ConnectivityEvent(
        eventType=event_type,
        versionNumber=optional_whole_number(event, "versionNumber"),
        ipAddress=_ip_address(event),
        disconnectReason=_disconnect_reason(event),
        clientInitiatedDisconnect=optional_flag(event, "clientInitiatedDisconnect"),
        thingName=optional_text(event, "thingName", max_length=128),
        **common,
    )


def _ip_address(event: Mapping[str, Any]) -> str | None:
    value = optional_text(event, "ipAddress", max_length=64)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise MalformedEvent("ipAddress is not an IPv4 or IPv6 address") from None


def _disconnect_reason(event: Mapping[str, Any]) -> str | None:
    # Not checked against today's list of reasons: AWS adds new ones, and an unknown reason is still a disconnect.
    value = optional_text(event, "disconnectReason", max_length=64)
    if value is not None and not all(ch.isupper() or ch == "_" for ch in value):
        raise MalformedEvent("disconnectReason must be an upper-case identifier")
    return value


def _topics(event: Mapping[str, Any]) -> frozenset[str]:
    topics = event.get("topics")
    if (
        not isinstance(topics, list)
        or not topics
        or len(topics) > MAX_TOPICS
        or not all(isinstance(topic, str) and 0 < len(topic) <= 256 for topic in topics)
    ):
        raise MalformedEvent(f"topics must be a list of 1 to {MAX_TOPICS} topic filters")
    return frozenset(topics)
