"""A DynamoDB table in memory that applies ConditionalWrites with the semantics the functions rely on."""

from __future__ import annotations

from typing import Any

from event_processing.conditional_writes import ConditionalWrite


class MemoryTable:
    def __init__(self) -> None:
        self.items: dict[tuple, dict[str, Any]] = {}

    def write(self, write: ConditionalWrite) -> bool:
        key = tuple(sorted(write.key.items()))
        updated = write.apply_to(self.items.get(key))
        if updated is None:
            return False
        self.items[key] = updated
        return True

    def get(self, **key: Any) -> dict[str, Any] | None:
        return self.items.get(tuple(sorted(key.items())))
