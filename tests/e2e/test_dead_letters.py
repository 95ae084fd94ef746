"""The dead-letter tool (operations) on the synthesized app in the local runtime: every kind of dead letter, made
by the app's own behaviour when something it depends on fails, listed and shown with its reason, left as it is
by a dry run, then redriven once the cause is fixed, to its function, leaving its dead-letter queue empty."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from boto3.dynamodb.types import TypeDeserializer

from events import event_path, load_event
from local_runtime import LocalRuntime
from local_runtime.activity import AsyncInvoked, BatchDelivered, RuleFired
from local_runtime.scenario import Publish, load_scenario
from operations.__main__ import main
from operations.dead_letters import DeadLetter
from operations.local import dead_letters
from operations.redrive import MoveTask

CONNECTED = load_event("track_presence/connected")["Records"][0]["body"]
[WITHOUT_CLIENT_ID] = [
    record["body"]
    for record in load_event("track_presence/malformed")["Records"]
    if record["body"].startswith("{") and "clientId" not in json.loads(record["body"])
]
Capture = pytest.CaptureFixture[str]
_deserialize = TypeDeserializer().deserialize


def resource(runtime: LocalRuntime, resource_type: str, path: str) -> str:
    """The physical id of the stack's resource of that type whose construct path holds `path`."""
    created = runtime.cloud.created
    [found] = [r.logical_id for r in created if r.type == resource_type and f"/{path}/" in (r.cdk_path or "")]
    return runtime.cloud.physical[found].ref


def items(runtime: LocalRuntime, table_path: str) -> list[dict[str, Any]]:
    table = resource(runtime, "AWS::DynamoDB::Table", table_path)
    found = runtime.cloud.client("dynamodb").scan(TableName=table)["Items"]
    return [{name: _deserialize(value) for name, value in item.items()} for item in found]


def take_table_away(runtime: LocalRuntime, table_path: str) -> Callable[[], None]:
    """Deletes the table (what the functions meet when it is unavailable); the function returned restores it."""
    dynamodb, name = runtime.cloud.client("dynamodb"), resource(runtime, "AWS::DynamoDB::Table", table_path)
    table = dynamodb.describe_table(TableName=name)["Table"]
    dynamodb.delete_table(TableName=name)

    def restore() -> None:
        dynamodb.create_table(
            TableName=name,
            KeySchema=table["KeySchema"],
            AttributeDefinitions=table["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )

    return restore


def take_queue_away(runtime: LocalRuntime, queue_path: str) -> Callable[[], None]:
    sqs, url = runtime.cloud.client("sqs"), resource(runtime, "AWS::SQS::Queue", queue_path)
    settable = ("DelaySeconds", "MessageRetentionPeriod", "VisibilityTimeout", "RedrivePolicy")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(settable))["Attributes"]
    sqs.delete_queue(QueueUrl=url)
    return lambda: sqs.create_queue(QueueName=url.rsplit("/", 1)[-1], Attributes=attributes)


def redelivered_soon(runtime: LocalRuntime, queue_path: str) -> None:
    """A failed record comes back after a second instead of the 3-minute visibility timeout: time passes."""
    url = resource(runtime, "AWS::SQS::Queue", queue_path)
    runtime.cloud.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})


def waiting(runtime: LocalRuntime, queue_path: str) -> int:
    url = resource(runtime, "AWS::SQS::Queue", queue_path)
    attributes = runtime.cloud.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def ids(letters: list[DeadLetter]) -> list[str]:
    return sorted(letter.message.message_id for letter in letters)


def by_kind(letters: list[DeadLetter]) -> dict[str, DeadLetter]:
    found = {letter.kind: letter for letter in letters}
    assert len(found) == len(letters), [letter.kind for letter in letters]
    return found


def since(runtime: LocalRuntime, start: int, kind: type) -> list[Any]:
    return [activity for activity in runtime.activities[start:] if isinstance(activity, kind)]


def published(sample: str) -> Publish:
    [step] = load_scenario(event_path(f"ingest_telemetry/published/{sample}"))
    assert isinstance(step, Publish)
    return step


