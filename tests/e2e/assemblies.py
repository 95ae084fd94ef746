"""Small cloud assemblies written by the tests: a template of a few resources and tiny function folders,
laid out as `cdk synth` lays them out (manifest.json, <Stack>.template.json, asset.<name>/)."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_runtime import LocalRuntime

STACK = "TestStack"


def write_assembly(root: Path, resources: dict[str, Any], code: dict[str, dict[str, str]] | None = None) -> Path:
    """`code` maps an asset name to its files (path -> Python source, dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            STACK: {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{STACK}.template.json"}}
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / f"{STACK}.template.json").write_text(json.dumps({"Resources": resources}))
    for asset, files in (code or {}).items():
        for relative, source in files.items():
            path = root / f"asset.{asset}" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
    return root


def python_function(
    asset: str,
    *,
    handler: str = "app.handler",
    timeout: int = 3,
    memory: int = 128,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "Code": {"S3Bucket": "unused", "S3Key": f"{asset}.zip"},
        "Handler": handler,
        "Runtime": "python3.13",
        "Timeout": timeout,
        "MemorySize": memory,
    }
    if environment:
        properties["Environment"] = {"Variables": environment}
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": properties,
        "Metadata": {
            "aws:cdk:path": f"{STACK}/{asset}/Resource",
            "aws:asset:path": f"asset.{asset}",
            "aws:asset:property": "Code",
        },
    }


def queue(**properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": properties}


def sqs_mapping(queue_id: str, function_id: str, *, report_failures: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
        "FunctionName": {"Ref": function_id},
        "BatchSize": 10,
    }
    if report_failures:
        properties["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": properties}


def topic_rule(
    name: str,
    sql: str,
    actions: list[dict[str, Any]],
    *,
    error_action: dict[str, Any] | None = None,
    version: str = "2016-03-23",
) -> dict[str, Any]:
    payload: dict[str, Any] = {"Sql": sql, "AwsIotSqlVersion": version, "Actions": actions}
    if error_action:
        payload["ErrorAction"] = error_action
    return {
        "Type": "AWS::IoT::TopicRule",
        "Properties": {"RuleName": name, "TopicRulePayload": payload},
        "Metadata": {"aws:cdk:path": f"{STACK}/{name}/Resource"},
    }


def sqs_action(queue_id: str, *, use_base64: bool = False) -> dict[str, Any]:
    role = "arn:aws:iam::123456789012:role/unused"  # IAM is not emulated
    return {"Sqs": {"QueueUrl": {"Ref": queue_id}, "RoleArn": role, "UseBase64": use_base64}}


def send(runtime: LocalRuntime, queue_id: str, body: str, **options: Any) -> None:
    runtime.cloud.client("sqs").send_message(QueueUrl=runtime.cloud.physical[queue_id].ref, MessageBody=body, **options)


def receive(runtime: LocalRuntime, queue_id: str) -> list[dict[str, Any]]:
    """Up to 10 messages of the queue, with their message attributes."""
    url = runtime.cloud.physical[queue_id].ref
    sqs = runtime.cloud.client("sqs")
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])


def printed_table(out: str, logical_id_prefix: str) -> list[dict[str, str]]:
    """A table as the command line prints it (local_runtime.report.tables_report): rows of column -> cell."""
    [block] = [block for block in out.split("\n\n") if block.startswith(f"Table {logical_id_prefix}")]
    _, header, _, *rows = block.splitlines()
    columns = [cell.strip() for cell in header.split("|")]
    return [dict(zip(columns, (cell.strip() for cell in row.split("|")))) for row in rows]


def assert_nothing_left_running(worker_pids: list[int], port: int) -> None:
    """No worker process of the run exists any more, and nothing listens on the embedded AWS's port."""
    assert worker_pids, "the run started no worker: nothing was checked"
    for pid in worker_pids:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} is still running"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return
    raise AssertionError(f"something still listens on port {port}")


def lambda_action(function_id: str) -> dict[str, Any]:
    return {"Lambda": {"FunctionArn": {"Fn::GetAtt": [function_id, "Arn"]}}}


def invoke_permission(function_id: str, principal: str, source_id: str) -> dict[str, Any]:
    """What CDK writes for a rule's lambda action (source: the rule) or an SNS subscription (source: the topic)."""
    source = {"Fn::GetAtt": [source_id, "Arn"]} if principal == "iot.amazonaws.com" else {"Ref": source_id}
    return {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": principal,
            "SourceArn": source,
        },
    }


def bucket(**properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::S3::Bucket", **({"Properties": properties} if properties else {})}


def delivery_stream(bucket_id: str, **destination: Any) -> dict[str, Any]:
    """A DirectPut stream to the bucket, as the app's raw archive (stacks/telemetry/archive.py) declares it:
    `destination` adds to (or, None, removes from) its ExtendedS3DestinationConfiguration. Its role
    and log stream are IAM and CloudWatch resources the runtime does not create (they are not in the template)."""
    configuration = {
        "BucketARN": {"Fn::GetAtt": [bucket_id, "Arn"]},
        "CloudWatchLoggingOptions": {
            "Enabled": True,
            "LogGroupName": {"Ref": "ArchiveDeliveryLogs"},
            "LogStreamName": {"Ref": "ArchiveDeliveryLogStream"},
        },
        "RoleARN": {"Fn::GetAtt": ["ArchiveDeliveryRole", "Arn"]},
        **destination,
    }
    return {
        "Type": "AWS::KinesisFirehose::DeliveryStream",
        "Properties": {
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"},
            "DeliveryStreamType": "DirectPut",
            "ExtendedS3DestinationConfiguration": {k: v for k, v in configuration.items() if v is not None},
        },
    }


def firehose_action(stream_id: str, **settings: Any) -> dict[str, Any]:
    """What aws-iot-actions-alpha's FirehosePutRecordAction writes (Separator and BatchMode when given)."""
    role = "arn:aws:iam::123456789012:role/unused"  # IAM is not emulated
    return {"Firehose": {"DeliveryStreamName": {"Ref": stream_id}, "RoleArn": role, **settings}}


def aws_custom_resource(create: Any, **properties: Any) -> dict[str, Any]:
    """An AwsCustomResource as aws-cdk-lib 2.275 synthesizes it: `create` is its call, written as the JSON text
    CDK writes, or CDK's Fn::Join of that text and references, when the call holds some."""
    text = create if "Fn::Join" in create else json.dumps(create, separators=(",", ":"))
    return {
        "Type": "Custom::AWS",
        "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["AWS679f53fac002430cb0da5b7982bd22872D164C4C", "Arn"]},
            "Create": text,
            "Update": text,
            "InstallLatestAwsSdk": True,
            **properties,
        },
    }


DESCRIBE_ENDPOINT = {
    "action": "describeEndpoint",
    "service": "Iot",
    "parameters": {"endpointType": "iot:Data-ATS"},
    "physicalResourceId": {"responsePath": "endpointAddress"},
}
