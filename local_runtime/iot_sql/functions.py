"""The AWS IoT SQL built-in functions the local runtime emulates, and those it refuses.

Emulated: the pure functions of the SQL reference (math, strings, hashes, regexes, get, concat, cast...) and
the message's metadata (topic, clientid, principal, timestamp, traceid, accountid, newuuid, encode, decode,
parse_time, time_to_epoch, sql_version), and transform. "Functions called with invalid arguments (for example,
wrong types ...) return Undefined".
Refused, with the reason: functions that call another AWS service or need MQTT 5 / connection details
(aws_lambda, get_thing_shadow, get_dynamodb, ...), decode with the protobuf scheme, and a few
documented functions not emulated yet (get_or_default).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import uuid
from dataclasses import dataclass
from datetime import timezone
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from local_runtime.iot_sql.md2 import md2_hexdigest
from local_runtime.iot_sql.java_time import compile_parser
from local_runtime.iot_sql.joda_time import UnsupportedPattern, compile_pattern, moment_of
from local_runtime.iot_sql.values import (
    DECIMAL,
    UNDEFINED,
    Value,
    double,
    json_text,
    remainder,
    standard_int,
    to_bool,
    to_decimal,
    to_int,
    to_json,
    to_number,
    to_string,
)

SQL_VERSION = "2016-03-23"


@dataclass(frozen=True)
class Function:
    minimum: int
    maximum: int
    run: Callable[..., Value]
    uses_message: bool = False  # run(env, *args) instead of run(*args)


# ----- numbers -----

def _double_function(compute: Callable[[float], float]) -> Callable[[Value], Value]:
    """"Decimal arguments are rounded to double precision before function application"; domain errors
    ("imaginary results") are Undefined."""

    def run(value: Value) -> Value:
        number = to_number(value)
        if number is UNDEFINED:
            return UNDEFINED
        try:
            return double(compute(float(number)))
        except (ValueError, OverflowError):
            return UNDEFINED

    return run


def _double_function2(compute: Callable[[float, float], float]) -> Callable[[Value, Value], Value]:
    def run(left: Value, right: Value) -> Value:
        a, b = to_number(left), to_number(right)
        if a is UNDEFINED or b is UNDEFINED:
            return UNDEFINED
        try:
            return double(compute(float(a), float(b)))
        except (ValueError, OverflowError, ZeroDivisionError):
            return UNDEFINED

    return run


def _abs(value: Value) -> Value:
    number = to_number(value)
    return UNDEFINED if number is UNDEFINED else abs(number)


def _rounder(rounding: str) -> Callable[[Value], Value]:
    def run(value: Value) -> Value:
        return to_int(value, rounding)

    return run


def _sign(value: Value) -> Value:
    number = to_number(value)
    if number is UNDEFINED:
        return UNDEFINED
    return (number > 0) - (number < 0)


def _trunc(value: Value, places: Value) -> Value:
    number, digits = to_number(value), to_int(places)
    if number is UNDEFINED or digits is UNDEFINED:
        return UNDEFINED
    if isinstance(number, int):
        return number
    digits = min(max(digits, 0), 34)
    # "Trailing zeroes are stripped from the result."
    return number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN, context=DECIMAL).normalize(DECIMAL)


def _bitwise(combine: Callable[[int, int], int]) -> Callable[[Value, Value], Value]:
    def run(left: Value, right: Value) -> Value:
        a, b = to_int(left), to_int(right)
        return UNDEFINED if a is UNDEFINED or b is UNDEFINED else combine(a, b)

    return run


def _bitnot(value: Value) -> Value:
    number = to_int(value)
    if number is UNDEFINED:
        return UNDEFINED
    # The documentation's example is bitnot(13) = 2: the bits of the number's own width are inverted (a
    # two's-complement ~13 would be -14). The example is followed.
    if number >= 0:
        return number ^ ((1 << max(number.bit_length(), 1)) - 1)
    return ~number


def _nanvl(value: Value, fallback: Value) -> Value:
    if value is UNDEFINED or value is None or (isinstance(value, Decimal) and value.is_nan()):
        return fallback
    return value


# ----- strings -----

def _string_function(compute: Callable[[str], Value]) -> Callable[[Value], Value]:
    def run(value: Value) -> Value:
        text = to_string(value)
        return UNDEFINED if text is UNDEFINED else compute(text)

    return run


def _strings(*values: Value) -> list[str] | None:
    texts = [to_string(value) for value in values]
    return None if any(text is UNDEFINED for text in texts) else texts


def _string_function2(compute: Callable[[str, str], Value]) -> Callable[[Value, Value], Value]:
    def run(left: Value, right: Value) -> Value:
        texts = _strings(left, right)
        return UNDEFINED if texts is None else compute(*texts)

    return run


def _chr(value: Value) -> Value:
    code = to_int(value)
    return chr(code) if code is not UNDEFINED and 0 <= code <= 127 else UNDEFINED


def _concat(*values: Value) -> Value:
    if not values:
        return UNDEFINED
    if len(values) == 1:
        # The table says "The argument is returned unmodified" (the example concat(1) = "1" disagrees).
        return values[0]
    if any(isinstance(value, list) for value in values):
        joined: list[Value] = []
        for value in values:
            joined.extend(value if isinstance(value, list) else [value])
        return joined
    if any(isinstance(value, str) for value in values):
        texts = _strings(*values)
        return UNDEFINED if texts is None else "".join(texts)
    return UNDEFINED


def _pad(side: str) -> Callable[[Value, Value], Value]:
    def run(value: Value, count: Value) -> Value:
        text, spaces = to_string(value), to_int(count)
        if text is UNDEFINED or spaces is UNDEFINED:
            return UNDEFINED
        padding = " " * min(max(spaces, 0), 1000)  # "between 0 and 1000 ... set to the nearest valid value"
        return padding + text if side == "left" else text + padding

    return run


def _java_trim(text: str) -> str:
    # Java's String.trim(): strips every character up to U+0020 on both ends.
    return text.strip("".join(chr(code) for code in range(0x21)))


def _substring(value: Value, start: Value, end: Value = UNDEFINED) -> Value:
    text, begin = to_string(value), to_int(start)
    if text is UNDEFINED or begin is UNDEFINED:
        return UNDEFINED
    stop = len(text)
    if end is not UNDEFINED:
        stop = to_int(end)
        if stop is UNDEFINED:
            return UNDEFINED
    begin, stop = min(max(begin, 0), len(text)), min(max(stop, 0), len(text))
    return text[begin:stop] if begin < stop else ""


def _indexof(text: str, part: str) -> Value:
    return text.find(part)


def _replace(value: Value, old: Value, new: Value) -> Value:
    texts = _strings(value, old, new)
    return UNDEFINED if texts is None else texts[0].replace(texts[1], texts[2])


def _hash(algorithm: str) -> Callable[[Value], Value]:
    return _string_function(lambda text: hashlib.new(algorithm, text.encode()).hexdigest())


# ----- regular expressions (Java's syntax is close enough to Python's for the common cases) -----

def _regex(pattern: Value) -> re.Pattern[str] | None:
    text = to_string(pattern)
    if text is UNDEFINED:
        return None
    try:
        return re.compile(text)
    except re.error:
        return None


_REPLACEMENT_TOKEN = re.compile(r"\\(.)|\$(\d+)|(\$)", re.DOTALL)


def _java_replacement(template: str) -> Callable[[re.Match[str]], str] | None:
    """Java's replacement syntax: `$n` is a capture group and a backslash escapes the next character."""
    parts: list[str | int] = []
    position = 0
    for token in _REPLACEMENT_TOKEN.finditer(template):
        parts.append(template[position : token.start()])
        if token.group(3):
            return None  # a `$` not followed by a group number is invalid in Java
        parts.append(token.group(1) if token.group(1) is not None else int(token.group(2)))
        position = token.end()
    parts.append(template[position:])

    def expand(match: re.Match[str]) -> str:
        return "".join(part if isinstance(part, str) else (match.group(part) or "") for part in parts)

    return expand


