"""Custom authorizer capability: devices connect with a signed token instead of a client certificate.

    device (MQTT username/password, HTTP header or query string, WebSocket)
      -> IoT: authorizer <namePrefix>_devices (token signing: checks the token's RSA signature first)
      -> authorize_device (JWT verified against the JWKS in the SSM parameter; algorithm, iss, aud, exp, nbf)
      -> isAuthenticated, principalId, a policy scoped to the device's own client ID and topics
"""

from __future__ import annotations

import json

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import BackendConfig, ConfigError
from stacks.platform import Platform
from stacks.platform.checks import acknowledge
from stacks.platform.functions import BackendFunction

PACKAGE = "authorize_device"
# A device waits on this answer and IoT gives the function 5 s at most: anything later is a denial anyway.
TIMEOUT = Duration.seconds(5)
# More memory is more CPU: a shorter cold start (imports, first key parse) and faster signature checks, for a
# function that answers a waiting device at every connection.
MEMORY_MB = 512
# SSM's standard tier holds 4 KB (several RSA or EC keys, enough for a rotation); the advanced tier 8 KB.
STANDARD_PARAMETER_LIMIT = 4096
ADVANCED_PARAMETER_LIMIT = 8192
# Every outcome the function counts (functions/authorize_device/models.py): one metric each; and its failures
# to read the keys (it keeps the keys it has, or denies when it has none).
OUTCOMES = [
    "Authorized",
    "DeniedMalformedRequest",
    "DeniedOversized",
    "DeniedNoToken",
    "DeniedMalformedToken",
    "DeniedWrongAlgorithm",
    "DeniedUnknownKey",
    "DeniedBadSignature",
    "DeniedNonCanonicalSignature",
    "DeniedExpired",
    "DeniedNotYetValid",
    "DeniedExpiresTooSoon",
    "DeniedWrongIssuer",
    "DeniedWrongAudience",
    "DeniedMissingClaim",
    "DeniedInvalidToken",
    "DeniedInvalidClientId",
    "DeniedClientIdMismatch",
    "DeniedMissingConfiguration",
    "DeniedPolicyTooLarge",
    "DeniedAuthorizerError",
    "KeysLoadFailed",
]
# Denials (invocations that did not end Authorized, failed ones included) in DENY_PERIOD that raise the alarm:
# a fleet locked out (keys rotated wrongly, clock or configuration drift) or someone trying tokens.
DENY_BURST = 100
DENY_PERIOD = Duration.minutes(5)


def authorizer_name(config: BackendConfig) -> str:
    """The name devices give IoT (x-amz-customauthorizer-name) to connect through this authorizer."""
    return f"{config.resource_name_prefix}_devices"


