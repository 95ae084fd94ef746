"""`python -m benchmarks.local_runtime --quick` on the synthesized app: it reports throughput and overhead per
message, for lifecycle events and for telemetry apart, only for work that happened.

Timings are only checked to be consistent with each other (parts that add up, a wall time that covers the
delay): on a shared machine their values are too noisy for a test.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.local_runtime import QUICK_MESSAGES, READING_MINUTES, READINGS, main

# The topic filters of the rules that the failure tests disable.
CONNECTED_RULE = "$aws/events/presence/connected/+"
ENVIRONMENT_RULE = "dt/fleet/+/environment"


@pytest.fixture(scope="module")
def quick_run(cloud_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    raw_path = tmp_path_factory.mktemp("throughput") / "raw.json"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        exit_code = main(["--quick", "--assembly", str(cloud_assembly), "--json", str(raw_path)])
    return exit_code, report.getvalue(), json.loads(raw_path.read_text())


def test_reports_messages_per_second_and_overhead_per_message(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    exit_code, report, raw = quick_run
    assert exit_code == 0
    main_phase = raw["phases"]["main"]
    assert f"**{main_phase['messages_per_s']:.0f} messages/s**" in report
    assert f"**{main_phase['ms_per_message']['overhead']:.2f} ms/message**" in report
    for part in ("rules engine", "event-source polling", "worker IPC", "in the handlers"):
        assert part in report
    for fact in ("python", "cpu_count", "date"):
        assert f"- {fact}: " in report


@pytest.mark.parametrize("phase", ["main", "telemetry"])
def test_overhead_is_the_wall_time_not_spent_in_handlers(
    quick_run: tuple[int, str, dict[str, Any]], phase: str
) -> None:
    timed = quick_run[2]["phases"][phase]
    ms = timed["ms_per_message"]
    assert all(value > 0 for value in ms.values())
    assert math.isclose(ms["overhead"], ms["rules_engine"] + ms["event_source_polling"] + ms["worker_ipc"])
    assert math.isclose((ms["handler"] + ms["overhead"]) * timed["messages"], timed["wall_s"] * 1000)
    assert timed["messages_per_s"] == pytest.approx(timed["messages"] / timed["wall_s"])


def test_every_message_sent_reached_its_function_and_table(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    raw = quick_run[2]
    main_phase, disconnects = raw["phases"]["main"], raw["phases"]["delayed_disconnects"]
    assert main_phase["messages"] == main_phase["records"] == QUICK_MESSAGES
    assert main_phase["invocations"] >= QUICK_MESSAGES / 10  # SQS batches of at most 10
    assert disconnects["records"] == disconnects["messages"] > 0
    assert raw["failures"] == []
    # Half the messages connect distinct clients, a quarter create distinct things; every reading has its history
    # item, every thing its latest of each kind; plus one of each to warm up. Tables sorted by logical id.
    connectivity, inventory, history, latest = (count for table, count in sorted(raw["rows_as_expected"].items()))
    things = math.ceil(QUICK_MESSAGES / (READING_MINUTES * len(READINGS)))
    assert (connectivity, inventory) == (QUICK_MESSAGES // 2 + 1, QUICK_MESSAGES // 4 + 1)
    assert (history, latest) == (QUICK_MESSAGES + 1, things * len(READINGS) + 1)


def test_telemetry_is_timed_apart_one_asynchronous_invocation_per_reading(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, report, raw = quick_run
    telemetry = raw["phases"]["telemetry"]
    assert telemetry["messages"] == telemetry["records"] == telemetry["invocations"] == QUICK_MESSAGES
    assert telemetry["delay_s"] == 0
    assert "## Telemetry: rule → asynchronous invocation → Lambda → DynamoDB" in report
    section = report.split("## Telemetry")[1]
    assert f"**{telemetry['messages_per_s']:.0f} messages/s**" in section
    assert f"**{telemetry['ms_per_message']['overhead']:.2f} ms/message**" in section
    assert "ingest_telemetry" in raw["cold_starts_ms"]  # in the warm-up, not in the numbers


def test_delayed_disconnects_are_timed_apart_from_the_throughput(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, report, raw = quick_run
    disconnects = raw["phases"]["delayed_disconnects"]
    assert disconnects["delay_s"] == 5
    assert disconnects["wall_s"] >= disconnects["delay_s"]
    assert raw["phases"]["main"]["delay_s"] == 0
    assert "through a queue with a 5 s DeliveryDelay" in report


def test_exits_non_zero_without_numbers_when_a_rule_drops_messages(
    cloud_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assembly = _copy_with_rule_disabled(cloud_assembly, tmp_path / "assembly", CONNECTED_RULE)
    raw_path = tmp_path / "raw.json"
    exit_code = main(["--quick", "--assembly", str(assembly), "--json", str(raw_path)])
    out, err = capsys.readouterr()
    assert exit_code == 1
    assert "messages/s" not in out and not raw_path.exists()
    assert "The run lost work" in err
    assert f"{QUICK_MESSAGES // 2} of {QUICK_MESSAGES} messages fired no rule action" in err
    assert "rows missing" in err


def test_exits_non_zero_without_numbers_when_a_kinds_rule_drops_readings(
    cloud_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The archive rule still takes every reading: the lost ones show in the invocations and the tables."""
    assembly = _copy_with_rule_disabled(cloud_assembly, tmp_path / "assembly", ENVIRONMENT_RULE)
    raw_path = tmp_path / "raw.json"
    exit_code = main(["--quick", "--assembly", str(assembly), "--json", str(raw_path)])
    out, err = capsys.readouterr()
    assert exit_code == 1
    assert "messages/s" not in out and not raw_path.exists()
    assert f"records for {QUICK_MESSAGES} messages" in err
    assert "rows missing" in err


def _copy_with_rule_disabled(source: Path, target: Path, topic_filter: str) -> Path:
    """The assembly with the rule of `topic_filter` (its FROM) disabled; its assets are linked, not copied."""
    target.mkdir()
    disabled = 0
    for entry in source.iterdir():
        if not entry.name.endswith(".template.json"):
            (target / entry.name).symlink_to(entry)
            continue
        template = json.loads(entry.read_text())
        for resource in template["Resources"].values():
            payload = resource.get("Properties", {}).get("TopicRulePayload", {})
            if payload.get("Sql", "").endswith(f"FROM '{topic_filter}'"):
                payload["RuleDisabled"] = True
                disabled += 1
        (target / entry.name).write_text(json.dumps(template))
    assert disabled == 1
    return target


def test_a_long_phase_reports_its_progress_on_standard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from types import SimpleNamespace

    from benchmarks import local_runtime
    from local_runtime.activity import BatchDelivered

    monkeypatch.setattr(local_runtime, "PROGRESS_EVERY_S", 0.02)
    runtime = SimpleNamespace(activities=[])
    stream = io.StringIO()
    with local_runtime.Progress(runtime, "lifecycle events", 10, stream) as progress:  # type: ignore[arg-type]
        progress.published = 7
        runtime.activities.append(BatchDelivered("Queue", "Presence", 4, None, (), None))  # type: ignore[arg-type]
        time.sleep(0.2)
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].startswith("lifecycle events: 7/10 published, 4 records received by the functions, ")
