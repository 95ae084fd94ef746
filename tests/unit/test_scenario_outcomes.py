"""The scenario format's relative times and expected rejections, and how rejections are traced to the
messages that caused them (local_runtime/scenario.py, local_runtime/outcomes.py), on plain values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_runtime.activity import ActionOutcome, RuleFired
from local_runtime.errors import LocalRuntimeError
from local_runtime.outcomes import Rejection, Sent, attribute
from local_runtime.scenario import Outcome, Publish, load_scenario

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
        ({"sleep": 1, "expect": {"rejected": "x"}}, "only a publish step has an expected outcome"),
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
