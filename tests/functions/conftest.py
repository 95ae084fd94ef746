"""Handlers run in-process against moto, with the environment the stack gives them."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:test-function"
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Deployed:
    """A function with the AWS resources it uses; its handler module is imported on first use, in the test
    itself (a cold start), so that its logger writes to the test's captured stdout."""

    package: str
    dynamodb: Any
    sqs: Any
    tables: dict[str, str]
    dead_letter_queue_url: str

    alerts_queue_url: str | None = None
    _module: ModuleType | None = None

    @property
    def handler(self) -> ModuleType:
        if self._module is None:
            self._module = _import_fresh(f"{self.package}.handler")
        return self._module

    def invoke(self, event: dict) -> dict:
        return self.handler.handler(event, LambdaContext())

    def item(self, table: str, **key: str | int) -> dict | None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        typed = {k: TypeSerializer().serialize(v) for k, v in key.items()}
        found = self.dynamodb.get_item(TableName=self.tables[table], Key=typed)
        deserialize = TypeDeserializer().deserialize
        return {k: deserialize(v) for k, v in found["Item"].items()} if "Item" in found else None

    def dead_letters(self) -> list[dict]:
        messages = self.sqs.receive_message(
            QueueUrl=self.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return messages


def create_table(client: Any, name: str, *keys: str) -> str:
    """An on-demand table: the partition key, then the sort key if given; a key is a string unless it is
    written `name:N`."""
    named = [(key.split(":")[0], key.split(":")[1] if ":" in key else "S") for key in keys]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": k, "KeyType": t} for (k, _), t in zip(named, ("HASH", "RANGE"))],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": kind} for k, kind in named],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


# Every package of functions/: a cold start imports each of them again.
PACKAGES = tuple(path.parent.name for path in (Path(__file__).parents[2] / "functions").glob("*/__init__.py"))


def _import_fresh(module: str) -> ModuleType:
    """A cold start: module-level clients, configuration and loggers are created again from the environment."""
    for name in [name for name in sys.modules if name.split(".")[0] in PACKAGES]:
        del sys.modules[name]
    for name in PACKAGES:
        # Powertools configures the stdlib logger of a service once per process; a new container starts clean.
        logging.Logger.manager.loggerDict.pop(name, None)
    return importlib.import_module(module)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield boto3.client("dynamodb"), boto3.client("sqs")


def _deploy(monkeypatch, aws, package: str, tables: dict[str, tuple[str, ...]]) -> Deployed:
    dynamodb, sqs = aws
    names = {env: create_table(dynamodb, env.lower(), *keys) for env, keys in tables.items()}
    dead_letter_queue_url = sqs.create_queue(QueueName=f"{package}-dlq")["QueueUrl"]
    for env, name in names.items():
        monkeypatch.setenv(env, name)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dead_letter_queue_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", package)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "IotDeviceBackend")
    return Deployed(package, dynamodb, sqs, names, dead_letter_queue_url)


@pytest.fixture
def presence(monkeypatch, aws) -> Deployed:
    return _deploy(
        monkeypatch,
        aws,
        "track_presence",
        {"CONNECTIVITY_TABLE": ("clientId",), "SUBSCRIPTIONS_TABLE": ("clientId", "sessionIdentifier")},
    )


@pytest.fixture
def telemetry(monkeypatch, aws) -> Deployed:
    """ingest_telemetry with the stack's default thresholds, an alerts topic (read through a subscribed queue),
    and IoT's registry and data plane in moto."""
    from stacks.config import TelemetryConfig

    deployed = _deploy(
        monkeypatch, aws, "ingest_telemetry", {"LATEST_TABLE": ("thingName", "kind"), "HISTORY_TABLE": ("series", "ts:N")}
    )
    sns = boto3.client("sns")
    topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
    alerts_url = deployed.sqs.create_queue(QueueName="alerts-subscriber")["QueueUrl"]
    alerts_arn = deployed.sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=alerts_arn, Attributes={"RawMessageDelivery": "true"})
    config = TelemetryConfig()
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic_arn)
    monkeypatch.setenv("COMMAND_TOPIC_PREFIX", f"cmd/{config.application}")
    monkeypatch.setenv("HISTORY_DAYS", str(config.history_days))
    monkeypatch.setenv("ENRICHMENT_CACHE_SECONDS", str(config.enrichment_cache_seconds))
    monkeypatch.setenv("THRESHOLDS", json.dumps({"default": config.thresholds, "groups": {}}))
    deployed.alerts_queue_url = alerts_url
    return deployed


@pytest.fixture
def inventory(monkeypatch, aws) -> Deployed:
    return _deploy(monkeypatch, aws, "track_inventory", {"INVENTORY_TABLE": ("pk", "sk")})


def emitted(captured: str) -> tuple[list[dict], dict[str, float]]:
    """The JSON log lines a handler printed, and the totals of the EMF metrics among them."""
    logs, metrics = [], {}
    for line in captured.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "_aws" in record:
            for definition in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = record[definition["Name"]]
                metrics[definition["Name"]] = metrics.get(definition["Name"], 0) + sum(value if isinstance(value, list) else [value])
        else:
            logs.append(record)
    return logs, metrics


# The check -> actions map the mitigate_audit_findings tests deploy (action names as the stack deploys them).
MITIGATION_ACTIONS = {
    "DEVICE_CERTIFICATE_EXPIRING_CHECK": ["QuarantineDevice", "PublishFindingToSns"],
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK": ["PublishFindingToSns"],
}


@pytest.fixture
def mitigation(monkeypatch, aws) -> Deployed:
    """mitigate_audit_findings, live (DRY_RUN=false), with MITIGATION_ACTIONS and a dead-letter queue in moto.
    IoT's Device Defender APIs are not in moto: the tests stub the handler's `iot` client."""
    deployed = _deploy(monkeypatch, aws, "mitigate_audit_findings", {})
    monkeypatch.setenv("MITIGATION_ACTIONS", json.dumps(MITIGATION_ACTIONS))
    monkeypatch.setenv("DRY_RUN", "false")
    return deployed
