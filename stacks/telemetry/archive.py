"""The raw archive: every device message of the application, as it arrived with who sent it and when, kept
in S3 through Firehose. Native actions only: where no code is needed, none runs."""

from __future__ import annotations

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.platform import Platform
from stacks.platform.buckets import private_bucket
from stacks.platform.checks import acknowledge
from stacks.platform.rules import topic_rule

# Firehose writes an object per buffer: a minute or 5 MiB, whichever comes first, gzipped, by day (UTC).
BUFFER_INTERVAL = Duration.seconds(60)
BUFFER_SIZE = Size.mebibytes(5)
DATA_PREFIX = "raw/!{timestamp:yyyy/MM/dd}/"
ERROR_PREFIX = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"


class RawArchive(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.telemetry
        self.bucket = private_bucket(
            self,
            "Bucket",
            platform=platform,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(settings.archive_days))],
            why_no_access_logs="Only Firehose writes here, with its own role; CloudTrail data events are where an "
            "account records object-level access.",
        )
        self.stream = firehose.DeliveryStream(
            self,
            "Stream",
            destination=firehose.S3Bucket(
                self.bucket,
                compression=firehose.Compression.GZIP,
                data_output_prefix=DATA_PREFIX,
                error_output_prefix=ERROR_PREFIX,
                buffering_interval=BUFFER_INTERVAL,
                buffering_size=BUFFER_SIZE,
            ),
            encryption=firehose.StreamEncryption.aws_owned_key(),
        )
        # aws-cdk-lib's Firehose module adds a mapping of Firehose's IP ranges to the stack, which only
        # destinations inside a VPC (Redshift, Splunk) read; left in, it is a dead mapping that cfn-lint flags.
        Stack.of(self).node.try_remove_child("@aws-cdk--aws-kinesisfirehose.CidrBlocks")
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*", "Action::s3:DeleteObject*",
                        "Action::s3:Abort*", f"Resource::<{Stack.of(self).get_logical_id(self.bucket.node.default_child)}.Arn>/*"):
            acknowledge(
                self.stream,
                f"AwsSolutions-IAM5[{finding}]",
                "aws-cdk-lib's grant to Firehose's S3 destination role, on this bucket and its objects only: "
                "Firehose writes objects named at delivery time and aborts its own multipart uploads.",
            )
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
