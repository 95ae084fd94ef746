"""The parts of the benchmark whose mistakes would not show in its numbers."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from dataclasses import replace

import pytest

from benchmarks import __main__ as cli
from benchmarks.candidates import BASELINE, all_candidates, discover_functions
from benchmarks.harness import CHILD_SCRIPT, Settings, units
from benchmarks.report import PRESENCE, TELEMETRY, Check, Outcome, Summary, check_targets
from events import load_event
from pre_provisioning_hook.models import parse_request
from track_presence.models import parse_lifecycle_event


def top_level_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name.partition(".")[0] for name in names}


def test_child_bootstrap_imports_only_the_standard_library() -> None:
    """Importing boto3, botocore or Powertools before the handler would pre-pay what the cold start measures."""
    tree = ast.parse(CHILD_SCRIPT.read_text())
    assert top_level_imports(tree) <= set(sys.stdlib_module_names)
    first = tree.body[1]  # after the docstring: the clock must start before anything else is imported
    assert isinstance(first, ast.Import) and [alias.name for alias in first.names] == ["time"]


def test_batches_are_full_of_distinct_valid_events() -> None:
    candidates = all_candidates(batch_size=10)
    assert [c.name for c in candidates[1:]] == discover_functions()
    for candidate in [c for c in candidates if c.trigger == "sqs"]:
        records = candidate.event["Records"]
        assert len(records) == 10
        assert len({record["messageId"] for record in records}) == 10
    presence = next(c for c in candidates if c.name == PRESENCE)
    for record in presence.event["Records"]:
        parse_lifecycle_event(record["body"])  # raises MalformedEvent on a bad sample
    event_types = {parse_lifecycle_event(record["body"]).eventType for record in presence.event["Records"]}
    assert event_types >= {"connected", "subscribed"}


def test_the_pre_provisioning_hook_is_invoked_with_its_own_request_and_the_others_keep_their_batches() -> None:
    candidates = {c.name: c for c in all_candidates(batch_size=10)}
    hook = candidates["pre_provisioning_hook"]
    assert hook.trigger == "invoke"
    assert hook.event == load_event("pre_provisioning_hook/allowed")  # the path that reaches DynamoDB and allows
    assert parse_request(hook.event).serial_number == "SN-000123"
    assert {candidates[name].trigger for name in (PRESENCE, "track_inventory", "baseline")} == {"sqs"}


def test_telemetry_is_invoked_asynchronously_with_a_valid_reading() -> None:
    telemetry = {c.name: c for c in all_candidates(batch_size=10)}[TELEMETRY]
    assert telemetry.trigger == "event"
    assert telemetry.event == load_event("ingest_telemetry/environment_valid")


def test_device_defender_functions_are_invoked_asynchronously_with_their_notification() -> None:
    """SNS invokes its Lambda subscribers asynchronously, one notification each: not an SQS batch, whose records
    the same "Records" key holds."""
    candidates = {c.name: c for c in all_candidates(batch_size=10)}
    assert candidates["mitigate_audit_findings"].trigger == candidates["remediate_finding"].trigger == "event"
    assert candidates["mitigate_audit_findings"].event == load_event("mitigate_audit_findings/non_compliant")
    assert candidates["remediate_finding"].event == load_event("remediate_finding/device_certificate_shared")


def presence_summary(**changes: object) -> Summary:
    summary = Summary(
        name=PRESENCE, cold_samples=14, cold_wall_ms=300.0, cold_cpu_ms=290.0, init_ms=280.0, wall_ratio=1.1,
        cpu_ratio=1.1, warm_event_ms=1.0, warm_event_p99_ms=2.0, warm_invocation_ms=10.0, warm_invocation_p99_ms=20.0,
        cold_rss_mib=50.0, warm_rss_mib=51.0, aws_calls={"dynamodb:UpdateItem": 150}, records=150, batches=15,
        handler_calls=15,
    )  # fmt: skip
    return replace(summary, **changes)  # type: ignore[arg-type]


def test_targets_pass_when_met() -> None:
    assert [check.passed for check in check_targets([presence_summary()])] == [True, True, True]


def test_targets_fail_when_missed() -> None:
    two_writes = presence_summary(aws_calls={"dynamodb:UpdateItem": 150, "dynamodb:PutItem": 150})
    redelivered = presence_summary(handler_calls=16)
    slow = presence_summary(wall_ratio=1.2)
    assert [check.passed for check in check_targets([two_writes])] == [False, True, True]
    assert [check.passed for check in check_targets([redelivered])] == [True, False, True]
    assert [check.passed for check in check_targets([slow])] == [True, True, False]
    assert not any(check.passed for check in check_targets([]))


def telemetry_summary(**changes: object) -> Summary:
    # 4 containers (cold starts and the warm run), 16 readings: the registry read once per container.
    registry_reads = {"iot:DescribeThing": 4, "iot:ListThingGroupsForThing": 4}
    summary = replace(
        presence_summary(), name=TELEMETRY, trigger="event", records=16, batches=16, handler_calls=16,
        aws_calls={"dynamodb:UpdateItem": 32, **registry_reads},
    )  # fmt: skip
    return replace(summary, **changes)  # type: ignore[arg-type]


def telemetry_check(summary: Summary) -> Check:
    [check] = [check for check in check_targets([presence_summary(), summary]) if check.target.startswith(TELEMETRY)]
    return check


def test_telemetry_target_holds_a_reading_to_two_calls_with_the_registry_reads_aside() -> None:
    met = telemetry_check(telemetry_summary())
    assert met.passed and met.detail == "2.00 per message (32 dynamodb:UpdateItem for 16 messages)"
    assert "at most 2 AWS calls per valid reading" in met.target
    assert not telemetry_check(telemetry_summary(aws_calls={"dynamodb:UpdateItem": 48})).passed


@pytest.mark.parametrize(("options", "exit_code"), [([], 0), (["--check"], 1)])
def test_exit_code_reports_a_missed_target_only_with_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], options: list[str], exit_code: int
) -> None:
    def missed_everything(settings: Settings, command: str) -> Outcome:
        return Outcome(settings, command, {}, "http://127.0.0.1:1", {}, [], check_targets([]), 1, {})

    monkeypatch.setattr(cli, "run", missed_everything)
    assert cli.main(options) == exit_code
    assert "**FAIL**" in capsys.readouterr().out


def test_each_invocation_gets_its_own_trace_header_sampled_only_when_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Lambda's runtime sets _X_AMZN_TRACE_ID before each invocation; active tracing is the Sampled flag."""
    spec = importlib.util.spec_from_file_location("lambda_child", CHILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    for traced, sampled in ((True, "Sampled=1"), (False, "Sampled=0")):
        seen: list[str] = []
        mapping = child.SynchronousInvoker(lambda event, context: seen.append(os.environ["_X_AMZN_TRACE_ID"]), "fn", traced)
        mapping.deliver({})
        mapping.deliver({})
        assert len(set(seen)) == 2 and all(header.startswith("Root=1-") and header.endswith(sampled) for header in seen)


def test_every_function_is_measured_in_every_variant_and_the_baseline_once() -> None:
    candidates = all_candidates(batch_size=1)
    measured = units(candidates, ("shipped", "source", "traced"))
    assert [(c.name, v) for c, v in measured if c.is_baseline] == [(BASELINE, "shipped")]
    assert len(measured) == 1 + 3 * len(discover_functions())
