"""Fleet provisioning: devices that share a claim certificate get their own certificate (CreateKeysAndCertificate
or CreateCertificateFromCsr) and then RegisterThing with this template; the pre-provisioning hook decides, from
the allow-list, whether the device may be provisioned and what its thing is named.

    device (claim certificate) -> $aws/provisioning-templates/<name>/provision/json {SerialNumber}
      -> pre_provisioning_hook (allow-list table, GetItem) -> allowProvisioning, parameterOverrides
      -> template: thing (in the fleet group), certificate ACTIVE, the shared device policy
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.onboarding.device_access import DeviceAccess
from stacks.platform import Platform
from stacks.platform.checks import acknowledge
from stacks.platform.functions import BackendFunction
from stacks.platform.tables import table

PACKAGE = "pre_provisioning_hook"
# IoT waits 5 s for the hook's answer; the hook itself gives up on DynamoDB after about 3 s and denies. An
# invocation still running after this is of no use to the device, so it is stopped.
HOOK_TIMEOUT = Duration.seconds(4)
HOOK_PAYLOAD_VERSION = "2020-04-01"
REPLIES = ("accepted", "rejected")  # what IoT answers on <request topic>/<reply>
OUTCOMES = [
    "ProvisioningAllowed",
    "DeniedNotOnAllowList",
    "DeniedBlocked",
    "DeniedMalformedRequest",
    "DeniedInvalidAllowListItem",
    "DeniedHookError",
]


def template_body(*, policy_name: str, fleet_group_name: str) -> dict:
    """The template: what RegisterThing creates. The hook always sets ThingName, Model and Batch
    (functions/pre_provisioning_hook/logic.py), so a device cannot choose them; SerialNumber is the device's,
    checked by the hook against the allow-list."""
    return {
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
            "ThingName": {"Type": "String"},
            "Model": {"Type": "String", "Default": "unknown"},
            "Batch": {"Type": "String", "Default": "unknown"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "ThingName"},
                    "AttributePayload": {
                        "serialNumber": {"Ref": "SerialNumber"},
                        "model": {"Ref": "Model"},
                        "batch": {"Ref": "Batch"},
                    },
                    "ThingGroups": [fleet_group_name],
                },
                # A device provisioned again (new keys) keeps its thing; the allow-list's attributes win, and a
                # thing moved out of the fleet group (to quarantine, say) is not put back by re-provisioning.
                "OverrideSettings": {"AttributePayload": "REPLACE", "ThingGroups": "DO_NOTHING"},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }


class FleetProvisioning(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform, access: DeviceAccess) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        base = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"
        self.template_name = f"{platform.config.resource_name_prefix}_fleet"
        self.template_arn = f"{base}:provisioningtemplate/{self.template_name}"

        self.allow_list = table(self, "AllowList", platform=platform, partition_key="serialNumber")
        self.hook = BackendFunction(
            self,
            "PreProvisioningHook",
            platform=platform,
            package=PACKAGE,
            description="Fleet provisioning: allows a device only if its serial number is on the allow-list",
            environment={"ALLOW_LIST_TABLE": self.allow_list.table_name},
            timeout=HOOK_TIMEOUT,
        ).function
        self.allow_list.grant(self.hook, "dynamodb:GetItem")
        # Only IoT, only for this account, only for this template may invoke the hook (confused deputy).
        self.hook.add_permission(
            "InvokedByProvisioningTemplate",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            source_account=stack.account,
            source_arn=self.template_arn,  # built from the name, not the template's attribute: no cycle
        )
        self.hook_permission = self.hook.node.find_child("InvokedByProvisioningTemplate")

        self.role = iam.Role(
            self,
            "ProvisioningRole",
            assumed_by=iam.ServicePrincipal(
                "iot.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="Assumed by IoT to create what the fleet-provisioning and JITP templates describe",
        )
        things = f"{base}:thing/*"  # names come from the allow-list: not known at deployment
        certificates = f"{base}:cert/*"  # created by the devices at provisioning time
        for actions, resources in [
            (["iot:CreateThing", "iot:DescribeThing", "iot:UpdateThing"], [things]),
            (["iot:AddThingToThingGroup"], [things, access.fleet_group_arn]),
            (["iot:DescribeThingGroup"], [access.fleet_group_arn]),
            (["iot:DescribeCertificate", "iot:UpdateCertificate"], [certificates]),
            # Authorized on the principal, the certificate (AWS's service authorization reference).
            (["iot:AttachThingPrincipal"], [certificates]),
            (["iot:AttachPolicy"], [certificates]),
            (["iot:GetPolicy"], [access.policy_arn]),
        ]:
            self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]",
            "Fleet provisioning creates a thing per device, named from the allow-list at provisioning time: no "
            "narrower thing ARN exists at deployment.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*]",
            "Devices create their certificates at provisioning time (CreateKeysAndCertificate); IoT authorizes "
            "AttachPolicy and AttachThingPrincipal on that certificate, whose id no deployment can know.",
        )

        self.template = iot.CfnProvisioningTemplate(
            self,
            "Template",
            template_name=self.template_name,
            template_type="FLEET_PROVISIONING",
            description="Fleet provisioning by claim certificate, allowed per serial number by the allow-list",
            enabled=True,
            provisioning_role_arn=self.role.role_arn,
            pre_provisioning_hook=iot.CfnProvisioningTemplate.ProvisioningHookProperty(
                target_arn=self.hook.function_arn, payload_version=HOOK_PAYLOAD_VERSION
            ),
            template_body=json.dumps(
                template_body(policy_name=access.policy_name, fleet_group_name=access.fleet_group_name)
            ),
        )
        # The policy, the group and the hook's permission exist before a device can use the template.
        self.template.node.add_dependency(access.policy, access.fleet_group, self.hook_permission, self.role)

        self.claim_policy_name = f"{platform.config.resource_name_prefix}_fleet_claim"
        self.claim_policy = self._claim_policy(base)
        acknowledge(
            self.claim_policy,
            "IoT-POL2[iot:Connect:client/*]",
            "A claim certificate is shared by a whole batch of devices, each connecting with a client ID of its "
            "own that exists nowhere before provisioning; the policy lets it do nothing but provision.",
        )
        platform.monitoring.graph_outcomes("Fleet provisioning", PACKAGE, OUTCOMES)

    def _claim_policy(self, base: str) -> iot.CfnPolicy:
        """The IoT policy to attach to the claim certificate devices are manufactured with: it can only get a
        certificate of its own and ask this template to provision it, nothing else."""
        requests = [
            "$aws/certificates/create/json",
            "$aws/certificates/create-from-csr/json",
            f"$aws/provisioning-templates/{self.template_name}/provision/json",
        ]
        return iot.CfnPolicy(
            self,
            "ClaimPolicy",
            policy_name=self.claim_policy_name,
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{base}:client/*"},
                    {"Effect": "Allow", "Action": "iot:Publish", "Resource": [f"{base}:topic/{t}" for t in requests]},
                    {
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": [f"{base}:topicfilter/{t}/{reply}" for t in requests for reply in REPLIES],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Receive",
                        "Resource": [f"{base}:topic/{t}/{reply}" for t in requests for reply in REPLIES],
                    },
                ],
            },
        )
