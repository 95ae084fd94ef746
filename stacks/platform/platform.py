"""What every capability shares: configuration, the dependency layer, the rule-error queue, monitoring."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from constructs import Construct

from stacks.config import BackendConfig
from stacks.platform.functions import dependency_layer
from stacks.platform.monitoring import Monitoring
from stacks.platform.queues import DeadLetterQueue


class Platform(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: BackendConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.removal_policy = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.monitoring = Monitoring(self, "Monitoring", alarm_email=config.alarm_email, namespace=config.stage_metrics_namespace)
        self.dependencies = dependency_layer(self, "Dependencies")
        self.rule_errors = DeadLetterQueue(
            self,
            "RuleErrors",
            platform=self,
            purpose="topic rule actions that failed (errorAction)",
            delivered_by="the topic rules' errorAction",
        )
