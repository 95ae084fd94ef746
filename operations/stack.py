"""A stack as the operations tools read it: its template's resources and what each resolves to (`Ref` and the
`Fn::GetAtt` attributes), from a deployed stack in CloudFormation or from the local runtime.

For a deployed stack, ListStackResources gives each resource's physical id (what `Ref` returns), and the
attributes the tools use are built from it with the stack's partition, region and account, the way
CloudFormation documents them for each type (a queue's ARN from the name at the end of its URL, a table's from
its name...). An attribute that cannot be built that way (a table's StreamArn, a custom resource's response)
is left out, so that resolving it fails and says so, rather than guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

from local_runtime.assembly import Resource, template_resources
from local_runtime.intrinsics import Physical

QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
TOPIC = "AWS::SNS::Topic"
BUCKET = "AWS::S3::Bucket"
FUNCTION = "AWS::Lambda::Function"
THING_GROUP = "AWS::IoT::ThingGroup"
IOT_POLICY = "AWS::IoT::Policy"
TOPIC_RULE = "AWS::IoT::TopicRule"
AUTHORIZER = "AWS::IoT::Authorizer"
DELIVERY_STREAM = "AWS::KinesisFirehose::DeliveryStream"
LOG_GROUP = "AWS::Logs::LogGroup"


class OperationsError(Exception):
    """What a tool cannot do, and why: the command says it and exits 2."""


class StackNotReadable(OperationsError):
    """The stack cannot be read as the tools need it (not deployed, or a template they cannot read)."""


@dataclass(frozen=True)
class Account:
    partition: str
    region: str
    account_id: str

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    @property
    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::URLSuffix": self.url_suffix,
        }

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


@dataclass(frozen=True)
class StackResources:
    name: str
    resources: Mapping[str, Resource]  # by logical id, from the template
    physical: Mapping[str, Physical]  # by logical id, what exists (a resource not created is absent)
    account: Account


def account_of(stack_id: str) -> Account:
    """From a stack's ARN: arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>."""
    parts = stack_id.split(":")
    if len(parts) < 6 or parts[2] != "cloudformation":
        raise StackNotReadable(f"{stack_id!r} is not a CloudFormation stack ARN")
    return Account(partition=parts[1], region=parts[3], account_id=parts[4])


def physical_of(resource_type: str, physical_id: str, account: Account) -> Physical:
    """What `Ref` and `Fn::GetAtt` give for a resource of `resource_type` whose physical id is `physical_id`."""
    name = physical_id
    attributes: dict[str, str]
    if resource_type == QUEUE:  # the physical id is the queue's URL
        name = physical_id.rsplit("/", 1)[-1]
        attributes = {"Arn": account.arn("sqs", name), "QueueName": name, "QueueUrl": physical_id}
    elif resource_type == TOPIC:  # the physical id is the topic's ARN
        attributes = {"TopicArn": physical_id, "TopicName": physical_id.rsplit(":", 1)[-1]}
    elif resource_type == BUCKET:
        attributes = {
            "Arn": f"arn:{account.partition}:s3:::{name}",
            "DomainName": f"{name}.s3.{account.url_suffix}",
            "RegionalDomainName": f"{name}.s3.{account.region}.{account.url_suffix}",
        }
    elif resource_type == IOT_POLICY:
        attributes = {"Arn": account.arn("iot", f"policy/{name}"), "Id": name}
    else:
        resource = _ARN_RESOURCES.get(resource_type)
        attributes = {} if resource is None else {"Arn": account.arn(*resource(name))}
    return Physical(ref=physical_id, attributes=attributes)


# Types whose only attribute the tools build is `Arn`: (service, resource part of the ARN) from the name.
_ARN_RESOURCES: dict[str, Callable[[str], tuple[str, str]]] = {
    TABLE: lambda name: ("dynamodb", f"table/{name}"),
    FUNCTION: lambda name: ("lambda", f"function:{name}"),
    THING_GROUP: lambda name: ("iot", f"thinggroup/{name}"),
    TOPIC_RULE: lambda name: ("iot", f"rule/{name}"),
    AUTHORIZER: lambda name: ("iot", f"authorizer/{name}"),
    DELIVERY_STREAM: lambda name: ("firehose", f"deliverystream/{name}"),
    LOG_GROUP: lambda name: ("logs", f"log-group:{name}:*"),
}


def deployed_physical(cloudformation: Any, stack_name: str) -> tuple[Account, dict[str, tuple[str, str]]]:
    """The stack's account, and each resource's type and physical id by logical id (ListStackResources, every
    page). A resource without a physical id (its creation failed) is left out."""
    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise StackNotReadable(f"Cannot read the stack {stack_name}: {error}") from None
    found: dict[str, tuple[str, str]] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            if summary.get("PhysicalResourceId"):
                found[summary["LogicalResourceId"]] = (summary["ResourceType"], summary["PhysicalResourceId"])
    return account_of(stack["StackId"]), found


def deployed_template(cloudformation: Any, stack_name: str) -> Mapping[str, Any]:
    """The template the stack was deployed with (GetTemplate): the deployed truth, whatever cdk.out holds now."""
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    if isinstance(body, str):  # boto3 decodes a JSON template itself; text is what it could not decode
        try:
            body = json.loads(body)
        except ValueError:
            raise StackNotReadable(f"The template of {stack_name} is not JSON (the CDK writes JSON)") from None
    return body


def read_deployed(cloudformation: Any, stack_name: str, template: Mapping[str, Any] | None = None) -> StackResources:
    """The deployed stack, read through CloudFormation; with `template`, that template's resources instead of
    the deployed one's (cdk.out's, whose logical ids `sam local invoke` uses)."""
    account, found = deployed_physical(cloudformation, stack_name)
    resources = template_resources(template if template is not None else deployed_template(cloudformation, stack_name))
    physical = {
        logical_id: physical_of(resource_type, physical_id, account)
        for logical_id, (resource_type, physical_id) in found.items()
    }
    return StackResources(stack_name, resources, physical, account)
