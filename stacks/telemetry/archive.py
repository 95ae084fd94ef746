"""The raw archive: every device message of the application, as it arrived with who sent it and when, kept
in S3 through Firehose. Native actions only: where no code is needed, none runs.

The archive is a record: nothing in the app deletes or rewrites it. Firehose's role may only add objects under
the stream's two prefixes (and read back and abort its own uploads, as delivery needs: AWS's list for an S3
destination, https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3), and write
its error log. The bucket is versioned, so an object replaced or deleted by anyone else is kept as a noncurrent
version; with `telemetry.archiveObjectLock`, S3 Object Lock refuses even that for the configured days.
"""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS, ObjectLock
from stacks.platform import Platform
from stacks.platform.buckets import private_bucket
from stacks.platform.checks import acknowledge
from stacks.platform.rules import topic_rule

# Firehose writes an object per buffer: a minute or 5 MiB, whichever comes first, gzipped, by day (UTC).
BUFFER_INTERVAL_SECONDS = 60
BUFFER_SIZE_MB = 5
DATA_PREFIX = "raw/!{timestamp:yyyy/MM/dd}/"
ERROR_PREFIX = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
# The literal part of each prefix: the only keys Firehose writes.
WRITTEN_UNDER = ("raw/", "errors/")
Stream = firehose.CfnDeliveryStream


class RawArchive(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.telemetry
        lock = settings.archive_object_lock
        self.bucket = private_bucket(
            self,
            "Bucket",
            platform=platform,
            versioned=True,
            object_lock_enabled=True if lock else None,
            object_lock_default_retention=_retention(lock) if lock else None,
            # A message leaves the archive archiveDays after it arrived; the version S3 keeps then (and any
            # version replaced or deleted earlier) is removed archiveDays after it stopped being current.
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(settings.archive_days),
                    noncurrent_version_expiration=Duration.days(settings.archive_days),
                )
            ],
            why_no_access_logs="Only Firehose writes here, with its own role; CloudTrail data events are where an "
            "account records object-level access.",
        )
        log_group = logs.LogGroup(
            self,
            "DeliveryLogs",
            retention=getattr(logs.RetentionDays, LOG_RETENTION_DAYS[platform.config.log_retention_days]),
            removal_policy=platform.removal_policy,
        )
        log_stream = logs.LogStream(self, "DeliveryLogStream", log_group=log_group, removal_policy=platform.removal_policy)
        role = self._delivery_role(log_group, log_stream)
        # Stream/Resource: the path, and so the logical id, the stream had as aws-cdk-lib's DeliveryStream (a new
        # one would replace the stream, and lose what its buffer holds).
        stream = Stream(
            Construct(self, "Stream"),
            "Resource",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=Stream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=Stream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                compression_format="GZIP",
                prefix=DATA_PREFIX,
                error_output_prefix=ERROR_PREFIX,
                buffering_hints=Stream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_INTERVAL_SECONDS, size_in_m_bs=BUFFER_SIZE_MB
                ),
                cloud_watch_logging_options=Stream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name, log_stream_name=log_stream.log_stream_name
                ),
            ),
        )
        self.stream = firehose.DeliveryStream.from_delivery_stream_attributes(
            self, "StreamRef", delivery_stream_arn=stream.attr_arn, delivery_stream_name=stream.ref
        )  # what the rule's action (and its grant to put records) takes
        # aws-cdk-lib's Firehose module adds a mapping of Firehose's IP ranges to the stack, which only
        # destinations inside a VPC (Redshift, Splunk) read; left in, it is a dead mapping that cfn-lint flags.
        Stack.of(self).node.try_remove_child("@aws-cdk--aws-kinesisfirehose.CidrBlocks")
        topic_filter = f"dt/{settings.application}/+/+"
        topic_rule(
            self,
            "Rule",
            platform=platform,
            name="telemetry_archive",
            # Every kind, known or not, valid or not, JSON or not: the bytes devices sent, for replay and audit.
            sql=(
                "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, "
                f"timestamp() AS receivedAt FROM '{topic_filter}'"
            ),
            action=actions.FirehosePutRecordAction(self.stream, record_separator=actions.FirehoseRecordSeparator.NEWLINE),
            description=f"Device messages on {topic_filter}, as they arrived, to the raw archive",
        )

    def _delivery_role(self, log_group: logs.LogGroup, log_stream: logs.LogStream) -> iam.Role:
        """Firehose's role: the delivery's own actions on this bucket, its two prefixes and its log stream. The
        policy is inline, so that it exists before the stream is created (Firehose checks its access then)."""
        stack = Stack.of(self)
        objects = [self.bucket.arn_for_objects(f"{prefix}*") for prefix in WRITTEN_UNDER]
        log_stream_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{log_group.log_group_name}:log-stream:{log_stream.log_stream_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role = iam.Role(
            self,
            "DeliveryRole",
            # Only Firehose acting for this account (AWS's confused-deputy guard for Firehose roles).
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": stack.account}}
            ),
            description="Lets Firehose add objects to the raw archive, and nothing else",
            inline_policies={
                "Delivery": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                            resources=[self.bucket.bucket_arn],
                        ),
                        iam.PolicyStatement(
                            actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"], resources=objects
                        ),
                        iam.PolicyStatement(actions=["logs:PutLogEvents"], resources=[log_stream_arn]),
                    ]
                )
            },
        )
        bucket_arn = f"<{stack.get_logical_id(self.bucket.node.default_child)}.Arn>"  # as cdk-nag names it
        for prefix in WRITTEN_UNDER:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]",
                "Firehose names each object when it delivers it (the prefix, then the stream, a time and a UUID): its "
                "objects can only be named by their prefix, here the stream's data and error prefixes.",
            )
        return role


def _retention(lock: ObjectLock) -> s3.ObjectLockRetention:
    period = Duration.days(lock.days)
    if lock.mode == "COMPLIANCE":
        return s3.ObjectLockRetention.compliance(period)
    return s3.ObjectLockRetention.governance(period)
