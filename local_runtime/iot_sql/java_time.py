"""The java.time DateTimeFormatter patterns (JDK 11) that time_to_epoch parses with.

It follows java.time's parser (DateTimeFormatter.ofPattern: strict, case-sensitive,
English text, SMART resolver): fields are read left to right without backtracking,
adjacent numbers share out their digits as java's adjacent value parsing does, the
whole text must be consumed, day-of-month 29-31 is clamped to the end of the month,
24:00 is the next midnight, and a day name, AM/PM or day of year must agree with the
date and time. Then AWS's rules: no time is midnight, no zone is UTC. A text without a
date (a year with a month and day, or with a day of year) does not parse.

Emulated: u, y (yy: 2000-2099), M and L (number; English name for 3 and 4 letters),
d, D, E (3 or 4 letters), a, H, k, h and K (with a, or with H or k), m, s, S (fraction,
kept to the millisecond), VV (region id, Z, offset, UTC+01:00...), z (as VV: zone names
such as PST do not parse), O, X, x, Z (offsets), quoted text, '' and optional [ ].
Refused with UnsupportedPattern: any other letter (G, Q, Y, w, W, e, c, F, g, A, n, N,
v, p...), narrow names (MMMMM, EEEEE), letter counts java.time rejects, # { } and an
unclosed quote, and time fields java.time makes no time of (h or K alone, a without an
hour, minutes without an hour...). Years outside 1-9999 (Python's dates) do not parse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, available_timezones

from local_runtime.iot_sql.joda_time import UnsupportedPattern

__all__ = ["UnsupportedPattern", "compile_parser"]

_NORMAL, _NOT_NEGATIVE, _EXCEEDS_PAD = "normal", "not-negative", "exceeds-pad"
_MAX_OFFSET = 18 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _names(names: tuple[str, ...], length: int | None = None) -> tuple[tuple[str, int], ...]:
    # java.time tries the longest names first
    entries = [(name[:length] if length else name, number) for number, name in enumerate(names, 1)]
    return tuple(sorted(entries, key=lambda entry: -len(entry[0])))


_MONTH_SHORT, _MONTH_FULL = _names(_MONTHS, 3), _names(_MONTHS)
_DAY_SHORT, _DAY_FULL = _names(_DAYS, 3), _names(_DAYS)
_AMPM = (("AM", 0), ("PM", 1))
# The X/x offset patterns by letter count: (colon, minutes required, optional seconds).
_OFFSET_STYLES = {
    1: (False, False, False),  # +HHmm
    2: (False, True, False),  # +HHMM
    3: (True, True, False),  # +HH:MM
    4: (False, True, True),  # +HHMMss
    5: (True, True, True),  # +HH:MM:ss
}
_ZONE_ID_STYLE = _OFFSET_STYLES[5]
_ZONE_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~/._+-")
_TIME_LETTERS = frozenset("HkhKmsSa")
_NUMBER_FIELDS = {
    "d": "day",
    "h": "clock_hour_of_ampm",
    "H": "hour",
    "k": "clock_hour",
    "K": "hour_of_ampm",
    "m": "minute",
    "s": "second",
}


@dataclass
class _Parsed:
    fields: dict[str, int] = field(default_factory=dict)
    zone: tzinfo | None = None

    def set(self, name: str, value: int) -> bool:
        return _put(self.fields, name, value)


def _put(fields: dict[str, int], name: str, value: int) -> bool:
    """java.time fails when a field is set twice with different values."""
    return fields.setdefault(name, value) == value


# A field's parser: the position after the field, or -1 when it does not match.
Step = Callable[[str, int, _Parsed], int]


class _Abort(Exception):
    """java.time throws rather than failing the field: the whole parse fails, optional
    sections included."""


@dataclass
class _Number:
    name: str
    min_width: int
    max_width: int
    sign: str
    reduced: bool = False
    fraction: bool = False
    # digits reserved for the fixed-width numbers right after; -1: greedy (fixed)
    subsequent: int = 0

    @property
    def fixed(self) -> bool:
        return self.min_width == self.max_width and self.sign == _NOT_NEGATIVE


@dataclass
class _Section:
    optional: bool
    parent: _Section | None = None
    items: list[_Number | Step | _Section] = field(default_factory=list)
    value_index: int = -1

    def append(self, item: _Number | Step | _Section) -> None:
        self.items.append(item)
        self.value_index = -1

    def append_value(self, number: _Number) -> None:
        """DateTimeFormatterBuilder.appendValue: a fixed-width number right after a
        number reserves its digits in the first one (so yyyyMMdd parses); a
        variable-width one makes the previous one greedy instead."""
        base = self.items[self.value_index] if self.value_index >= 0 else None
        if not isinstance(base, _Number):
            self.items.append(number)
            self.value_index = len(self.items) - 1
        elif number.fixed:
            base.subsequent += number.max_width
            number.subsequent = -1
            self.items.append(number)
        else:
            base.subsequent = -1
            self.items.append(number)
            self.value_index = len(self.items) - 1


def _sign_allowed(sign_style: str, positive: bool) -> bool:
    if sign_style == _EXCEEDS_PAD:
        return True
    return sign_style == _NORMAL and not positive


def _digits(text: str, start: int, limit: int) -> int:
    end = start
    while end < limit and "0" <= text[end] <= "9":
        end += 1
    return end - start


def _number_step(number: _Number) -> Step:
    def step(text: str, pos: int, parsed: _Parsed) -> int:
        length = len(text)
        if pos == length:
            return -1
        negative = positive = False
        if text[pos] in "+-":
            positive = text[pos] == "+"
            negative = not positive
            if not _sign_allowed(number.sign, positive):
                return -1
            pos += 1
        if pos + number.min_width > length:
            return -1
        count = _digits(text, pos, min(pos + number.max_width + max(number.subsequent, 0), length))
        if count < number.min_width:
            return -1
        if number.subsequent > 0:
            count = max(number.min_width, count - number.subsequent)
        value = int(text[pos : pos + count])
        if value >= 2**63:
            value, count = value // 10, count - 1
        if negative:
            if value == 0:
                return -1
            value = -value
        elif number.sign == _EXCEEDS_PAD and (count <= number.min_width if positive else count > number.min_width):
            return -1
        if number.reduced and count == number.min_width and value >= 0:
            value += 2000
        return pos + count if parsed.set(number.name, value) else -1

    return step


def _fraction_step(width: int) -> Step:
    def step(text: str, pos: int, parsed: _Parsed) -> int:
        if pos + width > len(text) or _digits(text, pos, pos + width) < width:
            return -1
        nano = int(text[pos : pos + width]) * 10 ** (9 - width)
        return pos + width if parsed.set("nano", nano) else -1

    return step


def _text_step(name: str, entries: tuple[tuple[str, int], ...]) -> Step:
    def step(text: str, pos: int, parsed: _Parsed) -> int:
        for word, value in entries:
            if text.startswith(word, pos):
                return pos + len(word) if parsed.set(name, value) else -1
        return -1

    return step


def _literal_step(literal: str) -> Step:
    return lambda text, pos, parsed: pos + len(literal) if text.startswith(literal, pos) else -1


def _two_digits(text: str, pos: int, colon: bool) -> tuple[int, int] | None:
    if colon:
        if not text.startswith(":", pos):
            return None
        pos += 1
    pair = text[pos : pos + 2]
    if len(pair) < 2 or not ("0" <= pair[0] <= "9" and "0" <= pair[1] <= "9") or int(pair) > 59:
        return None
    return int(pair), pos + 2


def _parse_offset(text: str, pos: int, style: tuple[bool, bool, bool], zero: str) -> tuple[int, int] | None:
    """OffsetIdPrinterParser: the text for a zero offset is tried first, then a sign
    and HH[:]MM[[:]ss]."""
    colon, minutes_required, seconds_allowed = style
    if pos == len(text):
        return None
    if text.startswith(zero, pos):
        return 0, pos + len(zero)
    if text[pos] not in "+-":
        return None
    hours = _two_digits(text, pos + 1, False)
    if hours is None:
        return None
    hour, end = hours
    minute = second = 0
    minutes = _two_digits(text, end, colon)
    if minutes is None:
        if minutes_required:
            return None
    else:
        minute, end = minutes
        seconds = _two_digits(text, end, colon) if seconds_allowed else None
        if seconds is not None:
            second, end = seconds
    if hour > 23:
        raise _Abort
    return (-1 if text[pos] == "-" else 1) * (hour * 3600 + minute * 60 + second), end


def _offset_step(style: tuple[bool, bool, bool], zero: str) -> Step:
    def step(text: str, pos: int, parsed: _Parsed) -> int:
        offset = _parse_offset(text, pos, style, zero)
        if offset is None:
            return -1
        return offset[1] if parsed.set("offset", offset[0]) else -1

    return step


def _char_at(text: str, pos: int) -> str:
    if pos >= len(text):
        raise _Abort  # java reads past the end (StringIndexOutOfBoundsException)
    return text[pos]


def _digit_at(text: str, pos: int) -> int:
    char = _char_at(text, pos)
    return ord(char) - 48 if "0" <= char <= "9" else -1


def _localized_offset_step(full: bool) -> Step:
    """LocalizedOffsetIdPrinterParser: GMT, then nothing (zero), or +HH:MM[:ss] (full)
    or +H[H][:MM[:ss]]; its minutes and seconds are not range-checked."""

    def step(text: str, pos: int, parsed: _Parsed) -> int:
        if not text.startswith("GMT", pos):
            return -1
        end, length = pos + 3, len(text)
        if end == length or text[end] not in "+-":
            return end if parsed.set("offset", 0) else -1
        sign = -1 if text[end] == "-" else 1
        end += 1
        hour = minute = second = 0
        if full:
            high, low = _digit_at(text, end), _digit_at(text, end + 1)
            if high < 0 or low < 0 or _char_at(text, end + 2) != ":":
                return -1
            hour = high * 10 + low
            high, low = _digit_at(text, end + 3), _digit_at(text, end + 4)
            if high < 0 or low < 0:
                return -1
            minute, end = high * 10 + low, end + 5
            if end + 2 < length and text[end] == ":":
                high, low = _digit_at(text, end + 1), _digit_at(text, end + 2)
                if high >= 0 and low >= 0:
                    second, end = high * 10 + low, end + 3
        else:
            hour = _digit_at(text, end)
            if hour < 0:
                return -1
            end += 1
            if end < length:
                if _digit_at(text, end) >= 0:
                    hour, end = hour * 10 + _digit_at(text, end), end + 1
                for unit in (60, 1):
                    if not (end + 2 < length and text[end] == ":"):
                        break
                    high, low = _digit_at(text, end + 1), _digit_at(text, end + 2)
                    if high < 0 or low < 0:
                        break
                    if unit == 60:
                        minute = high * 10 + low
                    else:
                        second = high * 10 + low
                    end += 3
        return end if parsed.set("offset", sign * (hour * 3600 + minute * 60 + second)) else -1

    return step


@functools.cache
def _zone_ids() -> tuple[frozenset[str], frozenset[str], int]:
    """The region ids VV matches (the tz database's, less those java.time leaves out),
    those z matches, and the longest. z reads zone names, which java.time maps to a
    region by locale (CET is Europe/Paris, PDT in January is PST): only region ids with
    a slash and UTC, which it reads as themselves, are kept."""
    region_ids = frozenset(
        available_timezones() - {"EST", "HST", "MST", "ROC", "GMT+0", "GMT-0", "Factory", "localtime"}
    )
    named = frozenset(zone for zone in region_ids if "/" in zone and not zone.startswith("Etc/GMT")) | {
        "Etc/GMT",
        "UTC",
    }
    return region_ids, named, max(map(len, region_ids))


def _fixed_zone(seconds: int) -> tzinfo:
    return timezone(timedelta(seconds=seconds)) if seconds else UTC


def _offset_based(text: str, prefix_end: int, parsed: _Parsed, sign_only: bool) -> int:
    """ZoneIdPrinterParser.parseOffsetBased: an offset after UTC, UT, GMT (or none);
    without one, the prefix alone."""
    if prefix_end < len(text) and text[prefix_end] not in "0Z":
        offset = _parse_offset(text, prefix_end, _ZONE_ID_STYLE, "Z" if sign_only else "0")
        if offset is not None:
            if abs(offset[0]) > _MAX_OFFSET:
                return -1
            parsed.zone = _fixed_zone(offset[0])
            return offset[1]
        if sign_only:
            return -1
    parsed.zone = UTC
    return prefix_end


def _zone_step(names: bool) -> Step:
    def step(text: str, pos: int, parsed: _Parsed) -> int:
        length = len(text)
        if pos == length:
            return -1
        if text[pos] in "+-":
            return _offset_based(text, pos, parsed, True)
        if text.startswith("UTC", pos):
            if pos + 3 == length or text[pos + 3] in "+-":
                return _offset_based(text, pos + 3, parsed, False)
        elif text.startswith("UT", pos):
            return _offset_based(text, pos + 2, parsed, False)
        elif text.startswith("GMT", pos):
            if text.startswith("0", pos + 3):
                parsed.zone = UTC
                return pos + 4
            return _offset_based(text, pos + 3, parsed, False)
        region_ids, named, longest = _zone_ids()
        candidates = named if names else region_ids
        end = pos
        while end < length and end - pos < longest and text[end] in _ZONE_ID_CHARS:
            end += 1
        for stop in range(end, pos, -1):  # java.time takes the longest id
            if text[pos:stop] in candidates:
                parsed.zone = ZoneInfo(text[pos:stop])
                return stop
        if text[pos] == "Z":
            parsed.zone = UTC
            return pos + 1
        return -1

    return step


def _invalid(letter: str, count: int) -> UnsupportedPattern:
    return UnsupportedPattern(f"the pattern letter {letter!r} {count} times is not a java.time pattern")


def _not_emulated(letter: str, why: str = "") -> UnsupportedPattern:
    return UnsupportedPattern(f"the pattern letter {letter!r} is not emulated{why}")


def _add_letter(section: _Section, letter: str, count: int) -> None:
    if letter in "uy":
        name = "year" if letter == "u" else "year_of_era"
        if count == 2:
            section.append_value(_Number(name, 2, 2, _NOT_NEGATIVE, reduced=True))
        elif count > 19:
            raise _invalid(letter, count)
        else:
            section.append_value(_Number(name, count, 19, _NORMAL if count < 4 else _EXCEEDS_PAD))
    elif letter in "ML":
        if count > 5:
            raise _invalid(letter, count)
        if count == 5:
            raise _not_emulated(letter, " 5 times (narrow month names are ambiguous)")
        if count <= 2:
            section.append_value(
                _Number(
                    "month",
                    count,
                    19 if count == 1 else 2,
                    _NORMAL if count == 1 else _NOT_NEGATIVE,
                )
            )
        else:
            section.append(_text_step("month", _MONTH_SHORT if count == 3 else _MONTH_FULL))
    elif letter == "E":
        if count > 5:
            raise _invalid(letter, count)
        if count == 5:
            raise _not_emulated(letter, " 5 times (narrow day names are ambiguous)")
        section.append(_text_step("day_of_week", _DAY_FULL if count == 4 else _DAY_SHORT))
    elif letter == "a":
        if count != 1:
            raise _invalid(letter, count)
        section.append(_text_step("ampm", _AMPM))
    elif letter in _NUMBER_FIELDS:
        if count > 2:
            raise _invalid(letter, count)
        name = _NUMBER_FIELDS[letter]
        section.append_value(
            _Number(
                name,
                count,
                19 if count == 1 else 2,
                _NORMAL if count == 1 else _NOT_NEGATIVE,
            )
        )
    elif letter == "D":
        if count > 3:
            raise _invalid(letter, count)
        if count == 1:
            section.append_value(_Number("day_of_year", 1, 19, _NORMAL))
        else:
            section.append_value(_Number("day_of_year", count, 3, _NOT_NEGATIVE))
    elif letter == "S":
        if count > 9:
            raise _invalid(letter, count)
        section.append_value(_Number("nano", count, count, _NOT_NEGATIVE, fraction=True))
    elif letter == "V":
        if count != 2:
            raise _invalid(letter, count)
        section.append(_zone_step(False))
    elif letter == "z":
        if count > 4:
            raise _invalid(letter, count)
        section.append(_zone_step(True))
    elif letter == "O":
        if count not in (1, 4):
            raise _invalid(letter, count)
        section.append(_localized_offset_step(count == 4))
    elif letter in "Xx":
        if count > 5:
            raise _invalid(letter, count)
        zero = "Z" if letter == "X" else "+00" if count == 1 else "+0000" if count % 2 == 0 else "+00:00"
        section.append(_offset_step(_OFFSET_STYLES[count], zero))
    elif letter == "Z":
        if count > 5:
            raise _invalid(letter, count)
        if count == 4:
            section.append(_localized_offset_step(True))
        else:
            section.append(
                _offset_step(
                    _OFFSET_STYLES[5 if count == 5 else 2],
                    "Z" if count == 5 else "+0000",
                )
            )
    else:
        raise _not_emulated(letter)


def _step_of(item: _Number | Step | _Section) -> Step:
    if isinstance(item, _Section):
        return _section_step(item)
    if isinstance(item, _Number):
        return _fraction_step(item.min_width) if item.fraction else _number_step(item)
    return item


def _section_step(section: _Section) -> Step:
    steps = [_step_of(item) for item in section.items]

    def step(text: str, pos: int, parsed: _Parsed) -> int:
        trial = _Parsed(dict(parsed.fields), parsed.zone) if section.optional else parsed
        cursor = pos
        for part in steps:
            cursor = part(text, cursor, trial)
            if cursor < 0:
                return pos if section.optional else -1
        parsed.fields, parsed.zone = trial.fields, trial.zone
        return cursor

    return step


def _check_time_letters(letters: set[str]) -> None:
    """Refuse the time fields java.time's resolver makes no time of (what AWS returns
    then is unknown)."""
    for letter, any_of, what in (
        ("h", "aHk", "'a' (or H or k)"),
        ("K", "aHk", "'a' (or H or k)"),
        ("a", "HkhK", "an hour"),
        ("m", "HkhK", "an hour"),
        ("s", "m", "minutes"),
        ("S", "s", "seconds"),
    ):
        if letter in letters and not letters & set(any_of):
            raise _not_emulated(letter, f" without {what}: java.time makes no time of it")


def _compile(pattern: str) -> Step:
    root = section = _Section(optional=False)
    letters: set[str] = set()
    pos, length = 0, len(pattern)
    while pos < length:
        char = pattern[pos]
        if "A" <= char <= "Z" or "a" <= char <= "z":
            end = pos
            while end < length and pattern[end] == char:
                end += 1
            _add_letter(section, char, end - pos)
            letters.add(char)
            pos = end
            continue
        if char == "'":
            end = pos + 1
            while end < length:
                if pattern[end] == "'":
                    if pattern.startswith("'", end + 1):
                        end += 1
                    else:
                        break
                end += 1
            if end >= length:
                raise UnsupportedPattern(f"the pattern {pattern!r} ends inside a quoted literal")
            literal = pattern[pos + 1 : end].replace("''", "'") or "'"
            section.append(_literal_step(literal))
            pos = end + 1
            continue
        if char == "[":
            section.value_index = -1
            section = _Section(optional=True, parent=section)
        elif char == "]":
            if section.parent is None:
                raise UnsupportedPattern(f"the pattern {pattern!r} has a ] without a [")
            section = _close(section)
        elif char in "{}#":
            raise UnsupportedPattern(f"the pattern character {char!r} is reserved in java.time")
        else:
            section.append(_literal_step(char))
        pos += 1
    # java.time closes the optional sections left open
    while section.parent is not None:
        section = _close(section)
    _check_time_letters(letters & _TIME_LETTERS)
    return _section_step(root)


def _close(section: _Section) -> _Section:
    parent = section.parent
    assert parent is not None
    if section.items:
        parent.append(section)
    return parent


def _cross_check(fields: dict[str, int], actual: dict[str, int]) -> bool:
    return all(fields[name] == value for name, value in actual.items() if name in fields)


def _resolve_date(fields: dict[str, int]) -> date | None:
    """IsoChronology.resolveDate in SMART mode: a year of era is the year (no era);
    year-month-day first, with day 29-31 clamped to the month's end, else year and day
    of year."""
    year_of_era = fields.pop("year_of_era", None)
    if year_of_era is not None:
        if not 1 <= year_of_era <= 999_999_999:
            return None
        year = fields.get("year")
        year_of_era = year_of_era if year is None or year > 0 else 1 - year_of_era
        if not _put(fields, "year", year_of_era):
            return None
    year = fields.pop("year", None)
    if year is None or not 1 <= year <= 9999:
        return None
    if "month" in fields and "day" in fields:
        month, day = fields.pop("month"), fields.pop("day")
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        if month == 2:
            day = min(
                day,
                29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
            )
        elif month in (4, 6, 9, 11):
            day = min(day, 30)
        return date(year, month, day)
    if "day_of_year" in fields:
        day_of_year = fields.pop("day_of_year")
        if not 1 <= day_of_year <= 366:
            return None
        resolved = date(year, 1, 1) + timedelta(days=day_of_year - 1)
        return resolved if resolved.year == year else None
    return None


def _resolve_time(fields: dict[str, int]) -> tuple[int, int, int, int, int] | None:
    """Parsed.resolveTimeFields in SMART mode: hour, minute, second, nano and the days
    beyond (24:00)."""
    for clock, target, top in (
        ("clock_hour", "hour", 24),
        ("clock_hour_of_ampm", "hour_of_ampm", 12),
    ):
        if clock in fields:
            value = fields.pop(clock)
            if value != 0 and not 1 <= value <= top:  # SMART lets 0 through
                return None
            if not _put(fields, target, 0 if value == top else value):
                return None
    if "ampm" in fields and "hour_of_ampm" in fields:
        ampm, hour_of_ampm = fields.pop("ampm"), fields.pop("hour_of_ampm")
        if not 0 <= hour_of_ampm <= 11:
            return None
        if not _put(fields, "hour", ampm * 12 + hour_of_ampm):
            return None
    if "hour" not in fields:
        return None
    minute, second, nano = (
        fields.get("minute"),
        fields.get("second"),
        fields.get("nano"),
    )
    if (minute is None and (second is not None or nano is not None)) or (
        minute is not None and second is None and nano is not None
    ):
        return None
    hour = fields.pop("hour")
    minute, second, nano = (
        fields.pop("minute", 0),
        fields.pop("second", 0),
        fields.pop("nano", 0),
    )
    if not 0 <= minute <= 59:
        return None
    if hour == 24 and minute == second == nano == 0:
        return 0, 0, 0, 0, 1
    if not (0 <= hour <= 23 and 0 <= second <= 59):
        return None
    return hour, minute, second, nano, 0


def _epoch_millis(parsed: _Parsed) -> int | None:
    fields = dict(parsed.fields)
    day = _resolve_date(fields)
    if day is None:
        return None
    hour = minute = second = nano = extra_days = 0
    if fields.keys() & {
        "hour",
        "clock_hour",
        "clock_hour_of_ampm",
        "hour_of_ampm",
        "ampm",
        "minute",
        "second",
        "nano",
    }:
        time = _resolve_time(fields)
        if time is None:
            return None
        hour, minute, second, nano, extra_days = time
        if not _cross_check(fields, {"ampm": hour // 12, "hour_of_ampm": hour % 12}):
            return None
    actual = {
        "month": day.month,
        "day": day.day,
        "day_of_year": day.timetuple().tm_yday,
    }
    if not _cross_check(fields, actual | {"day_of_week": day.isoweekday()}):
        return None
    try:
        local = datetime(day.year, day.month, day.day, hour, minute, second) + timedelta(days=extra_days)
    except OverflowError:
        return None
    offset = fields.get("offset")
    if offset is None:
        # A parsed offset wins over a zone (Parsed.resolveInstant); in a DST gap or
        # overlap, fold=0 gives the instant ZonedDateTime.ofLocal gives (the offset
        # before the transition).
        utc_offset = local.replace(tzinfo=parsed.zone or UTC).utcoffset()
        offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
    elif abs(offset) > _MAX_OFFSET:
        return None
    seconds = (local.toordinal() - _EPOCH_ORDINAL) * 86400 + local.hour * 3600 + local.minute * 60 + local.second
    return (seconds - offset) * 1000 + nano // 1_000_000


@functools.lru_cache(maxsize=256)
def compile_parser(pattern: str) -> Callable[[str], int | None]:
    """Compile a java.time pattern once; the parser returns epoch milliseconds, or None
    when the text does not match or is not a date. Raises UnsupportedPattern for a
    letter not emulated or a malformed pattern."""
    step = _compile(pattern)

    def parse(text: str) -> int | None:
        parsed = _Parsed()
        try:
            end = step(text, 0, parsed)
        except _Abort:
            return None
        return _epoch_millis(parsed) if end == len(text) else None

    return parse
