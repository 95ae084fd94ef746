"""Registry inventory: registry events -> rules -> SQS -> track_inventory -> DynamoDB. The app turns the events
on, unless `registry.manageEventConfiguration` leaves the account's event configuration to another owner."""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.platform import Platform
from stacks.platform.consumers import queue_consumer
from stacks.platform.rules import topic_rule
from stacks.platform.sdk_calls import deployment_call
from stacks.platform.tables import table

# Registry event types the inventory consumes; IoT publishes none of them until they are enabled.
EVENT_TYPES = ("THING", "THING_GROUP", "THING_GROUP_MEMBERSHIP")
RULES = {
    "registry_things": ("ThingRule", "$aws/events/thing/+/+"),
    "registry_thing_groups": ("ThingGroupRule", "$aws/events/thingGroup/+/+"),
    "registry_group_memberships": (
        "GroupMembershipRule",
        "$aws/events/thingGroupMembership/thingGroup/+/thing/+/+",
    ),
}
OUTCOMES = ["InventoryUpdated", "StaleEventsIgnored", "MembershipsEnded", "MalformedEvents", "FailedEvents"]


class RegistryInventory(Construct):
    """Things (name, type, attributes, version), thing groups and memberships in table `inventory`."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.registry
        self.event_configurations: cr.AwsCustomResource | None = (
            self._enable_registry_events() if settings.manage_event_configuration else None
        )
        self.inventory = table(
            self, "Inventory", platform=platform, partition_key="pk", sort_key="sk", time_to_live_attribute="expiresAt"
        )
        consumer = queue_consumer(
            self,
            platform=platform,
            function_id="TrackInventory",
            package="track_inventory",
            description="Keeps the thing inventory from IoT registry events",
            queue_delays={"Events": Duration.seconds(0)},
            tables={"INVENTORY_TABLE": self.inventory},
            batch_size=settings.batch_size,
            max_concurrency=settings.max_concurrency,
            purpose="registry events that failed or were malformed",
        )
        self.function = consumer.function
        # A thing's deletion lists the thing's memberships (Query) to end them; a membership event reads
        # whether its thing was deleted (GetItem). Both on this table only.
        self.inventory.grant(self.function, "dynamodb:Query", "dynamodb:GetItem")
        for name, (rule_id, topic_filter) in RULES.items():
            topic_rule(
                self,
                rule_id,
                platform=platform,
                name=name,
                sql=f"SELECT * FROM '{topic_filter}'",
                action=actions.SqsQueueAction(consumer.queues["Events"]),
                description=f"Registry events on {topic_filter} to the inventory queue",
            )
        platform.monitoring.graph_outcomes("Registry events", "track_inventory", OUTCOMES)

    def _enable_registry_events(self) -> cr.AwsCustomResource:
        """UpdateEventConfigurations has no CloudFormation resource. It is account-wide, so deleting the
        stack leaves the events enabled rather than break other consumers of them."""
        call = cr.AwsSdkCall(
            service="Iot",
            action="updateEventConfigurations",
            parameters={"eventConfigurations": {event_type: {"Enabled": True} for event_type in EVENT_TYPES}},
            physical_resource_id=cr.PhysicalResourceId.of("registry-event-configurations"),
        )
        return deployment_call(self, "EventConfigurations", call=call, iam_action="iot:UpdateEventConfigurations")
