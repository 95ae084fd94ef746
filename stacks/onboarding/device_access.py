"""What every onboarded device gets, whichever way it was onboarded (JITR, JITP, fleet provisioning): the one
shared device policy, written with policy variables so that each device may act only as its own thing, and
the fleet thing group."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.platform import Platform

THING = "${iot:Connection.Thing.ThingName}"
# The topic convention: devices publish data on dt/<app>/<thing>/<kind> and receive commands on
# cmd/<app>/<thing>/<command>; plus their own shadow.
DEVICE_TOPICS = {
    "publish": (f"dt/*/{THING}/*", f"$aws/things/{THING}/shadow/*"),
    "receive": (f"cmd/*/{THING}/*", f"$aws/things/{THING}/shadow/*"),
}


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
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # Only as its own thing, and only with a certificate attached to that thing.
                        "Effect": "Allow",
                        "Action": "iot:Connect",
                        "Resource": f"{base}:client/{THING}",
                        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Publish",
                        "Resource": [f"{base}:topic/{topic}" for topic in DEVICE_TOPICS["publish"]],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": [f"{base}:topicfilter/{topic}" for topic in DEVICE_TOPICS["receive"]],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Receive",
                        "Resource": [f"{base}:topic/{topic}" for topic in DEVICE_TOPICS["receive"]],
                    },
                ],
            },
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
