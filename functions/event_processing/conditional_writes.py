"""Conditional DynamoDB writes as plain values: evaluated in memory, rendered for DynamoDB.

A handler's logic returns a `ConditionalWrite`: the item key, the update, and the condition under which the
update may happen. DynamoDB evaluates the rendered condition atomically with the update, so concurrent
consumers cannot interleave a read and a write. The same object evaluates against a plain dict
(`ConditionalWrite.apply_to`), which is how the ordering rules are tested without AWS; a test runs the
rendered form against DynamoDB's semantics too, so the two cannot drift apart.

The classes are plain (slots, NamedTuple) rather than dataclasses: building a dataclass costs about a
millisecond of cold start each, and a function waits for these at every cold start.

Comparison semantics follow DynamoDB's: a comparison with a missing attribute, or between values of
different types, is false. `ne` also requires the attribute to exist, so that its meaning does not depend on
how an engine treats `<>` against a missing attribute.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

_NUMBER = (int, Decimal)
_NOTHING: Mapping[str, Any] = MappingProxyType({})


class Placeholders:
    """Collects `#n` / `:v` placeholders so that no attribute name or value is spliced into an expression."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        for placeholder, existing in self.names.items():
            if existing == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        for placeholder, existing in self.values.items():
            # type() too: True == 1 in Python, but BOOL and N differ in DynamoDB.
            if type(existing) is type(value) and existing == value:
                return placeholder
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder


class Condition:
    __slots__ = ()

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        raise NotImplementedError

    def render(self, placeholders: Placeholders) -> str:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return All((self, other))

    def __or__(self, other: Condition) -> Condition:
        return AnyOf((self, other))

    def __invert__(self) -> Condition:
        return Not(self)


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, _NUMBER) and isinstance(b, _NUMBER)) or (isinstance(a, str) and isinstance(b, str))


_OPERATORS = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class Compare(Condition):
    __slots__ = ("attribute", "operator", "value")

    def __init__(self, attribute: str, operator: str, value: Any) -> None:
        self.attribute, self.operator, self.value = attribute, operator, value

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        if not item or self.attribute not in item:
            return False
        stored = item[self.attribute]
        if not _comparable(stored, self.value):
            return False
        if isinstance(stored, bool) and self.operator not in ("=", "<>"):
            return False
        return _OPERATORS[self.operator](stored, self.value)

    def render(self, placeholders: Placeholders) -> str:
        return f"{placeholders.name(self.attribute)} {self.operator} {placeholders.value(self.value)}"


class Exists(Condition):
    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        return bool(item) and self.attribute in item

    def render(self, placeholders: Placeholders) -> str:
        return f"attribute_exists({placeholders.name(self.attribute)})"


class Missing(Condition):
    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        return not item or self.attribute not in item

    def render(self, placeholders: Placeholders) -> str:
        return f"attribute_not_exists({placeholders.name(self.attribute)})"


class All(Condition):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Condition, ...]) -> None:
        self.parts = parts

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        return all(part.matches(item) for part in self.parts)

    def render(self, placeholders: Placeholders) -> str:
        return "(" + " AND ".join(part.render(placeholders) for part in self.parts) + ")"


class AnyOf(Condition):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Condition, ...]) -> None:
        self.parts = parts

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        return any(part.matches(item) for part in self.parts)

    def render(self, placeholders: Placeholders) -> str:
        return "(" + " OR ".join(part.render(placeholders) for part in self.parts) + ")"


class Not(Condition):
    __slots__ = ("part",)

    def __init__(self, part: Condition) -> None:
        self.part = part

    def matches(self, item: Mapping[str, Any] | None) -> bool:
        return not self.part.matches(item)

    def render(self, placeholders: Placeholders) -> str:
        return f"(NOT {self.part.render(placeholders)})"


class Attr:
    """An attribute to compare: `Attr("since").lt(ts) | Attr("since").missing()`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def eq(self, value: Any) -> Condition:
        return Compare(self.name, "=", value)

    def ne(self, value: Any) -> Condition:
        return Exists(self.name) & Compare(self.name, "<>", value)

    def lt(self, value: Any) -> Condition:
        return Compare(self.name, "<", value)

    def le(self, value: Any) -> Condition:
        return Compare(self.name, "<=", value)

    def gt(self, value: Any) -> Condition:
        return Compare(self.name, ">", value)

    def ge(self, value: Any) -> Condition:
        return Compare(self.name, ">=", value)

    def exists(self) -> Condition:
        return Exists(self.name)

    def missing(self) -> Condition:
        return Missing(self.name)


class Update(NamedTuple):
    """SET, REMOVE, and set-valued ADD / DELETE, as in a DynamoDB UpdateExpression."""

    set: Mapping[str, Any] = _NOTHING
    remove: tuple[str, ...] = ()
    add: Mapping[str, frozenset[str]] = _NOTHING
    delete: Mapping[str, frozenset[str]] = _NOTHING

    def apply(self, item: Mapping[str, Any]) -> dict[str, Any]:
        updated = dict(item)
        updated.update(self.set)
        for attribute in self.remove:
            updated.pop(attribute, None)
        for attribute, members in self.add.items():
            updated[attribute] = frozenset(updated.get(attribute, frozenset())) | members
        for attribute, members in self.delete.items():
            remaining = frozenset(updated.get(attribute, frozenset())) - members
            if remaining:
                updated[attribute] = remaining
            else:
                updated.pop(attribute, None)  # DynamoDB removes a set that becomes empty
        return updated

    def render(self, placeholders: Placeholders) -> str:
        clauses = []
        if self.set:
            clauses.append(
                "SET " + ", ".join(f"{placeholders.name(k)} = {placeholders.value(v)}" for k, v in self.set.items())
            )
        if self.remove:
            clauses.append("REMOVE " + ", ".join(placeholders.name(k) for k in self.remove))
        if self.add:
            clauses.append(
                "ADD " + ", ".join(f"{placeholders.name(k)} {placeholders.value(set(v))}" for k, v in self.add.items())
            )
        if self.delete:
            clauses.append(
                "DELETE "
                + ", ".join(f"{placeholders.name(k)} {placeholders.value(set(v))}" for k, v in self.delete.items())
            )
        return " ".join(clauses)


class ConditionalWrite(NamedTuple):
    key: Mapping[str, Any]
    update: Update
    condition: Condition | None = None

    def apply_to(self, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The item after this write, or None when the condition rejects it (the item is left as it was)."""
        if self.condition is not None and not self.condition.matches(item):
            return None
        return self.update.apply({**(item or {}), **self.key})
