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
    may publish to; a thing's topics (`$aws/things/...`) are the exception, and clients may publish to Basic
    Ingest topics (basic_ingest())."""
    return topic.startswith("$") and not topic.startswith("$aws/things/")


BASIC_INGEST_PREFIX = "$aws/rules/"


@dataclass(frozen=True)
class BasicIngest:
    """A message sent with Basic Ingest: to `$aws/rules/<rule>/<topic>`, for that rule alone
    (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html)."""

    rule: str
    topic: str  # what follows the prefix: the topic the rule's topic() sees ("The initial prefix ... isn't
    # available to the topic(Decimal) function"), and the one IoT's topic limits count


def basic_ingest(topic: str) -> BasicIngest | None:
    """The Basic Ingest a topic names, or None when it does not start with `$aws/rules/<rule>`."""
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rule, _, rest = topic[len(BASIC_INGEST_PREFIX) :].partition("/")
    return BasicIngest(rule, rest) if rule else None


def may_publish_to(topic: str) -> bool:
    """Whether a client, a device or an application through iot-data, may publish to `topic`: not to IoT's
    reserved topics, but to a thing's and to Basic Ingest ones."""
    return not is_reserved(topic) or basic_ingest(topic) is not None
