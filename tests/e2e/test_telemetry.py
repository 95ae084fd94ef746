"""Telemetry end to end on the synthesized app: each sample a device publishes
(events/ingest_telemetry/published/) through its kind's rule, IoT's asynchronous invocation and
ingest_telemetry, to the tables, the alert, the command the device receives and the raw archive."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from events import RUN_AT_MS, event_path, load_event
from local_runtime import LocalRuntime
from local_runtime.activity import AsyncInvoked, RuleFired
from local_runtime.iot_sql import MessageContext, parse_rule_sql
from local_runtime.iot_sql.values import json_text
from local_runtime.scenario import Publish, load_scenario
from tests.e2e.assemblies import receive

KINDS = ("environment", "soil", "power")
CASES = ("valid", "invalid", "out_of_range", "duplicate")  # played in this order, every kind
SAMPLES = [f"{kind}_{case}" for kind in KINDS for case in CASES]
_deserialize = TypeDeserializer().deserialize


def published(sample: str) -> list[Publish]:
    """The device's messages, their times resolved as the function samples' are (load_event)."""
    steps = load_scenario(event_path(f"ingest_telemetry/published/{sample}"), at_ms=RUN_AT_MS)
    assert steps and all(isinstance(step, Publish) for step in steps)
    return steps  # type: ignore[return-value]


def logical_id(runtime: LocalRuntime, resource_type: str, path_part: str) -> str:
    [found] = [
        r.logical_id for r in runtime.cloud.created if r.type == resource_type and path_part in r.label
    ]
    return found


class Played:
    """What the samples left: the tables, the alerts, the commands devices received, dead letters, the archive."""

    def __init__(self, runtime: LocalRuntime, alerts_queue_url: str) -> None:
        dynamodb = runtime.cloud.client("dynamodb")

        def scan(path_part: str) -> list[dict[str, Any]]:
            table = runtime.cloud.physical[logical_id(runtime, "AWS::DynamoDB::Table", path_part)].ref
            items = dynamodb.scan(TableName=table)["Items"]
            return [{name: _deserialize(value) for name, value in item.items()} for item in items]

        self.latest = {(i["thingName"], i["kind"]): i for i in scan("Telemetry/Latest")}
        self.history = scan("Telemetry/History")
        sqs = runtime.cloud.client("sqs")
        self.alerts = []
        while batch := sqs.receive_message(QueueUrl=alerts_queue_url, MaxNumberOfMessages=10).get("Messages", []):
            self.alerts += [json.loads(message["Body"]) for message in batch]
        self.commands = [(p.topic, json.loads(p.payload)) for p in runtime.published_to("cmd/fleet/+/+")]
        self.dead_letters = receive(runtime, logical_id(runtime, "AWS::SQS::Queue", "Telemetry/DeadLetters"))
        self.rule_errors = receive(runtime, logical_id(runtime, "AWS::SQS::Queue", "Platform/RuleErrors"))
        self.fired = [a for a in runtime.activities if isinstance(a, RuleFired)]
        self.invocations = [a.invocation for a in runtime.activities if isinstance(a, AsyncInvoked)]
        s3 = runtime.cloud.client("s3")
        bucket = runtime.cloud.physical[logical_id(runtime, "AWS::S3::Bucket", "TelemetryArchive/Bucket")].ref
        self.archive_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        self.archived = [
            json.loads(line)
            for key in self.archive_keys
            for line in gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode().splitlines()
        ]


@pytest.fixture(scope="module")
def played(cloud_assembly: Path) -> Played:
    """Every sample, each kind's cases in order, with the sensors registered as onboarding leaves them."""
    with LocalRuntime(cloud_assembly, drain_timeout_s=30) as runtime:
        iot = runtime.cloud.client("iot")
        iot.create_thing_group(thingGroupName="greenhouse-a")
        for thing in ("greenhouse-gw-01", "soil-sensor-01", "soil-sensor-02"):
            iot.create_thing(thingName=thing, attributePayload={"attributes": {"site": "north"}})
            iot.add_thing_to_thing_group(thingGroupName="greenhouse-a", thingName=thing)
        # A subscriber of the alerts topic, as an operator's queue or e-mail would be.
        sqs, sns = runtime.cloud.client("sqs"), runtime.cloud.client("sns")
        alerts_url = sqs.create_queue(QueueName="alerts-subscriber")["QueueUrl"]
        alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic = runtime.cloud.physical[logical_id(runtime, "AWS::SNS::Topic", "Telemetry/Alerts")].ref
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn, Attributes={"RawMessageDelivery": "true"})
        for sample in SAMPLES:
            for step in published(sample):
                runtime.publish(step.topic, step.payload, step.client_id)
            runtime.drain()
        return Played(runtime, alerts_url)


