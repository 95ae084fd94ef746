"""cdk-nag's AwsSolutions checks and the IoT checks (iot_checks.py) on the whole app, and the one way to acknowledge
a finding of either."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from stacks.platform.iot_checks import IotChecks


def enable_checks(app: App) -> None:
    """Synthesis fails on any finding that is not acknowledged, but for the IoT checks' warnings (printed)."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), IotChecks(app))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accepts `finding` (a rule id, with its [...] detail when the rule has one) on `scope` and below:
    always the narrowest construct that has it, with the reason it is right there. Resources are written as
    cdk-nag reports them for an environment-agnostic stack (`<AWS::Region>`, `<AWS::AccountId>`); a stack with
    an account and region (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION) has their values there instead."""
    stack = Stack.of(scope)
    for placeholder, value in (("<AWS::Region>", stack.region), ("<AWS::AccountId>", stack.account)):
        if not Token.is_unresolved(value):
            finding = finding.replace(placeholder, value)
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))
