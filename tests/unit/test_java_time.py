"""java.time (JDK 11) DateTimeFormatter parsing for time_to_epoch: the AWS examples,
each emulated letter, the SMART resolver's rules, zones and offsets, and the patterns
refused. Expected values are computed with datetime (the AWS examples: the reference's
own numbers); the cases were checked against a JDK."""

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from string import ascii_letters
from zoneinfo import ZoneInfo

import pytest

from local_runtime.iot_sql.java_time import UnsupportedPattern, compile_parser

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PARIS = ZoneInfo("Europe/Paris")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
    zone: tzinfo = UTC,
) -> int:
    """Epoch milliseconds of a wall-clock time in a zone (UTC unless told)."""
    moment = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def offset(hours: int, minutes: int = 0, seconds: int = 0) -> tzinfo:
    sign = -1 if hours < 0 else 1
    return timezone(sign * timedelta(hours=abs(hours), minutes=minutes, seconds=seconds))


def parse(pattern: str, text: str) -> int | None:
    return compile_parser(pattern)(text)


def test_the_three_examples_of_the_aws_reference_give_its_epoch_milliseconds() -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html
    # #iot-sql-function-time-to-epoch
    assert parse("yyyy-MM-dd HH:mm:ss VV", "2020-04-03 09:45:18 UTC+01:00") == 1585903518000
    assert parse("dd MMMM yyyy", "18 December 2015") == 1450396800000
    assert parse("yyyy-MM-dd HH:mm:ss.SSS z", "2007-12-03 10:15:30.592 America/Los_Angeles") == 1196705730592


DATES = [
    # y and u: yy is 2000-2099; y and yyy take at least that many digits; yyyy takes
    # exactly 4 (more need a sign)
    ("yyyy-MM-dd", "2021-02-03", at(2021, 2, 3)),
    ("uuuu-MM-dd", "2021-02-03", at(2021, 2, 3)),
    ("y-MM-dd", "21-02-03", at(21, 2, 3)),
    ("y-MM-dd", "2021-02-03", at(2021, 2, 3)),
    ("yyy-MM-dd", "021-02-03", at(21, 2, 3)),
    ("yyy-MM-dd", "21-02-03", None),
    ("yy-MM-dd", "21-02-03", at(2021, 2, 3)),
    ("yy-MM-dd", "99-02-03", at(2099, 2, 3)),
    ("uu-MM-dd", "00-02-03", at(2000, 2, 3)),
    ("yy-MM-dd", "2021-02-03", None),
    ("yy-MM-dd", "1-02-03", None),
    ("yyyy-MM-dd", "20210-02-03", None),
    ("yyyy-MM-dd", "+2021-02-03", None),
    ("yyyy-MM-dd", "-2021-02-03", None),
    ("yyyy-MM-dd", "0000-02-03", None),  # year of era 0 does not exist
    ("yyyy-MM-dd", "0001-02-03", at(1, 2, 3)),
    # M and L: 1 letter one digit or more, 2 exactly two, 3 and 4 English names (and
    # case-sensitive)
    ("yyyy-M-d", "2021-2-3", at(2021, 2, 3)),
    ("yyyy-M-d", "2021-02-003", at(2021, 2, 3)),
    ("yyyy-M-d", "2021-+2-3", None),
    ("yyyy-M-d", "2021--2-3", None),
    ("yyyy-MM-dd", "2021-2-03", None),
    ("yyyy-MM-dd", "2021-02-3", None),
    ("dd MMM yyyy", "18 Dec 2015", at(2015, 12, 18)),
    ("dd MMM yyyy", "18 Sep 2015", at(2015, 9, 18)),
    ("dd MMM yyyy", "18 Sept 2015", None),
    ("dd MMM yyyy", "18 December 2015", None),
    ("dd MMMM yyyy", "18 Dec 2015", None),
    ("dd MMMM yyyy", "18 december 2015", None),
    ("dd MMMM yyyy", "18 DECEMBER 2015", None),
    ("dd MMMM yyyy", "1 May 2015", None),
    ("d MMMM yyyy", "1 May 2015", at(2015, 5, 1)),
    ("dd LL yyyy", "18 12 2015", at(2015, 12, 18)),
    ("dd LLL yyyy", "18 Dec 2015", at(2015, 12, 18)),
    ("dd LLLL yyyy", "18 December 2015", at(2015, 12, 18)),
    # D: day of year, cross-checked against a month and day
    ("yyyy-D", "2021-34", at(2021, 2, 3)),
    ("yyyy-DD", "2021-34", at(2021, 2, 3)),
    ("yyyy-DD", "2021-034", at(2021, 2, 3)),
    ("yyyy-DDD", "2021-034", at(2021, 2, 3)),
    ("yyyy-DDD", "2021-34", None),
    ("yyyy-DDD", "2020-366", at(2020, 12, 31)),
    ("yyyy-DDD", "2021-366", None),
    ("yyyy-DDD", "2021-000", None),
    ("yyyy-MM-dd DDD", "2021-02-03 034", at(2021, 2, 3)),
    ("yyyy-MM-dd DDD", "2021-02-03 035", None),
    ("yyyy-MM DDD", "2021-02 034", at(2021, 2, 3)),
    ("yyyy-MM DDD", "2021-03 034", None),
    # a year and a month and day (or a day of year) are needed for a date
    ("MM-dd", "02-03", None),
    ("yyyy-MM", "2021-02", None),
    ("yyyy", "2021", None),
    ("HH:mm", "10:30", None),
    # a field parsed twice must agree with itself
    ("yyyy-MM-dd yyyy", "2021-02-03 2021", at(2021, 2, 3)),
    ("yyyy-MM-dd yyyy", "2021-02-03 2022", None),
    ("yyyy-MM-dd uuuu", "2021-02-03 2022", None),
]

