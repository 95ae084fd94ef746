"""Generated lifecycle histories: what really happened to a client, and the events IoT Core publishes for it.

Each history is a sequence of connections of one client ID, as AWS documents them: a connection's connect
and disconnect share a versionNumber; the next connection gets a higher one, or 0 once the client has been
offline for about an hour; a new connection with the same client ID ends the previous one with a
DUPLICATE_CLIENTID disconnect timestamped just after it; every timestamp is off by up to +/-2 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

MINUTE = 60_000
BASE_TIME = 1_795_420_800_000


@dataclass(frozen=True)
class Happened:
    """An event and the true moment it happened (its published timestamp may be off)."""

    at: int
    body: dict


def _connect(client: str, session: str, version: int, at: int, skew: int) -> Happened:
    return Happened(
        at,
        {
            "clientId": client,
            "timestamp": at + skew,
            "eventType": "connected",
            "sessionIdentifier": session,
            "principalIdentifier": "cert",
            "ipAddress": "192.0.2.1",
            "versionNumber": version,
        },
    )


def _disconnect(client: str, session: str, version: int, at: int, skew: int, reason: str) -> Happened:
    return Happened(
        at,
        {
            "clientId": client,
            "timestamp": at + skew,
            "eventType": "disconnected",
            "sessionIdentifier": session,
            "principalIdentifier": "cert",
            "clientInitiatedDisconnect": reason == "CLIENT_INITIATED_DISCONNECT",
            "disconnectReason": reason,
            "versionNumber": version,
        },
    )


skews = st.integers(min_value=-2 * MINUTE, max_value=2 * MINUTE)


@st.composite
def client_history(draw: st.DrawFn, client: str) -> list[Happened]:
    """The events of one client, in the order they happened."""
    happened: list[Happened] = []
    now = BASE_TIME + draw(st.integers(0, 10 * MINUTE))
    version = draw(st.integers(0, 50))
    for number in range(draw(st.integers(1, 6))):
        session = f"{client}-session-{number}"
        happened.append(_connect(client, session, version, now, draw(skews)))
        ending = draw(st.sampled_from(["disconnect", "taken over", "still connected"]))
        if ending == "still connected" and number > 0:
            break
        now += draw(st.integers(1_000, 180 * MINUTE))  # how long the connection lasted
        if ending == "taken over":
            # The new connection comes first; the broker then drops the old one.
            next_version = version + draw(st.integers(1, 3))
            happened.append(_connect(client, f"{session}-new", next_version, now, draw(skews)))
            happened.append(_disconnect(client, session, version, now + 300, draw(skews), "DUPLICATE_CLIENTID"))
            version = next_version
            now += draw(st.integers(1_000, 60 * MINUTE))
            reason = draw(st.sampled_from(["CLIENT_INITIATED_DISCONNECT", "CONNECTION_LOST"]))
            happened.append(_disconnect(client, f"{session}-new", version, now, draw(skews), reason))
        else:
            reason = draw(st.sampled_from(["CLIENT_INITIATED_DISCONNECT", "MQTT_KEEP_ALIVE_TIMEOUT", "CONNECTION_LOST"]))
            happened.append(_disconnect(client, session, version, now, draw(skews), reason))
        offline = draw(st.integers(500, 180 * MINUTE))
        now += offline
        # IoT resets versionNumber to 0 after about an hour offline; before that it keeps increasing.
        version = 0 if offline > 60 * MINUTE else version + draw(st.integers(1, 3))
    return happened


@st.composite
def fleet_history(draw: st.DrawFn) -> list[Happened]:
    """Several clients' events, interleaved in the order they happened."""
    clients = draw(st.integers(1, 4))
    events = [event for index in range(clients) for event in draw(client_history(f"device-{index}"))]
    return sorted(events, key=lambda event: event.at)


@st.composite
def delivered(draw: st.DrawFn, history: list[Happened]) -> list[dict]:
    """The same events as IoT Core may deliver them: shuffled, some of them more than once."""
    bodies = [event.body for event in history]
    repeated = draw(st.lists(st.sampled_from(bodies), max_size=len(bodies))) if bodies else []
    return draw(st.permutations(bodies + repeated))
