import json

import pytest

from events import load_event, sqs_bodies
from event_processing.fields import MalformedEvent
from event_processing.sqs_batch import sent_at_ms
from track_presence.models import (
    EARLIEST_TIMESTAMP_MS,
    MAX_AHEAD_OF_RECEIPT_MS,
    MAX_VERSION_NUMBER,
    ConnectivityEvent,
    SubscriptionEvent,
    check_received_in_time,
    parse_lifecycle_event,
)


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
    body = load_event("track_presence/malformed")["Records"][index]["body"]
    with pytest.raises(MalformedEvent) as rejection:
        parse_lifecycle_event(body)
    assert str(rejection.value).startswith(reason)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"versionNumber": -1}, "versionNumber"),
        ({"versionNumber": True}, "versionNumber"),
        ({"versionNumber": 1.5}, "versionNumber"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"timestamp": -1}, "timestamp"),
        ({"clientId": "x" * 129}, "clientId"),
        ({"clientId": "bad\nid"}, "clientId"),
        ({"sessionIdentifier": ""}, "sessionIdentifier"),
    ],
)
def test_a_malformed_required_field_refuses_the_event(change, reason):
    body = sqs_bodies("track_presence/disconnected")[0] | change
    with pytest.raises(MalformedEvent, match=reason):
        parse_lifecycle_event(json.dumps(body))


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"ipAddress": "999.1.1.1"}, "ipAddress is not an IPv4 or IPv6 address"),
        ({"ipAddress": 17}, "ipAddress must be a string when present"),
        ({"disconnectReason": "rm -rf /"}, "disconnectReason must be an upper-case identifier"),
        ({"disconnectReason": "client_initiated_disconnect"}, "disconnectReason must be an upper-case identifier"),
        ({"clientInitiatedDisconnect": "yes"}, "clientInitiatedDisconnect must be true or false when present"),
        ({"principalIdentifier": 42}, "principalIdentifier must be a string when present"),
        ({"principalIdentifier": "p" * 2049}, "principalIdentifier is longer than 2048 characters"),
        ({"thingName": "bad\tname"}, "thingName contains a control character"),
    ],
)
def test_a_malformed_optional_field_is_dropped_with_its_reason_and_the_event_kept(change, reason):
    body = sqs_bodies("track_presence/disconnected")[0] | change
    event = parse_lifecycle_event(json.dumps(body))
    [field] = change
    assert getattr(event, field) is None
    assert event.dropped == {field: reason}
    assert (event.clientId, event.eventType, event.versionNumber) == ("sensor-0042", "disconnected", 12)


def test_the_invalid_optional_fields_sample_keeps_both_events_without_their_bad_fields():
    connected, disconnected = (parse_lifecycle_event(body) for body in sqs_bodies("track_presence/invalid_optional_fields"))
    assert connected.dropped.keys() == {"ipAddress", "principalIdentifier"}
    assert (connected.ipAddress, connected.principalIdentifier, connected.versionNumber) == (None, None, 12)
    assert disconnected.dropped.keys() == {"disconnectReason", "clientInitiatedDisconnect"}
    assert (disconnected.disconnectReason, disconnected.clientInitiatedDisconnect) == (None, None)
    assert disconnected.principalIdentifier is not None


def test_a_malformed_principal_of_a_subscription_event_is_dropped_too():
    body = sqs_bodies("track_presence/subscriptions")[0] | {"principalIdentifier": ["not", "text"]}
    event = parse_lifecycle_event(json.dumps(body))
    assert event.principalIdentifier is None and event.dropped.keys() == {"principalIdentifier"}


def test_valid_events_drop_nothing():
    for name in ("connected", "disconnected", "format_2018", "subscriptions", "stale_session", "version_reset"):
        assert all(parse_lifecycle_event(body).dropped == {} for body in sqs_bodies(f"track_presence/{name}")), name


