"""IoT Core's message broker, for the messages the app's functions publish (iot-data Publish): as on AWS, each
goes through the rules engine on its topic, and reaches the devices subscribed to a topic filter matching it.

A function's Publish reaches the embedded AWS, which refuses a reserved topic as IoT does (the function sees
the error) and keeps what it accepts; the invocation that published waits in the functions' outbox
(functions.py) until the event sources poll, which is when the broker routes its messages, in order. So
`drain()` returns only after the published messages and everything they trigger. Such a message did not come
over MQTT: the rules see clientid() n/a, and no principal() (on AWS, the function role's session).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from local_runtime.activity import Observer, Published
from local_runtime.functions import Invocation


class Broker:
    def __init__(self, outbox: deque[Invocation], publish: Callable[[str, bytes], Any], observer: Observer) -> None:
        self._outbox = outbox
        self._publish = publish  # runs the rules on one message
        self._observer = observer

    def poll(self) -> bool:
        """Routes the messages the functions published since the last poll. True if there were any."""
        routed = bool(self._outbox)
        while self._outbox:
            invocation = self._outbox.popleft()
            for topic, payload in invocation.published:
                self._observer(Published(topic, payload, invocation.function))
                self._publish(topic, payload)
        return routed
