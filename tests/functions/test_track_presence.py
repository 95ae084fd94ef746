"""track_presence on SQS batches from events/, against DynamoDB and SQS in moto."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from events import load_event, sqs_bodies
from tests.functions.conftest import emitted


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
