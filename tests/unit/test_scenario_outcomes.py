"""The scenario format's relative times, expected rejections and device steps, and how rejections are traced to
the messages that caused them (local_runtime/scenario.py, local_runtime/outcomes.py), on plain values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_runtime.activity import ActionOutcome, RuleFired
from local_runtime.errors import LocalRuntimeError
from local_runtime.outcomes import Rejection, Sent, attribute
from local_runtime.scenario import (
    DeviceConnect,
    DeviceDisconnect,
    DeviceOutcome,
    DevicePublish,
    DeviceSubscribe,
    Outcome,
    Played,
    Publish,
    load_scenario,
    outcome_lines,
)

AT = 1_900_000_000_000
READING = {"ts": 1, "moisture": 12.5}


def scenario(tmp_path: Path, steps: list) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(steps))
    return path


def publish(payload: object, **step: object) -> dict:
    return {"publish": {"topic": "dt/fleet/s-1/soil", "payload": payload}, **step}


def test_times_resolve_against_the_moment_given_and_an_expected_rejection_is_kept(tmp_path):
    steps = [publish({"ts": {"$time": "-10m"}}, expect={"rejected": "ts is older"}), publish({"ts": {"$time": "now"}})]
    first, second = load_scenario(scenario(tmp_path, steps), at_ms=AT)
    assert isinstance(first, Publish) and isinstance(second, Publish)
    assert json.loads(first.payload) == {"ts": AT - 600_000} and first.expected_rejection == "ts is older"
    assert json.loads(second.payload) == {"ts": AT} and second.expected_rejection is None


@pytest.mark.parametrize(
    ("step", "refusal"),
    [
        (publish({}, expect={"accepted": True}), r'"expect" is \{"rejected": "<part of the reason>"\}'),
        (publish({}, expect={"rejected": ""}), "an expected rejection names part of its reason"),
        (publish({}, expect="rejected"), r'"expect" is \{"rejected"'),
        ({"sleep": 1, "expect": {"rejected": "x"}}, "only a publish or device step has an expected outcome"),
        (publish({"ts": {"$time": "10m"}}), r"scenario.json\[0\].publish.payload.ts: '10m' is not an offset"),
    ],
)
def test_a_malformed_expectation_or_time_is_refused_naming_the_step(tmp_path, step, refusal):
    with pytest.raises(LocalRuntimeError, match=refusal):
        load_scenario(scenario(tmp_path, [step]), at_ms=AT)


def sent(payload: dict, output: dict | None = None, error: str | None = None) -> Sent:
    actions = (ActionOutcome("lambda", "ingest_telemetry", error),)
    return Sent(json.dumps(payload).encode(), (RuleFired("telemetry_soil", "dt/fleet/s-1/soil", actions, output=output),))


def test_a_rejection_goes_to_the_message_whose_rule_output_it_is():
    output = {**READING, "receivedAt": 5}
    reasons, unaccounted = attribute(
        [sent({"ts": 0, "moisture": 30}), sent(READING, output)],
        [Rejection("TelemetryDeadLetters", "moisture is dry", output)],
    )
    assert reasons == [[], ["moisture is dry (TelemetryDeadLetters)"]] and unaccounted == []


def test_of_identical_messages_each_rejection_goes_to_the_first_not_yet_rejected():
    twice = [sent(READING), sent(READING), sent(READING)]
    reasons, _ = attribute(twice, [Rejection("Q", "bad", READING), Rejection("Q", "bad", READING)])
    assert reasons == [["bad (Q)"], ["bad (Q)"], []]


def test_a_rejection_no_message_accounts_for_is_kept_apart():
    stray = Rejection("CommandsDeadLetters", "bad command", {"commandId": "c-1"})
    reasons, unaccounted = attribute([sent(READING)], [stray])
    assert reasons == [[]] and unaccounted == [stray]


def test_a_failed_rule_action_rejects_its_message():
    reasons, _ = attribute([sent(READING, READING, error="AccessDenied")], [])
    assert reasons == [["rule telemetry_soil: lambda ingest_telemetry failed: AccessDenied"]]


@pytest.mark.parametrize(
    ("expected", "rejections", "as_expected"),
    [
        (None, (), True),
        (None, ("humidity must be a number (Q)",), False),
        ("humidity", ("humidity must be a number (Q)",), True),
        ("humidity", (), False),
        ("humidity", ("timestamp must be a whole number (Q)",), False),
    ],
)
def test_an_outcome_is_as_expected_when_accepted_as_expected_or_rejected_for_the_reason_given(
    expected, rejections, as_expected
):
    step = Publish("t", b"{}", expected_rejection=expected)
    assert Outcome(1, step, rejections).as_expected is as_expected


CONNECT = {"device": {"connect": "s-1"}}


def test_device_steps_are_parsed_with_their_defaults_and_expectations(tmp_path):
    steps = [
        CONNECT,
        {"device": {"connect": "s-1 spare", "clientId": "s-1", "policy": "fleet_device"}, "expect": {"refused": "iot:Connect"}},
        {"device": {"connect": "t-1", "as": "token", "keys": "keys"}},
        {"device": {"subscribe": "s-1", "topic": "cmd/fleet/s-1/#"}, "expect": {"receives": {"topic": "cmd/fleet/s-1/+"}}},
        {"device": {"publish": "s-1", "topic": "dt/fleet/s-1/soil", "payload": {"ts": {"$time": "-1s"}}, "qos": 0}},
        {"device": {"publish": "s-1", "topic": "dt/fleet/s-2/soil", "retain": True}, "expect": {"refused": "iot:Publish"}},
        {"device": {"disconnect": "s-1", "how": "drop"}},
        {"device": {"disconnect": "t-1"}},
    ]
    connect, spare, token, subscribe, publish, refused, drop, clean = load_scenario(scenario(tmp_path, steps), at_ms=AT)
    assert (connect.client_id, connect.credentials, connect.policy, connect.expected_refusal) == ("s-1", "certificate", None, None)
    assert isinstance(spare, DeviceConnect) and (spare.client_id, spare.policy, spare.expected_refusal) == (
        "s-1", "fleet_device", "iot:Connect"
    )  # fmt: skip
    assert isinstance(token, DeviceConnect) and (token.credentials, token.keys) == ("token", tmp_path / "keys")
    assert isinstance(subscribe, DeviceSubscribe)
    assert (subscribe.topic_filter, subscribe.qos, subscribe.expected_receipt) == ("cmd/fleet/s-1/#", 1, "cmd/fleet/s-1/+")
    assert isinstance(publish, DevicePublish) and json.loads(publish.payload) == {"ts": AT - 1000}
    assert (publish.qos, publish.retain, publish.expected_refusal) == (0, False, None)
    assert isinstance(refused, DevicePublish) and (refused.payload, refused.retain, refused.expected_refusal) == (
        b"", True, "iot:Publish"
    )  # fmt: skip
    assert isinstance(drop, DeviceDisconnect) and (drop.how, clean.how) == ("drop", "clean")


@pytest.mark.parametrize(
    ("steps", "refusal"),
    [
        ([{"device": {"connect": "s-1", "publish": "s-1"}}], r"step 1: a device step is \{"),
        ([{"device": "s-1"}], r"step 1: a device step is \{"),
        ([{"device": {"connect": ""}}], r'step 1: "connect" names the device, a non-empty string'),
        ([{"device": {"connect": "s-1", "as": "password"}}], r'step 1: "as" is "certificate" or "token"'),
        ([{"device": {"connect": "s-1", "topic": "x"}}], "step 1: a device connect has as, authorizer, clientId, keys, "
         "policy, not topic"),
        ([{"device": {"connect": "s-1", "as": "token"}}], 'step 1: a token device needs "keys"'),
        ([{"device": {"connect": "s-1", "keys": "k"}}], "step 1: a certificate device has no keys"),
        ([{"device": {"connect": "s-1", "as": "token", "keys": "k", "policy": "p"}}], "step 1: a token device has no policy"),
        ([CONNECT, {"device": {"connect": "s-1", "clientId": "s-9"}}], "step 2: s-1 keeps the client ID and credentials"),
        ([{"device": {"publish": "s-1", "topic": "dt/fleet/s-1/soil"}}], "step 1: no earlier step connects the device s-1"),
        ([CONNECT, {"device": {"subscribe": "s-1"}}], r'step 2: a device subscribe needs a "topic"'),
        ([CONNECT, {"device": {"publish": "s-1", "topic": "t", "qos": 3}}], r'step 2: "qos" is 0 or 1'),
        ([CONNECT, {"device": {"publish": "s-1", "topic": "t", "retain": "yes"}}], r'step 2: "retain" is true or false'),
        ([CONNECT, {"device": {"publish": "s-1", "topic": "t", "payload": [1]}}], "step 2: a payload is a JSON object"),
        ([CONNECT, {"device": {"disconnect": "s-1", "how": "slam"}}], r'step 2: "how" is "clean" or "drop"'),
        ([CONNECT, {"device": {"disconnect": "s-1"}, "expect": {"refused": "x"}}], "step 2: a device disconnect has no "
         "expected outcome"),
        ([{**CONNECT, "expect": {"receives": {"topic": "cmd/#"}}}], r'step 1: "expect" is \{"refused"'),
        ([{**CONNECT, "expect": {"rejected": "x"}}], r'step 1: "expect" is \{"refused"'),
        ([{**CONNECT, "expect": {"refused": ""}}], "step 1: an expected refusal names part of its reason"),
        ([CONNECT, {"device": {"subscribe": "s-1", "topic": "cmd/#"}, "expect": {"receives": {"topic": "cmd/#/x"}}}],
         "step 2: expect.receives.topic: 'cmd/#/x' is not a valid topic filter"),
        ([CONNECT, {"device": {"subscribe": "s-1", "topic": "cmd/#"}, "expect": {"receives": "cmd/#"}}],
         r'step 2: \{"receives": \{"topic": "<topic filter>"\}\}'),
        ([CONNECT, {"device": {"publish": "s-1", "topic": "t"}, "expect": {"refused": "x", "rejected": "y"}}],
         "step 2: a step expected to be refused expects nothing else"),
    ],
)
def test_a_malformed_device_step_is_refused_naming_the_step(tmp_path, steps, refusal):
    with pytest.raises(LocalRuntimeError, match=refusal):
        load_scenario(scenario(tmp_path, steps), at_ms=AT)


def publish_step(**expected: str) -> DevicePublish:
    return DevicePublish("s-1", "dt/fleet/s-1/soil", b"{}", 1, False, "step 2", **expected)


@pytest.mark.parametrize(
    ("step", "refusal", "received", "as_expected"),
    [
        (publish_step(), None, (), True),
        (publish_step(), "PUBLISH to 'x': no statement allows iot:Publish", (), False),
        (publish_step(expected_refusal="iot:Publish"), "PUBLISH to 'x': no statement allows iot:Publish", (), True),
        (publish_step(expected_refusal="iot:Publish"), None, (), False),
        (publish_step(expected_refusal="iot:Publish"), "the connection was closed", (), False),
        (publish_step(expected_receipt="cmd/fleet/s-1/+"), None, ("cmd/fleet/s-1/threshold",), True),
        (publish_step(expected_receipt="cmd/fleet/s-1/+"), None, (), False),
    ],
)
def test_a_device_step_is_as_expected_when_refused_for_the_reason_given_or_done_and_received(
    step, refusal, received, as_expected
):
    assert DeviceOutcome(2, step, refusal, received=received).as_expected is as_expected


def test_the_summary_lists_device_steps_in_order_and_shouts_what_was_not_as_expected():
    connect = DeviceConnect("s-1", "s-1", "certificate", "step 1")
    played = Played(
        outcomes=(Outcome(2, publish_step(expected_receipt="cmd/#"), ()),),
        unaccounted=(),
        device_outcomes=(
            DeviceOutcome(1, connect, None, "connected: session abc, version 0"),
            DeviceOutcome(2, publish_step(expected_receipt="cmd/#"), None, "let through"),
            DeviceOutcome(3, publish_step(expected_refusal="iot:Publish"), None, "let through"),
        ),
    )
    assert outcome_lines(played) == [
        "[1] s-1 connected: session abc, version 0",
        "[2] accepted: dt/fleet/s-1/soil (from s-1)",
        "    s-1 DID NOT RECEIVE a message on cmd/#",
        "[3] PUBLISH WENT THROUGH, expected to be refused for 'iot:Publish': s-1 dt/fleet/s-1/soil",
        "1 messages: 1 accepted, 0 rejected; all as expected",
        "3 device steps: 3 done, 0 refused; 2 NOT as expected",
    ]
    assert not played.passed
