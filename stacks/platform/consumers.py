"""The one way to feed a function from queues: the pattern every event-driven capability uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.platform.functions import BackendFunction
from stacks.platform.queues import BufferedQueue, DeadLetterQueue

if TYPE_CHECKING:
    from stacks.platform.platform import Platform

TIMEOUT = Duration.seconds(30)


@dataclass(frozen=True)
class QueueConsumer:
    function: lambda_.Function
    queues: dict[str, sqs.Queue]
    dead_letters: DeadLetterQueue


def queue_consumer(
    scope: Construct,
    *,
    platform: Platform,
    function_id: str,
    package: str,
    description: str,
    queue_delays: dict[str, Duration],
    tables: dict[str, dynamodb.Table],
    batch_size: int,
    max_concurrency: int,
    purpose: str,
    environment: dict[str, str] | None = None,
) -> QueueConsumer:
    """Buffered queues (construct id -> delivery delay) -> SQS batches with partial-failure reporting and
    bounded concurrency -> the function of `package`, which may UpdateItem in `tables` (environment variable
    -> table) and reject malformed events to the one dead-letter queue where poison messages also land.
    The parts are created directly in `scope`, so their construct paths name the capability."""
    dead_letters = DeadLetterQueue(scope, "DeadLetters", platform=platform, purpose=purpose)
    queues = {
        queue_id: BufferedQueue(
            scope, queue_id, platform=platform, dead_letters=dead_letters, consumer_timeout=TIMEOUT, delay=delay
        ).queue
        for queue_id, delay in queue_delays.items()
    }
    function = BackendFunction(
        scope,
        function_id,
        platform=platform,
        package=package,
        description=description,
        environment={
            **{variable: table.table_name for variable, table in tables.items()},
            "DEAD_LETTER_QUEUE_URL": dead_letters.queue.queue_url,
            **(environment or {}),
        },
        timeout=TIMEOUT,
    ).function
    for table in tables.values():
        table.grant(function, "dynamodb:UpdateItem")
    dead_letters.queue.grant(function, "sqs:SendMessage")
    for queue in queues.values():
        function.add_event_source(
            event_sources.SqsEventSource(
                queue, batch_size=batch_size, max_concurrency=max_concurrency, report_batch_item_failures=True
            )
        )
    return QueueConsumer(function=function, queues=queues, dead_letters=dead_letters)