def test_presence_events_whose_deliveries_all_failed_go_back_by_a_message_move_task(cloud_assembly: Path) -> None:
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [presence] = tool.select("Presence/DeadLetters")
        redelivered_soon(runtime, "Presence/Events")
        restore = take_table_away(runtime, "Presence/Connectivity")
        runtime.publish("$aws/events/presence/connected/sensor-0042", CONNECTED.encode())
        runtime.drain()
        [letter] = tool.read(presence)
        assert (letter.kind, letter.moved_by_sqs, letter.rejected) == ("failed-record", True, False)
        assert letter.reason == "its 5 deliveries to track_presence from Presence/Events failed"
        assert letter.content == json.loads(CONNECTED)

        dry_run = tool.redrive(presence, dry_run=True)
        assert [(o.result, o.detail) for o in dry_run.outcomes] == [("would be moved back", "by a message move task")]
        assert ids(tool.read(presence)) == ids([letter]) and waiting(runtime, "Presence/Events") == 0

        restore()
        start = len(runtime.activities)
        report = tool.redrive(presence)
        assert report.move_task == MoveTask("COMPLETED", 1, None) and not report.failed
        assert tool.read(presence) == []
        runtime.drain()
        [delivery] = since(runtime, start, BatchDelivered)
        assert (delivery.queue, delivery.function) == ("PresenceEventsQueue967271A8", "track_presence")
        assert delivery.left_in_queue == ()
        [row] = items(runtime, "Presence/Connectivity")
        assert (row["clientId"], row["connected"]) == ("sensor-0042", True)


def test_a_queue_holding_rejected_events_too_is_redriven_message_by_message_and_rejections_only_on_request(
    cloud_assembly: Path,
) -> None:
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [presence] = tool.select("Presence/DeadLetters")
        redelivered_soon(runtime, "Presence/Events")
        restore = take_table_away(runtime, "Presence/Connectivity")
        runtime.publish("$aws/events/presence/connected/sensor-0042", CONNECTED.encode())
        runtime.publish("$aws/events/presence/connected/sensor-0043", WITHOUT_CLIENT_ID.encode())
        runtime.drain()
        letters = by_kind(tool.read(presence))
        rejected = letters["rejected-record"]
        assert rejected.reason == "track_presence rejected it as malformed: clientId must be a non-empty string"
        assert rejected.rejected and set(letters) == {"failed-record", "rejected-record"}
        restore()

        report = tool.redrive(presence)
        assert sorted((o.letter.kind, o.result, o.detail) for o in report.outcomes) == [
            ("failed-record", "redriven", "SendMessage to Presence/Events"),
            ("rejected-record", "skipped", "rejected as malformed: redrive it with --include-rejected once a fix "
             "that accepts it is deployed (until then it is rejected again)"),
        ]  # fmt: skip
        runtime.drain()
        assert [row["clientId"] for row in items(runtime, "Presence/Connectivity")] == ["sensor-0042"]
        assert ids(tool.read(presence)) == ids([rejected])

        start = len(runtime.activities)
        [outcome] = tool.redrive(presence, include_rejected=True).outcomes
        assert (outcome.result, outcome.detail) == ("redriven", "SendMessage to Presence/Events")
        runtime.drain()
        [delivery] = since(runtime, start, BatchDelivered)
        assert (delivery.function, delivery.invocation.result) == ("track_presence", {"batchItemFailures": []})
        [again] = tool.read(presence)  # reached the function, which rejects it as before
        assert again.message.message_id != rejected.message.message_id and again.reason == rejected.reason


def test_a_reading_that_failed_its_retries_is_invoked_again_with_its_payload(cloud_assembly: Path) -> None:
    valid, invalid = published("environment_valid"), published("environment_invalid")
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [telemetry] = tool.select("Telemetry/DeadLetters")
        restore = take_table_away(runtime, "Telemetry/Latest")
        for step in (valid, invalid):
            runtime.publish(step.topic, step.payload, step.client_id)
        runtime.drain()
        letters = by_kind(tool.read(telemetry))
        failure, rejected = letters["lambda-failure"], letters["rejected-event"]
        assert failure.reason.startswith(
            "Lambda gave up on ingest_telemetry after 3 attempts (RetriesExhausted): ResourceNotFoundException"
        )
        rule_output = {"thingName": "greenhouse-gw-01", "kind": "environment", "clientId": "greenhouse-gw-01"}
        kept = {name: value for name, value in failure.content.items() if name != "receivedAt"}
        assert kept == {**json.loads(valid.payload), **rule_output}  # what the rule handed the function
        assert rejected.reason == "ingest_telemetry rejected it as malformed: humidity must be a number"

        dry_run = tool.redrive(telemetry, dry_run=True, include_rejected=True)
        assert {(o.letter.kind, o.result, o.detail) for o in dry_run.outcomes} == {
            ("lambda-failure", "would be redriven", "invoke ingest_telemetry asynchronously"),
            ("rejected-event", "would be redriven", "invoke ingest_telemetry asynchronously"),
        }
        runtime.drain()
        assert ids(tool.read(telemetry)) == ids([failure, rejected])

        restore()
        start = len(runtime.activities)
        [outcome, skipped] = sorted(tool.redrive(telemetry).outcomes, key=lambda o: o.result)
        assert (outcome.letter.kind, outcome.result, skipped.result) == ("lambda-failure", "redriven", "skipped")
        runtime.drain()
        [invocation] = since(runtime, start, AsyncInvoked)
        assert invocation.source == "dead-letter redrive"
        assert invocation.invocation.result == {"result": "ReadingsStored", "breaches": []}
        [latest] = items(runtime, "Telemetry/Latest")
        assert (latest["thingName"], latest["ts"]) == ("greenhouse-gw-01", json.loads(valid.payload)["ts"])
        assert ids(tool.read(telemetry)) == ids([rejected])