SMART_DAYS = [
    # java.time's SMART resolver clamps day-of-month 29-31 to the end of the month,
    # and no further
    ("2021-02-28", at(2021, 2, 28)),
    ("2021-02-29", at(2021, 2, 28)),
    ("2021-02-30", at(2021, 2, 28)),
    ("2021-02-31", at(2021, 2, 28)),
    ("2020-02-30", at(2020, 2, 29)),
    ("2021-04-31", at(2021, 4, 30)),
    ("2021-02-32", None),
    ("2021-02-00", None),
    ("2021-13-01", None),
    ("2021-00-01", None),
]

DAY_NAMES = [
    ("EEE, dd MMM yyyy", "Wed, 03 Feb 2021", at(2021, 2, 3)),
    ("E, dd MMM yyyy", "Wed, 03 Feb 2021", at(2021, 2, 3)),
    ("EEEE, dd MMM yyyy", "Wednesday, 03 Feb 2021", at(2021, 2, 3)),
    ("EEE, dd MMM yyyy", "Thu, 03 Feb 2021", None),  # the wrong day for the date
    ("EEEE, dd MMM yyyy", "Wed, 03 Feb 2021", None),
    ("EEE, dd MMM yyyy", "wed, 03 Feb 2021", None),
    # checked against the clamped date
    ("EEE dd MMM yyyy", "Sun 30 Feb 2021", at(2021, 2, 28)),
    ("EEE dd MMM yyyy", "Tue 30 Feb 2021", None),
]

