"""The deployed stack as the tools read it from CloudFormation (ListStackResources, every page, and GetTemplate),
its dead-letter queues found from that, and the calls a redrive makes in the account; all served by Stubber."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from operations.aws import AwsTargets
from operations.dead_letters import Function, find_dead_letter_queues
from operations.redrive import MoveTask, move_back
from operations.stack import StackNotReadable, read_deployed
from tests.operations.deployed import ACCOUNT, REGION, stubbed_cloudformation

LAMBDA = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"


@pytest.fixture(scope="module")
def template(cloud_assembly: Path) -> dict[str, Any]:
    return json.loads((cloud_assembly / "DeviceBackend.template.json").read_text())


def test_every_dead_letter_queue_is_found_in_the_deployed_stack_with_what_sends_to_it(template: dict[str, Any]) -> None:
    cloudformation, stubber = stubbed_cloudformation(template)
    stack = read_deployed(cloudformation, "DeviceBackend")
    stubber.assert_no_pending_responses()
    assert (stack.account.account_id, stack.account.region) == (ACCOUNT, REGION)
    found = {q.queue.name: q for q in find_dead_letter_queues(stack)}
    assert list(found) == [
        "Platform/RuleErrors", "Presence/DeadLetters", "Registry/DeadLetters", "Onboarding/Activation/DeadLetters",
        "Telemetry/DeadLetters", "Defender/MitigationDeadLetters", "Defender/RemediationDeadLetters",
    ]  # fmt: skip
    presence = found["Presence/DeadLetters"]
    name = "DeviceBackend-PresenceDeadLettersQueueA2347874-1A2B3C4D5E6F"
    assert (presence.queue.url, presence.queue.arn) == (
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    )
    assert [(s.queue.name, s.max_receive_count, s.consumer) for s in presence.source_queues] == [
        ("Presence/Events", 5, "track_presence"), ("Presence/DelayedDisconnects", 5, "track_presence"),
    ]  # fmt: skip
    assert [f.name for f in presence.rejecting] == ["track_presence"] and presence.on_failure == ()
    telemetry = found["Telemetry/DeadLetters"]
    [ingest] = telemetry.on_failure
    name = "DeviceBackend-TelemetryIngestTelemetryFunction121E70F3-1A2B3C4D5E6F"
    assert telemetry.rejecting == (ingest,) and ingest == Function(
        "TelemetryIngestTelemetryFunction121E70F3", "ingest_telemetry", name, f"{LAMBDA}:{name}"
    )
    rules = {rule.name: rule for rule in found["Platform/RuleErrors"].rules}
    assert len(rules) == 11 and rules["iot_backend_presence_connected"].selects_the_message_unchanged
    assert [a.queue.name for a in rules["iot_backend_presence_connected"].sqs_actions] == ["Presence/Events"]
    assert not rules["iot_backend_telemetry_environment"].selects_the_message_unchanged


def test_a_queue_not_in_the_deployed_stack_is_not_listed(template: dict[str, Any]) -> None:
    cloudformation, _ = stubbed_cloudformation(template, left_out=("DefenderRemediationDeadLettersQueue945338EF",))
    names = [q.queue.name for q in find_dead_letter_queues(read_deployed(cloudformation, "DeviceBackend"))]
    assert "Defender/RemediationDeadLetters" not in names and "Defender/MitigationDeadLetters" in names


def test_a_stack_that_is_not_deployed_is_refused_with_cloudformations_answer() -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with Stubber(cloudformation) as stubber:
        stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id DeviceBackend-dev does not exist")
        with pytest.raises(StackNotReadable, match="Cannot read the stack DeviceBackend-dev: .*does not exist"):
            read_deployed(cloudformation, "DeviceBackend-dev")


def test_a_message_move_task_is_waited_for_until_it_ends() -> None:
    sqs, source = boto3.client("sqs", region_name=REGION), f"arn:aws:sqs:{REGION}:{ACCOUNT}:dead-letters"
    waits: list[float] = []
    with Stubber(sqs) as stubber:
        stubber.add_response("start_message_move_task", {"TaskHandle": "handle"}, {"SourceArn": source})
        for status, moved in (("RUNNING", 120), ("COMPLETED", 300)):
            task = {"Status": status, "SourceArn": source, "ApproximateNumberOfMessagesMoved": moved}
            stubber.add_response("list_message_move_tasks", {"Results": [task]}, {"SourceArn": source, "MaxResults": 1})
        assert move_back(sqs, source, poll_s=2.0, sleep=waits.append) == MoveTask("COMPLETED", 300, None)
    assert waits == [2.0]


def test_a_redrive_in_the_account_invokes_asynchronously_and_publishes_on_the_accounts_data_endpoint() -> None:
    made: list[tuple[str, dict[str, Any]]] = []
    clients = {service: boto3.client(service, region_name=REGION) for service in ("lambda", "iot", "iot-data")}
    stubbers = {service: Stubber(client) for service, client in clients.items()}

    def client(service: str, **options: Any) -> Any:
        made.append((service, options))
        return clients[service]

    function = Function("Fn", "ingest_telemetry", "DeviceBackend-Fn", f"{LAMBDA}:DeviceBackend-Fn")
    invocation = {"FunctionName": function.arn, "InvocationType": "Event", "Payload": b'{"ts": 1}'}
    stubbers["lambda"].add_response("invoke", {"StatusCode": 202}, invocation)
    endpoint = {"endpointAddress": "a1b2c3-ats.iot.eu-central-1.amazonaws.com"}
    stubbers["iot"].add_response("describe_endpoint", endpoint, {"endpointType": "iot:Data-ATS"})
    stubbers["iot-data"].add_response("publish", {}, {"topic": "dt/fleet/gw-1/environment", "qos": 1, "payload": b"{}"})
    for stubber in stubbers.values():
        stubber.activate()
    targets = AwsTargets(client)
    targets.invoke(function, {"ts": 1})
    targets.publish("dt/fleet/gw-1/environment", b"{}")
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert ("iot-data", {"endpoint_url": "https://a1b2c3-ats.iot.eu-central-1.amazonaws.com"}) in made