def test_a_finding_whose_remediation_failed_is_remediated_when_redriven_and_a_malformed_one_is_rejected_again(
    cloud_assembly: Path,
) -> None:
    finding = json.loads(load_event("remediate_finding/device_certificate_shared")["Records"][0]["Sns"]["Message"])
    malformed = load_event("remediate_finding/malformed")["Records"][0]["Sns"]["Message"]
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [remediation] = tool.select("Defender/RemediationDeadLetters")
        restore = take_table_away(runtime, "Defender/Remediations")
        sns, findings = runtime.cloud.client("sns"), resource(runtime, "AWS::SNS::Topic", "Defender/Findings")
        sns.publish(TopicArn=findings, Message=json.dumps(finding))
        sns.publish(TopicArn=findings, Message=malformed)
        runtime.drain()
        letters = by_kind(tool.read(remediation))
        failure, rejected = letters["lambda-failure"], letters["rejected-event"]
        assert failure.reason.startswith("Lambda gave up on remediate_finding after 3 attempts (RetriesExhausted)")
        [record] = failure.content["Records"]  # the SNS event Lambda got, replayed as it was
        assert json.loads(record["Sns"]["Message"]) == finding
        assert rejected.reason.startswith("remediate_finding rejected it as malformed: ")
        assert json.loads(rejected.content["Records"][0]["Sns"]["Message"]) == json.loads(malformed)

        restore()
        start = len(runtime.activities)
        report = tool.redrive(remediation, include_rejected=True)
        assert sorted(o.result for o in report.outcomes) == ["redriven", "redriven"]
        runtime.drain()
        results = [a.invocation.result["results"][0]["result"] for a in since(runtime, start, AsyncInvoked)]
        assert sorted(results) == ["FindingsRemediated", "MalformedFindings"]
        assert {item["findingId"] for item in items(runtime, "Defender/Remediations")} == {finding["findingId"]}
        [again] = tool.read(remediation)
        assert again.kind == "rejected-event" and again.message.message_id != rejected.message.message_id


def test_lifecycle_events_a_rule_could_not_queue_are_sent_to_the_rule_queue_and_binary_ones_only_shown(
    cloud_assembly: Path,
) -> None:
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [rule_errors] = tool.select("Platform/RuleErrors")
        restore = take_queue_away(runtime, "Presence/Events")
        runtime.publish("$aws/events/presence/connected/sensor-0042", CONNECTED.encode())
        runtime.publish("$aws/events/presence/connected/sensor-0099", b"\xff\xfe\x00")
        restore()
        letters = sorted(tool.read(rule_errors), key=lambda letter: bool(letter.steps))
        binary, lost = letters
        assert lost.reason == binary.reason == "rule iot_backend_presence_connected: SqsAction failed"
        assert "AWS.SimpleQueueService.NonExistentQueue" in lost.details[0] and lost.content == json.loads(CONNECTED)
        assert [step.describe() for step in lost.steps] == ["SendMessage to Presence/Events"]
        assert binary.not_redrivable == (
            "its payload is not UTF-8 text, which the rule's SQS action cannot send (useBase64 is off)"
        )

        dry_run = tool.redrive(rule_errors, dry_run=True)
        assert sorted(o.result for o in dry_run.outcomes) == ["skipped", "would be redriven"]
        runtime.drain()
        assert items(runtime, "Presence/Connectivity") == [] and len(tool.read(rule_errors)) == 2

        tool.redrive(rule_errors)
        runtime.drain()
        [row] = items(runtime, "Presence/Connectivity")
        assert (row["clientId"], row["connected"]) == ("sensor-0042", True)
        assert ids(tool.read(rule_errors)) == ids([binary])


