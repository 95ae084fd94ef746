"""moto 5.2.5's SQS, with its cost per message flat in the queue's depth. moto computes every attribute of a
queue (ApproximateNumberOfMessages, ...NotVisible and ...Delayed among them, each a pass over every message in
the queue) where it needs one:
- ReceiveMessage checks each message it returns against the retention period through them: a receive of 10
  made 30 passes;
- SendMessage (and its FIFO checks) reads ContentBasedDeduplication through them: 3 passes per message sent.
Once a reconnect storm had queued a few thousand lifecycle events, these passes took most of the runtime's
time (profiled in the device benchmark, `python -m benchmarks.devices`). Here the retention check reads the
retention period alone, and a queue's attributes are computed only when an attribute other than
ContentBasedDeduplication is read (GetQueueAttributes). What moto decides is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable

CONTENT_BASED_DEDUPLICATION = "ContentBasedDeduplication"


class QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's Queue.attributes gives them, computed on first use, except
    ContentBasedDeduplication, read from the queue as moto renders it (FIFO queues only, "true"/"false")."""

    def __init__(self, queue: Any, compute: Callable[[Any], dict[str, Any]]) -> None:
        self._queue, self._compute = queue, compute
        self._computed: dict[str, Any] | None = None

    def _all(self) -> dict[str, Any]:
        if self._computed is None:
            self._computed = self._compute(self._queue)
        return self._computed

    def get(self, key: str, default: Any = None) -> Any:
        if key == CONTENT_BASED_DEDUPLICATION and self._computed is None:
            if not self._queue.fifo_queue:
                return default
            value = self._queue.content_based_deduplication
            return str(value).lower() if isinstance(value, bool) else value
        return self._all().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def install() -> Callable[[], None]:
    """Replaces moto's retention check and Queue.attributes as the module's docstring says; returns what
    undoes it."""
    from moto.core.utils import unix_time  # moto loads its backends lazily: so does this
    from moto.sqs.models import Queue, SQSBackend

    moto_check = SQSBackend.is_message_valid_based_on_retention_period
    moto_attributes = Queue.__dict__["attributes"]

    def is_message_valid_based_on_retention_period(backend: SQSBackend, queue_name: str, message: Any) -> bool:
        retention_s = int(backend.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    Queue.attributes = property(lambda queue: QueueAttributes(queue, moto_attributes.fget))  # type: ignore[assignment]

    def uninstall() -> None:
        SQSBackend.is_message_valid_based_on_retention_period = moto_check  # type: ignore[method-assign]
        Queue.attributes = moto_attributes  # type: ignore[assignment]

    return uninstall
