"""The demo scenario, events/scenarios/fleet_morning.json, end to end on the synthesized app: its past told by
the events IoT would have published, its present by real devices (paho-mqtt over TLS, through the local device
endpoint), whose sessions carry real identifiers: those are asserted by their structure."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from events import now_ms
from local_runtime import LocalRuntime
from local_runtime.activity import BatchDelivered, RuleFired
from local_runtime.scenario import Played, load_scenario, run_scenario
from tests.conftest import ROOT
from tests.e2e.assemblies import assert_nothing_left_running, receive

SCENARIO = ROOT / "events" / "scenarios" / "fleet_morning.json"
SECOND, MINUTE = 1000, 60_000
PLAYED_AT = now_ms()  # the moment the scenario's relative times count from
T = PLAYED_AT - 70 * MINUTE  # the devices come online
SESSIONS = {
    "gateway": "5b2e7c91d04f4a6e8a3c1f0b9d7e6a52",
    "sensor-03": "a1b2c3d4e5f64a7b8c9d0e1f2a3b4c5d",
    "legacy": "3f6c1e2a-8d4b-4f4e-9a1e-6b2d7c9e0f11",
}
REAL_DEVICES = ("soil-sensor-01", "soil-sensor-02")
SOIL_SENSOR_03 = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f"  # its thingId
_deserialize = TypeDeserializer().deserialize


class Outcome:
    """What the scenario left: every table's items, the messages of the dead-letter queues, the work queues."""

    def __init__(self, runtime: LocalRuntime, played: Played) -> None:
        self.played = played
        dynamodb = runtime.cloud.client("dynamodb")
        tables = [resource.logical_id for resource in runtime.cloud.created if resource.type == "AWS::DynamoDB::Table"]
        queues = [resource.logical_id for resource in runtime.cloud.created if resource.type == "AWS::SQS::Queue"]
        self.tables = {
            logical_id: [
                {name: _deserialize(value) for name, value in item.items()}
                for item in dynamodb.scan(TableName=runtime.cloud.physical[logical_id].ref)["Items"]
            ]
            for logical_id in tables
        }
        self.queues = {logical_id: receive(runtime, logical_id) for logical_id in queues}
        self.work_queues = runtime.event_sources.queue_states()
        self.rules = [rule.name for rule in runtime.start_event_flow().rules]
        self.fired = [activity for activity in runtime.activities if isinstance(activity, RuleFired)]
        # The connects of the real sessions, in order: IoT's lifecycle events as the presence rule selected them.
        self.real_connects = [
            fired.output for fired in self.fired
            if fired.rule.endswith("_presence_connected") and fired.output["clientId"] in REAL_DEVICES
        ]  # fmt: skip
        self.ignored_as_stale = [
            (entry["clientId"], entry["eventType"], entry["versionNumber"])
            for activity in runtime.activities
            if isinstance(activity, BatchDelivered) and activity.function == "track_presence"
            for entry in map(_json_or_none, activity.invocation.logs)
            if entry is not None and entry.get("message") == "Stale or repeated event ignored"
        ]
        self.commands = [(p.topic, json.loads(p.payload)) for p in runtime.published_to("cmd/#")]
        self.worker_pids = runtime.functions.worker_pids
        self.threads = sorted(thread.name for thread in threading.enumerate())  # the scenario's are gone by now
        self.port = runtime.cloud.port

    def table(self, prefix: str) -> list[dict[str, Any]]:
        [items] = [items for logical_id, items in self.tables.items() if logical_id.startswith(prefix)]
        return items

    def queue(self, prefix: str) -> list[dict[str, Any]]:
        [messages] = [messages for logical_id, messages in self.queues.items() if logical_id.startswith(prefix)]
        return messages


@pytest.fixture(scope="module")
def outcome(cloud_assembly: Path) -> Outcome:
    with LocalRuntime(cloud_assembly, drain_timeout_s=30) as runtime:
        played = run_scenario(runtime, load_scenario(SCENARIO, at_ms=PLAYED_AT), announce=lambda line: None)
        return Outcome(runtime, played)


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def sessions_of(outcome: Outcome, client_id: str) -> list[dict[str, Any]]:
    """The real connects of a client ID, in order."""
    return [event for event in outcome.real_connects if event["clientId"] == client_id]


def by(items: list[dict[str, Any]], *keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(item[key] for key in keys): item for item in items}


def test_every_lifecycle_and_telemetry_rule_of_the_app_fired_and_every_action_succeeded(outcome: Outcome) -> None:
    played = {rule for rule in outcome.rules if "_presence_" in rule or "_registry_" in rule or "_telemetry_" in rule}
    assert {fired.rule for fired in outcome.fired} == played and len(played) == 10
    problems = [f for f in outcome.fired if f.sql_error or f.where_false or any(a.error for a in f.actions)]
    assert problems == []


