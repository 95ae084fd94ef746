"""Functions that publish to IoT Core (iot-data Publish): the embedded AWS takes the message, the rules run on
it as IoT Core's broker runs them, devices subscribed to its topic receive it, and a drain waits for all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_runtime import LocalRuntime, NotEmulated
from local_runtime.__main__ import main
from local_runtime.activity import AsyncInvoked, BatchDelivered, Published, RuleFired
from tests.e2e.assemblies import (
    DESCRIBE_ENDPOINT,
    aws_custom_resource,
    invoke_permission,
    lambda_action,
    python_function,
    queue,
    sqs_mapping,
    topic_rule,
    write_assembly,
)

# Publishes a command to the device named in the event, and to every other topic the event lists.
COMMANDER = '''
import json
import os

import boto3
from botocore.exceptions import ClientError

iot = boto3.client("iot-data")


def handler(event, context):
    iot.publish(topic=f"devices/{event['device']}/commands", qos=1, payload=json.dumps({"reboot": True}))
    refused = {}
    for topic in event.get("also", []):
        try:
            iot.publish(topic=topic, qos=1, payload=b"{}")
        except ClientError as error:
            refused[topic] = error.response["Error"]["Code"]
    return {"refused": refused, "endpoint": os.environ.get("AWS_ENDPOINT_URL_IOT_DATA")}
'''
RECORDER = """
import json


def handler(event, context):
    return [json.loads(record["body"]) for record in event["Records"]]
