"""`python -m operations sam-env-vars`: SAM's --env-vars file, every function's environment of cdk.out's template
resolved against the deployed stack (CloudFormation and IoT served by Stubber)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from local_runtime.assembly import load_stack
from operations.__main__ import main
from operations.sam_env_vars import sam_env_vars
from operations.stack import OperationsError, read_deployed
from tests.operations.deployed import ACCOUNT, REGION, stubbed_cloudformation

ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com"
GENERATED = "-1A2B3C4D5E6F"  # the suffix of the deployed names (deployed.py)
QUEUES = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"
TOPICS = f"arn:aws:sns:{REGION}:{ACCOUNT}"


def stubbed_iot() -> tuple[Any, Stubber]:
    iot = boto3.client("iot", region_name=REGION)
    stubber = Stubber(iot)
    answer = {"endpointAddress": ENDPOINT, "ResponseMetadata": {"HTTPStatusCode": 200}}  # as boto3 returns it
    stubber.add_response("describe_endpoint", answer, {"endpointType": "iot:Data-ATS"})
    stubber.activate()
    return iot, stubber


def environments(assembly: Path, **options: Any) -> dict[str, dict[str, str]]:
    template = load_stack(assembly)
    synthesized = json.loads(template.template_path.read_text())
    cloudformation, _ = stubbed_cloudformation(synthesized, get_template=False, **options)
    iot, stubber = stubbed_iot()
    deployed = read_deployed(cloudformation, "DeviceBackend", template=synthesized)
    found = sam_env_vars(template, deployed, lambda service: iot)
    stubber.assert_no_pending_responses()
    return found


def test_every_functions_environment_names_the_deployed_tables_queues_topics_and_endpoint(cloud_assembly: Path) -> None:
    found = environments(cloud_assembly)
    template = load_stack(cloud_assembly)
    functions = template.of_type("AWS::Lambda::Function")
    with_environment = [function.logical_id for function in functions if function.properties.get("Environment")]
    assert sorted(found) == sorted(with_environment) and len(found) == 7
    presence = found["PresenceTrackPresenceFunctionDFE2E158"]
    assert presence == {
        "POWERTOOLS_SERVICE_NAME": "track_presence",
        "POWERTOOLS_METRICS_NAMESPACE": "IotDeviceBackend",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CONNECTIVITY_TABLE": f"DeviceBackend-PresenceConnectivity32EE8179{GENERATED}",
        "SUBSCRIPTIONS_TABLE": f"DeviceBackend-PresenceSubscriptionsB98ACF62{GENERATED}",
        "DEAD_LETTER_QUEUE_URL": f"{QUEUES}/DeviceBackend-PresenceDeadLettersQueueA2347874{GENERATED}",
    }
    telemetry = found["TelemetryIngestTelemetryFunction121E70F3"]
    assert telemetry["ALERTS_TOPIC_ARN"] == f"{TOPICS}:DeviceBackend-TelemetryAlertsC6C47A3F{GENERATED}"
    assert telemetry["AWS_ENDPOINT_URL_IOT_DATA_PLANE"] == f"https://{ENDPOINT}"
    assert all(isinstance(value, str) for variables in found.values() for value in variables.values())


def test_a_variable_naming_a_resource_the_deployed_stack_lacks_fails_naming_it(cloud_assembly: Path) -> None:
    with pytest.raises(OperationsError) as refused:
        environments(cloud_assembly, left_out=("PresenceSubscriptionsB98ACF62",))
    assert str(refused.value) == (
        "These variables cannot be resolved against the stack DeviceBackend:\n"
        "  PresenceTrackPresenceFunctionDFE2E158 SUBSCRIPTIONS_TABLE: PresenceSubscriptionsB98ACF62 is not a resource "
        "of the deployed stack (is cdk.out newer than it?)"
    )


def test_the_command_writes_the_file_sam_reads(
    cloud_assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = json.loads((cloud_assembly / "DeviceBackend.template.json").read_text())
    cloudformation, _ = stubbed_cloudformation(template, get_template=False)
    iot, _ = stubbed_iot()

    class Session:  # boto3's, with the stubbed clients
        def __init__(self, profile_name: str | None, region_name: str | None) -> None:
            assert (profile_name, region_name) == ("ops", REGION)

        def client(self, service: str) -> Any:
            return {"cloudformation": cloudformation, "iot": iot}[service]

    monkeypatch.setattr(boto3, "Session", Session)
    out = tmp_path / "env.json"
    arguments = ["--assembly", str(cloud_assembly), "--profile", "ops", "--region", REGION, "--out", str(out)]
    assert main(["sam-env-vars", *arguments, "--function", "track_presence"]) == 0
    written = json.loads(out.read_text())
    assert list(written) == ["PresenceTrackPresenceFunctionDFE2E158"]
    table = written["PresenceTrackPresenceFunctionDFE2E158"]["CONNECTIVITY_TABLE"]
    assert table == f"DeviceBackend-PresenceConnectivity32EE8179{GENERATED}"
