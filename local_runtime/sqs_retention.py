"""moto 5.2.5's SQS checks each message a ReceiveMessage returns against the queue's retention period by
computing every attribute of the queue, ApproximateNumberOfMessages, ...NotVisible and ...Delayed among them,
each a pass over every message in the queue: a receive of 10 made 30 passes, and once a reconnect storm had
queued a few thousand lifecycle events, these passes took most of the runtime's time (profiled in the device
benchmark, `python -m benchmarks.devices`). The check here reads the retention period alone; what it decides is
moto's, unchanged.
"""

from __future__ import annotations

from typing import Any, Callable


def install() -> Callable[[], None]:
    """Replaces moto's retention check as the module's docstring says; returns what undoes it."""
    from moto.core.utils import unix_time  # moto loads its backends lazily: so does this
    from moto.sqs.models import SQSBackend

    moto_check = SQSBackend.is_message_valid_based_on_retention_period

    def is_message_valid_based_on_retention_period(backend: SQSBackend, queue_name: str, message: Any) -> bool:
        retention_s = int(backend.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]

    def uninstall() -> None:
        SQSBackend.is_message_valid_based_on_retention_period = moto_check  # type: ignore[method-assign]

    return uninstall