def test_connectivity_ends_as_the_morning_went(outcome: Outcome) -> None:
    rows = by(outcome.table("PresenceConnectivity"), "clientId")
    assert {client_id for (client_id,) in rows} == {
        "greenhouse-gw-01", "legacy-logger", "soil-sensor-01", "soil-sensor-02", "soil-sensor-03"
    }  # fmt: skip
    expected = {
        # The duplicate connect of the gateway changed nothing.
        "greenhouse-gw-01": dict(
            connected=True, since=T, sessionIdentifier=SESSIONS["gateway"], versionNumber=1, ipAddress="198.51.100.10"
        ),
        # The 2018 format: no versionNumber, no ipAddress.
        "legacy-logger": dict(connected=True, since=T + 12 * SECOND, sessionIdentifier=SESSIONS["legacy"]),
        "soil-sensor-03": dict(
            connected=False, since=T + 40 * MINUTE, sessionIdentifier=SESSIONS["sensor-03"], versionNumber=1,
            disconnectReason="CLIENT_INITIATED_DISCONNECT", clientInitiatedDisconnect=True,
        ),
    }  # fmt: skip
    for client_id, attributes in expected.items():
        row = rows[(client_id,)]
        assert {key: row.get(key) for key in attributes} == attributes, client_id
        present = {"clientId", "principalIdentifier", "updatedAt", *attributes}
        assert set(row) == present, f"{client_id} has attributes the winning event does not set"
    # The real sessions: each sensor's last connection (the takeover's, the reconnect's) is the one that counts,
    # ended by the device's DISCONNECT as the scenario ended.
    for client_id in REAL_DEVICES:
        first, last = sessions_of(outcome, client_id)
        assert (first["versionNumber"], last["versionNumber"]) == (0, 1), client_id
        row = rows[(client_id,)]
        assert row["sessionIdentifier"] == last["sessionIdentifier"] != first["sessionIdentifier"]
        assert row["principalIdentifier"] == last["principalIdentifier"]
        assert re.fullmatch(r"[0-9a-f]{64}", row["principalIdentifier"]), "a certificate id"
        assert row["since"] >= last["timestamp"] >= PLAYED_AT
        assert (row["connected"], row["versionNumber"], row["clientInitiatedDisconnect"]) == (False, 1, True)
        assert row["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
        assert set(row) == {
            "clientId", "principalIdentifier", "updatedAt", "connected", "since", "sessionIdentifier",
            "versionNumber", "disconnectReason", "clientInitiatedDisconnect",
        }  # fmt: skip
    # The replacement unit has its own certificate; the reconnecting sensor keeps its own.
    assert len({event["principalIdentifier"] for event in sessions_of(outcome, "soil-sensor-01")}) == 2
    assert len({event["principalIdentifier"] for event in sessions_of(outcome, "soil-sensor-02")}) == 1
    assert all(event["ipAddress"] == "127.0.0.1" for event in outcome.real_connects)


def test_the_late_disconnects_of_the_flap_and_the_takeover_lost_to_the_newer_connections(outcome: Outcome) -> None:
    """soil-sensor-02's dropped connection (CONNECTION_LOST, delayed 5 s) arrived after its reconnect, and the
    replaced unit's DUPLICATE_CLIENTID disconnect after the replacement's connect: both were ignored."""
    assert ("soil-sensor-02", "disconnected", 0) in outcome.ignored_as_stale
    assert ("soil-sensor-01", "disconnected", 0) in outcome.ignored_as_stale
    assert not [entry for entry in outcome.ignored_as_stale if entry[0] in REAL_DEVICES and entry[2] == 1]


def test_subscriptions_are_kept_per_session(outcome: Outcome) -> None:
    rows = by(outcome.table("PresenceSubscriptions"), "clientId", "sessionIdentifier")
    real = {
        (event["clientId"], event["sessionIdentifier"]): {f"cmd/fleet/{event['clientId']}/#"}
        for event in outcome.real_connects
    }
    assert len(real) == 4
    assert {key: row["topics"] for key, row in rows.items()} == {
        ("greenhouse-gw-01", SESSIONS["gateway"]): {
            "cmd/fleet/greenhouse-gw-01/#", "$aws/things/greenhouse-gw-01/shadow/update/delta"
        },
        **real,
    }
    assert all(row["expiresAt"] > row["updatedAt"] // 1000 for row in rows.values())


def test_the_inventory_holds_things_the_group_and_memberships(outcome: Outcome) -> None:
    rows = by(outcome.table("RegistryInventory"), "pk", "sk")
    assert set(rows) == {
        ("GROUP#greenhouse-a", "GROUP"),
        ("THING#greenhouse-gw-01", "THING"),
        ("THING#soil-sensor-01", "THING"), ("THING#soil-sensor-01", "GROUP#greenhouse-a"),
        ("THING#soil-sensor-02", "THING"), ("THING#soil-sensor-02", "GROUP#greenhouse-a"),
        ("THING#soil-sensor-03", "THING"), ("THING#soil-sensor-03", "GROUP#greenhouse-a"),
        ("THING#soil-sensor-03", f"DELETED#{SOIL_SENSOR_03}"),  # the deletion, which ended its memberships
    }  # fmt: skip
    group = rows[("GROUP#greenhouse-a", "GROUP")]
    assert (group["thingGroupName"], group["versionNumber"], group["deleted"]) == ("greenhouse-a", 1, False)
    assert group["description"] == "Greenhouse A, north site" and group["attributes"] == {"site": "north"}
    things = {pk: rows[(pk, "THING")] for pk, sk in rows if sk == "THING"}
    summary = {
        pk: (thing["thingName"], thing["thingTypeName"], thing["versionNumber"], thing["deleted"], thing["attributes"])
        for pk, thing in things.items()
    }
    assert summary == {
        "THING#greenhouse-gw-01": ("greenhouse-gw-01", "Gateway", 1, False, {"site": "greenhouse-a"}),
        "THING#soil-sensor-01": ("soil-sensor-01", "SoilSensor", 1, False, {"firmware": "1.0.0", "bed": "1"}),
        # Updated to version 3; the late version 2 was ignored.
        "THING#soil-sensor-02": ("soil-sensor-02", "SoilSensor", 3, False, {"firmware": "1.2.0", "bed": "2"}),
        # Deleted: a tombstone that expires.
        "THING#soil-sensor-03": ("soil-sensor-03", "SoilSensor", 1, True, {"firmware": "1.0.0", "bed": "3"}),
    }
    assert "expiresAt" in things["THING#soil-sensor-03"] and "expiresAt" not in things["THING#soil-sensor-02"]
    members = {pk: rows[(pk, "GROUP#greenhouse-a")]["member"] for pk, sk in rows if sk == "GROUP#greenhouse-a"}
    assert members == {"THING#soil-sensor-01": True, "THING#soil-sensor-02": True, "THING#soil-sensor-03": False}
    # Removed from the group, then deleted: the deletion, a second later, is what the membership item shows.
    ended = rows[("THING#soil-sensor-03", "GROUP#greenhouse-a")]
    assert (ended["thingDeleted"], ended["thingId"]) == (True, SOIL_SENSOR_03)
    assert ended["eventTimestamp"] == things["THING#soil-sensor-03"]["eventTimestamp"]


def test_the_malformed_event_is_in_the_presence_dead_letter_queue_with_its_reason(outcome: Outcome) -> None:
    [message] = outcome.queue("PresenceDeadLetters")
    assert '"clientId":"soil-sensor-04"' in message["Body"]
    assert message["MessageAttributes"]["rejectionReason"]["StringValue"] == "timestamp must be a whole number >= 0"
    assert outcome.queue("RegistryDeadLetters") == []
    assert outcome.queue("PlatformRuleErrors") == []


def test_the_sensors_readings_are_stored_once_and_the_dry_soil_gets_an_alert_and_a_command(outcome: Outcome) -> None:
    latest = {key: row["ts"] for key, row in by(outcome.table("TelemetryLatest"), "thingName", "kind").items()}
    reported = PLAYED_AT - 30 * SECOND  # the real sensors' readings
    assert latest == {
        ("soil-sensor-01", "soil"): reported, ("soil-sensor-01", "power"): reported + SECOND,
        ("greenhouse-gw-01", "environment"): PLAYED_AT - 10 * MINUTE, ("soil-sensor-02", "soil"): reported + 2 * SECOND,
    }  # fmt: skip
    assert len(outcome.table("TelemetryHistory")) == 4  # the resend of soil-sensor-01's reading added nothing
    [(topic, command)] = outcome.commands
    assert topic == "cmd/fleet/soil-sensor-02/threshold"
    assert command["breaches"] == [{"measure": "moisture", "value": 12.5, "bound": "min", "limit": 20}]
    # The device itself received it, over its MQTT subscription.
    [receipt] = [o for o in outcome.played.device_outcomes if o.step.expected_receipt is not None]
    assert (receipt.step.device, receipt.received) == ("soil-sensor-02", ("cmd/fleet/soil-sensor-02/threshold",))
    [rejected] = outcome.queue("TelemetryDeadLetters")
    assert json.loads(rejected["Body"])["thingName"] == "greenhouse-gw-01"
    assert rejected["MessageAttributes"]["rejectionReason"]["StringValue"] == "humidity must be a number"


def test_every_message_is_accepted_but_the_bad_inputs_the_scenario_expects_rejected(outcome: Outcome) -> None:
    played = outcome.played
    rejected = {o.step.topic: [reason.partition("Queue")[0] for reason in o.rejections] for o in played.outcomes if o.rejections}
    assert rejected == {
        "$aws/events/presence/connected/soil-sensor-04": ["timestamp must be a whole number >= 0 (PresenceDeadLetters"],
        "dt/fleet/greenhouse-gw-01/environment": ["humidity must be a number (TelemetryDeadLetters"],
    }
    assert [o.number for o in played.outcomes if o.rejections] == [
        o.number for o in played.outcomes if o.step.expected_rejection
    ]
    assert played.passed and played.unaccounted == ()
    # The real sensors' readings are messages too; IoT let each through, and refused no device step.
    assert sum(o.step.topic.startswith("dt/fleet/soil-sensor-") for o in played.outcomes) == 4
    assert [o for o in played.device_outcomes if o.refusal is not None or not o.as_expected] == []


def test_the_work_queues_are_empty(outcome: Outcome) -> None:
    assert set(outcome.work_queues) == {
        "PresenceEventsQueue967271A8", "PresenceDelayedDisconnectsQueueFA754290", "RegistryEventsQueueD2C3ED2B",
        "OnboardingActivationRegistrationsQueueE9F8D9CC",
        "SNS subscription DefenderMitigateAuditFindingsFunctionAuditNotifications6E1519F5",
        "SNS subscription DefenderRemediateFindingFunctionFindingsAF649D4B",
    }  # fmt: skip
    assert all(state.idle for state in outcome.work_queues.values())


def test_no_worker_or_server_outlives_the_run(outcome: Outcome) -> None:
    assert len(outcome.worker_pids) == 3
    assert_nothing_left_running(outcome.worker_pids, outcome.port)
    # The device endpoint (its broker's loop, the runtime's thread) and every device's network thread stopped.
    assert [name for name in outcome.threads if name in ("device-endpoint", "local-runtime") or "paho" in name] == []


def test_the_command_line_plays_the_scenario_and_leaves_nothing_behind(cloud_assembly: Path) -> None:
    command = [sys.executable, "-m", "local_runtime", "scenario", str(SCENARIO), "--assembly", str(cloud_assembly)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    endpoint = re.search(r"embedded AWS \(moto\) at http://127\.0\.0\.1:(\d+)", out)
    assert endpoint is not None
    port = int(endpoint.group(1))
    assert "[end] drain" in out and "Final state" in out
    assert "WARNING Rejected a malformed event to the dead-letter queue" in out
    assert "rejectionReason: timestamp must be a whole number >= 0" in out
    # The real session, as the README's quick start shows it.
    assert re.search(r"soil-sensor-01: certificate [0-9a-f]{12}\.\.\. registered ACTIVE, attached to the thing", out)
    # The step's outcome, within the step: the rules may print the connected event before or after it.
    step = re.search(r"^\[26\] device soil-sensor-01 connects \(certificate\)\n((?: +.*\n)+)", out, re.MULTILINE)
    assert step is not None and re.search(r"^ +connected: session [0-9a-f-]{36}, version 0$", step.group(1), re.MULTILINE)
    assert "soil-sensor-02 received cmd/fleet/soil-sensor-02/threshold, as expected" in out
    assert "soil-sensor-02 disconnected: CONNECTION_LOST" in out
    steps = json.loads(SCENARIO.read_text())
    messages = sum("publish" in step or "publish" in step.get("device", {}) for step in steps)
    assert f"{messages} messages: {messages - 2} accepted, 2 rejected; all as expected" in out
    devices = sum("device" in step for step in steps)
    assert f"{devices} device steps: {devices} done, 0 refused; all as expected" in out
    took = re.search(r"scenario took (\d+\.\d) s", out)
    assert took is not None and float(took.group(1)) < 60  # the README's main command: under a minute
    # Nothing of the run is left: no process with its endpoint in its environment, nothing on its port.
    leftovers = [
        proc.parent.name
        for proc in Path("/proc").glob("[0-9]*/environ")
        if _readable(proc) and f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}".encode() in proc.read_bytes()
    ]
    assert leftovers == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True
