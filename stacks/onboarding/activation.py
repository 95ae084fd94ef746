"""JITR: certificate-registered events -> rule -> SQS (bounded consumers) -> activate_certificate, which checks
each new device certificate against its CA's trust material and provisions or revokes it."""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.onboarding.device_access import DeviceAccess
from stacks.platform import Platform
from stacks.platform.buckets import private_bucket
from stacks.platform.checks import acknowledge
from stacks.platform.consumers import queue_consumer
from stacks.platform.rules import topic_rule

REGISTERED_TOPICS = "$aws/events/certificates/registered/+"
OUTCOMES = ["CertificatesActivated", "CertificatesRevoked", "AlreadyDecided", "MalformedEvents", "FailedEvents"]


class CertificateActivation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform, access: DeviceAccess) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.onboarding
        # The operator's trust material: each CA's CRL (crl/<caCertificateId>.crl) and the allow-list.
        self.trust_bucket = private_bucket(
            self,
            "TrustBucket",
            platform=platform,
            versioned=True,
            why_no_access_logs="The trust bucket holds public CRLs and an allow-list the operator uploads; versioning "
            "keeps every change, and CloudTrail records who made it.",
        )
        consumer = queue_consumer(
            self,
            platform=platform,
            function_id="ActivateCertificate",
            package="activate_certificate",
            description="JITR: checks and activates (or revokes) device certificates as IoT registers them",
            queue_delays={"Registrations": Duration.seconds(0)},
            tables={},
            batch_size=settings.activation_batch_size,
            max_concurrency=settings.activation_max_concurrency,
            purpose="certificate registrations that failed or cannot be decided",
            environment={
                "TRUST_BUCKET": self.trust_bucket.bucket_name,
                "TRUST_REFRESH_SECONDS": str(settings.trust_refresh_seconds),
                "REQUIRE_ALLOW_LIST": "true" if settings.require_allow_list else "false",
                "DEVICE_POLICY_NAME": access.policy_name,
                "FLEET_THING_GROUP": access.fleet_group_name,
            },
        )
        self.function = consumer.function
        # GetObject only: without ListBucket a missing object reads as AccessDenied, which is handled the same.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.trust_bucket.arn_for_objects("crl/*"), self.trust_bucket.arn_for_objects("allow-list.json")],
            )
        )
        stack = Stack.of(self)
        base = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"
        certificates, things = f"{base}:cert/*", f"{base}:thing/*"
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iot:DescribeCertificate", "iot:UpdateCertificate", "iot:AttachThingPrincipal"],
                resources=[certificates],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["iot:DescribeCACertificate"], resources=[f"{base}:cacert/*"])
        )
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["iot:CreateThing"], resources=[things]))
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["iot:AttachPolicy"], resources=[certificates]))
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["iot:AddThingToThingGroup"], resources=[access.fleet_group_arn, things])
        )
        for resource in ("cert/*", "cacert/*", "thing/*"):
            acknowledge(
                self.function.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{resource}]",
                "Certificates, CA certificates and things are created by devices and IoT at run time: their ARNs "
                "cannot be named in advance. The policy and fleet group are named exactly.",
            )
        acknowledge(
            self.function.role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.trust_bucket.node.default_child)}.Arn>/crl/*]",
            "One CRL per CA, named by the CA certificate's id, which is known only once the operator registers it.",
        )
        topic_rule(
            self,
            "RegisteredRule",
            platform=platform,
            name="onboarding_certificates_registered",
            sql=f"SELECT * FROM '{REGISTERED_TOPICS}'",
            action=actions.SqsQueueAction(consumer.queues["Registrations"]),
            description=f"JITR: certificate registrations on {REGISTERED_TOPICS} to the activation queue",
        )
        platform.monitoring.graph_outcomes("Certificate activations", "activate_certificate", OUTCOMES)
