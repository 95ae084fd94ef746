"""`python -m benchmarks.storm --quick` on the synthesized app: lifecycle events and readings delivered at least
once and in any order leave the state an orderly delivery leaves, with nothing lost; and the check sees a
message the storm lost."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks import storm
from benchmarks.local_runtime import CONNECTIVITY, HISTORY, LATEST, Message
from benchmarks.storm import QUICK_DEVICES, differences, fleet_messages, main, storm_of

NOW_MS = 1_800_000_000_000


@pytest.fixture(scope="module")
def quick_run(cloud_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    raw_path = tmp_path_factory.mktemp("storm") / "raw.json"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        exit_code = main(["--quick", "--assembly", str(cloud_assembly), "--json", str(raw_path)])
    return exit_code, report.getvalue(), json.loads(raw_path.read_text())


def test_the_storm_leaves_every_item_as_the_in_order_run_and_loses_nothing(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    exit_code, report, raw = quick_run
    assert exit_code == 0
    in_order, stormed = raw["runs"]["in order"], raw["runs"]["storm"]
    assert stormed["messages"] > in_order["messages"]  # the duplicates
    for run in (in_order, stormed):
        assert run["records"] == run["messages"] and run["failures"] == []
    # Every device's connectivity, the latest of each kind of the third that publish, and every reading.
    assert in_order["items"] == stormed["items"] == QUICK_DEVICES + raw["readings"] // 2 + raw["readings"]
    assert f"| messages delivered | {in_order['messages']} | {stormed['messages']} (" in report
    assert "the storm left every item as the in-order run did" in report


def test_a_message_the_storm_loses_is_reported_and_fails_the_run(
    cloud_assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def losing_a_disconnect(in_order: list[Message]) -> list[Message]:
        delivered = storm_of(in_order)
        lost = next(m for m in delivered if b"CLIENT_INITIATED_DISCONNECT" in m.payload)
        return [message for message in delivered if message != lost]

    monkeypatch.setattr(storm, "storm_of", losing_a_disconnect)
    raw_path = tmp_path / "raw.json"
    exit_code = main(["--quick", "--assembly", str(cloud_assembly), "--json", str(raw_path)])
    out, err = capsys.readouterr()
    assert exit_code == 1 and "messages per second" not in out and not raw_path.exists()
    assert f"storm differs from in order: {CONNECTIVITY}: 1 items different" in err


def test_the_fleet_is_in_the_order_of_its_timestamps_and_each_device_ends_with_its_second_session() -> None:
    fleet = fleet_messages(6, NOW_MS)
    payloads = [json.loads(message.payload) for message in fleet.in_order]
    times = [payload.get("timestamp", payload.get("ts")) for payload in payloads]
    assert times == sorted(times)
    events = [json.loads(m.payload) for m in fleet.in_order if m.topic.startswith("$aws/events/presence/")]
    assert Counter(event["eventType"] for event in events) == {"connected": 12, "disconnected": 6 + 3}
    for index in range(6):
        client = f"storm-thing-{index:05d}"
        sessions = [e for e in events if e["clientId"] == client and e["eventType"] == "connected"]
        second = max(sessions, key=lambda event: event["timestamp"])
        row = fleet.rows[(CONNECTIVITY, (client,))]
        assert row["sessionIdentifier"] == second["sessionIdentifier"]
        assert row["versionNumber"] == second["versionNumber"]
        assert row["connected"] is (index % 2 == 0)  # every other device ends its second session
    kicks = [event for event in events if event.get("disconnectReason") == "DUPLICATE_CLIENTID"]
    assert len(kicks) == 6
    assert {variable for variable, _ in fleet.rows} == {CONNECTIVITY, LATEST, HISTORY}


def test_the_storm_delivers_every_message_some_twice_in_another_order() -> None:
    in_order = fleet_messages(300, NOW_MS).in_order
    delivered = storm_of(in_order)
    copies = Counter(delivered)
    assert set(copies) == set(in_order) and set(copies.values()) == {1, 2}
    assert 0.15 < (len(delivered) - len(in_order)) / len(in_order) < 0.25
    assert [m for m in delivered if copies[m] == 1] != [m for m in in_order if copies[m] == 1]


def test_differences_name_what_is_missing_unexpected_or_different_in_each_table() -> None:
    reference = {"A": {("k1",): {"v": 1}, ("k2",): {"v": 2}}, "B": {("k",): {"v": 1}}}
    assert differences(reference, reference) == []
    other = {"A": {("k1",): {"v": 1}, ("k3",): {"v": 3}}, "B": {("k",): {"v": 9}}}
    assert differences(reference, other) == [
        "A: 1 items missing (the first: ('k2',))",
        "A: 1 items unexpected (the first: ('k3',))",
        "B: 1 items different (the first: ('k',))",
    ]
