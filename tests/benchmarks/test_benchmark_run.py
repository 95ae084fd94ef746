"""`python -m benchmarks --quick` end to end: every candidate reported, with numbers that can be true.

Timings are not compared with each other or with the target here: on a shared machine they are too noisy for
a test. What is deterministic is: the AWS calls per event, the invocations per batch, and that the AWS stub
is gone afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from benchmarks.__main__ import main
from benchmarks.candidates import BASELINE, discover_functions
from benchmarks.lambda_image import VARIANTS
from benchmarks.report import PRESENCE


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    raw_path = tmp_path_factory.mktemp("bench") / "raw.json"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        exit_code = main(["--quick", "--json", str(raw_path)])
    return exit_code, report.getvalue(), json.loads(raw_path.read_text())


def summaries(raw: dict[str, Any], variant: str = "shipped") -> dict[str, dict[str, Any]]:
    """The summaries of one variant (the baseline's: in the first), by candidate."""
    return {s["name"]: s for s in raw["summaries"] if s["variant"] == variant}


def test_reports_every_function_in_every_variant_and_the_baseline_once(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    exit_code, report, raw = quick_run
    functions = set(discover_functions())
    assert exit_code == 0
    assert {PRESENCE, "track_inventory"} <= functions
    assert list(raw["variants"]) == list(VARIANTS) == ["shipped", "source", "traced"]
    assert set(summaries(raw)) == {BASELINE, *functions}
    assert set(summaries(raw, "source")) == set(summaries(raw, "traced")) == functions
    by_variant = report.split("### Cold start by variant")[1].split("###")[0]
    assert (
        "| candidate | shipped: cold wall ms (÷ baseline) / CPU ms (÷ baseline) "
        "| source: cold wall ms (÷ baseline, ÷ shipped) / CPU ms (÷ baseline, ÷ shipped) |"
    ) in by_variant
    assert {line.split("|")[1].strip() for line in by_variant.splitlines() if line.startswith("| ")} == {"candidate", *functions}
    table_rows = {line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")}
    assert {BASELINE, *functions} <= table_rows


def test_numbers_are_plausible(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, _, raw = quick_run
    for summary in raw["summaries"]:
        name = f"{summary['name']} ({summary['variant']})"
        assert summary["cold_samples"] == raw["settings"]["rounds"] - 1, name
        assert 0 < summary["init_ms"] <= summary["cold_wall_ms"] < 60_000, name
        assert 0 < summary["cold_cpu_ms"] < 60_000, name
        assert 0 < summary["warm_event_ms"] <= summary["warm_invocation_ms"], name
        assert summary["warm_event_ms"] <= summary["warm_event_p99_ms"], name
        assert summary["warm_invocation_ms"] <= summary["warm_invocation_p99_ms"], name
        assert 10 < summary["cold_rss_mib"] <= summary["warm_rss_mib"] + 1 < 2048, name
        assert (summary["wall_ratio"] is None) == (summary["name"] == BASELINE), name
        assert (summary["first_variant_ratio"] is None) == (summary["variant"] == "shipped"), name
        assert (summary["first_variant_cpu_ratio"] is None) == (summary["variant"] == "shipped"), name
    functions = [s for s in raw["summaries"] if s["name"] != BASELINE]
    # A function does at least what the baseline does; its first batch makes AWS calls, the baseline's none.
    assert all(s["cold_wall_ms"] - s["init_ms"] > 0 and s["wall_ratio"] > 0 for s in functions)


def test_presence_writes_once_per_event(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, report, raw = quick_run
    presence = summaries(raw)[PRESENCE]
    assert presence["records"] > 0
    assert presence["aws_calls"] == {"dynamodb:UpdateItem": presence["records"]}
    assert presence["calls_per_event"] == {"dynamodb:UpdateItem": 1.0}
    assert "**PASS** track_presence: exactly 1 DynamoDB write per presence event" in report


def test_one_invocation_per_batch(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, report, raw = quick_run
    for summary in raw["summaries"]:
        name = f"{summary['name']} ({summary['variant']})"
        assert summary["handler_calls"] == summary["batches"] > 0, name
        assert summary["invocations_per_batch"] == 1, name
    assert "**PASS** track_presence: 1 invocation per SQS batch" in report


def test_reports_every_target_and_the_run(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, report, raw = quick_run
    assert len(raw["checks"]) == 8
    assert report.count("**PASS**") + report.count("**FAIL**") == 8
    assert "cold start ≤ 1.15× the baseline's" in report
    # The activation's cost per new device is counted and held to 6 calls; the hook's cold start to 1 s.
    assert "**PASS** activate_certificate: at most 6 AWS calls per new device (trust loads aside): 6.00 per device" in report
    assert "pre_provisioning_hook: cold start and first answer under 1000 ms" in report
    # Telemetry's valid reading: its two writes, the registry reads (one per container) set aside.
    assert (
        "**PASS** ingest_telemetry: at most 2 AWS calls per valid reading, warm (registry reads aside: cached per "
        "container): 2.00 per message"
    ) in report
    # The authorizer's decision time and cold start are reported against their targets (timings: not asserted).
    assert "authorize_device: warm p99 under 1 ms per decision: p99 " in report
    assert "authorize_device: cold start and first decision under 1000 ms (IoT waits 5 s): " in report
    assert "command: `python -m benchmarks --quick --json" in report
    assert "### Targets (`shipped`)" in report
    assert all(f"- `{variant}`: {description}" in report for variant, description in VARIANTS.items())
    for fact in ("python", "functions_python", "cpu_count", "date"):
        assert f"- {fact}: " in report
    assert "- functions_python: CPython 3.13." in report  # the functions run on the runtime's Python version


def test_stub_is_stopped_after_the_run(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    _, _, raw = quick_run
    endpoint = urlsplit(raw["aws_endpoint_url"])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((endpoint.hostname, endpoint.port), timeout=5).close()