def _regexp_matches(value: Value, pattern: Value) -> Value:
    text, regex = to_string(value), _regex(pattern)
    return UNDEFINED if text is UNDEFINED or regex is None else regex.search(text) is not None


def _regexp_replace(value: Value, pattern: Value, replacement: Value) -> Value:
    text, regex, template = to_string(value), _regex(pattern), to_string(replacement)
    if text is UNDEFINED or regex is None or template is UNDEFINED:
        return UNDEFINED
    expand = _java_replacement(template)
    if expand is None:
        return UNDEFINED
    try:
        return regex.sub(expand, text)
    except IndexError:  # a group number the pattern does not have
        return UNDEFINED


def _regexp_substr(value: Value, pattern: Value) -> Value:
    text, regex = to_string(value), _regex(pattern)
    if text is UNDEFINED or regex is None:
        return UNDEFINED
    match = regex.search(text)
    # No match: the documentation does not say; Undefined, as for other results that do not exist.
    return UNDEFINED if match is None else match.group(0)


# ----- collections and types -----

def _get(collection: Value, key: Value) -> Value:
    if isinstance(collection, dict):
        return collection.get(key, UNDEFINED) if isinstance(key, str) else UNDEFINED
    if isinstance(collection, (list, str)):
        index = standard_int(key)
        if index is UNDEFINED or not 0 <= index < len(collection):
            return UNDEFINED
        return collection[index]
    return UNDEFINED


