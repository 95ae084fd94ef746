"""Scenarios with device steps, on the synthesized app (no authorizer, no registered CA): a real device's
publish outside its policy is refused by IoT, which fails the scenario unless the step expected it; a token
device needs the app's custom authorizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_runtime.__main__ import EXIT_CANNOT_RUN, EXIT_FUNCTION_FAILED, main

OUTSIDE = {"publish": "soil-sensor-51", "topic": "dt/fleet/soil-sensor-52/soil", "payload": {"moisture": 30}}


def write(tmp_path: Path, steps: list) -> Path:
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(steps))
    return path


def test_a_publish_outside_the_device_policy_is_refused_and_fails_the_scenario_unless_expected(
    cloud_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(
        tmp_path,
        [
            {"device": {"connect": "soil-sensor-51"}},
            {"device": OUTSIDE, "expect": {"refused": "no statement allows iot:Publish"}},
            {"device": {"connect": "soil-sensor-51"}},
            {"device": OUTSIDE},  # wrongly expected to go through
            {"device": {"publish": "soil-sensor-51", "topic": "dt/fleet/soil-sensor-51/soil", "payload": "x"}},
        ],
    )
    code = main(["scenario", str(scenario), "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out
    assert code == EXIT_FUNCTION_FAILED
    summary = out[out.index("Outcome of each message") :].splitlines()
    refusal = (
        "    PUBLISH to 'dt/fleet/soil-sensor-52/soil': no statement allows iot:Publish on "
        "arn:aws:iot:eu-west-1:123456789012:topic/dt/fleet/soil-sensor-52/soil"
    )
    assert summary[2:9] == [
        "[1] soil-sensor-51 connected: session " + summary[2].rsplit("session ", 1)[1],
        "[2] refused, as expected: soil-sensor-51 publish dt/fleet/soil-sensor-52/soil",
        refusal,
        "[3] soil-sensor-51 connected: session " + summary[5].rsplit("session ", 1)[1],
        "[4] REFUSED, expected to go through: soil-sensor-51 publish dt/fleet/soil-sensor-52/soil",
        refusal,
        # IoT disconnected the device for the denied publish (MQTT 3): the next step finds it gone.
        "[5] REFUSED, expected to go through: soil-sensor-51 publish dt/fleet/soil-sensor-51/soil",
    ]
    assert summary[9:12] == [
        "    soil-sensor-51 is not connected",
        "0 messages: 0 accepted, 0 rejected; all as expected",
        "5 device steps: 2 done, 3 refused; 2 NOT as expected",
    ]
    assert summary[2].endswith(", version 0") and summary[5].endswith(", version 1")  # the same client ID again


def test_a_token_device_is_refused_before_anything_plays_when_the_app_has_no_authorizer(
    cloud_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(tmp_path, [{"device": {"connect": "sensor-1", "as": "token", "keys": "keys"}}])
    code = main(["scenario", str(scenario), "--assembly", str(cloud_assembly)])
    captured = capsys.readouterr()
    assert code == EXIT_CANNOT_RUN
    reason = "a token device connects through the app's custom authorizer, and the app has none"
    assert f"error: {scenario} step 1: {reason}" in captured.err
    assert "[1] device" not in captured.out