TIMES = [
    ("yyyy-MM-dd HH", "2021-02-03 10", at(2021, 2, 3, 10)),
    ("yyyy-MM-dd H:m:s", "2021-02-03 7:5:9", at(2021, 2, 3, 7, 5, 9)),
    ("yyyy-MM-dd H:m:s", "2021-02-03 07:05:09", at(2021, 2, 3, 7, 5, 9)),
    ("yyyy-MM-dd HH:mm:ss", "2021-02-03 7:05:09", None),
    ("yyyy-MM-dd HH:mm:ss", "2021-02-03 10:30:60", None),
    ("yyyy-MM-dd HH:mm", "2021-02-03 10:60", None),
    ("yyyy-MM-dd HH:mm", "2021-02-03 25:00", None),
    # SMART: the end of the day
    ("yyyy-MM-dd HH:mm", "2021-02-03 24:00", at(2021, 2, 4)),
    ("yyyy-MM-dd HH:mm", "2021-12-31 24:00", at(2022, 1, 1)),
    ("yyyy-MM-dd HH:mm", "2021-02-03 24:01", None),
    # k: clock hour 1-24, 24 is midnight of the same day (SMART lets 0 through)
    ("yyyy-MM-dd kk:mm", "2021-02-03 24:00", at(2021, 2, 3)),
    ("yyyy-MM-dd kk:mm", "2021-02-03 00:00", at(2021, 2, 3)),
    ("yyyy-MM-dd kk:mm", "2021-02-03 12:30", at(2021, 2, 3, 12, 30)),
    ("yyyy-MM-dd kk:mm", "2021-02-03 25:00", None),
    # h and a: 12 AM is midnight, 12 PM noon
    ("yyyy-MM-dd hh:mm a", "2021-02-03 12:30 AM", at(2021, 2, 3, 0, 30)),
    ("yyyy-MM-dd hh:mm a", "2021-02-03 12:30 PM", at(2021, 2, 3, 12, 30)),
    ("yyyy-MM-dd hh:mm a", "2021-02-03 01:30 PM", at(2021, 2, 3, 13, 30)),
    ("yyyy-MM-dd h:mm a", "2021-02-03 9:05 AM", at(2021, 2, 3, 9, 5)),
    ("yyyy-MM-dd hh:mm a", "2021-02-03 13:30 PM", None),
    ("yyyy-MM-dd hh:mm a", "2021-02-03 11:30 am", None),
    ("yyyy-MM-dd hha", "2021-02-03 11PM", at(2021, 2, 3, 23)),
    # K: hour of AM/PM, 0-11
    ("yyyy-MM-dd KK:mm a", "2021-02-03 00:30 PM", at(2021, 2, 3, 12, 30)),
    ("yyyy-MM-dd KK:mm a", "2021-02-03 11:30 PM", at(2021, 2, 3, 23, 30)),
    ("yyyy-MM-dd KK:mm a", "2021-02-03 12:30 PM", None),
    # an hour of day with a and h is cross-checked
    ("yyyy-MM-dd HH:mm a", "2021-02-03 13:05 PM", at(2021, 2, 3, 13, 5)),
    ("yyyy-MM-dd HH:mm a", "2021-02-03 13:05 AM", None),
    ("yyyy-MM-dd HH:mm hh", "2021-02-03 13:05 01", at(2021, 2, 3, 13, 5)),
    ("yyyy-MM-dd HH:mm hh", "2021-02-03 13:05 02", None),
]

FRACTIONS = [
    # S: exactly as many digits as letters, kept to the millisecond (truncated)
    ("HH:mm:ss.S", "10:30:15.1", 100),
    ("HH:mm:ss.SS", "10:30:15.12", 120),
    ("HH:mm:ss.SSS", "10:30:15.123", 123),
    ("HH:mm:ss.SSS", "10:30:15.012", 12),
    ("HH:mm:ss.SSSSSS", "10:30:15.123456", 123),
    ("HH:mm:ss.SSSSSSSSS", "10:30:15.999999999", 999),
    ("HH:mm:ss.SSS", "10:30:15.12", None),
    ("HH:mm:ss.SSS", "10:30:15.1234", None),
    ("HH:mm:ss.SS", "10:30:15.123", None),
]

ADJACENT = [
    # digits of numbers without a separator are shared out as java's adjacent value
    # parsing does
    ("yyyyMMdd", "20201203", at(2020, 12, 3)),
    ("yyyyMMddHHmmss", "20201203101530", at(2020, 12, 3, 10, 15, 30)),
    ("yyyyMMddHHmmssSSS", "20201203101530123", at(2020, 12, 3, 10, 15, 30, 123000)),
    # the variable-width year leaves 4 digits to MMdd
    ("yMMdd", "20201203", at(2020, 12, 3)),
    ("yMMdd", "9991203", at(999, 12, 3)),
    ("yyyyMMdd", "202012031", None),
    ("yyyyDDD", "2020366", at(2020, 12, 31)),
    # y (variable width) then M take every digit: nothing left for d
    ("yMd", "2020123", None),
    ("HHmm", "1030", None),  # no date
    ("yyyyMMddHHmm", "202012031030", at(2020, 12, 3, 10, 30)),
]

