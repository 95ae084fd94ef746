"""AWS IoT SQL values, their types and the documented conversions and operator tables (SQL version 2016-03-23).

Values are plain Python: `None` is Null, `bool` Boolean, `int` Int, `Decimal` Decimal (34 digits), `str` String,
`list` Array, `dict` Object, and `UNDEFINED` the SQL's Undefined (a missing field, or any invalid operation).
A raw, non-JSON payload seen through `*` is `bytes`: no conversion or operator accepts it.
Refuses nothing itself: every type mismatch gives Undefined, as the documentation's tables say.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Callable

# "A Decimal with a precision of 34 digits" (the data types table): Java's MathContext.DECIMAL128.
DECIMAL = Context(prec=34)

# The documented regex for strings that convert to Decimal: ^-?\d+(\.\d+)?((?i)E-?\d+)?$
_DECIMAL_STRING = re.compile(r"-?\d+(\.\d+)?([eE]-?\d+)?")


class _Undefined:
    """The SQL's Undefined: falsy, a singleton, omitted from JSON objects."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()

Value = Any


def is_number(value: Value) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def to_decimal(value: Value) -> Value:
    """The documented "To Decimal" conversion (Null stays Null; Boolean, Array, Object are Undefined)."""
    if isinstance(value, bool):
        return UNDEFINED
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value) if _DECIMAL_STRING.fullmatch(value) else UNDEFINED
    return None if value is None else UNDEFINED


def to_number(value: Value) -> Value:
    """Int stays Int, Decimal and numeric strings become Decimal; anything else (Null included) is Undefined:
    the operator tables accept only String/Int/Decimal."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    converted = to_decimal(value)
    return converted if isinstance(converted, Decimal) else UNDEFINED


def standard_int(value: Value) -> Value:
    """The documented "To Int": a Decimal is rounded to the nearest Int, a numeric String truncated."""
    if isinstance(value, str):
        return to_int(value, ROUND_DOWN)
    return to_int(value, ROUND_HALF_UP)


def to_int(value: Value, rounding: str = ROUND_FLOOR) -> Value:
    """A whole number from Int, Decimal or a numeric String. Most functions say "rounded down to the nearest
    Int" (ROUND_FLOOR); string conversion "truncates" (ROUND_DOWN); callers pick."""
    number = to_number(value)
    if number is UNDEFINED or isinstance(number, int):
        return number
    if not number.is_finite():
        return UNDEFINED
    return int(number.to_integral_value(rounding=rounding))


def to_bool(value: Value) -> Value:
    """The documented "To Boolean": Booleans, and the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return UNDEFINED


def to_string(value: Value) -> Value:
    """The documented "To String": Arrays and Objects as JSON, Null and Undefined give Undefined."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, (list, dict)):
        return json_text(to_json(value))
    return UNDEFINED


def decimal_text(value: Decimal) -> str:
    """Whole Decimals print as Ints: SQL 2016-03-23 returns whole numbers such as 10.0 as the Int 10 (the
    current cast() documentation)."""
    if value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def double(value: float) -> Value:
    """A function's "Decimal (with double precision)" result; NaN and infinities ("imaginary results") are
    Undefined."""
    if value != value or value in (float("inf"), float("-inf")):
        return UNDEFINED
    return Decimal(repr(value))


def to_json(value: Value) -> Any:
    """The JSON form AWS serialises: Undefined members are omitted, whole Decimals become ints (as AWS prints
    numbers, without a trailing .0) and other Decimals stay Decimals, all 34 digits of them: json_text()
    writes them."""
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items() if item is not UNDEFINED}
    if isinstance(value, list):
        return [to_json(item) for item in value if item is not UNDEFINED]
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


