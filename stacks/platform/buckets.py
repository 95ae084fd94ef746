"""The one way to create a bucket: private, encrypted, TLS only, retained unless configured not to be."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.platform.checks import acknowledge

if TYPE_CHECKING:
    from stacks.platform.platform import Platform


def private_bucket(scope: Construct, construct_id: str, *, platform: Platform, why_no_access_logs: str, **properties: Any) -> s3.Bucket:
    """Server access logs would need a second bucket per bucket: each use says why it does without them."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        removal_policy=platform.removal_policy,
        **properties,
    )
    acknowledge(bucket, "AwsSolutions-S1", why_no_access_logs)
    return bucket