class DeviceAuthorizer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        config = platform.config
        settings = config.authorizer
        if settings.jwt_keys is None:  # load_config refuses this already; a construct built by hand may not
            raise ConfigError("the custom authorizer needs deviceBackend.authorizer.jwtKeys")
        stack = Stack.of(self)
        self.authorizer_name = authorizer_name(config)

        # The public keys that verify device tokens. A parameter, not the function's environment: the function
        # reads it again every keysRefreshSeconds, so keys can be rotated without redeploying the function.
        size = len(settings.jwt_keys.encode())
        if size > ADVANCED_PARAMETER_LIMIT:
            raise ConfigError(
                f"the JWKS of deviceBackend.authorizer.jwtKeys is {size} bytes; an SSM parameter holds at most "
                f"{ADVANCED_PARAMETER_LIMIT}: keep only the keys in use"
            )
        self.keys_parameter = ssm.StringParameter(
            self,
            "TokenKeys",
            parameter_name=f"/{config.resource_name_prefix}/authorizer/jwt-keys",
            description="Public keys (JWKS) that verify device tokens at the custom authorizer",
            string_value=settings.jwt_keys,
            tier=ssm.ParameterTier.STANDARD if size <= STANDARD_PARAMETER_LIMIT else ssm.ParameterTier.ADVANCED,
        )

        self.function = BackendFunction(
            self,
            "AuthorizeDevice",
            platform=platform,
            package=PACKAGE,
            description="Custom authorizer: verifies device tokens and returns a policy scoped to the device",
            environment={
                "TOKEN_KEYS_PARAMETER": self.keys_parameter.parameter_name,
                "TOKEN_ALGORITHM": settings.jwt_algorithm,
                "TOKEN_ISSUER": settings.jwt_issuer,
                "TOKEN_AUDIENCE": settings.jwt_audience,
                "CLOCK_SKEW_SECONDS": str(settings.clock_skew_seconds),
                "KEYS_REFRESH_SECONDS": str(settings.keys_refresh_seconds),
                "TOKEN_KEY_NAME": settings.token_key_name,
                "DEVICE_TOPICS": json.dumps(
                    {action: list(templates) for action, templates in settings.topics}, separators=(",", ":")
                ),
            },
            timeout=TIMEOUT,
            memory_size=MEMORY_MB,
            reserved_concurrency=settings.reserved_concurrency,
        ).function
        # GetParameter on this one parameter: not grant_read, which adds GetParameters, GetParameterHistory and
        # DescribeParameters the function does not use.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[self.keys_parameter.parameter_arn])
        )

        signing = not settings.token_signing_disabled
        self.authorizer = iot.CfnAuthorizer(
            self,
            "Authorizer",
            authorizer_name=self.authorizer_name,
            authorizer_function_arn=self.function.function_arn,
            status="ACTIVE",
            token_key_name=settings.token_key_name,
            signing_disabled=not signing,
            token_signing_public_keys=dict(settings.token_signing_public_keys) if signing else None,
            # HTTP publishes reuse the answer for its refreshAfterInSeconds (which never outlives the token)
            # instead of invoking the function at every request.
            enable_caching_for_http=True,
        )
        if settings.reserved_concurrency is None:
            acknowledge(
                self.authorizer,
                "IoT-AUT3",
                "Reserving concurrency takes it from the account's quota, which new accounts have little of; the "
                "operator reserves it with deviceBackend.authorizer.reservedConcurrency, and the dashboard and "
                "alarms watch the function's throttles.",
            )
        if not signing:
            # The operator's explicit choice (IoT-AUT1 accepted); synth still says what it costs, every time.
            acknowledge(
                self.authorizer,
                "IoT-AUT1",
                "deviceBackend.authorizer.tokenSigningDisabled is true: the operator's devices cannot sign their "
                "tokens, and the function verifies every token's JWT signature itself.",
            )
            Annotations.of(self.authorizer).add_warning_v2(
                "device-backend:authorizer-signing-disabled",
                "IoT token signing is off (deviceBackend.authorizer.tokenSigningDisabled): IoT invokes the "
                "authorizer for every token presented, forged or not, and the function's JWT check is the only "
                "one. Needed for clients that cannot sign (a token in the MQTT password); costs an invocation per "
                "forged attempt.",
            )

        # Only IoT, only for this account, only through this authorizer may invoke the function.
        self.function.add_permission(
            "InvokedByAuthorizer",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            action="lambda:InvokeFunction",
            source_account=stack.account,
            source_arn=self.authorizer.attr_arn,
        )
        self.permission = self.function.node.find_child("InvokedByAuthorizer")

        self.domain_configuration: iot.CfnDomainConfiguration | None = None
        if settings.default_for_domain:
            # An AWS-managed domain (its own endpoint) whose connections use this authorizer unless they name
            # one: devices need not send x-amz-customauthorizer-name. No override: a connection to this domain
            # is authorized by this authorizer and no other.
            self.domain_configuration = iot.CfnDomainConfiguration(
                self,
                "DomainConfiguration",
                domain_configuration_name=self.authorizer_name,
                domain_configuration_status="ENABLED",
                service_type="DATA",
                authorizer_config=iot.CfnDomainConfiguration.AuthorizerConfigProperty(
                    default_authorizer_name=self.authorizer_name, allow_authorizer_override=False
                ),
            )
            # Devices can connect as soon as the domain exists: the function must be invokable by then.
            self.domain_configuration.node.add_dependency(self.authorizer, self.permission)

        monitoring = platform.monitoring
        monitoring.graph_outcomes("Device authorizations", PACKAGE, OUTCOMES)
        denials = cloudwatch.MathExpression(
            expression="FILL(invocations, 0) - FILL(authorized, 0)",
            using_metrics={
                "invocations": self.function.metric_invocations(period=DENY_PERIOD, statistic="Sum"),
                "authorized": cloudwatch.Metric(
                    namespace=config.stage_metrics_namespace,
                    metric_name="Authorized",
                    dimensions_map={"service": PACKAGE},
                    period=DENY_PERIOD,
                    statistic="Sum",
                ),
            },
            label="Denied connections",
            period=DENY_PERIOD,
        )
        monitoring.alarm_on_burst(
            f"{PACKAGE}DenyBurst",
            denials,
            f"The custom authorizer denied {DENY_BURST} or more connections in {DENY_PERIOD.to_minutes()} minutes: "
            "devices locked out (keys, clocks, configuration) or tokens being tried; the dashboard's "
            "'Device authorizations' shows why",
            threshold=DENY_BURST,
        )


__all__ = ["DeviceAuthorizer"]
