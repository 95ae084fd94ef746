"""What the registry says about a thing (type, attributes, groups), cached per container.

Two IoT calls per thing and cache period instead of two per message: a fleet publishing every few seconds
costs the registry almost nothing. The cache is bounded, the least recently used thing leaving first, so a
flood of thing names cannot grow it without limit. A thing that is not registered is remembered too.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable

from botocore.exceptions import ClientError

from ingest_telemetry.models import Thing

MAX_THINGS = 10_000
UNREGISTERED = Thing(registered=False)


class ThingDirectory:
    def __init__(
        self, iot: Any, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic, max_things: int = MAX_THINGS
    ) -> None:
        self._iot = iot
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_things = max_things
        self._cache: OrderedDict[str, tuple[float, Thing]] = OrderedDict()

    def lookup(self, thing_name: str) -> Thing:
        now = self._clock()
        cached = self._cache.get(thing_name)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(thing_name)
            return cached[1]
        thing = self._describe(thing_name)
        self._cache[thing_name] = (now + self._ttl, thing)
        self._cache.move_to_end(thing_name)
        while len(self._cache) > self._max_things:
            self._cache.popitem(last=False)
        return thing

    def _describe(self, thing_name: str) -> Thing:
        try:
            described = self._iot.describe_thing(thingName=thing_name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return UNREGISTERED
            raise
        groups = [
            group["groupName"]
            for page in self._iot.get_paginator("list_thing_groups_for_thing").paginate(thingName=thing_name)
            for group in page.get("thingGroups", [])
        ]
        return Thing(
            registered=True,
            thingTypeName=described.get("thingTypeName"),
            attributes=dict(described.get("attributes") or {}),
            groups=tuple(sorted(groups)),
        )
