"""The one way to make an AWS API call at deployment, for what has no CloudFormation resource: aws-cdk-lib's
AwsCustomResource, making the call on create and on update, with a role that may make that call only."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.platform.checks import acknowledge


def deployment_call(
    scope: Construct,
    construct_id: str,
    *,
    call: cr.AwsSdkCall,
    iam_action: str,
    resources: list[str] | None = None,
    on_delete: cr.AwsSdkCall | None = None,
) -> cr.AwsCustomResource:
    """`iam_action` is the call's IAM action (and `on_delete`'s, if given, on the same resources); `resources`
    the ARNs it acts on when the action takes resource-level permissions, else it is allowed on '*'."""
    actions = [iam_action] if on_delete is None else [iam_action, _iam_action(on_delete)]
    resource = cr.AwsCustomResource(
        scope,
        construct_id,
        on_create=call,
        on_update=call,
        on_delete=on_delete,
        install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements(
            [iam.PolicyStatement(actions=actions, resources=resources or ["*"])]
        ),
    )
    if not resources:
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


def _iam_action(call: cr.AwsSdkCall) -> str:
    """`iot:DetachPolicy` for service Iot, action detachPolicy."""
    return f"{call.service.lower()}:{call.action[0].upper()}{call.action[1:]}"
