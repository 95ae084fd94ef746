"""A DynamoDB table in memory that applies ConditionalWrites with the semantics the functions rely on."""

from __future__ import annotations

from typing import Any, Mapping

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

    def read(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.get(**key)

    def sort_keys(self, partition: Mapping[str, str], sort_key: str, prefix: str) -> list[str]:
        return sorted(
            item[sort_key]
            for item in self.items.values()
            if all(item.get(name) == value for name, value in partition.items())
            and str(item.get(sort_key, "")).startswith(prefix)
        )
