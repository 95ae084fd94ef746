"""A deployed copy of the synthesized app, as CloudFormation describes it, served by botocore's Stubber."""

from __future__ import annotations

import json
from typing import Any, Mapping

import boto3
from botocore.stub import Stubber

ACCOUNT = "111122223333"
REGION = "eu-central-1"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/DeviceBackend/0f8e2a10-cafe-11ef-9b5c-0a1b2c3d4e5f"
PAGE = 100  # ListStackResources's page size


def physical_id(logical_id: str, body: Mapping[str, Any]) -> str:
    """What CloudFormation names each resource: a generated name (stack, logical id, suffix), or the one given."""
    generated = f"DeviceBackend-{logical_id[:40]}-1A2B3C4D5E6F"
    resource_type = body["Type"]
    if resource_type == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{generated}"
    if resource_type == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{generated}"
    if resource_type == "AWS::IoT::TopicRule":
        return body["Properties"]["RuleName"]
    return generated


def stubbed_cloudformation(
    template: Mapping[str, Any], *, left_out: tuple[str, ...] = (), get_template: bool = True
) -> tuple[Any, Stubber]:
    """A CloudFormation client answering DescribeStacks, then ListStackResources page by page (every resource of
    `template` but `left_out`), then (`get_template`) GetTemplate with `template`."""
    client = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(client)
    stack = {"StackId": STACK_ID, "StackName": "DeviceBackend", "CreationTime": "2026-11-01T00:00:00Z"}
    stubber.add_response(
        "describe_stacks", {"Stacks": [{**stack, "StackStatus": "UPDATE_COMPLETE"}]}, {"StackName": "DeviceBackend"}
    )
    summaries = [
        {
            "LogicalResourceId": logical_id,
            "PhysicalResourceId": physical_id(logical_id, body),
            "ResourceType": body["Type"],
            "LastUpdatedTimestamp": "2026-11-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }
        for logical_id, body in template["Resources"].items()
        if logical_id not in left_out
    ]
    pages = [summaries[start : start + PAGE] for start in range(0, len(summaries), PAGE)]
    for number, page in enumerate(pages):
        request = {"StackName": "DeviceBackend", **({"NextToken": f"page-{number}"} if number else {})}
        response: dict[str, Any] = {"StackResourceSummaries": page}
        if number + 1 < len(pages):
            response["NextToken"] = f"page-{number + 1}"
        stubber.add_response("list_stack_resources", response, request)
    if get_template:
        request = {"StackName": "DeviceBackend", "TemplateStage": "Original"}
        stubber.add_response("get_template", {"TemplateBody": json.dumps(template)}, request)
    stubber.activate()
    return client, stubber
