"""MQTT topics and topic filters as AWS IoT matches them (the rules' FROM, and what a subscriber receives)."""

from __future__ import annotations

from dataclasses import dataclass

from local_runtime.errors import LocalRuntimeError


@dataclass(frozen=True)
class TopicFilter:
    text: str

    @staticmethod
    def parse(text: str, where: str) -> TopicFilter:
        levels = text.split("/")
        partial_wildcard = any(("+" in level or "#" in level) and level not in ("+", "#") for level in levels)
        if not text or partial_wildcard or "#" in levels[:-1]:
            raise LocalRuntimeError(
                f"{where}: {text!r} is not a valid topic filter ('+' and '#' fill a whole level, '#' only the last)"
            )
        return TopicFilter(text)

    def matches(self, topic: str) -> bool:
        """`+` matches exactly one level; `#` (last) matches one or more further levels. AWS IoT's rules
        documentation says `topic/#` matches topics that begin with `topic/`, and its guide that `Sensor/#`
        does not match `Sensor`, unlike the MQTT specification (where `#` also matches the parent level):
        AWS is followed. As in MQTT, a filter starting with a wildcard does not match a topic starting with
        `$` (the reserved topics, such as `$aws/events/...`)."""
        if topic.startswith("$") and self.text[:1] in ("+", "#"):
            return False
        filter_levels, topic_levels = self.text.split("/"), topic.split("/")
        for index, level in enumerate(filter_levels):
            if level == "#":
                return len(topic_levels) > index
            if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
                return False
        return len(topic_levels) == len(filter_levels)


def is_reserved(topic: str) -> bool:
    """Whether `topic` is one of IoT Core's own topics (`$...`), which neither a rule's republish nor a client
    may publish to; a thing's topics (`$aws/things/...`) are the exception."""
    return topic.startswith("$") and not topic.startswith("$aws/things/")