LITERALS = [
    ("yyyy-MM-dd'T'HH:mm:ss", "2021-02-03T10:30:15", at(2021, 2, 3, 10, 30, 15)),
    ("yyyy-MM-dd'T'HH:mm:ss", "2021-02-03t10:30:15", None),
    ("yyyy-MM-dd 'at' HH 'o''clock'", "2021-02-03 at 10 o'clock", at(2021, 2, 3, 10)),
    ("yyyy-MM-dd''HH", "2021-02-03'10", at(2021, 2, 3, 10)),
    ("yyyy/MM/dd, HH.mm", "2021/02/03, 10.30", at(2021, 2, 3, 10, 30)),
    ("yyyy-MM-dd HH:mm", "2021/02/03 10:30", None),
    # the whole text must be consumed, and a space matches one space
    ("yyyy-MM-dd", "2021-02-03x", None),
    ("yyyy-MM-dd HH:mm", "2021-02-03 10:30 ", None),
    ("yyyy-MM-dd HH:mm", " 2021-02-03 10:30", None),
    ("yyyy-MM-dd HH:mm", "2021-02-03  10:30", None),
    # optional sections are skipped whole when they do not match
    ("yyyy-MM-dd[ HH:mm]", "2021-02-03", at(2021, 2, 3)),
    ("yyyy-MM-dd[ HH:mm]", "2021-02-03 10:30", at(2021, 2, 3, 10, 30)),
    ("yyyy-MM-dd[ HH:mm]", "2021-02-03 10:", None),
    ("yyyy-MM-dd[ HH:mm[:ss]]", "2021-02-03 10:30:15", at(2021, 2, 3, 10, 30, 15)),
    # closed at the end
    ("yyyy-MM-dd[ HH:mm", "2021-02-03 10:30", at(2021, 2, 3, 10, 30)),
    ("yyyy-MM-dd['T'HH:mm][ HH:mm]", "2021-02-03 10:30", at(2021, 2, 3, 10, 30)),
    # an offset hour over 23 fails the parse
    ("yyyy-MM-dd[XXX]", "2021-02-03+25:00", None),
]

