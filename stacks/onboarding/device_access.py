"""What every onboarded device gets, whichever way it was onboarded (JITR, JITP, fleet provisioning): the one
shared device policy, written with policy variables so that each device may act only as its own thing, and
the fleet thing group."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.device_policy import device_policy_document
from stacks.platform import Platform


class DeviceAccess(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        prefix = platform.config.resource_name_prefix
        stack = Stack.of(self)
        base = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"
        self.policy_name = f"{prefix}_device"
        self.policy = iot.CfnPolicy(
            self,
            "DevicePolicy",
            policy_name=self.policy_name,
            policy_document=device_policy_document(base),
        )
        self.fleet_group_name = f"{prefix}_fleet"
        self.fleet_group = iot.CfnThingGroup(
            self,
            "FleetGroup",
            thing_group_name=self.fleet_group_name,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description="Every device onboarded by this backend"
            ),
        )
        self.policy_arn = f"{base}:policy/{self.policy_name}"
        self.fleet_group_arn = f"{base}:thinggroup/{self.fleet_group_name}"
