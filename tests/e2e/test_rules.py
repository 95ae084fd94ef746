"""The rules engine: what it refuses when the rules load, topic filters, sqs and lambda actions, errorAction."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from local_runtime import LocalRuntime, LocalRuntimeError, NotEmulated
from local_runtime.activity import AsyncInvoked
from local_runtime.topics import TopicFilter
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


@pytest.mark.parametrize(
    ("sql", "version", "reason"),
    [
        ("SELECT aws_lambda('arn:aws:lambda:eu-west-1:123456789012:function:f', *) AS x FROM 'a/b'", "2016-03-23", "aws_lambda"),
        ("SELECT * FROM 'sensors/+' WHERE", "2016-03-23", ""),
        ("SELECT * FROM 'sensors/+'", "2015-10-08", "2015-10-08"),
    ],
)
def test_a_rule_the_runtime_cannot_evaluate_is_refused_naming_the_rule(
    tmp_path: Path, sql: str, version: str, reason: str
) -> None:
    resources = {"Target": queue(), "Rule": topic_rule("hot_sensors", sql, [sqs_action("Target")], version=version)}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        with pytest.raises(NotEmulated) as refused:
            runtime.start_event_flow()
    message = str(refused.value)
    assert message.startswith("Rule hot_sensors (TestStack/hot_sensors/Resource): ")
    assert reason in message


def test_an_action_the_runtime_does_not_emulate_is_refused_naming_the_rule(tmp_path: Path) -> None:
    kinesis = {"Kinesis": {"StreamName": "s", "RoleArn": "arn:aws:iam::123456789012:role/unused"}}
    resources = {"Rule": topic_rule("forward", "SELECT * FROM 'a/b'", [kinesis])}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        with pytest.raises(NotEmulated, match="Rule forward .*the Kinesis action is not emulated"):
            runtime.start_event_flow()


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/x/c", False),
        ("a/+", "a/", True),  # '+' matches an empty level too
        ("a/#", "a/b", True),
        ("a/#", "a/b/c/d", True),
        ("a/#", "a", False),  # AWS IoT: '#' needs at least one more level (MQTT would match)
        ("a/b", "a/b/c", False),
        ("#", "$aws/events/presence/connected/x", False),  # a leading wildcard does not match reserved topics
        ("$aws/events/presence/connected/+", "$aws/events/presence/connected/sensor-1", True),
        ("$aws/events/subscriptions/+/+", "$aws/events/subscriptions/subscribed/sensor-1", True),
    ],
)
def test_topic_filters_match_as_aws_iot_does(topic_filter: str, topic: str, matches: bool) -> None:
    assert TopicFilter.parse(topic_filter, "test").matches(topic) is matches


@pytest.mark.parametrize("text", ["a/#/b", "a/b+", "a#", ""])
def test_an_invalid_topic_filter_is_refused(text: str) -> None:
    with pytest.raises(LocalRuntimeError, match="not a valid topic filter"):
        TopicFilter.parse(text, "Rule r")


def rules_assembly(root: Path) -> Path:
    resources = {
        "Target": queue(),
        "Encoded": queue(),
        "Errors": queue(),
        "Rule": topic_rule(
            "to_queue", "select  *  from 'devices/+/data'", [sqs_action("Target")], error_action=sqs_action("Errors")
        ),
        "Base64Rule": topic_rule(
            "to_queue_base64", "SELECT * FROM 'devices/+/data'", [sqs_action("Encoded", use_base64=True)]
        ),
        "Handler": python_function("handler"),
        "LambdaRule": topic_rule(
            "to_function",
            "SELECT * FROM 'devices/+/command'",
            [lambda_action("Handler")],
        ),
        "LambdaRulePermission": invoke_permission("Handler", "iot.amazonaws.com", "LambdaRule"),
    }
    handler = "def handler(event, context):\n    print('got', event)\n    return event\n"
    return write_assembly(root, resources, {"handler": {"app.py": handler}})


def bodies(runtime: LocalRuntime, queue_id: str) -> list[str]:
    return [message["Body"] for message in receive(runtime, queue_id)]


def test_sqs_actions_send_the_payload_as_published(tmp_path: Path) -> None:
    with LocalRuntime(rules_assembly(tmp_path)) as runtime:
        fired = runtime.publish("devices/d1/data", b'{"temperature": 21}')
        assert runtime.publish("devices/d1/other", b"{}") == []
        # AWS serializes the SELECT's output again: the same JSON value, compactly.
        assert bodies(runtime, "Target") == ['{"temperature":21}']
        assert bodies(runtime, "Encoded") == [base64.b64encode(b'{"temperature":21}').decode()]
    assert [(f.rule, [(a.action, a.target, a.error) for a in f.actions]) for f in fired] == [
        ("to_queue", [("sqs", "Target", None)]),
        ("to_queue_base64", [("sqs", "Encoded", None)]),
    ]


def test_a_failed_action_sends_aws_error_message_to_the_error_action(tmp_path: Path) -> None:
    payload = b"\xff\xfe not UTF-8"
    with LocalRuntime(rules_assembly(tmp_path)) as runtime:
        [fired, _] = runtime.publish("devices/d1/data", payload)
        [error_body] = bodies(runtime, "Errors")
        assert bodies(runtime, "Target") == []
    assert fired.actions[0].error is not None and "not UTF-8" in fired.actions[0].error
    assert fired.error_action is not None and fired.error_action.error is None
    message = json.loads(error_body)
    assert set(message) == {"ruleName", "topic", "cloudwatchTraceId", "clientId", "base64OriginalPayload", "failures"}
    assert (message["ruleName"], message["topic"], message["clientId"]) == ("to_queue", "devices/d1/data", "n/a")
    assert base64.b64decode(message["base64OriginalPayload"]) == payload
    [failure] = message["failures"]
    assert failure["failedAction"] == "SqsAction"
    assert failure["failedResource"].endswith("/Target")
    assert "Message arrived on: devices/d1/data" in failure["errorMessage"]


def test_a_lambda_action_invokes_the_function_asynchronously(tmp_path: Path) -> None:
    with LocalRuntime(rules_assembly(tmp_path)) as runtime:
        runtime.publish("devices/d1/command", b'{"reboot": true}')
        assert not [a for a in runtime.activities if isinstance(a, AsyncInvoked)]  # queued, not run yet
        runtime.drain()
    [invoked] = [activity for activity in runtime.activities if isinstance(activity, AsyncInvoked)]
    assert invoked.source == "rule to_function"
    assert invoked.invocation.result == {"reboot": True}
    assert invoked.invocation.logs == ("got {'reboot': True}",)


def test_a_lambda_action_with_a_binary_payload_fails_as_on_aws(tmp_path: Path) -> None:
    with LocalRuntime(rules_assembly(tmp_path)) as runtime:
        [fired] = runtime.publish("devices/d1/command", b"\x00\x01")
    assert fired.actions[0].error is not None and "JSON only" in fired.actions[0].error


def test_a_lambda_action_gets_a_binary_payload_base64_encoded_in_json(tmp_path: Path) -> None:
    # "The Lambda rule action can receive binary data, if it's base64 encoded and in a JSON payload. You can do
    # this by changing the rule to the following": SELECT encode(*, 'base64') AS data FROM 'my_topic'
    # (https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html).
    resources = {
        "Handler": python_function("handler"),
        "Rule": topic_rule("encoded", "SELECT encode(*, 'base64') AS data FROM 'my_topic'", [lambda_action("Handler")]),
        "RulePermission": invoke_permission("Handler", "iot.amazonaws.com", "Rule"),
    }
    handler = "def handler(event, context):\n    return event\n"
    with LocalRuntime(write_assembly(tmp_path, resources, {"handler": {"app.py": handler}})) as runtime:
        [fired] = runtime.publish("my_topic", b"\x00\x01")
        runtime.drain()
    assert fired.actions[0].error is None
    [invoked] = [activity for activity in runtime.activities if isinstance(activity, AsyncInvoked)]
    assert invoked.invocation.result == {"data": "AAE="}


def test_basic_ingest_runs_only_the_named_rule_whatever_its_from_and_drops_a_message_to_a_missing_rule(
    tmp_path: Path,
) -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html
    sql = "SELECT *, topic() AS topic, topic(1) AS building FROM 'Buildings/#'"
    disabled = topic_rule("paused", "SELECT * FROM 'Buildings/#'", [sqs_action("Paused")])
    disabled["Properties"]["TopicRulePayload"]["RuleDisabled"] = True
    resources = {
        "Managed": queue(),
        "Listening": queue(),
        "Paused": queue(),
        "Manager": topic_rule("BuildingManager", sql, [sqs_action("Managed")]),
        "Ingest": topic_rule("IngestOnly", "SELECT * WHERE level > 0", [sqs_action("Managed")]),
        "Listener": topic_rule("listener", "SELECT * FROM 'Buildings/#'", [sqs_action("Listening")]),
        "Paused_": disabled,
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        delivered: list[str] = []
        runtime.start_event_flow().deliver = lambda topic, payload: delivered.append(topic)
        [manager] = runtime.publish("$aws/rules/BuildingManager/Buildings/Building5/Lights", b'{"level": 3}', "panel-1")
        [ingest] = runtime.publish("$aws/rules/IngestOnly/anything", b'{"level": 1}', "panel-1")
        [missing] = runtime.publish("$aws/rules/NoSuchRule/Buildings/Building5", b"{}", "panel-1")
        [paused] = runtime.publish("$aws/rules/paused/Buildings/Building5", b"{}", "panel-1")
        runtime.publish("Buildings/Building5/Lights", b'{"level": 4}', "panel-1")
        managed, listening, paused_queue = (bodies(runtime, q) for q in ("Managed", "Listening", "Paused"))
    assert manager.rule == "BuildingManager" and manager.actions[0].error is None
    assert ingest.rule == "IngestOnly" and ingest.actions[0].error is None
    assert sorted(json.loads(body)["level"] for body in managed) == [1, 3, 4]  # 4: its FROM matched the plain topic
    [managed_message] = [json.loads(body) for body in managed if json.loads(body)["level"] == 3]
    assert managed_message == {"level": 3, "topic": "Buildings/Building5/Lights", "building": "Buildings"}
    assert [json.loads(body)["level"] for body in listening] == [4]  # Basic Ingest reached no other rule
    assert (missing.rule, missing.rule_not_found, paused.rule_not_found, paused_queue) == ("NoSuchRule", True, True, [])
    assert delivered == ["Buildings/Building5/Lights"]  # no subscriber gets a Basic Ingest message
