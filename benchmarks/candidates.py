"""What is measured: the baseline and every function of `functions/`, each with the SQS batch it handles."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
EVENTS_DIR = REPO_ROOT / "events"
BENCHMARKS_DIR = Path(__file__).resolve().parent
BASELINE = "baseline"
# Sample files of records a function rejects: a batch of them measures the dead-letter path, not the usual one.
MALFORMED_SAMPLES = "malformed*.json"
_MESSAGE_IDS = uuid.UUID("6f1c33a4-5b8e-4a55-9d39-5ad1b0a1c0de")


@dataclass(frozen=True)
class Candidate:
    name: str
    source_root: Path  # the folder the code asset is built from, as functions/ on Lambda
    packages: tuple[str, ...]  # the packages of source_root in the asset (Lambda's /var/task)
    handler: str  # "package.module.function", as Lambda's _HANDLER
    uses_layer: bool  # whether the dependency layer (functions/requirements.txt) is attached
    batch: dict[str, Any]  # the SQS event of its cold start and of every warm invocation

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE


def discover_functions() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/handler.py"))


def function_candidate(name: str, batch: dict[str, Any]) -> Candidate:
    # The deployed asset holds the function's package and the shared ones; the other functions' packages are
    # on the path too here, which costs nothing: nothing imports them.
    packages = tuple(sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/__init__.py")))
    return Candidate(name, FUNCTIONS_DIR, packages, f"{name}.handler.handler", uses_layer=True, batch=batch)


def baseline_candidate(batch: dict[str, Any]) -> Candidate:
    handler = f"{BASELINE}.handler.handler"
    return Candidate(BASELINE, BENCHMARKS_DIR, (BASELINE,), handler, uses_layer=False, batch=batch)


def all_candidates(batch_size: int) -> list[Candidate]:
    """The baseline first, then the functions; the baseline handles a batch as big as theirs."""
    functions = [function_candidate(name, valid_batch(name, batch_size)) for name in discover_functions()]
    if not functions:
        raise RuntimeError(f"No function in {FUNCTIONS_DIR} (a folder with handler.py)")
    return [baseline_candidate(functions[0].batch), *functions]


def valid_batch(function: str, size: int) -> dict[str, Any]:
    """A batch of `size` records taken in turn from each sample file of the function (not the malformed ones),
    so that it mixes the kinds of events the function gets, as a real batch does."""
    samples = sorted(set((EVENTS_DIR / function).glob("*.json")) - set((EVENTS_DIR / function).glob(MALFORMED_SAMPLES)))
    if not samples:
        raise RuntimeError(f"No sample events for {function} in {EVENTS_DIR / function}")
    per_file = [json.loads(path.read_text())["Records"] for path in samples]
    interleaved = [record for record in chain.from_iterable(zip_longest(*per_file)) if record is not None]
    records = [interleaved[i % len(interleaved)] for i in range(size)]
    return sqs_batch(function, records)


def sqs_batch(function: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    # SQS never puts one message twice in a batch: the samples repeat, so each copy gets its own id.
    return {
        "Records": [
            {**record, "messageId": str(uuid.uuid5(_MESSAGE_IDS, f"{function}/{position}"))}
            for position, record in enumerate(records)
        ]
    }