ZONE_IDS = [
    # VV: a region id, Z, an offset, or UTC, UT, GMT with or without an offset; no
    # zone is UTC
    ("2021-07-01 12:00", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 America/Los_Angeles", at(2021, 7, 1, 12, zone=LOS_ANGELES)),
    ("2021-01-01 12:00 America/Los_Angeles", at(2021, 1, 1, 12, zone=LOS_ANGELES)),
    ("2021-07-01 12:00 Europe/Paris", at(2021, 7, 1, 12, zone=PARIS)),
    ("2021-07-01 12:00 Asia/Kathmandu", at(2021, 7, 1, 6, 15)),
    ("2021-07-01 12:00 Z", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 UTC", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 GMT", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 UT", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 UTC+01:00", at(2021, 7, 1, 12, zone=offset(1))),
    ("2021-07-01 12:00 UTC-05:30", at(2021, 7, 1, 12, zone=offset(-5, 30))),
    ("2021-07-01 12:00 GMT-05:00", at(2021, 7, 1, 12, zone=offset(-5))),
    ("2021-07-01 12:00 UT+01:00", at(2021, 7, 1, 12, zone=offset(1))),
    ("2021-07-01 12:00 UTC+01:00:30", at(2021, 7, 1, 12, zone=offset(1, 0, 30))),
    ("2021-07-01 12:00 +01:00", at(2021, 7, 1, 12, zone=offset(1))),
    ("2021-07-01 12:00 -08:00", at(2021, 7, 1, 20)),
    ("2021-07-01 12:00 +18:00", at(2021, 7, 1, 12, zone=offset(18))),
    ("2021-07-01 12:00 Etc/GMT+5", at(2021, 7, 1, 17)),  # the longest id, not Etc/GMT
    ("2021-07-01 12:00 US/Pacific", at(2021, 7, 1, 19)),
    ("2021-07-01 12:00 GMT0", at(2021, 7, 1, 12)),
    ("2021-07-01 12:00 UTC+01", None),  # minutes are required after UTC
    ("2021-07-01 12:00 +01", None),
    ("2021-07-01 12:00 +0100", None),
    ("2021-07-01 12:00 +18:01", None),
    ("2021-07-01 12:00 UTC+19:00", None),
    ("2021-07-01 12:00 america/los_angeles", None),
    ("2021-07-01 12:00 Europe/Nowhere", None),
    ("2021-07-01 12:00 EST", None),  # not a java.time region id
    ("2021-07-01 12:00 PST", None),
]

ZONE_NAMES = [
    # z: region ids and UTC/GMT forms as VV; zone names (PST, CET, Pacific Standard
    # Time) do not parse
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 America/Los_Angeles", at(2021, 7, 1, 19)),
    ("yyyy-MM-dd HH:mm zzzz", "2021-07-01 12:00 Europe/Paris", at(2021, 7, 1, 10)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 UTC", at(2021, 7, 1, 12)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 GMT", at(2021, 7, 1, 12)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 Z", at(2021, 7, 1, 12)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 UTC+01:00", at(2021, 7, 1, 11)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 +02:00", at(2021, 7, 1, 10)),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 PST", None),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 CEST", None),
    ("yyyy-MM-dd HH:mm zzzz", "2021-07-01 12:00 Pacific Daylight Time", None),
    ("yyyy-MM-dd HH:mm z", "2021-07-01 12:00 Etc/GMT+5", None),
]

OFFSETS = [
    # X: Z for zero; X +HH[mm], XX +HHMM, XXX +HH:MM, XXXX +HHMM[ss], XXXXX +HH:MM[:ss]
    ("X", "Z", 0),
    ("X", "+01", 3600),
    ("X", "+0130", 5400),
    ("X", "-0800", -28800),
    ("X", "+1", None),
    ("X", "+01:30", None),
    ("XX", "+0130", 5400),
    ("XX", "+01", None),
    ("XXX", "+01:30", 5400),
    ("XXX", "-00:00", 0),
    ("XXX", "+0130", None),
    ("XXX", "+01:60", None),
    ("XXX", "+19:00", None),
    ("XXXX", "+013015", 5415),
    ("XXXX", "+0130", 5400),
    ("XXXXX", "+01:30:15", 5415),
    ("XXXXX", "Z", 0),
    # x: the same without Z; its zero text is matched first, so for x +0030 is +00
    # then a stray 30
    ("x", "+00", 0),
    ("x", "+0530", 19800),
    ("x", "+0030", None),
    ("x", "Z", None),
    ("xx", "+0000", 0),
    ("xxx", "+05:30", 19800),
    ("xxxxx", "+05:30:10", 19810),
    # Z: +HHMM (ZZZZZ: +HH:MM[:ss] or Z); ZZZZ and O: GMT with an offset
    ("Z", "+0530", 19800),
    ("ZZZ", "-0800", -28800),
    ("Z", "+05:30", None),
    ("Z", "Z", None),
    ("ZZZZ", "GMT-08:00", -28800),
    ("ZZZZ", "GMT", 0),
    ("ZZZZ", "GMT-8", None),
    ("ZZZZZ", "Z", 0),
    ("ZZZZZ", "-08:00", -28800),
    ("O", "GMT+8", 28800),
    ("O", "GMT+08", 28800),
    ("O", "GMT+8:30", 30600),
    ("O", "GMT-8:30:15", -30615),
    ("O", "GMT", 0),
    ("O", "UTC+8", None),
    ("OOOO", "GMT+08:00", 28800),
    ("OOOO", "GMT+8:00", None),
]


@pytest.mark.parametrize("pattern, text, expected", DATES)
def test_date_letters_parse_as_java_time_does(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("text, expected", SMART_DAYS)
def test_the_smart_resolver_clamps_days_29_to_31_to_the_end_of_the_month(text, expected) -> None:
    assert parse("yyyy-MM-dd", text) == expected


@pytest.mark.parametrize("pattern, text, expected", DAY_NAMES)
def test_day_names_must_name_the_day_of_the_date(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("pattern, text, expected", TIMES)
def test_hour_letters_follow_the_24_and_12_hour_clocks(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("pattern, text, millis", FRACTIONS)
def test_fractions_take_exactly_their_digits_and_keep_milliseconds(pattern, text, millis) -> None:
    expected = None if millis is None else at(2021, 2, 3, 10, 30, 15) + millis
    assert parse("yyyy-MM-dd " + pattern, "2021-02-03 " + text) == expected


@pytest.mark.parametrize("pattern, text, expected", ADJACENT)
def test_adjacent_numbers_share_the_digits_as_java_time_does(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("pattern, text, expected", LITERALS)
def test_literals_and_optional_sections_match_the_whole_text(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("text, expected", ZONE_IDS)
def test_zone_ids_are_regions_offsets_or_utc_with_an_offset(text, expected) -> None:
    assert parse("yyyy-MM-dd HH:mm[ VV]", text) == expected


@pytest.mark.parametrize("pattern, text, expected", ZONE_NAMES)
def test_zone_names_read_region_ids_but_not_ambiguous_names(pattern, text, expected) -> None:
    assert parse(pattern, text) == expected


@pytest.mark.parametrize("letters, text, seconds", OFFSETS)
def test_offset_letters_read_their_forms_of_offset(letters, text, seconds) -> None:
    expected = None if seconds is None else at(2021, 7, 1, 12) - seconds * 1000
    assert parse("yyyy-MM-dd HH:mm" + letters, "2021-07-01 12:00" + text) == expected


def test_a_parsed_offset_wins_over_a_zone() -> None:
    expected = at(2021, 7, 1, 11)
    assert parse("yyyy-MM-dd HH:mmXXX VV", "2021-07-01 12:00+01:00 America/Los_Angeles") == expected
    assert parse("yyyy-MM-dd HH:mm VV XXX", "2021-07-01 12:00 America/Los_Angeles +01:00") == expected


def test_a_local_time_in_a_dst_gap_moves_forward_by_the_gap() -> None:
    # 2021-03-14 02:00 PST -> 03:00 PDT in Los Angeles: java's ZonedDateTime.ofLocal
    # reads 02:30 as 03:30 PDT
    pattern = "yyyy-MM-dd HH:mm VV"
    assert parse(pattern, "2021-03-14 02:30 America/Los_Angeles") == at(2021, 3, 14, 10, 30)
    assert parse(pattern, "2021-03-14 01:59 America/Los_Angeles") == at(2021, 3, 14, 9, 59)
    assert parse(pattern, "2021-03-14 03:00 America/Los_Angeles") == at(2021, 3, 14, 10)


def test_a_local_time_in_a_dst_overlap_takes_the_earlier_offset() -> None:
    # 2021-11-07 02:00 PDT -> 01:00 PST: 01:30 happens twice, java takes the first
    # (PDT, UTC-7)
    pattern = "yyyy-MM-dd HH:mm VV"
    assert parse(pattern, "2021-11-07 01:30 America/Los_Angeles") == at(2021, 11, 7, 8, 30)
    assert parse(pattern, "2021-11-07 02:00 America/Los_Angeles") == at(2021, 11, 7, 10)


EMULATED = set("uyMLdDEaHkhKmsSVzOXxZ")


@pytest.mark.parametrize("letter", sorted(set(ascii_letters) - EMULATED))
def test_every_letter_not_emulated_is_refused_by_name(letter) -> None:
    with pytest.raises(UnsupportedPattern, match=f"'{letter}'"):
        compile_parser(f"yyyy-MM-dd {letter}")


@pytest.mark.parametrize(
    "pattern, letter",
    [
        ("yyyy-MM-ddd", "d"),
        ("yyyy-MM-dd HHH", "H"),
        ("yyyy-MM-dd hh aa", "a"),
        ("yyyy-MM-dd V", "V"),
        ("yyyy-MM-dd VVV", "V"),
        ("yyyy-MM-dd zzzzz", "z"),
        ("yyyy-MM-dd OO", "O"),
        ("yyyy-MM-dd XXXXXX", "X"),
        ("yyyy-MM-dd ZZZZZZ", "Z"),
        ("yyyy-DDDD", "D"),
        ("EEEEEE yyyy-MM-dd", "E"),
        ("yyyy-MMMMMM-dd", "M"),
        ("yyyy-MM-dd HH:mm:ss.SSSSSSSSSS", "S"),
        ("y" * 20 + "-MM-dd", "y"),
        # narrow names (J for January, June and July) are ambiguous
        ("yyyy-MMMMM-dd", "M"),
        ("yyyy-LLLLL-dd", "L"),
        ("EEEEE yyyy-MM-dd", "E"),
        # time fields java.time makes no time of
        ("yyyy-MM-dd hh:mm", "h"),
        ("yyyy-MM-dd KK", "K"),
        ("yyyy-MM-dd a", "a"),
        ("yyyy-MM-dd mm", "m"),
        ("yyyy-MM-dd HH:ss", "s"),
        ("yyyy-MM-dd HH:mm.SSS", "S"),
    ],
)
def test_letter_counts_and_fields_java_time_refuses_are_refused_by_name(pattern, letter) -> None:
    with pytest.raises(UnsupportedPattern, match=f"'{letter}'"):
        compile_parser(pattern)


@pytest.mark.parametrize("pattern", ["yyyy-MM-dd'T", "yyyy]", "yyyy-MM-dd {", "yyyy-MM-dd }", "yyyy #"])
def test_malformed_patterns_are_refused(pattern) -> None:
    with pytest.raises(UnsupportedPattern):
        compile_parser(pattern)


def test_a_pattern_is_compiled_once() -> None:
    assert compile_parser("yyyy-MM-dd HH:mm") is compile_parser("yyyy-MM-dd HH:mm")