def test_a_timestamp_in_seconds_or_with_a_fraction_is_refused():
    in_seconds, with_fraction = (record["body"] for record in load_event("track_presence/malformed_timestamp_in_seconds")["Records"])
    with pytest.raises(MalformedEvent, match="timestamp is before 2015-01-01T00:00:00Z .* milliseconds since the Unix epoch"):
        parse_lifecycle_event(in_seconds)
    with pytest.raises(MalformedEvent, match="timestamp must be a whole number"):
        parse_lifecycle_event(with_fraction)


def test_the_earliest_timestamp_is_the_first_day_of_2015():
    body = sqs_bodies("track_presence/connected")[0]
    assert parse_lifecycle_event(body | {"timestamp": EARLIEST_TIMESTAMP_MS}).timestamp == 1_420_070_400_000
    with pytest.raises(MalformedEvent, match="before 2015"):
        parse_lifecycle_event(body | {"timestamp": EARLIEST_TIMESTAMP_MS - 1})


def test_a_version_number_beyond_a_64_bit_long_is_refused():
    for record in load_event("track_presence/malformed_version_out_of_range")["Records"]:
        with pytest.raises(MalformedEvent, match=r"versionNumber is larger than a 64-bit long \(2\^63 - 1\)"):
            parse_lifecycle_event(record["body"])
    largest = sqs_bodies("track_presence/connected")[0] | {"versionNumber": MAX_VERSION_NUMBER}
    assert parse_lifecycle_event(largest).versionNumber == 2**63 - 1


def test_a_timestamp_ahead_of_the_events_receipt_beyond_iots_clock_error_is_refused():
    year_2100, six_minutes_ahead, four_minutes_ahead = load_event("track_presence/malformed_future_timestamp")["Records"]
    for record in (year_2100, six_minutes_ahead):
        event = parse_lifecycle_event(record["body"])
        with pytest.raises(MalformedEvent, match="timestamp is more than 5 minutes after the event was received"):
            check_received_in_time(event, sent_at_ms(record, now_ms=0))
    kept = parse_lifecycle_event(four_minutes_ahead["body"])
    check_received_in_time(kept, sent_at_ms(four_minutes_ahead, now_ms=0))


def test_the_bound_ahead_of_receipt_is_exactly_five_minutes():
    event = parse_lifecycle_event(sqs_bodies("track_presence/connected")[0])
    check_received_in_time(event, event.timestamp - MAX_AHEAD_OF_RECEIPT_MS)
    with pytest.raises(MalformedEvent):
        check_received_in_time(event, event.timestamp - MAX_AHEAD_OF_RECEIPT_MS - 1)
    assert MAX_AHEAD_OF_RECEIPT_MS == 5 * 60_000


def test_receipt_is_the_sqs_sent_timestamp_or_else_the_clock():
    [record] = load_event("track_presence/connected")["Records"]
    assert sent_at_ms(record, now_ms=5) == int(record["attributes"]["SentTimestamp"])
    assert sent_at_ms({**record, "attributes": {}}, now_ms=5) == 5
    assert sent_at_ms({"body": record["body"]}, now_ms=5) == 5
    assert sent_at_ms({**record, "attributes": {"SentTimestamp": "soon"}}, now_ms=5) == 5


def test_every_sample_is_sent_after_its_event_happened_within_iots_clock_error():
    """The samples have the shape IoT and SQS give them: SQS receives an event after IoT stamped it."""
    from events import EVENTS_DIR

    for path in sorted((EVENTS_DIR / "track_presence").glob("*.json")):
        if path.name.startswith("malformed"):
            continue
        for record in load_event(f"track_presence/{path.name}")["Records"]:
            event = parse_lifecycle_event(record["body"])
            check_received_in_time(event, sent_at_ms(record, now_ms=0))


def test_rejection_and_drop_reasons_never_echo_the_payload():
    body = sqs_bodies("track_presence/connected")[0] | {"ipAddress": "secret-token-value"}
    assert "secret-token-value" not in json.dumps(parse_lifecycle_event(json.dumps(body)).dropped)
    body = body | {"sessionIdentifier": "secret-token-value" * 20}
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
