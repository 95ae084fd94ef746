"""`python -m benchmarks.storm`: a fleet's lifecycle events and readings through the whole app, delivered as IoT
Core may deliver them (at least once, in any order), must leave the state an orderly delivery leaves.

The fleet: N devices (default 10,000), each a registered thing whose name is its client id. Each device
connects (session 1), is taken over a minute later by a second connection with the same client id (session 2,
the next versionNumber), and its first session's DUPLICATE_CLIENTID disconnect follows the takeover by up to
1.5 s; every other device then ends its second session 20 to 90 minutes later. A third of the devices publish
readings: each kind once a minute for two minutes (two readings per device on average), as in
`benchmarks.local_runtime`.

Two runs of the synthesized app in `local_runtime.LocalRuntime`, each from an empty account:

1. in order: every message once, in the order of its timestamp, as an orderly IoT would deliver them;
2. the storm: the same messages, a fifth of them (at random) delivered twice, all shuffled.

Each run publishes every message into the rules engine at once and drains the event sources (the presence
rules' SQS queues, the delayed disconnects' queue among them, and the telemetry rules' asynchronous
invocations) until every queue is empty. Then both must hold:

- 0 lost: every message fired its rule, whose action succeeded, and every record reached its function and was
  settled (no batch failure left in a queue, no failed invocation);
- the storm's tables (presence connectivity, latest telemetry, telemetry history) equal the in-order run's, item
  for item, but for the attributes that record when the app processed a message (`updatedAt`, `receivedAt`);
  and the in-order run's rows are those the events mean (each device's winning event; each reading in the
  history and the newest of each kind as latest).

The report gives each run's time and messages per second. The local runtime runs one invocation of a function at
a time, so this storm has no concurrent consumers: races between concurrent batches are not exercised here.
The command exits 1 if anything was lost or differs.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmarks.__main__ import machine_facts
from benchmarks.local_runtime import (
    CONNECTIVITY,
    HISTORY,
    LATEST,
    Fleet,
    Message,
    Phase,
    RowKey,
    Workload,
    register,
    run_phase,
    table_failures,
    table_items,
)
from local_runtime.errors import LocalRuntimeError
from local_runtime.runtime import LocalRuntime

DEFAULT_DEVICES = 10_000
QUICK_DEVICES = 30
SEED = 20261204
DUPLICATED = 0.2  # the share of messages the storm delivers twice
TAKEOVER_AFTER_MS = 60_000
KICK_WITHIN_MS = 1_500  # the old session's DUPLICATE_CLIENTID disconnect, after the new session's connect
READINGS_PER_DEVICE = 2
# What the app writes about when it processed a message, not about the message: different in every run.
PROCESSING_TIMES = frozenset({"updatedAt", "receivedAt"})
COMPARED = (CONNECTIVITY, LATEST, HISTORY)

Snapshot = dict[str, dict[tuple[Any, ...], dict[str, Any]]]  # table variable -> item key -> item


@dataclass(frozen=True)
class FleetTraffic:
    """The fleet's messages in the order of their timestamps, and the rows they mean."""

    in_order: list[Message]
    rows: dict[RowKey, dict[str, Any]]
    registered: dict[str, dict[str, str]]
    devices: int
    readings: int


