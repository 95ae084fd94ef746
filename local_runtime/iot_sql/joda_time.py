"""The subset of Joda-Time patterns that parse_time() formats with (AWS's rules engine runs Joda-Time).

Emulated letters: G (era), y and Y (year), D (day of year), M (month, numeric or text), d (day of month),
E (day name), e (ISO day number), a (AM/PM), H, k, K, h (hours), m, s, S (fraction of second), z (zone name),
Z (offset, or zone id for ZZZ); text in single quotes is literal and '' is a quote. Any other letter
(C, x, w, ...) is refused: `compile_pattern` returns None and parse_time() says why.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable

_TOKEN = re.compile(r"'((?:[^']|'')*)'|([A-Za-z])\2*|.", re.DOTALL)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

Field = Callable[[datetime], str]


def _number(get: Callable[[datetime], int], width: int) -> Field:
    return lambda moment: str(get(moment)).zfill(width)


def _offset(moment: datetime, separator: str) -> str:
    minutes = int((moment.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{separator}{minutes:02d}"


def _field(letter: str, count: int) -> Field | None:
    if letter == "G":
        return lambda moment: "AD" if moment.year > 0 else "BC"
    if letter in "yY":
        if count == 2:
            return _number(lambda moment: moment.year % 100, 2)
        return _number(lambda moment: moment.year, count)
    if letter == "D":
        return _number(lambda moment: moment.timetuple().tm_yday, count)
    if letter == "M":
        if count >= 4:
            return lambda moment: moment.strftime("%B")
        if count == 3:
            return lambda moment: moment.strftime("%b")
        return _number(lambda moment: moment.month, count)
    if letter == "d":
        return _number(lambda moment: moment.day, count)
    if letter == "E":
        return (lambda moment: moment.strftime("%A")) if count >= 4 else (lambda moment: moment.strftime("%a"))
    if letter == "e":
        return _number(lambda moment: moment.isoweekday(), count)
    if letter == "a":
        return lambda moment: "AM" if moment.hour < 12 else "PM"
    if letter == "H":
        return _number(lambda moment: moment.hour, count)
    if letter == "k":
        return _number(lambda moment: moment.hour or 24, count)
    if letter == "K":
        return _number(lambda moment: moment.hour % 12, count)
    if letter == "h":
        return _number(lambda moment: moment.hour % 12 or 12, count)
    if letter == "m":
        return _number(lambda moment: moment.minute, count)
    if letter == "s":
        return _number(lambda moment: moment.second, count)
    if letter == "S":
        # Fraction of second to `count` digits, truncated (Joda keeps millisecond precision).
        return lambda moment: f"{moment.microsecond // 1000:03d}"[:count].ljust(count, "0")
    if letter == "z":
        return lambda moment: moment.tzname() or ""
    if letter == "Z":
        if count >= 3:
            return lambda moment: str(moment.tzinfo)
        return lambda moment: _offset(moment, ":" if count == 2 else "")
    return None


class UnsupportedPattern(ValueError):
    """The pattern uses a letter this emulation does not format."""


def compile_pattern(pattern: str, refused: str = "") -> Callable[[datetime], str]:
    """Compile once; raises UnsupportedPattern naming the letter that is not emulated, or that is in `refused`
    (letters a caller formatting for another library, such as java.time, must not read as Joda-Time does)."""
    parts: list[Field] = []
    for match in _TOKEN.finditer(pattern):
        quoted, letter = match.group(1), match.group(2)
        text = match.group(0)
        if quoted is not None:
            literal = quoted.replace("''", "'") if quoted else "'"
            parts.append(lambda moment, literal=literal: literal)
        elif letter is not None:
            field = None if letter in refused else _field(letter, len(text))
            if field is None:
                raise UnsupportedPattern(f"the pattern letter {letter!r} is not emulated")
            parts.append(field)
        else:
            parts.append(lambda moment, literal=text: literal)
    return lambda moment: "".join(part(moment) for part in parts)


def moment_of(epoch_ms: int, zone: tzinfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(zone)
