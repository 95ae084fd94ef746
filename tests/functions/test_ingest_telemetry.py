"""ingest_telemetry on the samples of events/ingest_telemetry (what each kind's rule hands the function),
against DynamoDB, SQS, SNS and IoT's registry and data plane in moto."""

from __future__ import annotations

import itertools
import json
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from events import load_event
from tests.functions.conftest import emitted

KINDS = ("environment", "soil", "power")
REGION = "eu-west-1"


def reading(kind: str, case: str) -> dict[str, Any]:
    return load_event(f"ingest_telemetry/{kind}_{case}")


def commands() -> list[tuple[str, dict]]:
    """What the function published to devices through IoT's data plane."""
    published = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads
    return [(topic, json.loads(payload)) for topic, payload in published]


def alerts(telemetry) -> list[dict]:
    messages = telemetry.sqs.receive_message(QueueUrl=telemetry.alerts_queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def history(telemetry, event: dict) -> dict | None:
    return telemetry.item("HISTORY_TABLE", series=f"{event['thingName']}#{event['kind']}", ts=event["ts"])


def register(thing: str, *, groups: tuple[str, ...] = (), **attributes: str) -> None:
    iot = boto3.client("iot")
    iot.create_thing(thingName=thing, attributePayload={"attributes": attributes})
    for group in groups:
        iot.create_thing_group(thingGroupName=group)
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)