"""


def commander_assembly(root: Path, **environment: Any) -> Path:
    """alerts/+ -> Commander, which publishes to devices/<device>/commands -> queue Commands -> Recorder."""
    resources = {
        "DataEndpoint": aws_custom_resource(DESCRIBE_ENDPOINT),
        "Commander": python_function("commander", environment=environment),
        "AlertRule": topic_rule("alert", "SELECT * FROM 'alerts/+'", [lambda_action("Commander")]),
        "AlertPermission": invoke_permission("Commander", "iot.amazonaws.com", "AlertRule"),
        "Commands": queue(),
        "CommandRule": topic_rule(
            "command",
            "SELECT *, topic(2) AS device, clientid() AS client FROM 'devices/+/commands'",
            [{"Sqs": {"QueueUrl": {"Ref": "Commands"}, "RoleArn": "arn:aws:iam::123456789012:role/unused"}}],
        ),
        "Recorder": python_function("recorder", handler="recorder.handler"),
        "CommandsMapping": sqs_mapping("Commands", "Recorder", report_failures=False),
    }
    code = {"commander": {"app.py": COMMANDER}, "recorder": {"recorder.py": RECORDER}}
    return write_assembly(root, resources, code)


def of_type(runtime: LocalRuntime, kind: type) -> list[Any]:
    return [activity for activity in runtime.activities if isinstance(activity, kind)]


def test_a_published_message_goes_through_the_rules_and_drain_waits_for_what_it_sets_off(tmp_path: Path) -> None:
    with LocalRuntime(commander_assembly(tmp_path)) as runtime:
        runtime.publish("alerts/a-1", b'{"device": "d-7"}')
        runtime.drain()
    [commander] = of_type(runtime, AsyncInvoked)
    assert commander.invocation.published == (("devices/d-7/commands", b'{"reboot": true}'),)
    assert of_type(runtime, Published) == [Published("devices/d-7/commands", b'{"reboot": true}', "app")]
    [command] = [fired for fired in of_type(runtime, RuleFired) if fired.rule == "command"]
    assert command.output == {"reboot": True, "device": "d-7", "client": "n/a"}  # not an MQTT client
    [recorded] = of_type(runtime, BatchDelivered)
    assert recorded.invocation.result == [{"reboot": True, "device": "d-7", "client": "n/a"}]


def test_a_subscriber_receives_what_the_functions_published_to_topics_its_filter_matches(tmp_path: Path) -> None:
    with LocalRuntime(commander_assembly(tmp_path)) as runtime:
        runtime.publish("alerts/a-1", b'{"device": "d-7", "also": ["devices/d-7/status", "fleet/news"]}')
        runtime.publish("alerts/a-2", b'{"device": "d-8"}')
        runtime.drain()
        topics = {
            topic_filter: [message.topic for message in runtime.published_to(topic_filter)]
            for topic_filter in ("devices/d-7/commands", "devices/+/commands", "devices/#", "#", "fleet")
        }
    assert topics == {
        "devices/d-7/commands": ["devices/d-7/commands"],
        "devices/+/commands": ["devices/d-7/commands", "devices/d-8/commands"],
        "devices/#": ["devices/d-7/commands", "devices/d-7/status", "devices/d-8/commands"],
        "#": ["devices/d-7/commands", "devices/d-7/status", "fleet/news", "devices/d-8/commands"],
        "fleet": [],
    }


def test_what_a_directly_invoked_function_published_is_routed_at_the_next_drain(tmp_path: Path) -> None:
    with LocalRuntime(commander_assembly(tmp_path)) as runtime:
        invocation = runtime.invoke("Commander", {"device": "d-9"})
        assert runtime.published_to("#") == []  # the broker takes it when the event sources poll
        runtime.drain()
        received = [message.payload for message in runtime.published_to("devices/d-9/commands")]
    assert invocation.published == (("devices/d-9/commands", b'{"reboot": true}'),)
    assert received == [b'{"reboot": true}']


def test_a_publish_to_a_reserved_topic_is_refused_as_iot_refuses_it_and_the_function_sees_the_error(
    tmp_path: Path,
) -> None:
    also = [
        "$aws/events/presence/connected/d-1",
        "$aws/events/subscriptions/subscribed/d-1",
        "$aws/rules/some_rule/d-1",  # Basic Ingest: applications may publish to it too
        "$aws/things/d-1/shadow/update",
    ]
    with LocalRuntime(commander_assembly(tmp_path)) as runtime:
        invocation = runtime.invoke("Commander", {"device": "d-1", "also": also})
        runtime.drain()
        published = [message.topic for message in runtime.published_to("$aws/things/+/shadow/update")]
        ingested = [a.rule for a in runtime.activities if isinstance(a, RuleFired) and a.rule_not_found]
    assert invocation.result["refused"] == {
        "$aws/events/presence/connected/d-1": "ForbiddenException",
        "$aws/events/subscriptions/subscribed/d-1": "ForbiddenException",
    }
    assert published == ["$aws/things/d-1/shadow/update"]
    assert ingested == ["some_rule"]  # the stack has no such rule: IoT drops it (RuleNotFound)


def test_a_service_endpoint_variable_points_at_the_embedded_aws_once_its_template_value_resolves(
    tmp_path: Path,
) -> None:
    address = {"Fn::Join": ["", ["https://", {"Fn::GetAtt": ["DataEndpoint", "endpointAddress"]}]]}
    with LocalRuntime(commander_assembly(tmp_path / "good", AWS_ENDPOINT_URL_IOT_DATA=address)) as runtime:
        result = runtime.invoke("Commander", {"device": "d-1"}).result
        endpoint = runtime.cloud.endpoint_url
    assert result["endpoint"] == endpoint
    unknown = {"Fn::GetAtt": ["DataEndpoint", "hostname"]}
    with LocalRuntime(commander_assembly(tmp_path / "bad", AWS_ENDPOINT_URL_IOT_DATA=unknown)) as runtime:
        with pytest.raises(NotEmulated, match="Fn::GetAtt DataEndpoint.hostname is not emulated for Custom::AWS"):
            runtime.invoke("Commander", {"device": "d-1"})


def test_the_command_line_reports_what_functions_publish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoints = {"AWS_ENDPOINT_URL_IOT_DATA": "https://example", "AWS_ENDPOINT_URL_IOT_DATA_PLANE": "https://example"}
    assembly = commander_assembly(tmp_path, **endpoints)
    code = main(["publish", "alerts/a-1", "--payload", json.dumps({"device": "d-7"}), "--assembly", str(assembly)])
    out = capsys.readouterr().out
    assert code == 0
    assert 'app published to devices/d-7/commands: {"reboot":true}' in out
    # iot-data's variable is named after its service id, IoT Data Plane: the shorter name is dead configuration.
    assert (
        "app: AWS_ENDPOINT_URL_IOT_DATA, AWS_ENDPOINT_URL_IOT_DATA_PLANE set to the embedded AWS, not the template's "
        "value; no boto3 client reads AWS_ENDPOINT_URL_IOT_DATA (botocore names them after the service id)"
    ) in out
    assert "rule command on devices/d-7/commands selected" in out
    assert "DataEndpoint: its Custom::AWS call Iot.describeEndpoint made here (apiVersion, endpointAddress, reg" in out
