"""`python -m local_runtime`: the docker-free `sam local invoke`, and the messages of the commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from events import now_ms
from local_runtime.__main__ import main
from tests.conftest import ROOT
from tests.e2e.assemblies import printed_table, python_function, queue, sqs_action, topic_rule, write_assembly

CONNECTED = ROOT / "events" / "track_presence" / "connected.json"
SOIL_READING = ROOT / "events" / "ingest_telemetry" / "soil_valid.json"
FLEET_MORNING = ROOT / "events" / "scenarios" / "fleet_morning.json"
Capture = pytest.CaptureFixture[str]


def test_invoke_prints_the_logs_the_result_and_the_connectivity_row(cloud_assembly: Path, capsys: Capture) -> None:
    code = main(["invoke", "track_presence", "--event", str(CONNECTED), "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out
    assert code == 0
    logs, _, rest = out.partition("--- result ---")
    assert '"message":"Connectivity updated"' in logs and '"clientId":"sensor-0042"' in logs
    result, _, tables = rest.partition("Table ")
    assert json.loads(result) == {"batchItemFailures": []}
    connectivity = tables.split("\n\n")[0]
    assert connectivity.startswith("PresenceConnectivity32EE8179 (DeviceBackend/Presence/Connectivity/Resource): 1 ")
    row = next(line for line in connectivity.splitlines() if "sensor-0042" in line)
    assert "true" in row and "203.0.113.17" in row and "1795420800000" in row and "a4666d2a…cb7967" in row
    assert "invoke took" in out


def test_invoke_resolves_the_samples_relative_times_against_now(cloud_assembly: Path, capsys: Capture) -> None:
    before = now_ms()
    code = main(["invoke", "ingest_telemetry", "--event", str(SOIL_READING), "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.partition("--- result ---")[2].partition("Table ")[0])
    assert result == {"result": "ReadingsStored", "breaches": []}  # a ts in the notation would be refused
    [latest] = printed_table(out, "TelemetryLatest")
    assert before - 5 * 60_000 <= int(latest["ts"]) <= now_ms() - 5 * 60_000  # the sample's reading is 5 minutes old


def test_a_scenario_exits_1_naming_each_message_not_accepted_or_rejected_as_it_expects(
    cloud_assembly: Path, tmp_path: Path, capsys: Capture
) -> None:
    steps = json.loads(FLEET_MORNING.read_text())
    [malformed] = [step for step in steps if "soil-sensor-04" in step.get("publish", {}).get("topic", "")]
    [reading] = [
        step for step in steps
        if step.get("publish", {}).get("topic") == "dt/fleet/greenhouse-gw-01/environment" and "expect" not in step
    ]  # fmt: skip
    del malformed["expect"]  # a rejection the scenario does not expect
    reading["expect"] = {"rejected": "humidity must be"}  # an expected rejection that does not happen
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps([malformed, reading]))
    code = main(["scenario", str(scenario), "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out.partition("Outcome of each message")[2]
    assert code == 1
    assert "[1] REJECTED, expected to be accepted: $aws/events/presence/connected/soil-sensor-04" in out
    assert "timestamp must be a whole number >= 0 (PresenceDeadLetters" in out
    assert "[2] ACCEPTED, expected to be rejected for 'humidity must be': dt/fleet/greenhouse-gw-01/environment" in out
    assert "2 messages: 1 accepted, 1 rejected; 2 NOT as expected" in out


def test_invoke_exits_1_and_prints_the_error_when_the_function_raises(tmp_path: Path, capsys: Capture) -> None:
    code = {"broken": {"app.py": "def handler(e, c):\n    raise KeyError('x')\n"}}
    assembly = write_assembly(tmp_path / "assembly", {"Broken": python_function("broken")}, code)
    event = tmp_path / "event.json"
    event.write_text("{}")
    exit_code = main(["invoke", "Broken", "-e", str(event), "--assembly", str(assembly), "--no-tables"])
    out = capsys.readouterr().out
    assert exit_code == 1
    error = json.loads(out.partition("--- error ---")[2].partition("\ninvoke took")[0])
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'x'")
    assert "Table " not in out


def test_an_unknown_function_name_lists_the_available_ones(cloud_assembly: Path, capsys: Capture) -> None:
    code = main(["invoke", "track_presense", "-e", str(CONNECTED), "--assembly", str(cloud_assembly)])
    err = capsys.readouterr().err
    assert code == 2
    assert "No function 'track_presense'" in err
    assert "track_presence (PresenceTrackPresenceFunctionDFE2E158)" in err
    assert "track_inventory (RegistryTrackInventoryFunction8C40C567)" in err


def test_a_missing_assembly_says_to_synthesize(tmp_path: Path, capsys: Capture) -> None:
    code = main(["functions", "--assembly", str(tmp_path / "cdk.out")])
    assert code == 2
    assert "run `make synth` (or `npx cdk synth`) first" in capsys.readouterr().err


def test_functions_lists_the_runnable_functions_and_why_others_are_not(cloud_assembly: Path, capsys: Capture) -> None:
    assert main(["functions", "--assembly", str(cloud_assembly)]) == 0
    out = capsys.readouterr().out
    runnable, _, not_runnable = out.partition("Not runnable here:")
    presence = next(line.split() for line in runnable.splitlines() if "track_presence " in line)
    assert presence == [
        "track_presence", "PresenceTrackPresenceFunctionDFE2E158", "track_presence.handler.handler", "python3.13",
        "256", "MB", "30", "s",
    ]  # fmt: skip
    assert "track_inventory" in runnable
    assert "AWS679f53fac002430cb0da5b7982bd22872D164C4C" in not_runnable
    assert "runtime nodejs24.x, not Python" in not_runnable


def test_publish_runs_the_rules_then_the_functions(cloud_assembly: Path, capsys: Capture) -> None:
    body = json.loads(CONNECTED.read_text())["Records"][0]["body"]
    topic = "$aws/events/presence/connected/sensor-0042"
    code = main(["publish", topic, "--payload", body, "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"rule iot_backend_presence_connected on {topic} selected {{" in out
    assert "  -> sqs PresenceEventsQueue967271A8: sent" in out
    assert "track_presence <- PresenceEventsQueue967271A8: 1 record, all done" in out
    assert "INFO Connectivity updated  clientId=sensor-0042" in out


def test_publish_refuses_a_rule_it_cannot_evaluate_before_publishing(tmp_path: Path, capsys: Capture) -> None:
    sql = "SELECT get_thing_shadow('d', 'arn:aws:iam::123456789012:role/r') AS s FROM 'a'"
    resources = {"Q": queue(), "Rule": topic_rule("filtered", sql, [sqs_action("Q")])}
    assembly = write_assembly(tmp_path, resources)
    code = main(["publish", "a", "--payload", "{}", "--assembly", str(assembly)])
    captured = capsys.readouterr()
    assert code == 2
    assert "Rule filtered (TestStack/filtered/Resource): its SQL" in captured.err
    assert "get_thing_shadow" in captured.err
    assert "publish a" not in captured.out


def test_show_lists_what_the_runtime_made_of_the_app(cloud_assembly: Path, capsys: Capture) -> None:
    code = main(["show", "--assembly", str(cloud_assembly)])
    out = capsys.readouterr().out
    assert code == 0
    assert "rule iot_backend_presence_connected: SELECT * FROM '$aws/events/presence/connected/+'" in out
    assert "-> sqs PresenceEventsQueue967271A8; errorAction sqs PlatformRuleErrorsQueue8C14664C" in out
    assert "SQS PresenceEventsQueue967271A8 -> track_presence: batches of 10" in out
    assert "Table PresenceConnectivity" in out and "(empty)" in out
    assert "dead-letter queue of PresenceEventsQueue967271A8" in out


def test_make_authorize_demo_puts_a_minted_token_through_the_authorizer_of_the_synthesized_app() -> None:
    """The target as a fresh clone runs it: it makes its keys, synthesizes with the CDK CLI (no credentials)
    and connects through the local runtime; in a stage, through that stage's authorizer."""
    demo = ROOT / "build" / "test.authorizer-demo"  # under build/ (ignored), so the layer is built once, not per run
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        ["make", "--no-print-directory", "authorize-demo", f"AUTHORIZER_DEMO={demo}", "STAGE=qa", "DEMO_CLIENT_ID=sensor-7"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nALLOWED: authenticated\n" in result.stdout
    assert "clientId=sensor-7" in result.stdout and "signatureVerified=true" in result.stdout
    template = json.loads((demo / "cdk.out" / "DeviceBackend-qa.template.json").read_text())
    names = [r["Properties"]["AuthorizerName"] for r in template["Resources"].values() if r["Type"] == "AWS::IoT::Authorizer"]
    assert names == ["iot_backend_qa_devices"]
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert (demo / "keys" / "jwt-private.pem").stat().st_mode & 0o077 == 0
