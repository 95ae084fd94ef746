"""`python -m benchmarks.local_runtime`: messages per second through the local runtime to DynamoDB, and the
runtime's own overhead per message, for each of the two paths messages take there: lifecycle events through
rule, SQS and Lambda; device telemetry through rule and Lambda's asynchronous invocation.

How: the synthesized app runs in `local_runtime.LocalRuntime`. A warm-up (one presence connect, one registry
event, one telemetry reading) takes the functions' cold starts out of the measurement. Then N lifecycle events
in AWS's formats (presence connects of distinct clients, registry `created` and `updated` events of distinct
things) are published back to back into the rules engine, and the event sources are drained until every
queue is empty (with `--burst B`: B messages at a time, each burst drained before the next).

Then, timed apart, N telemetry messages the same way: valid readings of the three kinds, as devices publish
them on `dt/fleet/<thing>/<kind>` with their thing name as client id, each thing every kind once a minute.
The things are in IoT's registry (attributes, a group) before the run, as onboarded devices are; the function
reads each once, then from its cache. A reading fires its kind's rule, whose lambda action Lambda runs as an
asynchronous invocation at the next poll, and the archive rule, whose Firehose records the drain flushes to S3
at its end. None breaches a threshold, as most readings do not: none alerts or commands its device (only a
breach makes the function publish to IoT).

- wall time: from the first publish until the drain returns (the last DynamoDB write is before it);
- rules engine: the publish calls, which include the rule action's SendMessage to moto (telemetry: the
  invocation queued, the archive's record buffered);
- handler: inside the functions (each invocation's handler_ms: from the worker's "started" message, sent just
  before it calls the handler, to its answer); it includes the handlers' DynamoDB calls (and telemetry's
  registry reads), which moto serves on loopback;
- worker IPC: the rest of each invocation: the event's JSON through the request pipe, and the "started" reply;
- event-source polling: the drain minus the invocations: ReceiveMessage, DeleteMessageBatch and the
  queue-state checks, all answered by moto (telemetry: the queue-state checks, and the archive's flush).
The runtime's overhead per message is (wall - handler) / N, the sum of the other three.

Presence disconnects go through a queue with a DeliveryDelay (5 s in the app): they are measured apart, after
the main run, so that the fixed delay does not count as time per message.

Every number is reported only if the work happened: every message fired a rule whose action succeeded, every
record (or asynchronous event) reached a function and was settled, and every row the messages should leave is
in its table as they should leave it (for telemetry: each thing's latest reading of each kind, and every
reading in the history). Otherwise the command prints what was lost and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence, TextIO

from boto3.dynamodb.types import TypeDeserializer

from benchmarks.__main__ import machine_facts
from local_runtime.account import ACCOUNT_ID
from local_runtime.activity import AsyncInvoked, BatchDelivered, RuleFired
from local_runtime.errors import LocalRuntimeError
from local_runtime.rules import NO_CLIENT
from local_runtime.runtime import LocalRuntime

DEFAULT_MESSAGES = 2000
QUICK_MESSAGES = 40
PROGRESS_EVERY_S = 5.0
SEED = 20261124
# The lifecycle events' times: connects from three hours before the run, each disconnect up to 90 minutes later.
T0_MS = int(time.time() * 1000) - 3 * 3_600_000
# The functions' environment variables that name the tables the benchmark checks.
CONNECTIVITY, INVENTORY = "CONNECTIVITY_TABLE", "INVENTORY_TABLE"
LATEST, HISTORY = "LATEST_TABLE", "HISTORY_TABLE"
DISCONNECT_REASONS = {"CLIENT_INITIATED_DISCONNECT": True, "MQTT_KEEP_ALIVE_TIMEOUT": False, "CONNECTION_LOST": False}
APPLICATION = "fleet"  # the app's default (TelemetryConfig): devices publish on dt/fleet/<thing>/<kind>
# Each kind's measures, drawn from inside the app's default thresholds: valid readings that breach nothing.
READINGS = {
    "environment": {"temperature": (15.0, 30.0), "humidity": (30.0, 70.0)},
    "power": {"battery": (40.0, 100.0), "voltage": (3.6, 4.2)},
    "soil": {"moisture": (25.0, 60.0), "temperature": (8.0, 25.0)},
}
# Each thing publishes every kind once a minute, for this many minutes: a thing's second reading of a kind must
# replace its first as the latest.
READING_MINUTES = 2
THING_GROUP = "bench-greenhouses"  # the group the telemetry things are registered in

RowKey = tuple[str, tuple[str | int, ...]]  # (table variable, the item's key values)
_deserialize = TypeDeserializer().deserialize


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    client_id: str = NO_CLIENT  # the MQTT client that published it; AWS IoT's own events have none


@dataclass
class Workload:
    messages: list[Message] = field(default_factory=list)
    # What each row must hold once every message is processed (a later message's row replaces an earlier's).
    rows: dict[RowKey, dict[str, Any]] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)  # the connects, for their disconnects
    registered: dict[str, dict[str, str]] = field(default_factory=dict)  # things in IoT's registry, and attributes

    def add(
        self, topic: str, payload: dict[str, Any], rows: dict[RowKey, dict[str, Any]], client_id: str = NO_CLIENT
    ) -> None:
        self.messages.append(Message(topic, json.dumps(payload, separators=(",", ":")).encode(), client_id))
        self.rows.update(rows)


class Fleet:
    """Made-up devices and things with their own ids, the lifecycle events AWS IoT publishes for them, and the
    readings they publish."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._rng = random.Random(f"{SEED}-{prefix}")

    def connects(self, workload: Workload, count: int) -> None:
        for index in range(count):
            client_id = f"{self._prefix}-device-{index:05d}"
            session = {
                "clientId": client_id,
                "timestamp": T0_MS + index * 250 + self._rng.randrange(250),
                "eventType": "connected",
                "sessionIdentifier": self._hex(32),
                "principalIdentifier": self._hex(64),
                "ipAddress": f"198.51.100.{self._rng.randrange(1, 255)}",
                "versionNumber": self._rng.randrange(1, 40),
            }
            workload.sessions.append(session)
            row = {"connected": True, **_pick(session, "timestamp", "sessionIdentifier", "versionNumber")}
            workload.add(f"$aws/events/presence/connected/{client_id}", session, {(CONNECTIVITY, (client_id,)): row})

    def disconnects(self, workload: Workload, sessions: list[dict[str, Any]]) -> None:
        """Each session ends 20 to 90 minutes after its connect, with the connect's versionNumber, as on AWS."""
        for session in sessions:
            reason = self._rng.choice(sorted(DISCONNECT_REASONS))
            event = {
                **_pick(session, "clientId", "sessionIdentifier", "principalIdentifier", "versionNumber"),
                "timestamp": session["timestamp"] + self._rng.randrange(20, 90) * 60_000,
                "eventType": "disconnected",
                "clientInitiatedDisconnect": DISCONNECT_REASONS[reason],
                "disconnectReason": reason,
            }
            row = {"connected": False, "disconnectReason": reason,
                   **_pick(event, "timestamp", "sessionIdentifier", "versionNumber")}  # fmt: skip
            workload.add(
                f"$aws/events/presence/disconnected/{session['clientId']}",
                event,
                {(CONNECTIVITY, (session["clientId"],)): row},
            )

    def things(self, workload: Workload, created: int, updated: int) -> None:
        """`created` things, the first `updated` of them updated afterwards (version 2, new firmware)."""
        things = []
        for index in range(created):
            thing = {
                "thingName": f"{self._prefix}-sensor-{index:05d}",
                "thingId": self._uuid(),
                "thingTypeName": "SoilSensor",
                "attributes": {"firmware": "1.0.0", "bed": str(self._rng.randrange(1, 25))},
            }
            things.append(thing)
            self._thing_event(workload, thing, "created", 1, T0_MS - 3_600_000 + index * 100)
        for index, thing in enumerate(things[:updated]):
            thing["attributes"] = {**thing["attributes"], "firmware": "1.1.0"}
            self._thing_event(workload, thing, "updated", 2, T0_MS - 1_800_000 + index * 100)

    def _thing_event(self, workload: Workload, thing: dict[str, Any], operation: str, version: int, at_ms: int) -> None:
        event = {
            "eventType": "THING_EVENT",
            "eventId": self._uuid(),
            "timestamp": at_ms,
            "operation": operation.upper(),
            "accountId": ACCOUNT_ID,
            "thingId": thing["thingId"],
            "thingName": thing["thingName"],
            "versionNumber": version,
            "thingTypeName": thing["thingTypeName"],
            "attributes": thing["attributes"],
        }
        row = {"versionNumber": version, "attributes": thing["attributes"]}
        workload.add(
            f"$aws/events/thing/{thing['thingName']}/{operation}",
            event,
            {(INVENTORY, (f"THING#{thing['thingName']}", "THING")): row},
        )

    def readings(self, workload: Workload, count: int, last_ms: int) -> None:
        """`count` valid readings over READING_MINUTES minutes, the last minute's at `last_ms`, from as many
        things as that takes, each publishing every kind once a minute; the things registered, each with its
        attributes, in THING_GROUP."""
        kinds = sorted(READINGS)
        things = math.ceil(count / (READING_MINUTES * len(kinds)))
        minutes = math.ceil(count / (things * len(kinds)))
        for index in range(count):
            minute, position = divmod(index, things * len(kinds))
            thing, kind = f"{self._prefix}-thing-{position // len(kinds):05d}", kinds[position % len(kinds)]
            attributes = workload.registered.setdefault(
                thing, {"site": f"greenhouse-{self._rng.randrange(1, 9)}", "firmware": "1.0.0"}
            )
            ts = last_ms - (minutes - 1 - minute) * 60_000
            reading = {measure: round(self._rng.uniform(*bounds), 1) for measure, bounds in READINGS[kind].items()}
            # DynamoDB keeps each measure as the decimal of its shortest text (ingest_telemetry.logic).
            stored = {"clientId": thing, "reading": {measure: Decimal(repr(v)) for measure, v in reading.items()}}
            latest = {**stored, "ts": ts, "breaches": [], "registered": True, "attributes": attributes,
                      "thingGroups": [THING_GROUP]}  # fmt: skip
            workload.add(
                f"dt/{APPLICATION}/{thing}/{kind}",
                {"ts": ts, **reading},
                {(LATEST, (thing, kind)): latest, (HISTORY, (f"{thing}#{kind}", ts)): stored},
                client_id=thing,
            )

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(4 * digits):0{digits}x}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _pick(mapping: dict[str, Any], *names: str) -> dict[str, Any]:
    picked = {name: mapping[name] for name in names}
    if "timestamp" in picked:  # the connectivity row keeps the winning event's timestamp as `since`
        picked["since"] = picked.pop("timestamp")
    return picked


