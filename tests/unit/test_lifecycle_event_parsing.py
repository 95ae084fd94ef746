import json

import pytest

from events import sqs_bodies
from event_processing.fields import MalformedEvent
from track_presence.models import ConnectivityEvent, SubscriptionEvent, parse_lifecycle_event


def test_todays_connect_event_parses_with_every_field():
    event = parse_lifecycle_event(sqs_bodies("track_presence/connected")[0])
    assert event == ConnectivityEvent(
        clientId="sensor-0042",
        eventType="connected",
        timestamp=1795420800000,
        sessionIdentifier="a4666d2a7d844ae4ac5d7b38c9cb7967",
        principalIdentifier="a0c01f5835079de0a7514643d68ef8414ab739a1e94ee4162977b02b12842847",
        versionNumber=12,
        ipAddress="203.0.113.17",
    )


def test_todays_disconnect_event_carries_its_reason():
    event = parse_lifecycle_event(sqs_bodies("track_presence/disconnected")[0])
    assert not event.connected
    assert (event.disconnectReason, event.clientInitiatedDisconnect) == ("CLIENT_INITIATED_DISCONNECT", True)


def test_2018_format_without_version_number_parses():
    disconnected, connected = (parse_lifecycle_event(body) for body in sqs_bodies("track_presence/format_2018"))
    assert connected.versionNumber is None and connected.ipAddress is None
    assert connected.principalIdentifier.startswith("000000000000/")
    assert disconnected.eventType == "disconnected"


def test_subscription_event_keeps_its_topic_filters():
    event = parse_lifecycle_event(sqs_bodies("track_presence/subscriptions")[0])
    assert isinstance(event, SubscriptionEvent)
    assert event.topics == {"cmd/fleet/sensor-0042/#", "$aws/things/sensor-0042/shadow/update/delta"}


def test_unknown_fields_are_ignored_so_new_aws_fields_do_not_break_parsing():
    body = sqs_bodies("track_presence/connected")[0] | {"someFutureField": {"x": 1}}
    assert parse_lifecycle_event(json.dumps(body)).clientId == "sensor-0042"


@pytest.mark.parametrize(
    "index, reason",
    [
        (1, "clientId must be a non-empty string"),
        (2, "timestamp must be a whole number >= 0"),
        (3, "clientId contains a control character or '#' or '+'"),
        (4, "eventType must be one of connected, disconnected, subscribed, unsubscribed"),
        (5, "body is not JSON"),
    ],
)
def test_each_malformed_sample_is_rejected_with_a_reason_naming_the_field(index, reason):
    from events import load_event

    body = load_event("track_presence/malformed")["Records"][index]["body"]
    with pytest.raises(MalformedEvent) as rejection:
        parse_lifecycle_event(body)
    assert str(rejection.value).startswith(reason)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"versionNumber": -1}, "versionNumber"),
        ({"versionNumber": True}, "versionNumber"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"ipAddress": "999.1.1.1"}, "ipAddress"),
        ({"clientId": "x" * 129}, "clientId"),
        ({"clientId": "bad\nid"}, "clientId"),
        ({"sessionIdentifier": ""}, "sessionIdentifier"),
        ({"disconnectReason": "rm -rf /"}, "disconnectReason"),
        ({"clientInitiatedDisconnect": "yes"}, "clientInitiatedDisconnect"),
    ],
)
def test_wrong_types_and_values_are_rejected(change, reason):
    body = sqs_bodies("track_presence/disconnected")[0] | change
    with pytest.raises(MalformedEvent, match=reason):
        parse_lifecycle_event(json.dumps(body))


def test_rejection_reasons_never_echo_the_payload():
    body = sqs_bodies("track_presence/connected")[0] | {"ipAddress": "secret-token-value"}
    with pytest.raises(MalformedEvent) as rejection:
        parse_lifecycle_event(json.dumps(body))
    assert "secret-token-value" not in str(rejection.value)


def test_a_json_array_is_not_an_event():
    with pytest.raises(MalformedEvent, match="JSON list"):
        parse_lifecycle_event("[1, 2]")


def test_subscription_event_without_topics_is_rejected():
    body = sqs_bodies("track_presence/subscriptions")[0] | {"topics": []}
    with pytest.raises(MalformedEvent, match="topics"):
        parse_lifecycle_event(json.dumps(body))
