"""The device-endpoint benchmark's core (benchmarks/devices.py): real paho-mqtt devices connect, publish, all
drop and reconnect in a storm, and disconnect; no lifecycle event is lost and presence ends as the sessions
did. A fleet of 1,000 devices for the connections and the storm (its readings are left to the benchmark
command, which runs them too: here they would double the time), a fleet of 100 with a reading each for the
telemetry. A lifecycle event dropped on purpose fails the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.devices import render_markdown, run
from local_runtime.device_endpoint import DeviceEndpoint


def test_a_thousand_devices_connect_survive_a_reconnect_storm_and_presence_follows_every_session(
    cloud_assembly: Path,
) -> None:
    outcome = run(cloud_assembly, devices=1000, per_device=0, storm_s=3.0, command="test")

    assert outcome.failures == []
    assert outcome.presence_correct == {"after the storm": 1000, "after the disconnect": 1000}
    ledger = outcome.lifecycle
    assert ledger["connected events through the rules"] == ledger["connections made (devices' CONNACKs)"] == 2000
    assert ledger["disconnected events through the rules"] == ledger["connections ended"] == 2000
    assert ledger["settled by the presence function"] == 4000 and ledger["in dead-letter queues"] == 0
    connects = {timed.what: timed for timed in outcome.timings}["connect: all devices connected (CONNACK)"]
    assert connects.count == 1000 and connects.per_second > 0


def test_a_fleet_connects_publishes_survives_a_reconnect_storm_and_presence_follows_every_session(
    cloud_assembly: Path,
) -> None:
    outcome = run(cloud_assembly, devices=100, per_device=1, storm_s=2.0, command="test")

    assert outcome.failures == []
    assert outcome.presence_correct == {"after the storm": 100, "after the disconnect": 100}
    ledger = outcome.lifecycle
    assert ledger["connected events through the rules"] == ledger["connections made (devices' CONNACKs)"] == 200
    assert ledger["disconnected events through the rules"] == ledger["connections ended"] == 200
    assert ledger["settled by the presence function"] == 400 and ledger["in dead-letter queues"] == 0
    report = render_markdown(outcome)
    assert all(timed.seconds > 0 and timed.what in report for timed in outcome.timings)


def test_a_lifecycle_event_the_endpoint_loses_fails_the_run(cloud_assembly: Path) -> None:
    def lose_one_disconnect(endpoint: DeviceEndpoint) -> None:
        handed_on = endpoint._lifecycle
        lost: list[str] = []

        def lifecycle(client_id: str, event: tuple[str, bytes]) -> Any:
            if "/disconnected/" in event[0] and not lost:
                lost.append(client_id)
                return None
            return handed_on(client_id, event)

        endpoint._lifecycle = lifecycle  # type: ignore[method-assign]

    outcome = run(cloud_assembly, devices=5, per_device=0, storm_s=0.5, command="test", on_endpoint=lose_one_disconnect)

    assert "lifecycle: 9 disconnected events reached the rules, for 10" in outcome.failures