def measures(kind: str, payload: dict[str, Any]) -> dict[str, float]:
    return {name: value for name, value in payload.items() if name != "ts"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_ends_with_its_newest_valid_reading_as_latest_and_each_valid_reading_once_in_history(played, kind):
    [valid] = published(f"{kind}_valid")
    [newest] = published(f"{kind}_out_of_range")
    thing = valid.topic.split("/")[2]
    latest = played.latest[(thing, kind)]
    newest_payload = json.loads(newest.payload)
    assert latest["ts"] == newest_payload["ts"]
    assert {k: float(v) for k, v in latest["reading"].items()} == measures(kind, newest_payload)
    assert (latest["clientId"], latest["registered"], latest["thingGroups"], latest["attributes"]) == (
        thing, True, ["greenhouse-a"], {"site": "north"}
    )  # fmt: skip
    series = sorted(item["ts"] for item in played.history if item["series"] == f"{thing}#{kind}")
    assert series == [json.loads(valid.payload)["ts"], newest_payload["ts"]]  # the duplicate added nothing


@pytest.mark.parametrize("kind", KINDS)
def test_a_breach_alerts_once_and_the_device_receives_its_command_on_its_command_topic(played, kind):
    [breach] = published(f"{kind}_out_of_range")
    thing, payload = breach.topic.split("/")[2], json.loads(breach.payload)
    [alert] = [a for a in played.alerts if a["kind"] == kind]
    assert (alert["thingName"], alert["ts"], alert["thingGroups"]) == (thing, payload["ts"], ["greenhouse-a"])
    [(topic, command)] = [(t, c) for t, c in played.commands if c["kind"] == kind]
    assert topic == f"cmd/fleet/{thing}/threshold" and command["commandId"] == alert["alertId"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_invalid_reading_is_kept_in_the_dead_letter_queue_with_its_reason(played, kind):
    [invalid] = published(f"{kind}_invalid")
    [dead] = [m for m in played.dead_letters if json.loads(m["Body"])["kind"] == kind]
    kept, sample = json.loads(dead["Body"]), load_event(f"ingest_telemetry/{kind}_invalid")
    del kept["receivedAt"], sample["receivedAt"]  # IoT's clock: the time of this run
    assert kept == sample and invalid.topic.endswith(f"/{kind}")
    assert dead["MessageAttributes"]["rejectionReason"]["StringValue"].startswith(("humidity", "moisture", "battery"))


def test_every_rule_fired_every_action_succeeded_and_no_invocation_failed(played):
    assert {f.rule for f in played.fired} == {f"iot_backend_telemetry_{name}" for name in (*KINDS, "archive")}
    assert not [f for f in played.fired if f.sql_error or any(a.error for a in f.actions)]
    assert played.rule_errors == []
    assert all(invocation.error is None for invocation in played.invocations)
    results = sorted(invocation.result["result"] for invocation in played.invocations)
    assert results == sorted(["ReadingsStored", "ReadingsRejected", "ThresholdsBreached", "DuplicateReadings", "DuplicateReadings"] * 3)


def test_the_archive_keeps_every_message_as_the_device_sent_it(played):
    sent = [(step.topic, step.client_id, step.payload) for sample in SAMPLES for step in published(sample)]
    archived = [(r["topic"], r["clientId"], base64.b64decode(r["payload"])) for r in played.archived]
    assert sorted(archived) == sorted(sent)
    assert played.archive_keys and all(key.startswith("raw/") for key in played.archive_keys)


def app_sql(assembly: Path) -> dict[str, str]:
    [template] = assembly.glob("*.template.json")
    return {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]["Sql"]
        for r in json.loads(template.read_text())["Resources"].values()
        if r["Type"] == "AWS::IoT::TopicRule"
    }


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_function_sample_is_what_its_kinds_rule_makes_of_the_device_message(cloud_assembly, sample):
    """The two forms of every sample agree: the function's input (for sam local invoke) is the synthesized
    rule's SQL run on the message the device publishes (for the local runtime)."""
    kind = sample.split("_", 1)[0]
    function_input = load_event(f"ingest_telemetry/{sample}")
    last = published(sample)[-1]
    statement = parse_rule_sql(app_sql(cloud_assembly)[f"iot_backend_telemetry_{kind}"])
    context = MessageContext(topic=last.topic, client_id=last.client_id, timestamp_ms=function_input["receivedAt"])
    # The function gets the output's JSON, parsed as its runtime parses it.
    assert json.loads(json_text(statement.evaluate(last.payload, context))) == function_input
