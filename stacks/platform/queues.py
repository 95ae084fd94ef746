"""Queues with dead letters: where bursts wait for bounded consumers, and where failures are kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.platform.checks import acknowledge

if TYPE_CHECKING:
    from stacks.platform.platform import Platform

RETENTION = Duration.days(14)  # SQS's maximum: time to look at a failure before it is gone


def _queue(scope: Construct, construct_id: str, platform: Platform, **properties: object) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        removal_policy=platform.removal_policy,
        **properties,
    )


class DeadLetterQueue(Construct):
    """Keeps what could not be processed (poison records, rejected events, rule errors), with an alarm as
    soon as anything arrives. `delivered_by` names what sends here when no queue's redrive does (the queue is
    then the last stop, with no dead-letter queue of its own, and cdk-nag is told why)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, purpose: str, delivered_by: str | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue = _queue(self, "Queue", platform, retention_period=RETENTION)
        platform.monitoring.alarm_on_dead_letters(self.queue, purpose)
        if delivered_by is not None:
            acknowledge(
                self.queue,
                "AwsSolutions-SQS3",
                f"This queue is the dead-letter store of {delivered_by} and has no consumer; a dead-letter queue "
                "behind it could only hold the same messages again.",
            )


class BufferedQueue(Construct):
    """A work queue in front of a bounded consumer; a message received `max_receive_count` times without
    success moves to `dead_letters`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        dead_letters: DeadLetterQueue,
        consumer_timeout: Duration,
        delay: Duration = Duration.seconds(0),
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue = _queue(
            self,
            "Queue",
            platform,
            retention_period=RETENTION,
            delivery_delay=delay,
            # AWS's advice for Lambda consumers: at least six times the function timeout.
            visibility_timeout=Duration.seconds(6 * consumer_timeout.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letters.queue, max_receive_count=platform.config.max_receive_count
            ),
        )
        platform.monitoring.alarm_on_backlog(self.queue)