def fleet_messages(devices: int, now_ms: int) -> FleetTraffic:
    rng = random.Random(SEED)
    timed: list[tuple[int, Message]] = []
    rows: dict[RowKey, dict[str, Any]] = {}
    readings = Workload()
    Fleet("storm").readings(readings, devices * READINGS_PER_DEVICE, now_ms)
    timed += [(json.loads(message.payload)["ts"], message) for message in readings.messages]
    rows.update(readings.rows)
    start_ms = now_ms - 3 * 3_600_000
    for index in range(devices):
        client_id = f"storm-thing-{index:05d}"  # the things that publish readings are these devices
        first = _connect(rng, client_id, start_ms + index * 100 + rng.randrange(100), rng.randrange(1, 40))
        second = _connect(rng, client_id, first["timestamp"] + TAKEOVER_AFTER_MS, first["versionNumber"] + 1)
        kicked = _disconnect(first, second["timestamp"] + rng.randrange(KICK_WITHIN_MS), "DUPLICATE_CLIENTID")
        events = [first, second, kicked]
        last = second
        if index % 2:
            ended_ms = second["timestamp"] + rng.randrange(20, 90) * 60_000
            last = _disconnect(second, ended_ms, "CLIENT_INITIATED_DISCONNECT")
            events.append(last)
        for event in events:
            topic = f"$aws/events/presence/{event['eventType']}/{client_id}"
            timed.append((event["timestamp"], Message(topic, json.dumps(event, separators=(",", ":")).encode())))
        rows[(CONNECTIVITY, (client_id,))] = _connectivity_row(last)
    timed.sort(key=lambda pair: pair[0])
    return FleetTraffic(
        in_order=[message for _, message in timed],
        rows=rows,
        registered=readings.registered,
        devices=devices,
        readings=len(readings.messages),
    )


def _connect(rng: random.Random, client_id: str, at_ms: int, version: int) -> dict[str, Any]:
    return {
        "clientId": client_id,
        "timestamp": at_ms,
        "eventType": "connected",
        "sessionIdentifier": f"{rng.getrandbits(128):032x}",
        "principalIdentifier": f"{rng.getrandbits(256):064x}",
        "ipAddress": f"198.51.100.{rng.randrange(1, 255)}",
        "versionNumber": version,
    }


def _disconnect(session: dict[str, Any], at_ms: int, reason: str) -> dict[str, Any]:
    return {
        **{name: session[name] for name in ("clientId", "sessionIdentifier", "principalIdentifier", "versionNumber")},
        "timestamp": at_ms,
        "eventType": "disconnected",
        "clientInitiatedDisconnect": reason == "CLIENT_INITIATED_DISCONNECT",
        "disconnectReason": reason,
    }


def _connectivity_row(event: dict[str, Any]) -> dict[str, Any]:
    row = {
        "connected": event["eventType"] == "connected",
        "since": event["timestamp"],
        "sessionIdentifier": event["sessionIdentifier"],
        "versionNumber": event["versionNumber"],
    }
    if "disconnectReason" in event:
        row["disconnectReason"] = event["disconnectReason"]
    return row


def storm_of(in_order: list[Message], seed: int = SEED) -> list[Message]:
    """The same messages, DUPLICATED of them twice, in a random order."""
    rng = random.Random(seed)
    delivered = [copy for message in in_order for copy in [message] * (2 if rng.random() < DUPLICATED else 1)]
    rng.shuffle(delivered)
    return delivered


def snapshot(runtime: LocalRuntime, variables: Sequence[str] = COMPARED) -> Snapshot:
    """Every item of the tables the app's functions name in `variables`, without PROCESSING_TIMES."""
    return {
        variable: {
            key: {name: value for name, value in item.items() if name not in PROCESSING_TIMES}
            for key, item in table_items(runtime, variable).items()
        }
        for variable in variables
    }


def differences(reference: Snapshot, other: Snapshot, limit: int = 3) -> list[str]:
    """What `other` lacks, adds or holds differently, table by table (the first `limit` keys of each)."""
    found = []
    for variable in reference.keys() | other.keys():
        expected, actual = reference.get(variable, {}), other.get(variable, {})
        for what, keys in (
            ("missing", [key for key in expected if key not in actual]),
            ("unexpected", [key for key in actual if key not in expected]),
            ("different", [key for key in expected if key in actual and expected[key] != actual[key]]),
        ):
            if keys:
                found.append(f"{variable}: {len(keys)} items {what} (the first: {', '.join(map(str, keys[:limit]))})")
    return sorted(found)


@dataclass
class Run:
    label: str
    phase: Phase
    tables: Snapshot = field(repr=False)
    row_failures: list[str]

    @property
    def items(self) -> int:
        return sum(len(items) for items in self.tables.values())