@pytest.mark.parametrize("kind", KINDS)
def test_a_valid_reading_becomes_the_latest_state_and_enters_the_history(telemetry, capsys, kind):
    event = reading(kind, "valid")
    register(event["thingName"], site="greenhouse-a")
    assert telemetry.invoke(event) == {"result": "ReadingsStored", "breaches": []}
    latest = telemetry.item("LATEST_TABLE", thingName=event["thingName"], kind=kind)
    measures = {name: value for name, value in event.items() if name not in ("ts", "thingName", "kind", "clientId", "receivedAt")}
    assert {name: float(value) for name, value in latest["reading"].items()} == measures
    assert (latest["ts"], latest["receivedAt"], latest["registered"], latest["attributes"]) == (
        event["ts"], event["receivedAt"], True, {"site": "greenhouse-a"}
    )  # fmt: skip
    stored = history(telemetry, event)
    assert stored["expiresAt"] == event["ts"] // 1000 + 30 * 86400 and "notified" not in stored
    assert alerts(telemetry) == [] and commands() == []
    assert emitted(capsys.readouterr().out)[1] == {"ReadingsStored": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_a_reading_out_of_range_alerts_and_commands_the_device(telemetry, capsys, kind):
    event = reading(kind, "out_of_range")
    register(event["thingName"], site="greenhouse-a")
    result = telemetry.invoke(event)
    assert result["result"] == "ThresholdsBreached" and len(result["breaches"]) == 1
    [alert] = alerts(telemetry)
    assert (alert["alertId"], alert["thingName"], alert["kind"], alert["attributes"]) == (
        f"{event['thingName']}/{kind}/{event['ts']}", event["thingName"], kind, {"site": "greenhouse-a"}
    )  # fmt: skip
    [breach] = alert["breaches"]
    assert breach["value"] == event[breach["measure"]] and breach["bound"] in ("min", "max")
    [(topic, command)] = commands()
    assert topic == f"cmd/fleet/{event['thingName']}/threshold"
    assert command["commandId"] == alert["alertId"] and command["breaches"][0]["measure"] == breach["measure"]
    assert history(telemetry, event)["notified"] is True
    assert emitted(capsys.readouterr().out)[1] == {"ThresholdsBreached": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_a_duplicate_changes_nothing(telemetry, capsys, kind):
    first, again = reading(kind, "valid"), reading(kind, "duplicate")
    assert (first["ts"], first["thingName"]) == (again["ts"], again["thingName"])
    assert again["receivedAt"] > first["receivedAt"]  # a resend: the same reading, received later
    telemetry.invoke(first)
    before = (telemetry.item("LATEST_TABLE", thingName=first["thingName"], kind=kind), history(telemetry, first))
    assert telemetry.invoke(again) == {"result": "DuplicateReadings", "breaches": []}
    assert (telemetry.item("LATEST_TABLE", thingName=first["thingName"], kind=kind), history(telemetry, first)) == before
    assert emitted(capsys.readouterr().out)[1] == {"ReadingsStored": 1, "DuplicateReadings": 1}


def test_a_redelivered_breach_alerts_and_commands_once(telemetry):
    event = reading("soil", "out_of_range")
    telemetry.invoke(event)
    assert telemetry.invoke(event)["result"] == "DuplicateReadings"
    assert len(alerts(telemetry)) == 1 and len(commands()) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_invalid_reading_is_kept_with_its_reason_and_not_retried(telemetry, capsys, kind):
    event = reading(kind, "invalid")
    result = telemetry.invoke(event)  # returns: an exception would make Lambda retry the same payload in vain
    assert result["result"] == "ReadingsRejected"
    [dead] = telemetry.dead_letters()
    assert json.loads(dead["Body"]) == event
    assert dead["MessageAttributes"]["rejectionReason"]["StringValue"] == result["reason"]
    assert telemetry.item("LATEST_TABLE", thingName=event["thingName"], kind=kind) is None
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"ReadingsRejected": 1}
    [line] = [line for line in logs if line["message"] == "Reading rejected to the dead-letter queue"]
    assert line["level"] == "WARNING" and line["reason"] == result["reason"]


def test_rejection_reasons_name_the_field_and_never_echo_the_value(telemetry, capsys):
    reasons = {kind: telemetry.invoke(reading(kind, "invalid"))["reason"] for kind in KINDS}
    assert reasons == {
        "environment": "humidity must be a number",
        "soil": "moisture must be a number",
        "power": "battery must be from 0 to 100; a sensor cannot report more",
    }
    assert "48%" not in capsys.readouterr().out


def test_a_reading_from_a_clock_far_ahead_is_rejected_so_it_cannot_pin_the_latest_state(telemetry):
    event = {**reading("soil", "valid"), "ts": reading("soil", "valid")["receivedAt"] + 6 * 60 * 1000}
    assert telemetry.invoke(event)["reason"].startswith("ts is more than 5 minutes after IoT received")
    assert telemetry.item("LATEST_TABLE", thingName=event["thingName"], kind="soil") is None


def test_a_late_reading_enters_the_history_but_neither_replaces_the_latest_nor_commands(telemetry):
    newer, late = reading("soil", "valid"), reading("soil", "out_of_range")
    newer = {**newer, "ts": late["ts"] + 1000, "receivedAt": late["receivedAt"]}
    telemetry.invoke(newer)
    assert telemetry.invoke(late)["result"] == "ThresholdsBreached"
    assert telemetry.item("LATEST_TABLE", thingName=late["thingName"], kind="soil")["ts"] == newer["ts"]
    assert history(telemetry, late)["notified"] is True
    assert len(alerts(telemetry)) == 1 and commands() == []  # the alert says it happened; no stale command


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the failed invocation counts nothing
def test_a_retry_after_a_failed_alert_sends_the_alert_and_command_once(telemetry, monkeypatch):
    event = reading("environment", "out_of_range")
    sns = telemetry.handler.notifiers.sns()
    real_publish = sns.publish
    failures = iter([ClientError({"Error": {"Code": "InternalError", "Message": "unavailable"}}, "Publish")])

    def fails_once(**request):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_publish(**request)

    monkeypatch.setattr(sns, "publish", fails_once)
    with pytest.raises(ClientError):
        telemetry.invoke(event)  # Lambda retries a failed asynchronous invocation
    assert history(telemetry, event)["notified"] is False
    assert telemetry.invoke(event)["result"] == "ThresholdsBreached"
    assert telemetry.invoke(event)["result"] == "DuplicateReadings"
    assert len(alerts(telemetry)) == 1 and len(commands()) == 1


def test_a_thing_group_tightens_the_thresholds_of_its_members(telemetry, monkeypatch):
    monkeypatch.setenv(
        "THRESHOLDS",
        json.dumps({"default": {"soil": {"moisture": {"min": 20}}}, "groups": {"seedlings": {"soil": {"moisture": {"min": 40}}}}}),
    )
    event = reading("soil", "valid")  # moisture 34: fine for most, too dry for seedlings
    register(event["thingName"], groups=("seedlings",))
    result = telemetry.invoke(event)
    assert result == {"result": "ThresholdsBreached", "breaches": ["moisture"]}
    [alert] = alerts(telemetry)
    assert alert["breaches"][0]["limit"] == 40 and alert["thingGroups"] == ["seedlings"]


def test_the_registry_is_read_once_per_thing_and_cache_period(telemetry, monkeypatch):
    event = reading("power", "valid")
    register(event["thingName"])
    iot = telemetry.handler.directory._iot
    calls = []
    real_describe = iot.describe_thing
    monkeypatch.setattr(iot, "describe_thing", lambda **kw: calls.append(kw) or real_describe(**kw))
    for offset in range(3):
        telemetry.invoke({**event, "ts": event["ts"] + offset, "receivedAt": event["receivedAt"] + offset})
    assert len(calls) == 1


def test_a_reading_costs_two_writes_and_a_duplicate_two_refused_ones(telemetry, monkeypatch):
    event = reading("environment", "valid")
    dynamodb = telemetry.handler.dynamodb
    writes = []
    real_update = dynamodb.update_item
    monkeypatch.setattr(dynamodb, "update_item", lambda **kw: writes.append(kw) or real_update(**kw))
    telemetry.invoke(event)
    telemetry.invoke(reading("environment", "duplicate"))
    assert len(writes) == 4 and all("ConditionExpression" in write for write in writes)


def test_an_unregistered_publisher_is_stored_and_marked_unregistered(telemetry):
    event = reading("environment", "valid")
    telemetry.invoke(event)
    latest = telemetry.item("LATEST_TABLE", thingName=event["thingName"], kind="environment")
    assert (latest["registered"], latest["thingGroups"], latest["attributes"]) == (False, [], {})


_EXAMPLES = itertools.count()


def all_alerts(telemetry) -> list[dict]:
    found, batch = [], alerts(telemetry)
    while batch:
        found += batch
        batch = alerts(telemetry)
    return found


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_order_of_deliveries_with_repeats_ends_as_one_delivery_of_each_in_order(telemetry, data):
    """IoT invokes at least once and Lambda retries: readings arrive shuffled and repeated. The end state must
    be that of each reading delivered once, in order, with each breach alerted once."""
    thing = f"probe-{next(_EXAMPLES)}"  # not drawn: hypothesis replays draws, and each example needs a fresh thing
    offsets = data.draw(st.lists(st.integers(0, 600), min_size=1, max_size=5, unique=True))
    moistures = data.draw(st.lists(st.sampled_from([5.0, 15.0, 25.0, 50.0]), min_size=len(offsets), max_size=len(offsets)))
    base = reading("soil", "valid")
    readings = [
        {**base, "thingName": thing, "clientId": thing, "ts": base["ts"] + o * 1000, "receivedAt": base["receivedAt"] + o * 1000, "moisture": m}
        for o, m in zip(offsets, moistures)
    ]
    deliveries = data.draw(st.permutations(readings + data.draw(st.lists(st.sampled_from(readings), max_size=4))))
    for delivery in deliveries:
        telemetry.invoke(delivery)
    newest = max(readings, key=lambda r: r["ts"])
    latest = telemetry.item("LATEST_TABLE", thingName=thing, kind="soil")
    assert (latest["ts"], float(latest["reading"]["moisture"])) == (newest["ts"], newest["moisture"])
    breaching = {f"{thing}/soil/{r['ts']}" for r in readings if r["moisture"] < 20}
    sent = [alert["alertId"] for alert in all_alerts(telemetry) if alert["thingName"] == thing]
    assert sorted(sent) == sorted(breaching)  # each once
    commanded = [command["commandId"] for topic, command in commands() if topic == f"cmd/fleet/{thing}/threshold"]
    assert len(commanded) == len(set(commanded)) and set(commanded) <= breaching
    if newest["moisture"] < 20:
        assert f"{thing}/soil/{newest['ts']}" in commanded
    assert {r["ts"]: history(telemetry, r).get("notified") for r in readings} == {
        r["ts"]: True if r["moisture"] < 20 else None for r in readings
    }
