"""track_presence on SQS batches from events/, against DynamoDB and SQS in moto."""

from __future__ import annotations

import json
import time

from botocore.exceptions import ClientError

from events import load_event, sqs_bodies
from tests.functions.conftest import emitted

MINUTE = 60_000


def test_connected_event_marks_the_client_online(presence, capsys):
    assert presence.invoke(load_event("track_presence/connected")) == {"batchItemFailures": []}
    item = presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")
    assert item["connected"] is True and item["since"] == 1795420800000 and item["versionNumber"] == 12
    assert item["ipAddress"] == "203.0.113.17"
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"ConnectivityUpdated": 1}
    updated = next(line for line in logs if line["message"] == "Connectivity updated")
    assert (updated["clientId"], updated["eventType"]) == ("sensor-0042", "connected")


def test_a_batch_is_one_invocation_with_one_write_per_event(presence, capsys, monkeypatch):
    writes = []
    real_update = presence.handler.dynamodb.update_item
    monkeypatch.setattr(presence.handler.dynamodb, "update_item", lambda **kw: writes.append(kw) or real_update(**kw))
    assert presence.invoke(load_event("track_presence/duplicate")) == {"batchItemFailures": []}
    assert len(writes) == 4  # four events, each one conditional write; the repeats are refused by the condition
    assert all("ConditionExpression" in write for write in writes)
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")["connected"] is False
    assert emitted(capsys.readouterr().out)[1] == {"ConnectivityUpdated": 2, "StaleEventsIgnored": 2}


def test_late_disconnect_of_a_replaced_connection_leaves_the_client_online(presence):
    presence.invoke(load_event("track_presence/stale_session"))
    item = presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")
    assert (item["connected"], item["versionNumber"], item["sessionIdentifier"]) == (
        True, 14, "b1c2d3e4f5a6478b9c0d1e2f3a4b5c6d"
    )


def test_malformed_events_go_to_the_dead_letter_queue_with_their_reason_and_the_rest_is_applied(presence, capsys):
    event = load_event("track_presence/malformed")
    assert presence.invoke(event) == {"batchItemFailures": []}  # nothing to retry: no retry loop
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0043")["connected"] is True
    dead = presence.dead_letters()
    assert sorted(message["Body"] for message in dead) == sorted(record["body"] for record in event["Records"][1:])
    reasons = {message["MessageAttributes"]["rejectionReason"]["StringValue"] for message in dead}
    assert "eventType must be one of connected, disconnected, subscribed, unsubscribed" in reasons
    assert all(message["MessageAttributes"]["sourceQueueArn"]["StringValue"].startswith("arn:aws:sqs:") for message in dead)
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"ConnectivityUpdated": 1, "MalformedEvents": 5}
    rejected = [line for line in logs if line["message"] == "Rejected a malformed event to the dead-letter queue"]
    assert len(rejected) == 5 and all(line["level"] == "WARNING" and line["reason"] for line in rejected)


def test_malformed_event_log_lines_do_not_contain_the_payload(presence, capsys):
    presence.invoke(load_event("track_presence/malformed"))
    printed = capsys.readouterr().out
    assert "this is not JSON" not in printed and "yesterday" not in printed


