"""Nothing depends on today's date: the demo, as `make run` plays it, passes with the wall clock a year ahead
(libfaketime, tests/moved_clock.py), and the moved clock is the one every process of the run sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local_runtime.functions import CLOCK_VARIABLES
from tests.conftest import ROOT
from tests.e2e.assemblies import printed_table
from tests.moved_clock import moved_clock_environment

SCENARIO = ROOT / "events" / "scenarios" / "fleet_morning.json"
A_YEAR_S = 365 * 86_400
# A child prints its wall clock, then its own child's (Python) and a Node process's, in seconds.
PRINT_CLOCKS = """
import subprocess, sys, time
print(time.time(), flush=True)
subprocess.run([sys.executable, "-c", "import time; print(time.time())"], check=True)
subprocess.run(["node", "-e", "console.log(Date.now() / 1000)"], check=True)
"""


def unmoved_environment() -> dict[str, str]:
    """This environment without a moved clock: the machine's own, also when the suite runs a year ahead."""
    return {name: value for name, value in os.environ.items() if name not in CLOCK_VARIABLES}


def clocks(environment: dict[str, str]) -> list[float]:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_CLOCKS], env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    return [float(line) for line in result.stdout.split()]


def machine_now_s() -> float:
    return clocks(unmoved_environment())[0]


def test_a_process_its_python_children_and_node_see_the_clock_a_year_ahead() -> None:
    before = machine_now_s()
    moved = clocks(moved_clock_environment())
    after = machine_now_s()
    assert len(moved) == 3
    assert all(before + A_YEAR_S <= seen <= after + A_YEAR_S + 1 for seen in moved), (before, moved, after)


# A child times the waits the runtime and its workers make, on the monotonic clock, in seconds.
TIME_WAITS = """
import asyncio, queue, threading, time

def timed(wait):
    start = time.monotonic()
    wait()
    return time.monotonic() - start

def condition_wait():
    condition = threading.Condition()
    with condition:
        condition.wait(0.3)

def queue_get():
    try:
        queue.Queue().get(timeout=0.3)
    except queue.Empty:
        pass

async def wait_for():
    try:
        await asyncio.wait_for(asyncio.sleep(5), 0.3)
    except asyncio.TimeoutError:
        pass

def set_by_a_timer():
    event = threading.Event()
    threading.Timer(0.3, event.set).start()
    event.wait(5)

waits = [
    lambda: threading.Event().wait(0.3), condition_wait, queue_get, lambda: time.sleep(0.3),
    lambda: asyncio.run(wait_for()), set_by_a_timer,
]
print(*(timed(wait) for wait in waits))
"""


def test_waits_last_what_they_should_with_the_clock_a_year_ahead() -> None:
    # Each waits 0.3 s (the last until a timer sets its event), however the moved clock's library handles them.
    result = subprocess.run(
        [sys.executable, "-c", TIME_WAITS], env=moved_clock_environment(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    durations = [float(seconds) for seconds in result.stdout.split()]
    assert len(durations) == 6 and all(0.29 <= seconds < 1.5 for seconds in durations), durations


def test_the_demo_as_make_run_plays_it_passes_with_the_clock_a_year_ahead(cloud_assembly: Path) -> None:
    command = [sys.executable, "-m", "local_runtime", "scenario", str(SCENARIO), "--assembly", str(cloud_assembly)]
    started = machine_now_s() + A_YEAR_S
    result = subprocess.run(
        command, cwd=ROOT, env=moved_clock_environment(), capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    out = result.stdout
    steps = json.loads(SCENARIO.read_text())
    messages = sum("publish" in step or "publish" in step.get("device", {}) for step in steps)
    assert f"{messages} messages: {messages - 2} accepted, 2 rejected; all as expected" in out
    # The readings are stored, timed by the scenario's clock: 10 minutes before it was played, a year ahead.
    latest = printed_table(out, "TelemetryLatest")
    assert len(latest) == 4
    assert all(started - 11 * 60 <= int(row["ts"]) / 1000 <= started for row in latest)
    # The functions ran on the moved clock too: track_presence stamps each row with its own time.
    connectivity = printed_table(out, "PresenceConnectivity")
    assert len(connectivity) == 5
    assert all(started <= int(row["updatedAt"]) / 1000 <= started + 180 for row in connectivity)