def test_a_reading_a_rule_could_not_deliver_is_published_again_once_the_fix_is_deployed(
    cloud_assembly: Path, tmp_path: Path
) -> None:
    reading = published("environment_valid")
    with LocalRuntime(without_the_environment_rule_permission(cloud_assembly, tmp_path)) as broken:
        tool = dead_letters(broken)
        [rule_errors] = tool.select("Platform/RuleErrors")
        broken.publish(reading.topic, reading.payload, reading.client_id)
        [letter] = tool.read(rule_errors)
        assert letter.reason == "rule iot_backend_telemetry_environment: LambdaAction failed"
        assert "403" in letter.details[0] and letter.content == json.loads(reading.payload)
        assert [step.describe() for step in letter.steps] == [
            f"publish on {reading.topic} (every rule on the topic runs again)"
        ]
        kept = letter.message.body
    # The fix deployed: the rule-error queue keeps its messages over a deployment.
    with LocalRuntime(cloud_assembly) as runtime:
        tool = dead_letters(runtime)
        [rule_errors] = tool.select("Platform/RuleErrors")
        runtime.cloud.client("sqs").send_message(QueueUrl=rule_errors.queue.url, MessageBody=kept)
        start = len(runtime.activities)
        [outcome] = tool.redrive(rule_errors).outcomes
        assert outcome.result == "redriven"
        runtime.drain()
        fired = since(runtime, start, RuleFired)
        assert {f.rule for f in fired} == {"iot_backend_telemetry_environment", "iot_backend_telemetry_archive"}
        assert not [f for f in fired if any(action.error for action in f.actions)]
        [latest] = items(runtime, "Telemetry/Latest")
        assert (latest["thingName"], latest["ts"]) == ("greenhouse-gw-01", json.loads(reading.payload)["ts"])
        assert latest["clientId"] == "n/a"  # published again by the tool, not by the device over MQTT
        assert tool.read(rule_errors) == []


def without_the_environment_rule_permission(assembly: Path, tmp_path: Path) -> Path:
    """The app as deployed by mistake without the Lambda permission of one rule: IoT's invocations fail (403)."""
    copy = tmp_path / "assembly"
    copy.mkdir()
    for entry in assembly.iterdir():
        if not entry.name.endswith(".template.json"):
            os.symlink(entry, copy / entry.name)
    for template_path in assembly.glob("*.template.json"):
        template = json.loads(template_path.read_text())
        [permission] = [
            logical_id
            for logical_id, body in template["Resources"].items()
            if body["Type"] == "AWS::Lambda::Permission"
            and "TelemetryEnvironmentRule" in json.dumps(body["Properties"].get("SourceArn"))
        ]
        del template["Resources"][permission]
        (copy / template_path.name).write_text(json.dumps(template))
    return copy


def test_the_command_shows_a_rejected_reading_and_redrives_it_on_the_local_runtime(
    cloud_assembly: Path, capsys: Capture
) -> None:
    scenario = str(event_path("ingest_telemetry/published/environment_invalid"))
    local = ["--local", scenario, "--assembly", str(cloud_assembly), "--queue", "Telemetry/DeadLetters"]
    assert main(["dead-letters", "show", *local]) == 0
    out = capsys.readouterr().out
    assert "Telemetry/DeadLetters (TelemetryDeadLettersQueue0354EEBB): 1 message\n" in out
    assert "    kind: rejected-event\n" in out
    assert "    reason: ingest_telemetry rejected it as malformed: humidity must be a number\n" in out
    assert '"humidity": "48%"' in out

    assert main(["dead-letters", "redrive", "--include-rejected", *local]) == 0
    out = capsys.readouterr().out
    assert "): invoke ingest_telemetry asynchronously" in out and "  redriven: " in out
    redriven, _, now = out.partition("What the redriven messages did:")[2].partition("The dead-letter queues now:")
    assert "ingest_telemetry (asynchronous, from dead-letter redrive, attempt 1): ok" in redriven
    assert "Reading rejected to the dead-letter queue" in redriven
    assert now.strip() == "Telemetry/DeadLetters: 1 message"


def test_an_unknown_queue_is_refused_with_the_queues_there_are(cloud_assembly: Path, capsys: Capture) -> None:
    scenario = str(event_path("ingest_telemetry/published/environment_valid"))
    code = main(["dead-letters", "list", "--local", scenario, "--assembly", str(cloud_assembly), "--queue", "Nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "No dead-letter queue 'Nope' in DeviceBackend; it has: Platform/RuleErrors, Presence/DeadLetters" in err