def json_text(value: Any) -> str:
    """The JSON text of a to_json() value, compact, with each Decimal's digits as they are (json.dumps would
    need floats, which keep 17)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except TypeError:  # a Decimal somewhere
        return _json_with_decimals(value)


def _json_with_decimals(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        members = (f"{json.dumps(key, ensure_ascii=False)}:{_json_with_decimals(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_with_decimals(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# ----- equality -----

def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else "other"


def same(left: Value, right: Value) -> bool:
    """Deep equality of two defined values: Int and Decimal compare by value ("Int is converted to Decimal");
    arrays in order; objects whatever the key order; mismatched types are unequal."""
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "array":
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
    if kind == "object":
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    return bool(left == right)


def equals(left: Value, right: Value) -> Value:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    return same(left, right)


def not_equals(left: Value, right: Value) -> Value:
    result = equals(left, right)
    return result if result is UNDEFINED else not result


def _ordering(test: Callable[[Decimal, Decimal], bool]) -> Callable[[Value, Value], Value]:
    def compare(left: Value, right: Value) -> Value:
        # "Both operands are converted to a Decimal, and then compared."
        a, b = to_number(left), to_number(right)
        if a is UNDEFINED or b is UNDEFINED:
            return UNDEFINED
        return test(a, b)

    return compare


COMPARISONS: dict[str, Callable[[Value, Value], Value]] = {
    "=": equals,
    "<>": not_equals,
    "<": _ordering(lambda a, b: a < b),
    "<=": _ordering(lambda a, b: a <= b),
    ">": _ordering(lambda a, b: a > b),
    ">=": _ordering(lambda a, b: a >= b),
}


# ----- logic -----

def logical_and(left: Value, right: Value) -> Value:
    a, b = to_bool(left), to_bool(right)
    return UNDEFINED if a is UNDEFINED or b is UNDEFINED else a and b


def logical_or(left: Value, right: Value) -> Value:
    a, b = to_bool(left), to_bool(right)
    return UNDEFINED if a is UNDEFINED or b is UNDEFINED else a or b


def logical_not(value: Value) -> Value:
    a = to_bool(value)
    return UNDEFINED if a is UNDEFINED else not a


# ----- arithmetic -----

def _java_int_division(a: int, b: int) -> int:
    # Int / Int is an Int: Java's integer division, which truncates toward zero.
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _java_int_remainder(a: int, b: int) -> int:
    # Java's %: the result has the sign of the dividend.
    return a - b * _java_int_division(a, b)


def _arithmetic(
    on_ints: Callable[[int, int], int], on_decimals: Callable[[Decimal, Decimal], Decimal]
) -> Callable[[Value, Value], Value]:
    def apply(left: Value, right: Value) -> Value:
        a, b = to_number(left), to_number(right)
        if a is UNDEFINED or b is UNDEFINED:
            return UNDEFINED
        try:
            if isinstance(a, int) and isinstance(b, int):
                return on_ints(a, b)
            return on_decimals(Decimal(a), Decimal(b))
        except (ZeroDivisionError, InvalidOperation):
            # Division by zero: the documentation is silent; Undefined, as for every other invalid operation.
            return UNDEFINED

    return apply


def _decimal_remainder(a: Decimal, b: Decimal) -> Decimal:
    return DECIMAL.remainder(a, b)


subtract = _arithmetic(lambda a, b: a - b, DECIMAL.subtract)
multiply = _arithmetic(lambda a, b: a * b, DECIMAL.multiply)
divide = _arithmetic(_java_int_division, DECIMAL.divide)
remainder = _arithmetic(_java_int_remainder, _decimal_remainder)
_add_numbers = _arithmetic(lambda a, b: a + b, DECIMAL.add)


def add(left: Value, right: Value) -> Value:
    """`+` concatenates when either operand is a String (the other converted to a String), else adds."""
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if isinstance(left, str) or isinstance(right, str):
        a, b = to_string(left), to_string(right)
        return UNDEFINED if a is UNDEFINED or b is UNDEFINED else a + b
    if not (is_number(left) and is_number(right)):
        return UNDEFINED
    return _add_numbers(left, right)


def negate(value: Value) -> Value:
    number = to_number(value)
    return UNDEFINED if number is UNDEFINED else -number


ARITHMETIC: dict[str, Callable[[Value, Value], Value]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": remainder,
}
