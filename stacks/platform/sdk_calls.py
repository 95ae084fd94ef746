"""The one way to make an AWS API call at deployment, for what has no CloudFormation resource: aws-cdk-lib's
AwsCustomResource, making the call on create and on update, with a role that may make that call only."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.platform.checks import acknowledge


def deployment_call(scope: Construct, construct_id: str, *, call: cr.AwsSdkCall, iam_action: str) -> cr.AwsCustomResource:
    """`iam_action` is the call's IAM action; the IoT calls made this way take no resource-level permissions."""
    resource = cr.AwsCustomResource(
        scope,
        construct_id,
        on_create=call,
        on_update=call,
        install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(actions=[iam_action], resources=["*"])]),
    )
    acknowledge(
        resource,
        "AwsSolutions-IAM5[Resource::*]",
        f"{iam_action} has no resource-level permissions: '*' is the only resource it takes.",
    )
    # aws-cdk-lib runs every AwsCustomResource of a stack in one provider function, a child of the stack.
    provider = Stack.of(scope).node.find_child("AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", ""))
    acknowledge(
        provider,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "aws-cdk-lib's AwsCustomResource provider runs only during deployment; the managed policy lets it "
        "write its own logs and nothing else.",
    )
    return resource
