"""`python -m benchmarks.devices`: the local device endpoint under a fleet: N real MQTT devices (paho-mqtt, over
mutual TLS on loopback) connect at once, publish telemetry, all drop and reconnect in a storm, then disconnect;
connections per second and messages per second, and whether presence followed every session without losing a
lifecycle event.

The devices are certificate devices, as the app onboards them (JITR, JITP, fleet provisioning all end the same
way): a device certificate issued by a CA registered in the embedded AWS, registered ACTIVE, with the app's
device policy attached, and a thing of its own (named as the certificate's CN and the client ID) attached to it
and in the app's fleet group. That is what a fleet on IoT Core is, and every connect then costs what IoT's
does: the TLS handshake against the registered CAs, the certificate's status, the thing and its principals,
the policies of the certificate and of the thing's groups. They are onboarded before the run (JITR's first
connection and its activation function are measured by the end-to-end tests, not here), so each phase is
bounded by the endpoint's work alone. Custom-authorizer devices would measure the authorizer function instead.

The devices run in a process of their own (benchmarks/device_fleet.py): one selector thread drives every
paho client, a few connector threads make paho's blocking TCP + TLS connects. Phases, each timed on the
devices' side, then checked on the app's:

1. connect: every device connects as fast as the connectors go; the time until the last CONNACK, and
   connections per second. Every device must be connected at the endpoint.
2. telemetry: each device publishes M valid readings (no threshold breached) on `dt/fleet/<thing>/<kind>` at
   QoS 1, back to back: messages per second accepted by the endpoint (the time until the last PUBACK), and end
   to end (until every reading has gone through its rules and the telemetry function has written it to
   DynamoDB: the runtime drained). Every reading must have fired its rule, and been ingested without error.
3. storm: every connection is dropped at once, abruptly (the device closes its socket: no DISCONNECT), and each
   device reconnects at a random moment within `--storm-seconds`; the time until every device has its CONNACK
   again, and reconnections per second. Then the runtime drains, the delayed disconnects included (the app
   delays them so that a late disconnect cannot mark a reconnected device offline), and presence must show
   every device connected with the session identifier of its new connection (the endpoint's).
4. disconnect: every device disconnects cleanly; after the drain every device must be disconnected, in the
   session it ended.

The lifecycle events must all arrive: the devices count their connections (CONNACKs); each one must have
published a `connected` and a `disconnected` event through the presence rules, each rule's action (SQS) must
have succeeded, the presence function must have settled every one of them, and no message may be in a
dead-letter queue. The functions start cold in the connect phase (a cold start each, about a second).
The command prints a report and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from boto3.dynamodb.types import TypeDeserializer

from benchmarks.__main__ import machine_facts, progress
from benchmarks.device_fleet import DeviceIdentity, FleetProcess
from benchmarks.local_runtime import CONNECTIVITY, HISTORY, LATEST, table_name
from device_pki.authority import CertificateAuthority
from local_runtime.activity import AsyncInvoked, BatchDelivered, RuleFired
from local_runtime.device_endpoint import DeviceEndpoint
from local_runtime.errors import LocalRuntimeError
from local_runtime.outcomes import rejections
from local_runtime.runtime import LocalRuntime

DEFAULT_DEVICES = 1000
DEFAULT_MESSAGES_PER_DEVICE = 1
DEFAULT_STORM_SECONDS = 3.0
SEED = 20261124
PRESENCE_TOPICS = "$aws/events/presence/"
TELEMETRY_TOPICS = "dt/"
DEVICE_POLICY = "DeviceBackend/Onboarding/DeviceAccess/DevicePolicy"  # the app's resources, by CDK path
FLEET_GROUP = "DeviceBackend/Onboarding/DeviceAccess/FleetGroup"
WAIT_POLL_S = 0.2
QUIET_S = 10.0  # the endpoint hands events on within milliseconds: this long without one, none is coming
_deserialize = TypeDeserializer().deserialize


@dataclass
class Timed:
    what: str
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Outcome:
    command: str
    assembly: str
    devices: int
    messages_per_device: int
    storm_seconds: float
    machine: dict[str, Any]
    timings: list[Timed] = field(default_factory=list)
    lifecycle: dict[str, int] = field(default_factory=dict)  # what was counted, by what counted it
    presence_correct: dict[str, int] = field(default_factory=dict)  # devices as expected, after each phase
    failures: list[str] = field(default_factory=list)


def run(
    assembly: Path,
    devices: int,
    per_device: int,
    storm_s: float,
    command: str,
    *,
    on_endpoint: Callable[[DeviceEndpoint], None] = lambda _: None,
) -> Outcome:
    """The benchmark's phases (see the module's docstring); `on_endpoint` is handed the running endpoint, for a
    test to interfere with."""
    outcome = Outcome(command, str(assembly), devices, per_device, storm_s, machine_facts())
    with tempfile.TemporaryDirectory(prefix="bench-devices-") as scratch:
        folder = Path(scratch)
        start = time.perf_counter()
        authority, fleet = issue_fleet(folder / "devices", devices)
        # Each phase's limit scales with the work: it is there to catch a stuck endpoint, not a slow machine (a
        # loaded 2-core one admits about 3 certificate connections a second).
        timeout_s = 60 + devices * 1.0 + devices * per_device * 0.2
        with LocalRuntime(assembly, drain_timeout_s=timeout_s) as runtime:
            onboard(runtime, authority, fleet)
            setup_s = time.perf_counter() - start
            outcome.timings.append(Timed("devices issued and onboarded (setup, not measured)", devices, setup_s))
            with DeviceEndpoint(runtime, folder / "endpoint") as endpoint:
                on_endpoint(endpoint)
                with FleetProcess(fleet, endpoint.host, endpoint.ports["mtls"], str(endpoint.ca_file)) as process:
                    _phases(outcome, endpoint, process, timeout_s)
    return outcome


def issue_fleet(folder: Path, count: int) -> tuple[CertificateAuthority, list[DeviceIdentity]]:
    authority = CertificateAuthority.create("Greenhouse Factory CA")
    fleet = []
    for index in range(count):
        thing_name = f"bench-sensor-{index:05d}"
        certificate, key = authority.issue_device(thing_name).save(folder, thing_name)
        fleet.append(DeviceIdentity(thing_name, str(certificate), str(key)))
    return authority, fleet


def onboard(runtime: LocalRuntime, authority: CertificateAuthority, fleet: list[DeviceIdentity]) -> None:
    """Each device as onboarding leaves it: its certificate ACTIVE under the registered CA, the app's device
    policy attached, its thing attached and in the fleet group (functions/activate_certificate/steps.py)."""
    iot = runtime.cloud.client("iot")
    policy, group = (_physical_name(runtime, path) for path in (DEVICE_POLICY, FLEET_GROUP))
    iot.register_ca_certificate(caCertificate=authority.certificate_pem, setAsActive=True, certificateMode="SNI_ONLY")
    for device in fleet:
        registered = iot.register_certificate(
            certificatePem=Path(device.certificate_file).read_text(),
            caCertificatePem=authority.certificate_pem,
            status="ACTIVE",
        )
        iot.create_thing(thingName=device.thing_name)
        iot.attach_thing_principal(thingName=device.thing_name, principal=registered["certificateArn"])
        iot.attach_policy(policyName=policy, target=registered["certificateArn"])
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=device.thing_name)


def _physical_name(runtime: LocalRuntime, cdk_path: str) -> str:
    for resource in runtime.stack.resources.values():
        if resource.cdk_path == cdk_path:
            return runtime.cloud.physical[resource.logical_id].ref
    raise LocalRuntimeError(f"the app has no {cdk_path}: which device policy and fleet group do devices get?")


def _phases(outcome: Outcome, endpoint: DeviceEndpoint, fleet: FleetProcess, timeout_s: float) -> None:
    devices, per_device = outcome.devices, outcome.messages_per_device
    fail = outcome.failures.append

    def timed(what: str, count: int, seconds: float) -> None:
        outcome.timings.append(Timed(what, count, seconds))

    progress(f"connecting {devices} devices")
    connected = fleet.command("connect_all", timeout_s=timeout_s)
    timed("connect: all devices connected (CONNACK)", connected["connected"], connected["seconds"])
    if not _all_connected(outcome, connected, endpoint, "connect"):
        return

    progress(f"publishing {per_device} readings per device")
    started = time.perf_counter()
    published = fleet.command("publish", per_device=per_device, now_ms=int(time.time() * 1000), timeout_s=timeout_s)
    readings = devices * per_device
    timed("telemetry: accepted by the endpoint (PUBACK)", published["acknowledged"], published["seconds"])
    if published["acknowledged"] != readings:
        fail(f"telemetry: {published['acknowledged']} of {readings} readings acknowledged")
        return
    _wait(endpoint, lambda r: _fired_count(r, TELEMETRY_TOPICS), readings, timeout_s)
    endpoint.drain()
    timed("telemetry: end to end (rules, function, DynamoDB)", readings, time.perf_counter() - started)
    outcome.failures += endpoint.call(lambda r: _telemetry_failures(r, devices, per_device))

    progress(f"reconnect storm: every connection dropped, reconnected within {outcome.storm_seconds:g} s")
    before = endpoint.session_identifiers()
    started = time.perf_counter()
    stormed = fleet.command("storm", spread_s=outcome.storm_seconds, timeout_s=timeout_s, seed=SEED)
    timed("storm: all devices dropped and reconnected", stormed["connected"], stormed["seconds"])
    if not _all_connected(outcome, stormed, endpoint, "storm"):
        return
    sessions = endpoint.session_identifiers()
    if any(before.get(client_id) == session for client_id, session in sessions.items()):
        fail("storm: a device's connection survived the drop")
    expected = _expected_events(fleet, closed=devices)
    _wait(endpoint, _published_events, expected, timeout_s)
    endpoint.drain()
    timed("storm: presence settled (drained, delayed disconnects incl.)", devices, time.perf_counter() - started)
    outcome.presence_correct["after the storm"] = _presence_check(outcome, endpoint, sessions, connected=True)

    progress("disconnecting every device")
    started = time.perf_counter()
    disconnected = fleet.command("disconnect_all", timeout_s=timeout_s)
    timed("disconnect: all devices disconnected", disconnected["disconnected"], disconnected["seconds"])
    expected = _expected_events(fleet, closed=2 * devices)
    _wait(endpoint, lambda r: (len(endpoint.connected_clients()), _published_events(r)), (0, expected), timeout_s)
    endpoint.drain()
    timed("disconnect: presence settled", devices, time.perf_counter() - started)
    outcome.presence_correct["after the disconnect"] = _presence_check(outcome, endpoint, sessions, connected=False)
    counters = fleet.command("counters")
    unexpected = counters["closed_by_endpoint"] + counters["refused"]
    if unexpected:
        fail(f"the endpoint refused or closed {len(unexpected)} connections (the first: {unexpected[0]})")
    outcome.lifecycle, lost = endpoint.call(lambda r: _lifecycle_ledger(r, expected))
    outcome.failures += lost


def _all_connected(outcome: Outcome, answer: dict[str, Any], endpoint: DeviceEndpoint, phase: str) -> bool:
    live = len(endpoint.connected_clients())
    if answer["connect_errors"]:
        errors = answer["connect_errors"]
        outcome.failures.append(f"{phase}: {len(errors)} connects failed (the first: {errors[0]})")
    if answer["connected"] != outcome.devices or live != outcome.devices:
        outcome.failures.append(
            f"{phase}: {answer['connected']} of {outcome.devices} devices got their CONNACK, the endpoint has "
            f"{live} connections (waiting: {answer['waiting']})"
        )
    return not outcome.failures


def _wait(endpoint: DeviceEndpoint, seen: Callable[[LocalRuntime], Any], expected: Any, timeout_s: float) -> None:
    """Until the runtime has seen what the devices did (the endpoint hands it on asynchronously), or nothing
    more arrives for QUIET_S, or the timeout: the checks after it say what is missing."""
    deadline = time.monotonic() + timeout_s
    last, changed = None, time.monotonic()
    while time.monotonic() < min(deadline, changed + QUIET_S):
        now_seen = endpoint.call(seen)
        if now_seen == expected:
            return
        if now_seen != last:
            last, changed = now_seen, time.monotonic()
        time.sleep(WAIT_POLL_S)


def _fired(runtime: LocalRuntime, prefix: str) -> list[RuleFired]:
    return [a for a in runtime.activities if isinstance(a, RuleFired) and a.topic.startswith(prefix)]


def _fired_count(runtime: LocalRuntime, prefix: str) -> int:
    """Messages on topics under `prefix` that reached the rules (a message matching two rules counts once)."""
    return len(_messages(runtime, prefix))


def _messages(runtime: LocalRuntime, prefix: str) -> list[RuleFired]:
    """One RuleFired per message: those of the rule that fires first for its topic."""
    fired = _fired(runtime, prefix)
    first_rules = {}
    for activity in fired:
        first_rules.setdefault(_topic_kind(activity.topic), activity.rule)
    return [a for a in fired if first_rules[_topic_kind(a.topic)] == a.rule]


def _topic_kind(topic: str) -> str:
    """`$aws/events/presence/connected/x` -> `$aws/events/presence/connected`; `dt/fleet/x/soil` -> `dt/fleet/soil`."""
    parts = topic.split("/")
    return "/".join(parts[:-1]) if topic.startswith(PRESENCE_TOPICS) else "/".join([*parts[:2], parts[-1]])


def _expected_events(fleet: FleetProcess, *, closed: int) -> dict[str, int]:
    """Per connection the devices made (its CONNACK), a connected event; per connection ended, a disconnected one."""
    connections = sum(fleet.command("counters")["connacks"].values())
    return {"connected": connections, "disconnected": closed}


def _published_events(runtime: LocalRuntime) -> dict[str, int]:
    counts = {"connected": 0, "disconnected": 0}
    for activity in _messages(runtime, PRESENCE_TOPICS):
        event_type = activity.topic.split("/")[3]
        counts[event_type] = counts.get(event_type, 0) + 1
    return counts


def _lifecycle_ledger(runtime: LocalRuntime, expected: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """The lifecycle events counted at each step, and where any went missing."""
    fired = _fired(runtime, PRESENCE_TOPICS)
    published = _published_events(runtime)
    actions = [(f, a) for f in fired for a in f.actions]
    queues = {a.target for _, a in actions if a.action == "sqs"}
    batches = [a for a in runtime.activities if isinstance(a, BatchDelivered) and a.queue in queues]
    settled = sum(b.records - len(b.left_in_queue) for b in batches if b.invocation.error is None)
    dead_letters = rejections(runtime)
    ledger = {
        "connections made (devices' CONNACKs)": expected["connected"],
        "connections ended": expected["disconnected"],
        "connected events through the rules": published.get("connected", 0),
        "disconnected events through the rules": published.get("disconnected", 0),
        "rule actions failed": sum(a.error is not None for _, a in actions),
        "settled by the presence function": settled,
        "in dead-letter queues": len(dead_letters),
    }
    failures = []
    for event_type, count in expected.items():
        if published.get(event_type, 0) != count:
            reached = published.get(event_type, 0)
            failures.append(f"lifecycle: {reached} {event_type} events reached the rules, for {count}")
    if ledger["rule actions failed"]:
        failures.append(f"lifecycle: {ledger['rule actions failed']} presence rule actions failed")
    if settled != sum(published.values()):
        failures.append(f"lifecycle: the presence function settled {settled} of {sum(published.values())} events")
    failures += [f"dead letter in {r.where}: {r.reason}" for r in dead_letters]
    return ledger, failures


def _telemetry_failures(runtime: LocalRuntime, devices: int, per_device: int) -> list[str]:
    readings = devices * per_device
    fired = _fired(runtime, TELEMETRY_TOPICS)
    failures = [f"telemetry rule {f.rule}: {a.target} failed: {a.error}" for f in fired for a in f.actions if a.error]
    routed = _fired_count(runtime, TELEMETRY_TOPICS)
    if routed != readings:
        failures.append(f"telemetry: {routed} of {readings} readings reached the rules")
    ingested = [a for a in runtime.activities if isinstance(a, AsyncInvoked) and a.attempt == 1]
    errors = [a for a in ingested if a.invocation.error is not None]
    if len(ingested) != readings or errors:
        failures.append(f"telemetry: {len(ingested)} invocations for {readings} readings, {len(errors)} failed")
    dynamodb = runtime.cloud.client("dynamodb")
    for variable, rows in ((LATEST, devices * min(per_device, 3)), (HISTORY, readings)):
        count = dynamodb.scan(TableName=table_name(runtime, variable), Select="COUNT")["Count"]
        if count != rows:
            failures.append(f"telemetry: {count} rows in {variable}, for {rows}")
    return failures


def _presence_check(outcome: Outcome, endpoint: DeviceEndpoint, sessions: dict[str, str], *, connected: bool) -> int:
    """How many devices the Connectivity table shows as they are: connected (or not) in their latest session."""
    rows = endpoint.call(_connectivity_rows)
    correct = [
        client_id
        for client_id, session in sessions.items()
        if rows.get(client_id, {}).get("connected") is connected and rows[client_id].get("sessionIdentifier") == session
    ]
    state = "connected" if connected else "disconnected"
    wrong = sorted(set(sessions) - set(correct))
    if len(correct) != outcome.devices or wrong:
        first = wrong[0] if wrong else None
        outcome.failures.append(
            f"presence: {len(correct)} of {outcome.devices} devices {state} in their latest session (the first "
            f"wrong: {first}: {rows.get(first) if first else None})"
        )
    if set(rows) - set(sessions):
        outcome.failures.append(f"presence: {len(set(rows) - set(sessions))} rows of clients that are not devices here")
    return len(correct)


def _connectivity_rows(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
    dynamodb = runtime.cloud.client("dynamodb")
    items = [
        {name: _deserialize(value) for name, value in item.items()}
        for page in dynamodb.get_paginator("scan").paginate(TableName=table_name(runtime, CONNECTIVITY))
        for item in page["Items"]
    ]
    return {item["clientId"]: item for item in items}


def render_markdown(outcome: Outcome) -> str:
    lines = [
        "# Local device endpoint: a fleet of real devices",
        "",
        f"command: `{outcome.command}`, assembly `{outcome.assembly}`",
        "",
        f"{outcome.devices} paho-mqtt devices over mutual TLS on loopback (certificates ACTIVE, the app's device "
        f"policy, a thing each in the fleet group), {outcome.messages_per_device} readings each at QoS 1, a "
        f"reconnect storm spread over {outcome.storm_seconds:g} s.",
        "",
        "| phase | count | seconds | per second |",
        "|---|---:|---:|---:|",
        *(f"| {t.what} | {t.count} | {t.seconds:.2f} | {t.per_second:.0f} |" for t in outcome.timings),
        "",
        "| lifecycle events | count |",
        "|---|---:|",
        *(f"| {what} | {count} |" for what, count in outcome.lifecycle.items()),
        "",
        "| presence (Connectivity table) | devices correct |",
        "|---|---:|",
        *(f"| {when} | {count} of {outcome.devices} |" for when, count in outcome.presence_correct.items()),
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in outcome.machine.items()),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.devices", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"), help="the folder `cdk synth` wrote")
    parser.add_argument("--devices", type=int, default=DEFAULT_DEVICES, help=f"devices (default {DEFAULT_DEVICES})")
    parser.add_argument(
        "--messages-per-device",
        type=int,
        default=DEFAULT_MESSAGES_PER_DEVICE,
        help=f"readings each device publishes (default {DEFAULT_MESSAGES_PER_DEVICE})",
    )
    parser.add_argument(
        "--storm-seconds",
        type=float,
        default=DEFAULT_STORM_SECONDS,
        help=f"the storm's reconnects are spread over this long (default {DEFAULT_STORM_SECONDS:g})",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw numbers there")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.messages_per_device < 0 or args.storm_seconds < 0:
        parser.error("--devices must be at least 1, --messages-per-device and --storm-seconds at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.orig_argv if argv is None else ["python", "-m", "benchmarks.devices", *argv]
    try:
        outcome = run(args.assembly, args.devices, args.messages_per_device, args.storm_seconds, shlex.join(given))
    except (LocalRuntimeError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render_markdown(outcome))
    if args.json:
        raw = {**asdict(outcome), "timings": [{**asdict(t), "per_second": t.per_second} for t in outcome.timings]}
        args.json.write_text(json.dumps(raw, indent=2))
    if outcome.failures:
        print("The run failed its checks:", file=sys.stderr)
        print("\n".join(f"- {failure}" for failure in outcome.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
