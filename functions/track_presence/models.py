"""Lifecycle events as AWS IoT Core publishes them.

Topics: `$aws/events/presence/{connected,disconnected}/<clientId>` and
`$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>`. Today's connect/disconnect events carry
`versionNumber` (and `ipAddress`, `disconnectReason`, `clientInitiatedDisconnect`, `thingName`); the 2018
format has only clientId, timestamp, eventType, sessionIdentifier and principalIdentifier. Both parse.
Unknown extra fields are ignored, as AWS adds fields over time.

Required, because the state is keyed or ordered by them (a malformed one refuses the event, with the reason):
clientId, eventType, timestamp (whole milliseconds since the Unix epoch, not before AWS IoT existed, and not
ahead of the event's receipt by more than IoT's clock error allows: see `check_received_in_time`),
sessionIdentifier, `topics` of subscription events, and `versionNumber` when present (a non-negative 64-bit
integer: IoT's is a long). A versionNumber is optional (the 2018 format has none), but one that is there and
malformed refuses the event: dropping it would order the event by the 2018 rules instead, which is wrong.
Optional, because they only describe the connection (a malformed one is dropped, named in `dropped` with
the reason, and the event is kept): principalIdentifier, ipAddress, disconnectReason,
clientInitiatedDisconnect, thingName.
The models are NamedTuples: as typed as dataclasses, and a fraction of their cold-start cost.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import Any, Literal, Mapping, NamedTuple

from event_processing.fields import (
    MalformedEvent,
    decode_object,
    dropped_if_malformed,
    one_of,
    optional_flag,
    optional_text,
    text,
    whole_number,
)

CONNECTIVITY_EVENT_TYPES = ("connected", "disconnected")
SUBSCRIPTION_EVENT_TYPES = ("subscribed", "unsubscribed")
# MQTT client IDs are at most 128 bytes in AWS IoT Core; IoT publishes no lifecycle events for IDs with # or +.
CLIENT_ID_MAX_LENGTH = 128
MAX_TOPICS = 64
# AWS IoT launched in 2015: no lifecycle event is older. A timestamp before that is not milliseconds since the
# epoch; most likely seconds (1.7e9, read as milliseconds, is January 1970).
EARLIEST_TIMESTAMP_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z
# IoT stamps lifecycle events itself, accurate to +/-2 minutes, and its rule sends an event to SQS after it
# happened: so an event's timestamp is at most 2 minutes after the SentTimestamp SQS gives it. 5 minutes
# leaves 3 more for the clocks of IoT, SQS and Lambda to differ. A timestamp further ahead is not IoT's, and
# would win the ordering's first rule for as long as it stays ahead (one from 2100 would hold the client's
# state until 2100).
MAX_AHEAD_OF_RECEIPT_MS = 5 * 60_000
MAX_VERSION_NUMBER = 2**63 - 1  # IoT's versionNumber is a long
NOTHING_DROPPED: Mapping[str, str] = MappingProxyType({})


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
    dropped: Mapping[str, str] = NOTHING_DROPPED  # optional field -> why it was malformed (never its value)

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
    dropped: Mapping[str, str] = NOTHING_DROPPED


def parse_lifecycle_event(body: str | Mapping[str, Any]) -> ConnectivityEvent | SubscriptionEvent:
    event = decode_object(body)
    event_type = one_of(event, "eventType", CONNECTIVITY_EVENT_TYPES + SUBSCRIPTION_EVENT_TYPES)
    client_id = text(event, "clientId", max_length=CLIENT_ID_MAX_LENGTH, forbidden="#+")
    dropped: dict[str, str] = {}
    common = {
        "clientId": client_id,
        "timestamp": _timestamp(event),
        "sessionIdentifier": text(event, "sessionIdentifier", max_length=256),
        "principalIdentifier": dropped_if_malformed(
            optional_text, event, "principalIdentifier", dropped, max_length=2048
        ),
    }
    if event_type in SUBSCRIPTION_EVENT_TYPES:
        return SubscriptionEvent(eventType=event_type, topics=_topics(event), dropped=dropped, **common)
    return ConnectivityEvent(
        eventType=event_type,
        versionNumber=_version_number(event),
        ipAddress=dropped_if_malformed(_ip_address, event, "ipAddress", dropped),
        disconnectReason=dropped_if_malformed(_disconnect_reason, event, "disconnectReason", dropped),
        clientInitiatedDisconnect=dropped_if_malformed(optional_flag, event, "clientInitiatedDisconnect", dropped),
        thingName=dropped_if_malformed(optional_text, event, "thingName", dropped, max_length=128),
        dropped=dropped,
        **common,
    )


def check_received_in_time(event: ConnectivityEvent | SubscriptionEvent, received_at_ms: int) -> None:
    """Refuses an event whose timestamp is further ahead of its receipt (`received_at_ms`, epoch ms) than
    IoT's clock error explains."""
    if event.timestamp > received_at_ms + MAX_AHEAD_OF_RECEIPT_MS:
        raise MalformedEvent(
            f"timestamp is more than {MAX_AHEAD_OF_RECEIPT_MS // 60_000} minutes after the event was received "
            "(IoT's timestamps are accurate to +/-2 minutes)"
        )


def _timestamp(event: Mapping[str, Any]) -> int:
    timestamp = whole_number(event, "timestamp")
    if timestamp < EARLIEST_TIMESTAMP_MS:
        raise MalformedEvent(
            "timestamp is before 2015-01-01T00:00:00Z (before AWS IoT existed): "
            "it must be in milliseconds since the Unix epoch"
        )
    return timestamp


def _version_number(event: Mapping[str, Any]) -> int | None:
    if event.get("versionNumber") is None:
        return None
    version = whole_number(event, "versionNumber")
    if version > MAX_VERSION_NUMBER:
        raise MalformedEvent("versionNumber is larger than a 64-bit long (2^63 - 1)")
    return version


def _ip_address(event: Mapping[str, Any], field: str) -> str | None:
    value = optional_text(event, field, max_length=64)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise MalformedEvent(f"{field} is not an IPv4 or IPv6 address") from None


def _disconnect_reason(event: Mapping[str, Any], field: str) -> str | None:
    # Not checked against today's list of reasons: AWS adds new ones, and an unknown reason is still a disconnect.
    value = optional_text(event, field, max_length=64)
    if value is not None and not all(ch.isupper() or ch == "_" for ch in value):
        raise MalformedEvent(f"{field} must be an upper-case identifier")
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