def play(assembly: Path, fleet: FleetTraffic, messages: list[Message], label: str) -> Run:
    # The drain's timeout scales with the work: it is there to catch a stuck queue, not a slow machine.
    with LocalRuntime(assembly, drain_timeout_s=120 + len(messages) * 0.2) as runtime:
        register(runtime, fleet.registered)
        phase = run_phase(runtime, messages, len(messages), label)
        _, row_failures = table_failures(runtime, fleet.rows)
        return Run(label, phase, snapshot(runtime), row_failures)


@dataclass
class Outcome:
    command: str
    machine: dict[str, Any]
    devices: int
    readings: int
    in_order: Run
    storm: Run
    failures: list[str]


def run(assembly: Path, devices: int, command: str) -> Outcome:
    fleet = fleet_messages(devices, int(time.time() * 1000))
    in_order = play(assembly, fleet, fleet.in_order, "in order")
    storm = play(assembly, fleet, storm_of(fleet.in_order), "storm")
    failures = [f"in order: {failure}" for failure in in_order.phase.failures + in_order.row_failures]
    failures += [f"storm: {failure}" for failure in storm.phase.failures]
    failures += [f"storm differs from in order: {found}" for found in differences(in_order.tables, storm.tables)]
    return Outcome(command, machine_facts(), devices, fleet.readings, in_order, storm, failures)


def render_markdown(outcome: Outcome) -> str:
    in_order, storm = outcome.in_order.phase, outcome.storm.phase
    duplicates = storm.messages - in_order.messages
    lines = [
        "# Lifecycle and telemetry storm: at least once, in any order",
        "",
        f"command: `{outcome.command}`",
        "",
        f"{outcome.devices} devices, each connected, taken over by a second connection (its first session's "
        "DUPLICATE_CLIENTID disconnect just after), every other one disconnected later; "
        f"{outcome.readings} readings from a third of them. {in_order.messages} messages in all.",
        "",
        "| | in order | storm |",
        "|---|---|---|",
        f"| messages delivered | {in_order.messages} | {storm.messages} ({duplicates} duplicates, shuffled) |",
        f"| wall time, first publish to drained | {in_order.wall_s:.1f} s | {storm.wall_s:.1f} s |",
        f"| messages per second | {in_order.messages / in_order.wall_s:.0f} | {storm.messages / storm.wall_s:.0f} |",
        f"| records the functions received and settled | {in_order.records} | {storm.records} |",
        f"| items in the presence and telemetry tables | {outcome.in_order.items} | {outcome.storm.items} |",
        "",
        "0 messages lost in either run, the in-order run's rows are those the events mean, and the storm left "
        "every item as the in-order run did (but for the times the app processed them). One invocation of a "
        "function at a time: no concurrent consumers.",
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in outcome.machine.items()),
    ]
    return "\n".join(lines)


def raw_numbers(outcome: Outcome) -> dict[str, Any]:
    return {
        "command": outcome.command,
        "devices": outcome.devices,
        "readings": outcome.readings,
        "runs": {
            run.label: {**asdict(run.phase), "wall_s": run.phase.wall_s, "items": run.items}
            for run in (outcome.in_order, outcome.storm)
        },
        "machine": outcome.machine,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.storm", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"), help="the folder `cdk synth` wrote")
    parser.add_argument("--devices", type=int, help=f"devices (default {DEFAULT_DEVICES}; quick {QUICK_DEVICES})")
    parser.add_argument("--quick", action="store_true", help="few devices, for tests")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw numbers there")
    args = parser.parse_args(argv)
    if args.devices is None:
        args.devices = QUICK_DEVICES if args.quick else DEFAULT_DEVICES
    if args.devices < 3:
        parser.error("--devices must be at least 3 (a third of them publish readings)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.orig_argv if argv is None else ["python", "-m", "benchmarks.storm", *argv]
    try:
        outcome = run(args.assembly, args.devices, shlex.join(given))
    except LocalRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if outcome.failures:
        print("The storm lost or changed work, so it reports no numbers:", file=sys.stderr)
        print("\n".join(f"- {failure}" for failure in outcome.failures), file=sys.stderr)
        return 1
    print(render_markdown(outcome))
    if args.json:
        args.json.write_text(json.dumps(raw_numbers(outcome), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
