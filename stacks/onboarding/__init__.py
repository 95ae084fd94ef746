"""Onboarding capability: devices get a thing, the shared device policy and the fleet group, by JITR
activation, JITP or fleet provisioning."""

from __future__ import annotations

from constructs import Construct

from stacks.onboarding.activation import CertificateActivation
from stacks.onboarding.certificate_authorities import CertificateAuthorities
from stacks.onboarding.device_access import DeviceAccess
from stacks.onboarding.fleet_provisioning import FleetProvisioning
from stacks.platform import Platform


class Onboarding(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        self.access = DeviceAccess(self, "DeviceAccess", platform=platform)
        self.fleet_provisioning = FleetProvisioning(self, "FleetProvisioning", platform=platform, access=self.access)
        self.activation = CertificateActivation(self, "Activation", platform=platform, access=self.access)
        # JITP's template creates what the fleet-provisioning template does: the same role serves both.
        self.certificate_authorities = CertificateAuthorities(
            self,
            "CertificateAuthorities",
            platform=platform,
            access=self.access,
            provisioning_role=self.fleet_provisioning.role,
        )


__all__ = ["DeviceAccess", "Onboarding"]
