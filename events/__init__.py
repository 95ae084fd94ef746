"""Sample events in the formats AWS delivers them, one file per function and case.

The files are what `sam local invoke -e` and the local runtime take; the tests load the same files through
`load_event`, so every sample a user runs is a tested one.

Times relative to the run: anywhere in a sample or a scenario, a JSON value {"$time": "<offset>"} stands for
the moment the file is loaded (played, invoked) plus the offset, in epoch milliseconds; {"$time": "<offset>",
"as": "iso"} gives the same moment as ISO 8601 text (2027-01-02T03:04:05.000Z). An offset is `now`, or a sign
and amounts of d, h, m, s and ms: `-1h10m`, `+2s`, `-350ms`. Every value of a file is resolved against the
same moment, so the offsets keep their order and distances. Text that holds JSON (an SQS record's body) is
not looked into: those samples carry literal times (README, "Samples"). `python -m events <file>` writes a
file resolved, for `sam local invoke -e`, which reads plain JSON.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent
TIME_KEY = "$time"
_FORMATS = ("ms", "iso")
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_OFFSET = re.compile(r"[+-]((\d+)(ms|d|h|m|s))+")
_AMOUNT = re.compile(r"(\d+)(ms|d|h|m|s)")


class RelativeTimeError(ValueError):
    """A {"$time": ...} value that is not the notation."""


def now_ms() -> int:
    return int(time.time() * 1000)


# The moment samples are loaded at in this process, unless told otherwise: samples loaded apart agree (a resend
# keeps the time of the reading it repeats), as the files of one run do.
RUN_AT_MS = now_ms()


def event_path(name: str) -> Path:
    """`name` is relative to events/, with or without `.json`: `track_presence/connected`."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"No sample event {name!r} in {EVENTS_DIR}")
    return path


def load_event(name: str, at_ms: int = RUN_AT_MS) -> Any:
    """The sample with its relative times resolved against `at_ms`."""
    return resolve_times(json.loads(event_path(name).read_text()), at_ms)


def sqs_bodies(name: str) -> list[Any]:
    """The decoded bodies of the records of an SQS sample event, in order."""
    return [json.loads(record["body"]) for record in load_event(name)["Records"]]


def resolve_times(value: Any, at_ms: int, where: str = "$") -> Any:
    """`value` with every {"$time": ...} replaced by its moment; `where` names the place in errors (JSON path)."""
    if isinstance(value, dict):
        if TIME_KEY in value:
            return _moment(value, at_ms, where)
        return {key: resolve_times(member, at_ms, f"{where}.{key}") for key, member in value.items()}
    if isinstance(value, list):
        return [resolve_times(member, at_ms, f"{where}[{index}]") for index, member in enumerate(value)]
    return value


def offset_ms(offset: str) -> int:
    """`-1h10m` -> -4200000; `now` -> 0."""
    if offset == "now":
        return 0
    if not isinstance(offset, str) or not _OFFSET.fullmatch(offset):
        raise RelativeTimeError(f"{offset!r} is not an offset: `now`, or a sign and amounts of d, h, m, s, ms (-1h10m)")
    total = sum(int(amount) * _UNIT_MS[unit] for amount, unit in _AMOUNT.findall(offset))
    return -total if offset.startswith("-") else total


def _moment(value: dict[str, Any], at_ms: int, where: str) -> int | str:
    unknown = sorted(set(value) - {TIME_KEY, "as"})
    if unknown:
        raise RelativeTimeError(f"{where}: a {TIME_KEY} value has only {TIME_KEY} and as, not {unknown}")
    form = value.get("as", "ms")
    if form not in _FORMATS:
        raise RelativeTimeError(f"{where}: `as` is one of {', '.join(_FORMATS)}, not {form!r}")
    try:
        moment = at_ms + offset_ms(value[TIME_KEY])
    except RelativeTimeError as error:
        raise RelativeTimeError(f"{where}: {error}") from None
    if form == "ms":
        return moment
    when = datetime.datetime.fromtimestamp(moment / 1000, datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
