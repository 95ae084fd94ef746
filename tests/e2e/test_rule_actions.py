"""Rule actions beyond a plain SQS send, and the asynchronous invocations behind lambda actions and SNS
subscriptions: what each delivers, and what happens when it fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from local_runtime import LocalRuntime, LocalRuntimeError, NotEmulated
from local_runtime.activity import AsyncInvoked, RuleFired
from tests.e2e.assemblies import (
    invoke_permission,
    lambda_action,
    python_function,
    queue,
    receive,
    sqs_action,
    topic_rule,
    write_assembly,
)

ROLE = "arn:aws:iam::123456789012:role/unused"  # IAM is not emulated
ECHO = "def handler(event, context):\n    print(event)\n    return event\n"
FAILING = "def handler(event, context):\n    raise RuntimeError('the device is unknown')\n"


def table(partition_key: str) -> dict[str, Any]:
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": partition_key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": partition_key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }


def topic() -> dict[str, Any]:
    return {"Type": "AWS::SNS::Topic", "Properties": {}}


def subscription(topic_id: str, protocol: str, endpoint: dict[str, Any], **extra: Any) -> dict[str, Any]:
    properties = {"TopicArn": {"Ref": topic_id}, "Protocol": protocol, "Endpoint": endpoint, **extra}
    return {"Type": "AWS::SNS::Subscription", "Properties": properties}


def bodies(runtime: LocalRuntime, queue_id: str) -> list[Any]:
    return [json.loads(message["Body"]) for message in receive(runtime, queue_id)]


def async_invocations(runtime: LocalRuntime) -> list[AsyncInvoked]:
    return [activity for activity in runtime.activities if isinstance(activity, AsyncInvoked)]


def test_the_sql_selects_and_filters_what_the_action_sends(tmp_path: Path) -> None:
    sql = (
        "SELECT topic(2) AS thing, temperature, clientid() AS client FROM 'sensors/+/telemetry' "
        "WHERE temperature > 50"
    )
    resources = {"Hot": queue(), "Rule": topic_rule("hot", sql, [sqs_action("Hot")])}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        [cool] = runtime.publish("sensors/s-1/telemetry", b'{"temperature": 20}', client_id="s-1")
        [hot] = runtime.publish("sensors/s-2/telemetry", b'{"temperature": 70, "humidity": 3}', client_id="s-2")
        sent = bodies(runtime, "Hot")
    assert cool.where_false and cool.actions == ()
    assert hot.output == {"thing": "s-2", "temperature": 70, "client": "s-2"}
    assert sent == [{"thing": "s-2", "temperature": 70, "client": "s-2"}]


def test_an_sns_action_reaches_queue_and_function_subscribers(tmp_path: Path) -> None:
    resources = {
        "Alerts": topic(),
        "Inbox": queue(),
        "Handler": python_function("handler"),
        "ToInbox": subscription("Alerts", "sqs", {"Fn::GetAtt": ["Inbox", "Arn"]}, RawMessageDelivery=True),
        "ToHandler": subscription("Alerts", "lambda", {"Fn::GetAtt": ["Handler", "Arn"]}),
        "HandlerPermission": invoke_permission("Handler", "sns.amazonaws.com", "Alerts"),
        "Rule": topic_rule("alert", "SELECT level FROM 'alerts/#'", [{"Sns": {"TargetArn": {"Ref": "Alerts"}, "RoleArn": ROLE}}]),
    }
    with LocalRuntime(write_assembly(tmp_path, resources, {"handler": {"app.py": ECHO}})) as runtime:
        runtime.publish("alerts/site-1", b'{"level": "high", "noise": 1}')
        runtime.drain()
        assert bodies(runtime, "Inbox") == [{"level": "high"}]
        topic_arn = runtime.cloud.physical["Alerts"].ref
    [invoked] = async_invocations(runtime)
    assert invoked.source == "SNS topic Alerts" and invoked.invocation.error is None
    [record] = invoked.invocation.result["Records"]
    assert record["EventSource"] == "aws:sns" and record["EventSubscriptionArn"].startswith(topic_arn)
    assert record["Sns"]["TopicArn"] == topic_arn
    assert json.loads(record["Sns"]["Message"]) == {"level": "high"}
    assert {"Type", "MessageId", "Timestamp", "SigningCertUrl", "UnsubscribeUrl"} <= set(record["Sns"])


def test_a_subscription_filter_policy_decides_what_the_function_gets(tmp_path: Path) -> None:
    only_high = subscription(
        "Alerts",
        "lambda",
        {"Fn::GetAtt": ["Handler", "Arn"]},
        FilterPolicy={"level": ["high"]},
        FilterPolicyScope="MessageBody",
    )
    resources = {
        "Alerts": topic(),
        "Handler": python_function("handler"),
        "ToHandler": only_high,
        "HandlerPermission": invoke_permission("Handler", "sns.amazonaws.com", "Alerts"),
        "Rule": topic_rule("alert", "SELECT level FROM 'alerts/+'", [{"Sns": {"TargetArn": {"Ref": "Alerts"}, "RoleArn": ROLE}}]),
    }
    with LocalRuntime(write_assembly(tmp_path, resources, {"handler": {"app.py": ECHO}})) as runtime:
        runtime.publish("alerts/a", b'{"level": "low"}')
        runtime.publish("alerts/b", b'{"level": "high"}')
        runtime.drain()
    [invoked] = async_invocations(runtime)
    assert json.loads(invoked.invocation.result["Records"][0]["Sns"]["Message"]) == {"level": "high"}


def test_a_function_subscription_without_sns_permission_is_refused(tmp_path: Path) -> None:
    resources = {
        "Alerts": topic(),
        "Handler": python_function("handler"),
        "ToHandler": subscription("Alerts", "lambda", {"Fn::GetAtt": ["Handler", "Arn"]}),
    }
    with LocalRuntime(write_assembly(tmp_path, resources, {"handler": {"app.py": ECHO}})) as runtime:
        with pytest.raises(NotEmulated, match="no AWS::Lambda::Permission lets sns.amazonaws.com invoke"):
            runtime.start_event_flow()


def test_a_dynamodb_v2_action_writes_each_key_as_a_column(tmp_path: Path) -> None:
    sql = "SELECT topic(2) AS deviceId, temperature, tags FROM 'sensors/+/telemetry'"
    put_item = {"DynamoDBv2": {"PutItem": {"TableName": {"Ref": "Latest"}}, "RoleArn": ROLE}}
    resources = {"Latest": table("deviceId"), "Rule": topic_rule("latest", sql, [put_item])}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        runtime.publish("sensors/s-1/telemetry", b'{"temperature": 21.5, "tags": ["a"]}')
        item = runtime.cloud.client("dynamodb").get_item(TableName="Latest", Key={"deviceId": {"S": "s-1"}})["Item"]
    assert item == {"deviceId": {"S": "s-1"}, "temperature": {"N": "21.5"}, "tags": {"L": [{"S": "a"}]}}


def test_a_dynamodb_v2_write_without_the_key_goes_to_the_error_action(tmp_path: Path) -> None:
    put_item = {"DynamoDBv2": {"PutItem": {"TableName": {"Ref": "Latest"}}, "RoleArn": ROLE}}
    resources = {
        "Latest": table("deviceId"),
        "Errors": queue(),
        "Rule": topic_rule("latest", "SELECT temperature FROM 'sensors/+'", [put_item], error_action=sqs_action("Errors")),
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        [fired] = runtime.publish("sensors/s-1", b'{"temperature": 3}')
        [error] = bodies(runtime, "Errors")
    assert fired.actions[0].error is not None
    assert error["failures"][0]["failedAction"] == "DynamoDBv2Action"
    assert error["failures"][0]["errorMessage"].endswith("Message arrived on: sensors/s-1, Action: dynamoDBv2")


def test_a_republished_message_goes_through_the_rules_on_its_new_topic(tmp_path: Path) -> None:
    republish = {"Republish": {"Topic": "cmd/${topic(2)}/reboot", "RoleArn": ROLE}}
    resources = {
        "Commands": queue(),
        "Forward": topic_rule("forward", "SELECT 'reboot' AS command, reason FROM 'faults/+'", [republish]),
        "Deliver": topic_rule("deliver", "SELECT *, topic(2) AS target FROM 'cmd/+/reboot'", [sqs_action("Commands")]),
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        fired = runtime.publish("faults/gw-7", b'{"reason": "watchdog", "code": 12}')
        sent = bodies(runtime, "Commands")
    assert [(f.rule, f.topic) for f in fired] == [("forward", "faults/gw-7"), ("deliver", "cmd/gw-7/reboot")]
    assert sent == [{"command": "reboot", "reason": "watchdog", "target": "gw-7"}]


def test_a_republish_loop_is_stopped_and_reported(tmp_path: Path) -> None:
    republish = {"Republish": {"Topic": "${topic()}", "RoleArn": ROLE}}
    resources = {"Loop": topic_rule("loop", "SELECT * FROM 'echo/+'", [republish])}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        with pytest.raises(LocalRuntimeError, match="republish loop"):
            runtime.publish("echo/1", b"{}")


def failing_function_assembly(root: Path, **invoke_config: Any) -> Path:
    resources: dict[str, Any] = {
        "Handler": python_function("handler"),
        "Failures": queue(),
        "Rule": topic_rule("to_function", "SELECT * FROM 'devices/+/command'", [lambda_action("Handler")]),
        "RulePermission": invoke_permission("Handler", "iot.amazonaws.com", "Rule"),
    }
    if invoke_config:
        resources["InvokeConfig"] = {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {"FunctionName": {"Ref": "Handler"}, "Qualifier": "$LATEST", **invoke_config},
        }
    return write_assembly(root, resources, {"handler": {"app.py": FAILING}})


def test_a_failing_async_invocation_is_retried_twice_then_sent_to_its_failure_destination(tmp_path: Path) -> None:
    on_failure = {"OnFailure": {"Destination": {"Fn::GetAtt": ["Failures", "Arn"]}}}
    with LocalRuntime(failing_function_assembly(tmp_path, DestinationConfig=on_failure)) as runtime:
        runtime.publish("devices/d-1/command", b'{"reboot": true}')
        runtime.drain()
        [record] = bodies(runtime, "Failures")
    attempts = async_invocations(runtime)
    assert [(a.attempt, a.retry_pending) for a in attempts] == [(1, True), (2, True), (3, False)]
    assert attempts[-1].sent_to is not None and attempts[-1].sent_to.startswith("OnFailure sqs")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == {"reboot": True}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "the device is unknown"


def test_maximum_retry_attempts_is_honoured(tmp_path: Path) -> None:
    with LocalRuntime(failing_function_assembly(tmp_path, MaximumRetryAttempts=0)) as runtime:
        runtime.publish("devices/d-1/command", b"{}")
        runtime.drain()
    assert [(a.attempt, a.retry_pending, a.sent_to) for a in async_invocations(runtime)] == [(1, False, None)]


def test_without_a_destination_the_failed_event_goes_to_the_functions_dead_letter_queue(tmp_path: Path) -> None:
    assembly = failing_function_assembly(tmp_path, MaximumRetryAttempts=1)
    template = assembly / "TestStack.template.json"
    resources = json.loads(template.read_text())
    resources["Resources"]["Handler"]["Properties"]["DeadLetterConfig"] = {"TargetArn": {"Fn::GetAtt": ["Failures", "Arn"]}}
    template.write_text(json.dumps(resources))
    with LocalRuntime(assembly) as runtime:
        runtime.publish("devices/d-1/command", b'{"reboot": true}')
        runtime.drain()
        [message] = receive(runtime, "Failures")
    assert json.loads(message["Body"]) == {"reboot": True}
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == "the device is unknown"
    assert [(a.attempt, a.sent_to is not None) for a in async_invocations(runtime)] == [(1, False), (2, True)]


def test_a_lambda_action_without_invoke_permission_fails_into_the_error_action(tmp_path: Path) -> None:
    resources = {
        "Handler": python_function("handler"),
        "Errors": queue(),
        "Rule": topic_rule("to_function", "SELECT * FROM 'a/b'", [lambda_action("Handler")], error_action=sqs_action("Errors")),
    }
    with LocalRuntime(write_assembly(tmp_path, resources, {"handler": {"app.py": ECHO}})) as runtime:
        [fired] = runtime.publish("a/b", b"{}")
        runtime.drain()
        [error] = bodies(runtime, "Errors")
    assert async_invocations(runtime) == []
    assert fired.actions[0].error is not None and "no AWS::Lambda::Permission" in fired.actions[0].error
    assert error["failures"][0]["failedAction"] == "LambdaAction"
    assert base64.b64decode(error["base64OriginalPayload"]) == b"{}"


def test_a_binary_payload_reaches_sqs_whole_and_a_where_on_a_json_name_does_not_fire(tmp_path: Path) -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html: a WHERE on device_type, and
    # `*` with data added, are supported on binary payloads; the data is added to empty or JSON payloads only.
    resources = {
        "Raw": queue(),
        "RawRule": topic_rule(
            "raw", "SELECT *, timestamp() AS time FROM 'blobs/+'", [sqs_action("Raw", use_base64=True)]
        ),
        "FieldRule": topic_rule("field", "SELECT * FROM 'blobs/+' WHERE kind = 'image'", [sqs_action("Raw")]),
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        raw, field = runtime.publish("blobs/b-1", b"\x89PNG\x00\x01")
        [message] = receive(runtime, "Raw")
    assert isinstance(raw, RuleFired) and raw.output == b"\x89PNG\x00\x01"
    assert base64.b64decode(message["Body"]) == b"\x89PNG\x00\x01"
    assert field.where_false and field.sql_error is None and field.actions == ()


def test_a_decimal_keeps_its_34_digits_through_select_star_into_sqs_and_dynamodb(tmp_path: Path) -> None:
    # "Decimal: A Decimal with a precision of 34 digits"
    # (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-data-types.html).
    put_item = {"DynamoDBv2": {"PutItem": {"TableName": {"Ref": "Latest"}}, "RoleArn": ROLE}}
    resources = {
        "Raw": queue(),
        "Latest": table("deviceId"),
        "Forward": topic_rule("forward", "SELECT * FROM 'meters/+'", [sqs_action("Raw"), put_item]),
    }
    digits = "0.1234567890123456789012345678901234"
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        runtime.publish("meters/m-1", f'{{"deviceId": "m-1", "kwh": {digits}}}'.encode())
        [message] = receive(runtime, "Raw")
        item = runtime.cloud.client("dynamodb").get_item(TableName="Latest", Key={"deviceId": {"S": "m-1"}})["Item"]
    assert message["Body"] == f'{{"deviceId":"m-1","kwh":{digits}}}'
    assert item["kwh"] == {"N": digits}


def test_a_sql_evaluation_failure_runs_no_action_and_not_the_error_action(tmp_path: Path) -> None:
    # "The error handling covered in this topic is for rule actions. To debug SQL issues, including external
    # functions, you can set up AWS IoT logging." (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html)
    resources = {
        "Out": queue(),
        "Errors": queue(),
        "Rule": topic_rule(
            "named", "SELECT * AS image FROM 'blobs/+'", [sqs_action("Out")], error_action=sqs_action("Errors")
        ),
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        [fired] = runtime.publish("blobs/b-1", b"\x89PNG\x00\x01")
        runtime.drain()
        out, errors = receive(runtime, "Out"), receive(runtime, "Errors")
    assert fired.sql_error is not None and fired.actions == () and fired.error_action is None
    assert (out, errors) == ([], [])