def main_workload(messages: int) -> Workload:
    """Half presence connects, a quarter things created, a quarter of those things updated; interleaved, as a
    busy account's events are, each thing's update after its create."""
    connects, registry = Workload(), Workload()
    fleet = Fleet("bench")
    fleet.connects(connects, messages // 2)
    created = (messages - messages // 2 + 1) // 2
    fleet.things(registry, created, messages - messages // 2 - created)
    workload = Workload(rows={**connects.rows, **registry.rows}, sessions=connects.sessions)
    for index in range(max(len(connects.messages), len(registry.messages))):
        workload.messages += connects.messages[index : index + 1] + registry.messages[index : index + 1]
    return workload


@dataclass(frozen=True)
class Phase:
    """What one burst of messages cost, in seconds, and what it did."""

    messages: int
    burst: int  # messages published back to back before each drain
    publish_s: float
    drain_s: float
    invocations_s: float  # the invocations as the runtime sees them: worker IPC + handler
    handler_s: float
    invocations: int
    records: int  # what the functions received: SQS records, and asynchronous events (their first attempts)
    failures: list[str]
    delay_s: float = 0.0  # the largest DeliveryDelay of the queues the messages went to

    @property
    def wall_s(self) -> float:
        return self.publish_s + self.drain_s

    def breakdown_ms(self) -> dict[str, float]:
        """Milliseconds per message: the handler's, and the runtime's split in its parts."""
        per_message = 1000 / self.messages
        return {
            "handler": self.handler_s * per_message,
            "overhead": (self.wall_s - self.handler_s) * per_message,
            "rules_engine": self.publish_s * per_message,
            "event_source_polling": (self.drain_s - self.invocations_s) * per_message,
            "worker_ipc": (self.invocations_s - self.handler_s) * per_message,
        }


class Progress:
    """Every PROGRESS_EVERY_S on standard error, while a phase runs: how many of its messages the rules took
    and how many records its functions got, so that a long run shows it is moving."""

    def __init__(self, runtime: LocalRuntime, label: str, total: int, stream: TextIO | None = None) -> None:
        self._runtime, self._label, self._total = runtime, label, total
        self._stream = stream or sys.stderr
        self._first_activity = len(runtime.activities)
        self.published = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._report, name=f"progress {label}", daemon=True)

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def line(self) -> str:
        # The runtime only appends to its activities, so a copy of them as they are now is consistent.
        activities = self._runtime.activities[self._first_activity :]
        batches = [a for a in activities if isinstance(a, BatchDelivered)]
        attempts = [a for a in activities if isinstance(a, AsyncInvoked)]
        elapsed = time.monotonic() - self._started
        return (
            f"{self._label}: {self.published}/{self._total} published, {_received(batches, attempts)} records "
            f"received by the functions, {elapsed:.0f} s"
        )

    def _report(self) -> None:
        while not self._stopped.wait(PROGRESS_EVERY_S):
            print(self.line(), file=self._stream, flush=True)


def run_phase(runtime: LocalRuntime, messages: list[Message], burst: int, label: str = "phase") -> Phase:
    """Publishes `burst` messages back to back, drains, and so on until every message is processed."""
    first_activity = len(runtime.activities)
    fired: list[list[RuleFired]] = []
    publish_s = drain_s = 0.0
    with Progress(runtime, label, len(messages)) as progress:
        for first in range(0, len(messages), burst):
            start = time.perf_counter()
            for message in messages[first : first + burst]:
                fired.append(runtime.publish(message.topic, message.payload, message.client_id))
                progress.published += 1
            published = time.perf_counter()
            runtime.drain()
            publish_s, drain_s = publish_s + published - start, drain_s + time.perf_counter() - published
    activities = runtime.activities[first_activity:]
    batches = [a for a in activities if isinstance(a, BatchDelivered)]
    attempts = [a for a in activities if isinstance(a, AsyncInvoked)]
    invocations = [a.invocation for a in (*batches, *attempts)]
    failures = _routing_failures(messages, fired) + _delivery_failures(batches, attempts, len(messages))
    if any(invocation.handler_ms is None for invocation in invocations):
        failures.append("an invocation's handler did not run")
    return Phase(
        messages=len(messages),
        burst=min(burst, len(messages)),
        publish_s=publish_s,
        drain_s=drain_s,
        invocations_s=sum(invocation.duration_ms for invocation in invocations) / 1000,
        handler_s=sum(invocation.handler_ms or 0 for invocation in invocations) / 1000,
        invocations=len(invocations),
        records=_received(batches, attempts),
        failures=failures,
        delay_s=_delay_s(runtime, fired),
    )


def _routing_failures(messages: list[Message], fired: list[list[RuleFired]]) -> list[str]:
    # Routed: some rule ran an action that succeeded (a rule may also match and run none, e.g. on a WHERE).
    unrouted = [
        message.topic
        for message, rules in zip(messages, fired)
        if not any(outcome.error is None for rule in rules for outcome in rule.actions)
    ]
    outcomes = [(rule.rule, outcome) for rules in fired for rule in rules for outcome in rule.actions]
    failed = [f"{rule}: {outcome.error}" for rule, outcome in outcomes if outcome.error]
    failures = []
    if unrouted:
        failures.append(
            f"{len(unrouted)} of {len(messages)} messages fired no rule action (the first: {unrouted[0]})"
        )
    if failed:
        failures.append(f"{len(failed)} rule actions failed (the first: {failed[0]})")
    return failures


def _received(batches: list[BatchDelivered], attempts: list[AsyncInvoked]) -> int:
    return sum(batch.records for batch in batches) + sum(attempt.attempt == 1 for attempt in attempts)


def _delivery_failures(batches: list[BatchDelivered], attempts: list[AsyncInvoked], messages: int) -> list[str]:
    failures = []
    records = _received(batches, attempts)
    if records != messages:
        failures.append(f"the functions received {records} records for {messages} messages")
    for batch in batches:
        if batch.invocation.error is not None:
            error = batch.invocation.error
            failures.append(f"{batch.function} failed: {error.type}: {error.message}")
        elif batch.left_in_queue:
            why = batch.whole_batch_failed or "reported as batch item failures"
            failures.append(f"{batch.function} left {len(batch.left_in_queue)} records in {batch.queue}: {why}")
    for attempt in attempts:
        if attempt.invocation.error is not None:
            error = attempt.invocation.error
            function = attempt.invocation.function
            failures.append(f"{function} failed (attempt {attempt.attempt}): {error.type}: {error.message}")
    return failures


def _delay_s(runtime: LocalRuntime, fired: list[list[RuleFired]]) -> float:
    outcomes = [outcome for rules in fired for rule in rules for outcome in rule.actions]
    queues = {outcome.target for outcome in outcomes if outcome.action == "sqs"}
    sqs = runtime.cloud.client("sqs")
    delays = [
        sqs.get_queue_attributes(QueueUrl=runtime.cloud.physical[queue].ref, AttributeNames=["DelaySeconds"])
        for queue in queues
    ]
    return max((float(delay["Attributes"]["DelaySeconds"]) for delay in delays), default=0.0)


def table_items(runtime: LocalRuntime, variable: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every item of the table a function of the app names in its environment variable `variable`, by its key
    values, as Python values."""
    dynamodb = runtime.cloud.client("dynamodb")
    table = table_name(runtime, variable)
    key_names = [key["AttributeName"] for key in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
    return {
        tuple(item[name] for name in key_names): item
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for item in ({name: _deserialize(value) for name, value in raw.items()} for raw in page["Items"])
    }


def table_failures(runtime: LocalRuntime, rows: dict[RowKey, dict[str, Any]]) -> tuple[dict[str, int], list[str]]:
    """The rows as expected in each table, and what is missing or wrong. Every row of the tables checked must be
    one the messages left, so a table with extra rows fails too."""
    matched: dict[str, int] = {}
    failures = []
    for variable in sorted({variable for variable, _ in rows}):
        table, items = table_name(runtime, variable), table_items(runtime, variable)
        expected = {key: attributes for (of, key), attributes in rows.items() if of == variable}
        missing = [key for key in expected if key not in items]
        wrong = [
            key for key, attributes in expected.items()
            if key in items and any(items[key].get(name) != value for name, value in attributes.items())
        ]  # fmt: skip
        extra = [key for key in items if key not in expected]
        matched[table] = len(expected) - len(missing) - len(wrong)
        for what, keys in (("missing", missing), ("not as the last message left them", wrong), ("unexpected", extra)):
            if keys:
                failures.append(f"{table}: {len(keys)} of {len(expected)} rows {what} (the first: {keys[0]})")
    return matched, failures


def register(runtime: LocalRuntime, things: dict[str, dict[str, str]]) -> None:
    """The things in IoT's registry, with their attributes, in THING_GROUP, as onboarding leaves devices."""
    iot = runtime.cloud.client("iot")
    iot.create_thing_group(thingGroupName=THING_GROUP)
    for thing, attributes in things.items():
        iot.create_thing(thingName=thing, attributePayload={"attributes": attributes})
        iot.add_thing_to_thing_group(thingGroupName=THING_GROUP, thingName=thing)


def table_name(runtime: LocalRuntime, variable: str) -> str:
    """The table (or any resource) a function of the app names in its environment variable `variable`."""
    for spec in runtime.function_specs:
        value = spec.resource.properties.get("Environment", {}).get("Variables", {}).get(variable)
        if value is not None:
            return runtime.cloud.resolver.resolve_string(value, f"{spec.logical_id}.Environment.Variables.{variable}")
    raise LocalRuntimeError(f"No function of the app has the environment variable {variable}: which table is it?")


@dataclass
class Outcome:
    command: str
    assembly: str
    machine: dict[str, Any]
    cold_starts_ms: dict[str, float] = field(default_factory=dict)
    main: Phase | None = None
    telemetry: Phase | None = None
    disconnects: Phase | None = None
    rows_as_expected: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run(assembly: Path, messages: int, burst: int, command: str) -> Outcome:
    outcome = Outcome(command=command, assembly=str(assembly), machine=machine_facts())
    workload = main_workload(messages)
    # Readings of the last minutes: the function refuses a reading whose time is far from IoT's time of receipt.
    now_ms = int(time.time() * 1000)
    telemetry = Workload()
    Fleet("bench").readings(telemetry, messages, now_ms)
    warm_up, warm_up_fleet = Workload(), Fleet("warmup")
    warm_up_fleet.connects(warm_up, 1)
    warm_up_fleet.things(warm_up, 1, 0)
    warm_up_fleet.readings(warm_up, 1, now_ms)
    disconnects = Workload()
    Fleet("bench").disconnects(disconnects, workload.sessions[: max(1, len(workload.sessions) // 4)])
    rows = {**warm_up.rows, **workload.rows, **telemetry.rows}
    # The drain's timeout scales with the work: it is there to catch a stuck queue, not a slow machine.
    with LocalRuntime(assembly, drain_timeout_s=60 + messages * 0.2) as runtime:
        register(runtime, {**warm_up.registered, **telemetry.registered})
        warm = run_phase(runtime, warm_up.messages, burst, "warm-up")
        outcome.cold_starts_ms = {
            a.invocation.function: a.invocation.init_ms
            for a in runtime.activities
            if isinstance(a, (BatchDelivered, AsyncInvoked)) and a.invocation.init_ms is not None
        }
        outcome.main = run_phase(runtime, workload.messages, burst, "lifecycle events")
        outcome.telemetry = run_phase(runtime, telemetry.messages, burst, "telemetry")
        outcome.rows_as_expected, table_check = table_failures(runtime, rows)
        outcome.failures = warm.failures + outcome.main.failures + outcome.telemetry.failures + table_check
        if outcome.failures:  # no point in waiting out the delay: the run has failed
            return outcome
        outcome.disconnects = run_phase(runtime, disconnects.messages, len(disconnects.messages), "disconnects")
        outcome.rows_as_expected, table_check = table_failures(runtime, {**rows, **disconnects.rows})
        outcome.failures = outcome.disconnects.failures + table_check
    return outcome


def render_markdown(outcome: Outcome) -> str:
    main, telemetry, disconnects = outcome.main, outcome.telemetry, outcome.disconnects
    assert main is not None and telemetry is not None and disconnects is not None, (
        "only a run that did all its work is reported"
    )
    lines = [
        "# Local runtime: rule → SQS → Lambda → DynamoDB",
        "",
        f"command: `{outcome.command}`, assembly `{outcome.assembly}`",
        "",
        f"{main.messages} messages (presence connects, registry things created and updated) published into the "
        f"rules engine {_bursts(main)}; functions warm (their cold starts were in a warm-up before). A drain "
        "checks every queue's state until all are empty, a cost per drain rather than per message, so small "
        "bursts (`--burst 10`: a steady trickle) pay it more often than one burst of everything.",
        "",
        *_phase_table(
            main,
            handlers="their DynamoDB calls to moto",
            rules="publish, incl. SendMessage",
            polling="event-source polling (Receive/Delete/queue state, moto)",
        ),
        f"| cold starts (warm-up, not in either run) | "
        + ", ".join(f"{name} {init:.0f} ms" for name, init in outcome.cold_starts_ms.items())
        + " |",
        "",
        "## Telemetry: rule → asynchronous invocation → Lambda → DynamoDB",
        "",
        f"{telemetry.messages} valid readings (environment, power and soil; each thing every kind once a minute, "
        "published with its thing name as client id) published into the rules engine "
        f"{_bursts(telemetry)}, after the messages above. Each fires its kind's rule, whose lambda action Lambda "
        "runs as an asynchronous invocation at the next poll, one reading each, and the archive rule, whose "
        "Firehose records the drain flushes to S3 at its end. The function reads each thing from IoT's registry "
        "once, then from its cache; no reading breaches a threshold, so none alerts or commands its device.",
        "",
        *_phase_table(
            telemetry,
            handlers="their DynamoDB and registry calls to moto",
            rules="publish: both rules, the invocation queued, the archive record buffered",
            polling="drain (queue-state checks, the archive's flush to S3, moto)",
        ),
        "",
        f"Delayed disconnects, measured apart: {disconnects.messages} messages through a queue with a "
        f"{disconnects.delay_s:g} s DeliveryDelay took {disconnects.wall_s:.2f} s: the delay, then "
        f"{disconnects.wall_s - disconnects.delay_s:.2f} s to deliver and process them "
        f"({disconnects.breakdown_ms()['handler']:.2f} ms/message in the handlers).",
        "",
        "Every message fired its rule and reached its function, and every row is as the last message left it: "
        + ", ".join(f"{table} {count} rows" for table, count in outcome.rows_as_expected.items())
        + ".",
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in outcome.machine.items()),
    ]
    return "\n".join(lines)


def _phase_table(phase: Phase, *, handlers: str, rules: str, polling: str) -> list[str]:
    ms = phase.breakdown_ms()
    return [
        "| | |",
        "|---|---|",
        f"| throughput, publish to last DynamoDB write | **{phase.messages / phase.wall_s:.0f} messages/s** |",
        f"| wall time | {phase.wall_s:.2f} s |",
        f"| in the handlers (incl. {handlers}) | {ms['handler']:.2f} ms/message |",
        f"| **runtime overhead** | **{ms['overhead']:.2f} ms/message** |",
        f"| · rules engine ({rules}) | {ms['rules_engine']:.2f} ms/message |",
        f"| · {polling} | {ms['event_source_polling']:.2f} ms/message |",
        f"| · worker IPC (event JSON through the pipe) | {ms['worker_ipc']:.2f} ms/message |",
        f"| invocations | {phase.invocations} ({phase.records / phase.invocations:.1f} records each) |",
    ]


def _bursts(phase: Phase) -> str:
    if phase.burst == phase.messages:
        return "back to back, all at once, then the event sources drained until every queue was empty"
    return f"{phase.burst} at a time, back to back, the event sources drained until every queue was empty after each"


def raw_numbers(outcome: Outcome) -> dict[str, Any]:
    timed = (("main", outcome.main), ("telemetry", outcome.telemetry), ("delayed_disconnects", outcome.disconnects))
    phases = {
        name: {**asdict(phase), "wall_s": phase.wall_s, "ms_per_message": phase.breakdown_ms()}
        for name, phase in timed
        if phase is not None
    }
    for name, phase in (("main", outcome.main), ("telemetry", outcome.telemetry)):
        if phase is not None:
            phases[name]["messages_per_s"] = phase.messages / phase.wall_s
    return {
        "command": outcome.command,
        "assembly": outcome.assembly,
        "machine": outcome.machine,
        "cold_starts_ms": outcome.cold_starts_ms,
        "phases": phases,
        "rows_as_expected": outcome.rows_as_expected,
        "failures": outcome.failures,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.local_runtime", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"), help="the folder `cdk synth` wrote")
    parser.add_argument(
        "--messages",
        type=int,
        help=f"messages of the main run, and of the telemetry run (default {DEFAULT_MESSAGES}; quick {QUICK_MESSAGES})",
    )
    parser.add_argument(
        "--burst", type=int, help="messages published back to back before each drain (default: all of them)"
    )
    parser.add_argument("--quick", action="store_true", help="few messages, for tests")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw numbers there")
    args = parser.parse_args(argv)
    if args.messages is None:
        args.messages = QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES
    if args.burst is None:
        args.burst = args.messages
    if args.messages < 2 or args.burst < 1:
        parser.error("--messages must be at least 2 (a connect and a registry event), --burst at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.orig_argv if argv is None else ["python", "-m", "benchmarks.local_runtime", *argv]
    command = shlex.join(given)
    try:
        outcome = run(args.assembly, args.messages, args.burst, command)
    except LocalRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if outcome.failures:
        print("The run lost work, so it reports no numbers:", file=sys.stderr)
        print("\n".join(f"- {failure}" for failure in outcome.failures), file=sys.stderr)
        return 1
    print(render_markdown(outcome))
    if args.json:
        args.json.write_text(json.dumps(raw_numbers(outcome), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