TRANSFORM_LIMIT_BYTES = 128 * 1024  # "The array returned by this function is limited to 128 KiB"


def _transform(mode: Value, attributes: Value, elements: Value) -> Value:
    """transform('enrichArray', Object, Array): each object of the array with the object's attributes added
    (iot-sql-functions, transform). Any other mode, an object that is not one, or an array that is not all
    objects is Undefined, as are results over the 128 KiB limit. Where an element already has one of the
    object's keys, the object's value wins: its attributes are "applied" to each element."""
    if mode != "enrichArray" or not isinstance(attributes, dict) or not isinstance(elements, list):
        return UNDEFINED
    if not all(isinstance(element, dict) for element in elements):
        return UNDEFINED
    enriched: list[Value] = [{**element, **attributes} for element in elements]
    if len(json_text(to_json(enriched)).encode()) > TRANSFORM_LIMIT_BYTES:
        return UNDEFINED
    return enriched


def _is_null(value: Value) -> bool:
    return value is None


def _is_undefined(value: Value) -> bool:
    return value is UNDEFINED


def _cast_to_int(value: Value) -> Value:
    if isinstance(value, bool):
        return int(value)
    return to_int(value, ROUND_FLOOR)


def _cast_to_decimal(value: Value) -> Value:
    if isinstance(value, bool):
        return Decimal(int(value))
    converted = to_decimal(value)
    return converted if isinstance(converted, Decimal) else UNDEFINED


def _cast_to_double(value: Value) -> Value:
    converted = _cast_to_decimal(value)
    return converted if converted is UNDEFINED else double(float(converted))


def _cast_to_bool(value: Value) -> Value:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return value != 0
    return to_bool(value)


CASTS: dict[str, Callable[[Value], Value]] = {
    "string": to_string,
    "nvarchar": to_string,
    "text": to_string,
    "ntext": to_string,
    "varchar": to_string,
    "int": _cast_to_int,
    "integer": _cast_to_int,
    "double": _cast_to_double,
    "decimal": _cast_to_decimal,
    "bool": _cast_to_bool,
    "boolean": _cast_to_bool,
}


# ----- the message -----

def _topic(env: Any, level: Value = UNDEFINED) -> Value:
    topic = env.context.topic
    if level is UNDEFINED:
        return topic
    index = to_int(level)
    levels = topic.split("/")
    return levels[index - 1] if index is not UNDEFINED and 1 <= index <= len(levels) else UNDEFINED


def _optional(value: str | None) -> Value:
    return UNDEFINED if value is None else value


