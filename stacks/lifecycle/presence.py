"""Presence: lifecycle events -> rules -> SQS (disconnects delayed) -> track_presence -> DynamoDB."""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration
from constructs import Construct

from stacks.platform import Platform
from stacks.platform.consumers import queue_consumer
from stacks.platform.rules import topic_rule
from stacks.platform.tables import table

OUTCOMES = [
    "ConnectivityUpdated",
    "StaleEventsIgnored",
    "SubscriptionsUpdated",
    "FieldsDropped",
    "MalformedEvents",
    "FailedEvents",
]


class Presence(Construct):
    """Connectivity per client ID (table `Connectivity`) and, when enabled, the topic filters each session
    subscribed to (table `Subscriptions`, expiring a week after the session's last change)."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.presence
        self.connectivity = table(self, "Connectivity", platform=platform, partition_key="clientId")
        tables = {"CONNECTIVITY_TABLE": self.connectivity}
        if settings.track_subscriptions:
            tables["SUBSCRIPTIONS_TABLE"] = table(
                self,
                "Subscriptions",
                platform=platform,
                partition_key="clientId",
                sort_key="sessionIdentifier",
                time_to_live_attribute="expiresAt",
            )
        consumer = queue_consumer(
            self,
            platform=platform,
            function_id="TrackPresence",
            package="track_presence",
            description="Keeps each MQTT client's connectivity from IoT lifecycle events",
            # AWS's advice: wait a few seconds before acting on a disconnect, so that a quick reconnect wins
            # the race instead of flapping the client offline.
            queue_delays={
                "Events": Duration.seconds(0),
                "DelayedDisconnects": Duration.seconds(settings.disconnect_delay_seconds),
            },
            tables=tables,
            batch_size=settings.batch_size,
            max_concurrency=settings.max_concurrency,
            purpose="presence events that failed or were malformed",
        )
        self.function = consumer.function
        rules = [
            ("ConnectedRule", "presence_connected", "$aws/events/presence/connected/+", "Events"),
            ("DisconnectedRule", "presence_disconnected", "$aws/events/presence/disconnected/+", "DelayedDisconnects"),
        ]
        if settings.track_subscriptions:
            rules.append(("SubscriptionsRule", "presence_subscriptions", "$aws/events/subscriptions/+/+", "Events"))
        for rule_id, name, topic_filter, queue_id in rules:
            topic_rule(
                self,
                rule_id,
                platform=platform,
                name=name,
                sql=f"SELECT * FROM '{topic_filter}'",
                action=actions.SqsQueueAction(consumer.queues[queue_id]),
                description=f"Lifecycle events on {topic_filter} to the presence queue {queue_id}",
            )
        platform.monitoring.graph_outcomes("Presence events", "track_presence", OUTCOMES)