def test_a_failing_write_is_retried_alone_without_failing_the_batch(presence, monkeypatch, capsys):
    real_update = presence.handler.dynamodb.update_item

    def throttled_for_one_client(**request):
        if request["Key"]["clientId"]["S"] == "sensor-0042":
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return real_update(**request)

    monkeypatch.setattr(presence.handler.dynamodb, "update_item", throttled_for_one_client)
    event = load_event("track_presence/stale_session")
    other = json.loads(event["Records"][0]["body"]) | {"clientId": "sensor-0099"}
    event["Records"].append(event["Records"][0] | {"messageId": "other", "body": json.dumps(other)})
    response = presence.invoke(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"][:2]]}
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0099")["connected"] is True
    assert presence.dead_letters() == []  # a transient failure is SQS's to redeliver, not a rejection
    assert emitted(capsys.readouterr().out)[1] == {"ConnectivityUpdated": 1, "FailedEvents": 2}


def test_a_malformed_event_that_cannot_reach_the_dead_letter_queue_is_left_for_retry(presence, monkeypatch):
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", presence.dead_letter_queue_url + "-missing")
    event = load_event("track_presence/malformed")
    response = presence.invoke(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"][1:]]}


def test_subscriptions_are_kept_per_session(presence, capsys):
    presence.invoke(load_event("track_presence/subscriptions"))
    session = sqs_bodies("track_presence/subscriptions")[0]["sessionIdentifier"]
    item = presence.item("SUBSCRIPTIONS_TABLE", clientId="sensor-0042", sessionIdentifier=session)
    assert item["topics"] == {"cmd/fleet/sensor-0042/#"}
    assert item["expiresAt"] > item["updatedAt"] // 1000
    assert emitted(capsys.readouterr().out)[1] == {"SubscriptionsUpdated": 3}


def test_subscription_events_are_ignored_when_tracking_is_off(presence, monkeypatch):
    monkeypatch.delenv("SUBSCRIPTIONS_TABLE")
    assert presence.invoke(load_event("track_presence/subscriptions")) == {"batchItemFailures": []}
    assert presence.dynamodb.scan(TableName=presence.tables["SUBSCRIPTIONS_TABLE"])["Items"] == []


def test_version_reset_and_2018_samples_end_as_the_ordering_rules_say(presence):
    presence.invoke(load_event("track_presence/version_reset"))
    presence.invoke(load_event("track_presence/format_2018"))
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")["versionNumber"] == 0
    legacy = presence.item("CONNECTIVITY_TABLE", clientId="a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6")
    assert legacy["connected"] is False and "versionNumber" not in legacy


def test_when_every_record_fails_the_invocation_fails_so_that_the_error_alarm_sees_it(presence, monkeypatch):
    import pytest

    def unavailable(**_request):
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "UpdateItem")

    monkeypatch.setattr(presence.handler.dynamodb, "update_item", unavailable)
    with pytest.raises(presence.handler.sqs_batch.BatchFailed, match="All 2 records of the batch failed"):
        presence.invoke(load_event("track_presence/stale_session"))


def _rejections(presence) -> dict[str, str]:
    """clientId -> rejectionReason of the events in the dead-letter queue."""
    return {
        json.loads(message["Body"])["clientId"]: message["MessageAttributes"]["rejectionReason"]["StringValue"]
        for message in presence.dead_letters()
    }


def test_a_timestamp_ahead_of_the_sqs_receipt_is_dead_lettered_and_cannot_freeze_the_client(presence, capsys):
    presence.invoke(load_event("track_presence/connected"))
    assert presence.invoke(load_event("track_presence/malformed_future_timestamp")) == {"batchItemFailures": []}
    # The year-2100 connect did not replace the client's state; nor did one 6 minutes ahead of its receipt,
    # although it is in the past of this run's clock: the receipt is SQS's SentTimestamp.
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")["since"] == sqs_bodies("track_presence/connected")[0]["timestamp"]
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0043") is None
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0044")["connected"] is True  # 4 minutes: IoT's clock error
    reason = "timestamp is more than 5 minutes after the event was received (IoT's timestamps are accurate to +/-2 minutes)"
    assert _rejections(presence) == {"sensor-0042": reason, "sensor-0043": reason}
    assert emitted(capsys.readouterr().out)[1] == {"ConnectivityUpdated": 2, "MalformedEvents": 2}
    # Once refused, the client's next real event still applies.
    (disconnected,) = load_event("track_presence/disconnected")["Records"]
    presence.invoke({"Records": [disconnected]})
    assert presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")["connected"] is False


def _record_at(timestamp: int, sent: int | None, client_id: str) -> dict:
    (record,) = load_event("track_presence/connected")["Records"]
    body = json.loads(record["body"]) | {"clientId": client_id, "timestamp": timestamp}
    attributes = {k: v for k, v in record["attributes"].items() if k != "SentTimestamp"}
    if sent is not None:
        attributes["SentTimestamp"] = str(sent)
    return record | {"messageId": client_id, "body": json.dumps(body), "attributes": attributes}


def test_without_a_sent_timestamp_the_receipt_is_the_functions_clock(presence):
    now = int(time.time() * 1000)
    records = [_record_at(now + 10 * MINUTE, None, "ahead-of-clock"), _record_at(now - MINUTE, None, "behind-clock")]
    presence.invoke({"Records": records})
    assert set(_rejections(presence)) == {"ahead-of-clock"}
    assert presence.item("CONNECTIVITY_TABLE", clientId="behind-clock")["connected"] is True


def test_a_sent_timestamp_ahead_of_the_functions_clock_is_the_receipt_that_counts(presence):
    now = int(time.time() * 1000)
    presence.invoke({"Records": [_record_at(now + 10 * MINUTE, now + 9 * MINUTE, "clock-behind-sqs")]})
    assert presence.dead_letters() == []
    assert presence.item("CONNECTIVITY_TABLE", clientId="clock-behind-sqs")["since"] == now + 10 * MINUTE


def test_a_timestamp_in_seconds_or_with_a_fraction_is_dead_lettered_with_its_reason(presence, capsys):
    presence.invoke(load_event("track_presence/malformed_timestamp_in_seconds"))
    assert _rejections(presence) == {
        "sensor-0042": "timestamp is before 2015-01-01T00:00:00Z (before AWS IoT existed): it must be in milliseconds since the Unix epoch",
        "sensor-0043": "timestamp must be a whole number >= 0",
    }
    assert presence.dynamodb.scan(TableName=presence.tables["CONNECTIVITY_TABLE"])["Items"] == []
    assert emitted(capsys.readouterr().out)[1] == {"MalformedEvents": 2}


def test_a_version_number_beyond_a_long_is_dead_lettered_with_its_reason(presence, capsys):
    presence.invoke(load_event("track_presence/malformed_version_out_of_range"))
    reason = "versionNumber is larger than a 64-bit long (2^63 - 1)"
    assert _rejections(presence) == {"sensor-0042": reason, "sensor-0043": reason}
    assert presence.dynamodb.scan(TableName=presence.tables["CONNECTIVITY_TABLE"])["Items"] == []
    assert emitted(capsys.readouterr().out)[1] == {"MalformedEvents": 2}


def test_malformed_optional_fields_are_dropped_logged_by_name_and_counted_and_the_events_kept(presence, capsys):
    event = load_event("track_presence/invalid_optional_fields")
    assert presence.invoke(event) == {"batchItemFailures": []}
    assert presence.dead_letters() == []
    item = presence.item("CONNECTIVITY_TABLE", clientId="sensor-0042")
    assert (item["connected"], item["versionNumber"]) == (False, 12)  # the connect, then its disconnect, applied
    assert "disconnectReason" not in item and "clientInitiatedDisconnect" not in item
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"ConnectivityUpdated": 2, "FieldsDropped": 4}
    dropped = [line for line in logs if line["message"] == "Malformed optional fields dropped; the event is kept"]
    assert [(line["level"], line["eventType"], sorted(line["droppedFields"])) for line in dropped] == [
        ("WARNING", "connected", ["ipAddress", "principalIdentifier"]),
        ("WARNING", "disconnected", ["clientInitiatedDisconnect", "disconnectReason"]),
    ]
    printed = json.dumps(dropped)
    assert "999.1.1.1" not in printed and "client_initiated_disconnect" not in printed
