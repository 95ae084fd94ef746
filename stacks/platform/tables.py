"""The one way to create a table: on-demand, point-in-time recovery, retained unless configured not to be."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

if TYPE_CHECKING:
    from stacks.platform.platform import Platform


def table(
    scope: Construct,
    construct_id: str,
    *,
    platform: Platform,
    partition_key: str,
    sort_key: str | None = None,
    numeric_sort_key: bool = False,
    time_to_live_attribute: str | None = None,
) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(
            name=sort_key, type=dynamodb.AttributeType.NUMBER if numeric_sort_key else dynamodb.AttributeType.STRING
        )
        if sort_key
        else None,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=time_to_live_attribute,
        removal_policy=platform.removal_policy,
    )
