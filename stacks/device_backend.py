"""The deployment unit: every capability of the IoT device backend in one stack."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from stacks.authorizer import DeviceAuthorizer
from stacks.config import BackendConfig
from stacks.defender import DeviceDefender
from stacks.lifecycle import Presence, RegistryInventory
from stacks.onboarding import Onboarding
from stacks.platform import Platform
from stacks.telemetry import RawArchive, TelemetryIngestion


class DeviceBackendStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: BackendConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="IoT Core device backend", **kwargs)
        self.platform = Platform(self, "Platform", config=config)
        self.presence = Presence(self, "Presence", platform=self.platform)
        self.registry = RegistryInventory(self, "Registry", platform=self.platform)
        self.onboarding = Onboarding(self, "Onboarding", platform=self.platform)
        self.telemetry = TelemetryIngestion(self, "Telemetry", platform=self.platform)
        self.archive = RawArchive(self, "TelemetryArchive", platform=self.platform)
        if config.authorizer.enabled:
            self.authorizer = DeviceAuthorizer(self, "Authorizer", platform=self.platform)
        if config.defender.enabled:
            self.defender = DeviceDefender(self, "Defender", platform=self.platform)
