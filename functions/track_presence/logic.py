"""Which lifecycle event wins: the ordering of connect/disconnect events, as one conditional write each.

IoT Core delivers lifecycle events at least once and in any order. The connectivity item of a client holds
the state set by the newest event seen so far, and each event is written only if it is newer than that
(the condition is evaluated by DynamoDB with the write, so concurrent consumers cannot race). "Newer":

1. Timestamps further apart than CLOCK_ORDER_MIN_GAP_MS: the later timestamp. Timestamps are accurate to
   +/-2 minutes, so a gap this wide is certain; and it is the only safe order across a versionNumber reset
   (IoT resets versionNumber to 0 after about an hour offline, so a stale v7 must lose to a later v0).
2. Closer in time, both with versionNumber (today's format): the higher versionNumber; a connection's
   connect and disconnect share a number, and the disconnect is the later of the two. This is what keeps a
   late DUPLICATE_CLIENTID disconnect of the old connection from marking the new connection offline.
3. Closer in time, without versionNumber (the 2018 format): same session, the disconnect follows the
   connect; different sessions, the later timestamp (ties broken by session id, so every consumer agrees),
   except that a disconnect of another session within KICK_WINDOW_MS after a connect is taken as that
   connect having replaced the old connection (a duplicate client ID), not as the new one ending.
"""

from __future__ import annotations

from event_processing.conditional_writes import Attr, Condition, ConditionalWrite, Update
from track_presence.models import ConnectivityEvent, SubscriptionEvent

MINUTE_MS = 60_000
CLOCK_ORDER_MIN_GAP_MS = 10 * MINUTE_MS
KICK_WINDOW_MS = 4 * MINUTE_MS  # two timestamps, each +/-2 minutes
SUBSCRIPTIONS_KEPT_SECONDS = 7 * 24 * 3600  # a session's subscriptions outlive it this long, then expire (TTL)

_since = Attr("since")
_version = Attr("versionNumber")
_session = Attr("sessionIdentifier")
_connected = Attr("connected")


def supersedes(event: ConnectivityEvent) -> Condition:
    """The condition under which `event` is newer than the client's stored state."""
    ts = event.timestamp
    clearly_newer_by_clock = _since.lt(ts - CLOCK_ORDER_MIN_GAP_MS)
    close_in_time = _since.le(ts + CLOCK_ORDER_MIN_GAP_MS)
    by_session_and_clock = _newer_by_session_and_clock(event)
    if event.versionNumber is None:
        within_gap = by_session_and_clock
    else:
        later_version = _version.lt(event.versionNumber)
        if not event.connected:
            later_version = later_version | (_version.eq(event.versionNumber) & _connected.eq(True))
        within_gap = (_version.exists() & later_version) | (_version.missing() & by_session_and_clock)
    return Attr("clientId").missing() | clearly_newer_by_clock | (close_in_time & within_gap)


def _newer_by_session_and_clock(event: ConnectivityEvent) -> Condition:
    ts, session = event.timestamp, event.sessionIdentifier
    other_session_earlier = _session.ne(session) & (_since.lt(ts) | (_since.eq(ts) & _session.lt(session)))
    if event.connected:
        return other_session_earlier
    not_a_kick = _connected.eq(False) | _since.lt(ts - KICK_WINDOW_MS)
    return (_session.eq(session) & _connected.eq(True)) | (other_session_earlier & not_a_kick)


def connectivity_write(event: ConnectivityEvent, processed_at_ms: int) -> ConditionalWrite:
    """The item becomes a function of the winning event alone (attributes it lacks are removed), so every
    delivery order that ends with the same winner ends with the same item."""
    values = {
        "connected": event.connected,
        "since": event.timestamp,
        "sessionIdentifier": event.sessionIdentifier,
        "principalIdentifier": event.principalIdentifier,
        "versionNumber": event.versionNumber,
        "ipAddress": event.ipAddress,
        "disconnectReason": event.disconnectReason,
        "clientInitiatedDisconnect": event.clientInitiatedDisconnect,
        "thingName": event.thingName,
        "updatedAt": processed_at_ms,
    }
    return ConditionalWrite(
        key={"clientId": event.clientId},
        update=Update(
            set={name: value for name, value in values.items() if value is not None},
            remove=tuple(name for name, value in values.items() if value is None),
        ),
        condition=supersedes(event),
    )


def subscription_write(event: SubscriptionEvent, processed_at_ms: int) -> ConditionalWrite:
    """Subscriptions are kept per session, so they need no ordering against connects: a set per session."""
    change = {"topics": event.topics}
    return ConditionalWrite(
        key={"clientId": event.clientId, "sessionIdentifier": event.sessionIdentifier},
        update=Update(
            set={"updatedAt": processed_at_ms, "expiresAt": processed_at_ms // 1000 + SUBSCRIPTIONS_KEPT_SECONDS},
            add=change if event.eventType == "subscribed" else {},
            delete=change if event.eventType == "unsubscribed" else {},
        ),
    )
