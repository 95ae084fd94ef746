"""The CAs the operator names in config, registered with IoT with auto-registration on, each with its way of
onboarding: JITR (no registration template: IoT registers each new certificate as pending and publishes the
event the activation function acts on) or JITP (the app's JITP template: IoT provisions the device itself).

JITP needs no code and activates a device within its first connection, but checks nothing beyond IoT's own
(the CA's signature and validity): no CRL, no allow-list, no name rules. JITR costs a function and a failed
first connection, and checks all of them. Pick JITP for a CA whose devices are all trusted for as long as
they are valid; JITR wherever certificates get revoked or must be on a manifest.
"""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.onboarding.device_access import DeviceAccess
from stacks.platform import Platform


def jitp_template_body(*, policy_name: str, fleet_group_name: str) -> dict:
    """What IoT creates for a new certificate of a JITP CA: the thing named as the certificate's common name,
    in the fleet group, the certificate ACTIVE, and the shared device policy."""
    return {
        "Parameters": {
            "AWS::IoT::Certificate::CommonName": {"Type": "String"},
            "AWS::IoT::Certificate::SerialNumber": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                    "AttributePayload": {"certificateSerial": {"Ref": "AWS::IoT::Certificate::SerialNumber"}},
                    "ThingGroups": [fleet_group_name],
                },
                # An existing thing of that name is another device's: its attributes and groups stay.
                "OverrideSettings": {"AttributePayload": "DO_NOTHING", "ThingGroups": "DO_NOTHING"},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }


class CertificateAuthorities(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, access: DeviceAccess, provisioning_role: iam.IRole
    ) -> None:
        super().__init__(scope, construct_id)
        self.jitp_template_name = f"{platform.config.resource_name_prefix}_jitp"
        self.jitp_template = iot.CfnProvisioningTemplate(
            self,
            "JitpTemplate",
            template_name=self.jitp_template_name,
            template_type="JITP",
            description="JITP: a new certificate of a JITP CA gets its thing, the fleet group and the device policy",
            enabled=True,
            provisioning_role_arn=provisioning_role.role_arn,
            template_body=json.dumps(
                jitp_template_body(policy_name=access.policy_name, fleet_group_name=access.fleet_group_name)
            ),
        )
        self.jitp_template.node.add_dependency(access.policy, access.fleet_group, provisioning_role)
        self.registered: dict[str, iot.CfnCACertificate] = {}
        for authority in platform.config.onboarding.certificate_authorities:
            jitp = authority.mode == "JITP"
            registered = iot.CfnCACertificate(
                self,
                authority.name,
                ca_certificate_pem=authority.certificate,
                verification_certificate_pem=authority.verification_certificate,
                certificate_mode="DEFAULT" if authority.verification_certificate else "SNI_ONLY",
                status="ACTIVE",
                auto_registration_status="ENABLE",
                registration_config=iot.CfnCACertificate.RegistrationConfigProperty(template_name=self.jitp_template_name)
                if jitp
                else None,
            )
            if jitp:
                registered.node.add_dependency(self.jitp_template)
            self.registered[authority.name] = registered
