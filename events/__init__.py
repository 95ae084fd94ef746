"""Sample events in the formats AWS delivers them, one file per function and case.

The files are what `sam local invoke -e` and the local runtime take; the tests load the same files through
`load_event`, so every sample a user runs is a tested one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent


def event_path(name: str) -> Path:
    """`name` is relative to events/, with or without `.json`: `track_presence/connected`."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"No sample event {name!r} in {EVENTS_DIR}")
    return path


def load_event(name: str) -> Any:
    return json.loads(event_path(name).read_text())


def sqs_bodies(name: str) -> list[Any]:
    """The decoded bodies of the records of an SQS sample event, in order."""
    return [json.loads(record["body"]) for record in load_event(name)["Records"]]
