"""Presence: lifecycle events -> rules -> SQS (disconnects delayed) -> track_presence -> DynamoDB."""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from stacks.platform import Platform
from stacks.platform.functions import BackendFunction
from stacks.platform.queues import BufferedQueue, DeadLetterQueue
from stacks.platform.rules import topic_rule
from stacks.platform.tables import table

TIMEOUT = Duration.seconds(30)
OUTCOMES = ["ConnectivityUpdated", "StaleEventsIgnored", "SubscriptionsUpdated", "MalformedEvents"]


class Presence(Construct):
    """Connectivity per client ID (table `connectivity`) and, when enabled, the topic filters each session
    subscribed to (table `subscriptions`, expiring a week after the session's last change)."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.presence
        self.connectivity = table(self, "Connectivity", platform=platform, partition_key="clientId")
        self.subscriptions = (
            table(
                self,
                "Subscriptions",
                platform=platform,
                partition_key="clientId",
                sort_key="sessionIdentifier",
                time_to_live_attribute="expiresAt",
            )
            if settings.track_subscriptions
            else None
        )
        self.dead_letters = DeadLetterQueue(
            self, "DeadLetters", platform=platform, purpose="presence events that failed or were malformed"
        )
        self.events = BufferedQueue(
            self, "Events", platform=platform, dead_letters=self.dead_letters, consumer_timeout=TIMEOUT
        )
        # AWS's advice: wait a few seconds before acting on a disconnect, so a quick reconnect wins the race
        # instead of flapping the client offline.
        self.disconnects = BufferedQueue(
            self,
            "DelayedDisconnects",
            platform=platform,
            dead_letters=self.dead_letters,
            consumer_timeout=TIMEOUT,
            delay=Duration.seconds(settings.disconnect_delay_seconds),
        )

        environment = {
            "CONNECTIVITY_TABLE": self.connectivity.table_name,
            "DEAD_LETTER_QUEUE_URL": self.dead_letters.queue.queue_url,
        }
        if self.subscriptions is not None:
            environment["SUBSCRIPTIONS_TABLE"] = self.subscriptions.table_name
        self.function = BackendFunction(
            self,
            "TrackPresence",
            platform=platform,
            package="track_presence",
            description="Keeps each MQTT client's connectivity from IoT lifecycle events",
            environment=environment,
            timeout=TIMEOUT,
        ).function
        for written in (self.connectivity, self.subscriptions):
            if written is not None:
                written.grant(self.function, "dynamodb:UpdateItem")
        self.dead_letters.queue.grant(self.function, "sqs:SendMessage")
        for buffered in (self.events, self.disconnects):
            self.function.add_event_source(
                event_sources.SqsEventSource(
                    buffered.queue,
                    batch_size=settings.batch_size,
                    max_concurrency=settings.max_concurrency,
                    report_batch_item_failures=True,
                )
            )

        topic_rule(
            self,
            "ConnectedRule",
            platform=platform,
            name="presence_connected",
            sql="SELECT * FROM '$aws/events/presence/connected/+'",
            action=actions.SqsQueueAction(self.events.queue),
            description="Client connect events to the presence queue",
        )
        topic_rule(
            self,
            "DisconnectedRule",
            platform=platform,
            name="presence_disconnected",
            sql="SELECT * FROM '$aws/events/presence/disconnected/+'",
            action=actions.SqsQueueAction(self.disconnects.queue),
            description="Client disconnect events to the delayed presence queue",
        )
        if self.subscriptions is not None:
            topic_rule(
                self,
                "SubscriptionsRule",
                platform=platform,
                name="presence_subscriptions",
                sql="SELECT * FROM '$aws/events/subscriptions/+/+'",
                action=actions.SqsQueueAction(self.events.queue),
                description="Client subscribe and unsubscribe events to the presence queue",
            )
        platform.monitoring.graph_outcomes("Presence events", "track_presence", OUTCOMES)
