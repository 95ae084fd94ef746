"""What is measured: the baseline and every function of `functions/`, each with its own event from `events/`.

A function fed by SQS (its samples are SQS events) gets a batch mixing its valid samples; a function invoked
once per event, synchronously (the pre-provisioning hook: its samples are the request itself) or
asynchronously (ingest_telemetry: its samples are one message as its rule's SQL hands it; the Device Defender
functions: their samples are SNS notifications), gets its first valid sample, in name order, for the cold
start and every warm invocation. The stub's writes always succeed
(aws_stub.py), so each warm invocation of ingest_telemetry stores its reading as a new one: the path of a
valid reading, never that of a repeated message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any, Literal

from events import EVENTS_DIR, load_event

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
BENCHMARKS_DIR = Path(__file__).resolve().parent
BASELINE = "baseline"
# Sample files of records a function rejects: a batch of them measures the dead-letter path, not the usual one.
MALFORMED_SAMPLES = "malformed*.json"
# Functions whose samples are mostly the cases they turn down: measured on the path of their purpose only
# (for the activation, a new device: what "AWS calls per event" must keep at 6).
# For the authorizer, a device connecting over MQTT with its token as the password (the other samples are
# the denials, and `jwks.json`, the keys its parameter holds, is not an event).
# For telemetry, a valid reading within its thresholds (the others are invalid, out of range or repeated): what
# "AWS calls per message" must keep at 2.
MEASURED_SAMPLES = {
    "activate_certificate": ("new.json",),
    "authorize_device": ("mqtt_username_password.json",),
    "ingest_telemetry": ("environment_valid.json",),
    # For Device Defender, an audit with findings to mitigate, across pages; a certificate shared by two devices.
    "mitigate_audit_findings": ("non_compliant.json",),
    "remediate_finding": ("device_certificate_shared.json",),
}
_MESSAGE_IDS = uuid.UUID("6f1c33a4-5b8e-4a55-9d39-5ad1b0a1c0de")

# How Lambda delivers the event: "sqs", an event source mapping's batches (redelivering failed records);
# "invoke", one synchronous invocation per event (as IoT invokes the pre-provisioning hook); "event", one
# asynchronous invocation per event (as an IoT rule's lambda action invokes): for the handler the same call as
# "invoke", Lambda's internal queue before it being no cost of the function's.
Trigger = Literal["sqs", "invoke", "event"]
# The functions IoT's rules invoke asynchronously, one message each (SNS's subscribers are told by their events).
INVOKED_ASYNCHRONOUSLY = ("ingest_telemetry",)


@dataclass(frozen=True)
class Candidate:
    name: str
    source_root: Path  # the folder the code asset is built from, as functions/ on Lambda
    packages: tuple[str, ...]  # the packages of source_root in the asset (Lambda's /var/task)
    handler: str  # "package.module.function", as Lambda's _HANDLER
    uses_layer: bool  # whether the dependency layer (functions/requirements.txt) is attached
    event: dict[str, Any]  # the event of its cold start and of every warm invocation
    trigger: Trigger = "sqs"

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE


def discover_functions() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/handler.py"))


def function_candidate(name: str, event: dict[str, Any], trigger: Trigger = "sqs") -> Candidate:
    # The deployed asset holds the function's package and the shared ones; the other functions' packages are
    # on the path too here, which costs nothing: nothing imports them.
    packages = tuple(sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/__init__.py")))
    handler = f"{name}.handler.handler"
    return Candidate(name, FUNCTIONS_DIR, packages, handler, uses_layer=True, event=event, trigger=trigger)


def baseline_candidate(event: dict[str, Any]) -> Candidate:
    handler = f"{BASELINE}.handler.handler"
    return Candidate(BASELINE, BENCHMARKS_DIR, (BASELINE,), handler, uses_layer=False, event=event)


def all_candidates(batch_size: int) -> list[Candidate]:
    """The baseline first, then the functions, each with its own event; the baseline handles a batch as big as
    the SQS functions' (it ignores its event: its cost is the same whatever it gets)."""
    functions = [own_candidate(name, batch_size) for name in discover_functions()]
    if not functions:
        raise RuntimeError(f"No function in {FUNCTIONS_DIR} (a folder with handler.py)")
    sqs_functions = [candidate for candidate in functions if candidate.trigger == "sqs"]
    return [baseline_candidate((sqs_functions or functions)[0].event), *functions]


def own_candidate(function: str, batch_size: int) -> Candidate:
    samples = valid_samples(function)
    first = _load(samples[0])
    sources = {record.get("eventSource") or record.get("EventSource") for record in first.get("Records", [])}
    if sources == {"aws:sqs"}:
        return function_candidate(function, valid_batch(function, batch_size), "sqs")
    # SNS invokes its Lambda subscribers asynchronously, one notification each.
    asynchronous = function in INVOKED_ASYNCHRONOUSLY or sources == {"aws:sns"}
    return function_candidate(function, first, "event" if asynchronous else "invoke")


def valid_samples(function: str) -> list[Path]:
    """The function's sample files, but the malformed ones, in name order."""
    if function in MEASURED_SAMPLES:
        return [EVENTS_DIR / function / name for name in MEASURED_SAMPLES[function]]
    samples = sorted(set((EVENTS_DIR / function).glob("*.json")) - set((EVENTS_DIR / function).glob(MALFORMED_SAMPLES)))
    if not samples:
        raise RuntimeError(f"No sample events for {function} in {EVENTS_DIR / function}")
    return samples


def valid_batch(function: str, size: int) -> dict[str, Any]:
    """A batch of `size` records taken in turn from each sample file of the function (not the malformed ones),
    so that it mixes the kinds of events the function gets, as a real batch does."""
    per_file = [_load(path)["Records"] for path in valid_samples(function)]
    interleaved = [record for record in chain.from_iterable(zip_longest(*per_file)) if record is not None]
    records = [interleaved[i % len(interleaved)] for i in range(size)]
    return sqs_batch(function, records)


def _load(sample: Path) -> Any:
    """The sample with its relative times resolved (events/__init__.py)."""
    return load_event(str(sample.relative_to(EVENTS_DIR)))


def sqs_batch(function: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    # SQS never puts one message twice in a batch: the samples repeat, so each copy gets its own id.
    return {
        "Records": [
            {**record, "messageId": str(uuid.uuid5(_MESSAGE_IDS, f"{function}/{position}"))}
            for position, record in enumerate(records)
        ]
    }
