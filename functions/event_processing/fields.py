"""Strict readers for fields of a decoded JSON event.

Every reader raises MalformedEvent naming the field and what was expected, never the value it found: event
payloads are not ours to log.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")


class MalformedEvent(ValueError):
    """An event that can never be processed as it is: it is kept with this reason, not retried."""


def decode_object(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        decoded = json.loads(body)
    except (TypeError, ValueError) as error:
        raise MalformedEvent(f"body is not JSON ({type(error).__name__})") from None
    if not isinstance(decoded, dict):
        raise MalformedEvent(f"body is a JSON {type(decoded).__name__}, not an object")
    return decoded


def text(event: Mapping[str, Any], field: str, *, max_length: int = 1024, forbidden: str = "") -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{field} must be a non-empty string")
    return _checked_text(value, field, max_length, forbidden)


def optional_text(event: Mapping[str, Any], field: str, *, max_length: int = 1024) -> str | None:
    value = event.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{field} must be a string when present")
    return _checked_text(value, field, max_length, "")


def _checked_text(value: str, field: str, max_length: int, forbidden: str) -> str:
    if len(value) > max_length:
        raise MalformedEvent(f"{field} is longer than {max_length} characters")
    if any(ch in value for ch in forbidden) or any(ord(ch) < 0x20 for ch in value):
        shown = " or ".join(repr(ch) for ch in forbidden) if forbidden else ""
        raise MalformedEvent(f"{field} contains a control character{' or ' + shown if shown else ''}")
    return value


def whole_number(event: Mapping[str, Any], field: str) -> int:
    value = event.get(field)
    # bool is an int subclass; a JSON true is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedEvent(f"{field} must be a whole number >= 0")
    return value


def optional_whole_number(event: Mapping[str, Any], field: str) -> int | None:
    return None if event.get(field) is None else whole_number(event, field)


def optional_flag(event: Mapping[str, Any], field: str) -> bool | None:
    value = event.get(field)
    if value is not None and not isinstance(value, bool):
        raise MalformedEvent(f"{field} must be true or false when present")
    return value


def dropped_if_malformed(
    read: Callable[..., T], event: Mapping[str, Any], field: str, dropped: dict[str, str], **options: Any
) -> T | None:
    """An optional field read with `read`; when it is malformed, None, and the reason kept in `dropped` under
    the field's name: an event is not refused for a field it can do without."""
    try:
        return read(event, field, **options)
    except MalformedEvent as problem:
        dropped[field] = str(problem)
        return None


def one_of(event: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = event.get(field)
    if value not in allowed:
        raise MalformedEvent(f"{field} must be one of {', '.join(allowed)}")
    return value


def string_map(event: Mapping[str, Any], field: str) -> dict[str, str]:
    """A name-value map such as thing attributes; absent or null is empty."""
    value = event.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedEvent(f"{field} must be an object of string values")
    return dict(value)