def encode_base64(value: Value) -> Value:
    """encode(value, 'base64'): raw payload bytes as they are, any other value converted to a String first."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    text = to_string(value)
    return UNDEFINED if text is UNDEFINED else base64.b64encode(text.encode()).decode()


def decode_base64(value: Value, parse_json: Callable[[bytes], tuple[Value, bool]]) -> Value:
    """decode(value, 'base64'): "If the decoded string is a JSON document, an addressable object is returned.
    Otherwise, the decoded string is returned as a string" (SQL reference, decode). Base64 as Java decodes it
    (padding optional); what is not Base64 text, or does not decode to UTF-8 text, is Undefined, as for any
    function called with an invalid argument."""
    if isinstance(value, bytes):  # decode(*, 'base64') of a payload that is not JSON
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return UNDEFINED
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        return UNDEFINED
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        text = decoded.decode()
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return UNDEFINED
    document, is_json = parse_json(decoded)
    return document if is_json and isinstance(document, (dict, list)) else text


_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _zone(name: Value) -> Any:
    if not isinstance(name, str):
        return None
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return None


def parse_time(pattern: Value, timestamp: Value, zone_name: Value = "UTC") -> Value:
    """parse_time(pattern, epochMillis[, zone]): a pattern this emulation cannot format is Undefined at run
    time (a literal one is refused when the rule is loaded)."""
    if not isinstance(pattern, str):
        return UNDEFINED
    try:
        formatter = compile_pattern(pattern)
    except UnsupportedPattern:
        return UNDEFINED
    epoch_ms, zone = to_int(timestamp), _zone(zone_name)
    if epoch_ms is UNDEFINED or zone is None:
        return UNDEFINED
    return formatter(moment_of(epoch_ms, zone))


def time_to_epoch(timestamp: Value, pattern: Value) -> Value:
    """time_to_epoch(timestamp, pattern): epoch milliseconds of a timestamp read with a java.time pattern, UTC
    when it names no zone (iot-sql-functions, time_to_epoch). A text the pattern does not read, or a pattern
    this emulation cannot read with, is Undefined at run time (a literal one is refused when the rule is
    loaded)."""
    if not isinstance(timestamp, str) or not isinstance(pattern, str):
        return UNDEFINED
    try:
        parse = compile_parser(pattern)
    except UnsupportedPattern:
        return UNDEFINED
    epoch_ms = parse(timestamp)
    return UNDEFINED if epoch_ms is None else epoch_ms


FUNCTIONS: dict[str, Function] = {
    "abs": Function(1, 1, _abs),
    "acos": Function(1, 1, _double_function(math.acos)),
    "asin": Function(1, 1, _double_function(math.asin)),
    "atan": Function(1, 1, _double_function(math.atan)),
    "atan2": Function(2, 2, _double_function2(math.atan2)),
    "bitand": Function(2, 2, _bitwise(lambda a, b: a & b)),
    "bitor": Function(2, 2, _bitwise(lambda a, b: a | b)),
    "bitxor": Function(2, 2, _bitwise(lambda a, b: a ^ b)),
    "bitnot": Function(1, 1, _bitnot),
    "ceil": Function(1, 1, _rounder(ROUND_CEILING)),
    "chr": Function(1, 1, _chr),
    "concat": Function(0, 1_000, _concat),
    "cos": Function(1, 1, _double_function(math.cos)),
    "cosh": Function(1, 1, _double_function(math.cosh)),
    "endswith": Function(2, 2, _string_function2(str.endswith)),
    "exp": Function(1, 1, _double_function(math.exp)),
    "floor": Function(1, 1, _rounder(ROUND_FLOOR)),
    "get": Function(2, 2, _get),
    "indexof": Function(2, 2, _string_function2(_indexof)),
    "isnull": Function(1, 1, _is_null),
    "isundefined": Function(1, 1, _is_undefined),
    "length": Function(1, 1, _string_function(len)),
    "ln": Function(1, 1, _double_function(math.log)),
    "log": Function(1, 1, _double_function(math.log10)),
    "lower": Function(1, 1, _string_function(str.lower)),
    "lpad": Function(2, 2, _pad("left")),
    "ltrim": Function(1, 1, _string_function(lambda text: text.lstrip(" \t"))),
    "md2": Function(1, 1, _string_function(lambda text: md2_hexdigest(text.encode()))),
    "md5": Function(1, 1, _hash("md5")),
    "mod": Function(2, 2, remainder),
    "nanvl": Function(2, 2, _nanvl),
    "numbytes": Function(1, 1, _string_function(lambda text: len(text.encode()))),
    "parse_time": Function(2, 3, parse_time),
    "power": Function(2, 2, _double_function2(math.pow)),
    "rand": Function(0, 0, lambda: double(random.random())),
    "regexp_matches": Function(2, 2, _regexp_matches),
    "regexp_replace": Function(3, 3, _regexp_replace),
    "regexp_substr": Function(2, 2, _regexp_substr),
    "remainder": Function(2, 2, remainder),
    "replace": Function(3, 3, _replace),
    "round": Function(1, 1, _rounder(ROUND_HALF_UP)),  # half away from zero: round(-1.5) = -2
    "rpad": Function(2, 2, _pad("right")),
    "rtrim": Function(1, 1, _string_function(lambda text: text.rstrip(" \t"))),
    "sha1": Function(1, 1, _hash("sha1")),
    "sha224": Function(1, 1, _hash("sha224")),
    "sha256": Function(1, 1, _hash("sha256")),
    "sha384": Function(1, 1, _hash("sha384")),
    "sha512": Function(1, 1, _hash("sha512")),
    "sign": Function(1, 1, _sign),
    "sin": Function(1, 1, _double_function(math.sin)),
    "sinh": Function(1, 1, _double_function(math.sinh)),
    "sql_version": Function(0, 0, lambda: SQL_VERSION),
    "sqrt": Function(1, 1, _double_function(math.sqrt)),
    "startswith": Function(2, 2, _string_function2(str.startswith)),
    "substring": Function(2, 3, _substring),
    "tan": Function(1, 1, _double_function(math.tan)),
    "tanh": Function(1, 1, _double_function(math.tanh)),
    "time_to_epoch": Function(2, 2, time_to_epoch),
    "transform": Function(3, 3, _transform),
    "trim": Function(1, 1, _string_function(_java_trim)),
    "trunc": Function(2, 2, _trunc),
    "upper": Function(1, 1, _string_function(str.upper)),
    # The message and the rules engine.
    "accountid": Function(0, 0, lambda env: env.context.account_id, uses_message=True),
    "clientid": Function(0, 0, lambda env: env.context.client_id, uses_message=True),
    "newuuid": Function(0, 0, lambda env: str(uuid.uuid4()), uses_message=True),
    "principal": Function(0, 0, lambda env: _optional(env.context.principal), uses_message=True),
    "timestamp": Function(0, 0, lambda env: env.timestamp_ms(), uses_message=True),
    "topic": Function(0, 1, _topic, uses_message=True),
    "traceid": Function(0, 0, lambda env: _optional(env.context.trace_id), uses_message=True),
    # encode's first argument may be `*` (the raw payload) and its scheme must be the literal 'base64':
    # the parser checks and calls encode_base64 itself.
    "encode": Function(2, 2, lambda value, scheme: encode_base64(value)),
    # decode's scheme too: the parser checks it and calls decode_base64 with the payload's JSON parser. Six
    # arguments are 'proto''s (bucket, key, descriptor file, message type), which the parser refuses.
    "decode": Function(2, 6, lambda value, scheme, *proto: UNDEFINED),
}

_EXTERNAL = "calls another AWS service, which the local runtime does not do from a rule"
_MQTT5 = "needs MQTT 5 or connection details the local runtime's messages do not carry"
_NOT_YET = "is documented but not emulated by the local runtime"
REFUSED: dict[str, str] = {
    "aws_lambda": _EXTERNAL,
    "get_thing_shadow": _EXTERNAL,
    "get_dynamodb": _EXTERNAL,
    "get_secret": _EXTERNAL,
    "get_registry_data": _EXTERNAL,
    "machinelearning_predict": _EXTERNAL,
    "get_mqtt_property": _MQTT5,
    "get_user_properties": _MQTT5,
    "sourceip": _MQTT5,
    "get_or_default": _NOT_YET,
}
