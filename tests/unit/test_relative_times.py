"""The samples' and scenarios' times relative to the run: {"$time": "<offset>"} (events/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from events import EVENTS_DIR, TIME_KEY, RelativeTimeError, load_event, offset_ms, resolve_times
from tests.conftest import ROOT

AT = 1_900_000_000_000  # 2030-03-17T17:46:40Z, any moment will do


@pytest.mark.parametrize(
    ("offset", "ms"),
    [("now", 0), ("-5m", -300_000), ("+2s", 2000), ("-1h10m", -4_200_000), ("-350ms", -350), ("-1d2h3m4s5ms", -93_784_005)],
)
def test_an_offset_is_a_sign_and_amounts_of_days_hours_minutes_seconds_and_milliseconds(offset, ms):
    assert offset_ms(offset) == ms


@pytest.mark.parametrize("offset", ["5m", "-5", "-5x", "-", "-1h 10m", "now ", "", "-m5", 300])
def test_anything_else_is_refused_naming_the_notation(offset):
    with pytest.raises(RelativeTimeError, match="is not an offset"):
        offset_ms(offset)


def test_every_time_anywhere_in_a_value_resolves_against_the_same_moment():
    value = {"ts": {TIME_KEY: "-5m"}, "nested": [{"at": {TIME_KEY: "now"}}, 3, "text"], "kept": {"a": 1}}
    assert resolve_times(value, AT) == {"ts": AT - 300_000, "nested": [{"at": AT}, 3, "text"], "kept": {"a": 1}}


def test_a_time_as_iso_text_is_utc_with_milliseconds():
    assert resolve_times({TIME_KEY: "-1m", "as": "iso"}, AT) == "2030-03-17T17:45:40.000Z"


def test_a_time_value_with_other_keys_or_an_unknown_form_is_refused_with_its_place():
    with pytest.raises(RelativeTimeError, match=r"\$\.a\[0\]: a \$time value has only \$time and as"):
        resolve_times({"a": [{TIME_KEY: "now", "unit": "s"}]}, AT)
    with pytest.raises(RelativeTimeError, match=r"\$\.b: `as` is one of ms, iso"):
        resolve_times({"b": {TIME_KEY: "now", "as": "s"}}, AT)
    with pytest.raises(RelativeTimeError, match=r"\$\.c: '5m' is not an offset"):
        resolve_times({"c": {TIME_KEY: "5m"}}, AT)


def test_samples_loaded_apart_agree_so_a_resend_keeps_the_time_of_the_reading_it_repeats():
    first, again = load_event("ingest_telemetry/soil_valid"), load_event("ingest_telemetry/soil_duplicate")
    assert first["ts"] == again["ts"] and again["receivedAt"] > first["receivedAt"]


def test_every_sample_and_scenario_resolves_to_plain_json_without_the_notation():
    for path in sorted(EVENTS_DIR.rglob("*.json")):
        text = json.dumps(resolve_times(json.loads(path.read_text()), AT))
        assert TIME_KEY not in text, path


def test_the_command_writes_a_sample_resolved_for_sam_local_invoke():
    command = [sys.executable, "-m", "events", "ingest_telemetry/soil_valid", "--at", str(AT)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == load_event("ingest_telemetry/soil_valid", at_ms=AT)
    assert json.loads(result.stdout)["ts"] == AT - 5 * 60_000
