"""The AWS stub counts what a function calls, answers as botocore expects, and always stops."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import boto3
import pytest

from authorize_device.keys import parse_jwks
from authorize_device.logic import decide, load_settings
from authorize_device.models import parse_request
from benchmarks.aws_stub import AUDIT_FINDINGS, AUTHORIZER_KEYS, SHARING_THINGS, THING_GROUP, AwsStub
from benchmarks.candidates import function_candidate, own_candidate, sqs_batch
from benchmarks.harness import STACK_ENVIRONMENT, run_child
from benchmarks.lambda_image import build_image
from event_processing.fields import MalformedEvent
from events import load_event
from ingest_telemetry.logic import Thresholds, breaches
from ingest_telemetry.models import parse_telemetry
from track_presence.models import parse_lifecycle_event

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/DeadLetters"


def is_malformed(body: object) -> bool:
    try:
        parse_lifecycle_event(body)  # type: ignore[arg-type]
    except MalformedEvent:
        return True
    return False


def test_counts_a_functions_calls_by_operation(tmp_path: Path) -> None:
    """A malformed record goes to the dead-letter queue: the stub sees one SQS SendMessage per such record."""
    sample = load_event("track_presence/malformed")
    bodies = [record["body"] for record in sample["Records"]]
    malformed = sum(is_malformed(body) for body in bodies)
    assert 0 < malformed < len(bodies)  # the sample mixes both, so both operations are counted
    candidate = function_candidate("track_presence", sqs_batch("track_presence", sample["Records"]))
    with AwsStub() as aws:
        image = build_image(tmp_path, [candidate])
        result = run_child(candidate, image, aws, warm_invocations=1, first_event_records=len(candidate.event["Records"]))
        assert aws.take_counts() == {}  # taken by run_child: nothing is left to put down to the next child
    assert result.aws_calls == {"sqs:SendMessage": 2 * malformed, "dynamodb:UpdateItem": 2 * (len(bodies) - malformed)}
    assert result.measurements["handler_calls"] == result.measurements["batches"] == 2


def test_answers_as_botocore_expects() -> None:
    with AwsStub() as aws:
        dynamodb = boto3.client("dynamodb", endpoint_url=aws.endpoint_url)
        sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url)
        iot = boto3.client("iot", endpoint_url=aws.endpoint_url)
        dynamodb.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET #n = :v",
                             ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":v": {"N": "1"}})
        sent = sqs.send_message(QueueUrl=QUEUE_URL, MessageBody="not JSON")
        found = dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)
        with pytest.raises(dynamodb.exceptions.ClientError, match="UnknownOperationException"):
            dynamodb.delete_item(TableName="t", Key={"pk": {"S": "a"}})
        thing = iot.describe_thing(thingName="sensor-1")
        groups = iot.list_thing_groups_for_thing(thingName="sensor-1")["thingGroups"]
        counts = aws.take_counts()
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"not JSON").hexdigest()
    assert sent["MessageId"]
    assert found["Item"] == {"pk": {"S": "a"}}
    assert (thing["thingName"], thing["defaultClientId"]) == ("sensor-1", "sensor-1") and thing["attributes"]
    assert [group["groupName"] for group in groups] == [THING_GROUP]
    assert counts == {
        "dynamodb:UpdateItem": 1, "sqs:SendMessage": 1, "dynamodb:GetItem": 1, "dynamodb:DeleteItem": 1,
        "iot:DescribeThing": 1, "iot:ListThingGroupsForThing": 1,
    }  # fmt: skip


def test_stops_even_when_the_run_fails() -> None:
    threads_before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="a child failed"):
        with AwsStub() as aws:
            port = int(aws.endpoint_url.rsplit(":", 1)[1])
            raise RuntimeError("a child failed")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not [t for t in set(threading.enumerate()) - threads_before if t.name == "aws-stub"]


def test_is_not_reachable_once_stopped() -> None:
    stub = AwsStub()
    with stub:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        stub.endpoint_url


def test_the_authorizer_reads_its_keys_once_per_container_and_admits_its_measured_sample(tmp_path: Path) -> None:
    """The authorizer's keys parameter answers with the samples' JWKS: one GetParameter at the cold start, none
    for the warm decisions, and the measured sample is a device the authorizer admits (so its admission path is
    what the benchmark measures)."""
    candidate = own_candidate("authorize_device", batch_size=1)
    assert candidate.trigger == "invoke"
    with AwsStub() as aws:
        image = build_image(tmp_path, [candidate])
        result = run_child(candidate, image, aws, warm_invocations=5, first_event_records=1)
    assert result.aws_calls == {"ssm:GetParameter": 1}
    assert result.measurements["handler_calls"] == 6
    answer = authorize_in_process(candidate.event)
    assert answer["isAuthenticated"] is True


def authorize_in_process(event: dict) -> dict:
    settings = load_settings({**STACK_ENVIRONMENT, "AWS_REGION": "eu-west-1"})
    request = parse_request(event, settings.token_key_name)
    keys = parse_jwks(AUTHORIZER_KEYS.read_text(), settings.algorithm)
    return decide(request, keys, settings, "123456789012", time.time()).answer()


def test_telemetry_reads_the_registry_once_per_container_and_stores_every_delivery_as_a_new_reading(
    tmp_path: Path,
) -> None:
    """The measured sample is a reading within the stack's thresholds, and every write of the stub succeeds: each
    delivery costs the latest state's and the history's UpdateItem, never a third (a breach's) or none (a
    repeat's), and the registry is read once, at the cold start."""
    candidate = own_candidate("ingest_telemetry", batch_size=1)
    with AwsStub() as aws:
        image = build_image(tmp_path, [candidate])
        result = run_child(candidate, image, aws, warm_invocations=5, first_event_records=1)
    assert result.aws_calls == {"dynamodb:UpdateItem": 12, "iot:DescribeThing": 1, "iot:ListThingGroupsForThing": 1}
    assert result.measurements["handler_calls"] == 6
    telemetry = parse_telemetry(candidate.event)
    limits = Thresholds.from_json(STACK_ENVIRONMENT["THRESHOLDS"]).for_thing(telemetry.kind, (THING_GROUP,))
    assert limits and breaches(telemetry, limits) == ()


def test_serves_the_audit_findings_samples_page_by_page_and_publishes_to_sns() -> None:
    with AwsStub() as aws:
        iot = boto3.client("iot", endpoint_url=aws.endpoint_url, region_name="eu-west-1")
        sns = boto3.client("sns", endpoint_url=aws.endpoint_url, region_name="eu-west-1")
        pages = list(
            iot.get_paginator("list_audit_findings").paginate(taskId="t", checkName="DEVICE_CERTIFICATE_EXPIRING_CHECK")
        )
        unknown = iot.list_audit_findings(taskId="t", checkName="CONFLICTING_CLIENT_IDS_CHECK")
        started = iot.start_audit_mitigation_actions_task(
            taskId="audit_CHECK_001", target={"findingIds": ["f"]}, auditCheckToActionsMapping={"CHECK": ["a"]},
            clientRequestToken="token",
        )  # fmt: skip
        published = sns.publish(TopicArn="arn:aws:sns:eu-west-1:123456789012:notices", Message="m")
        counts = aws.take_counts()
    expected = [load_event(f"mitigate_audit_findings/findings/DEVICE_CERTIFICATE_EXPIRING_CHECK_page{n}") for n in (1, 2, 3)]
    ids = [[finding["findingId"] for finding in page["findings"]] for page in pages]
    assert ids == [[finding["findingId"] for finding in page["findings"]] for page in expected]
    assert unknown["findings"] == [] and started["taskId"] == "audit_CHECK_001" and published["MessageId"]
    assert counts == {"iot:ListAuditFindings": 4, "iot:StartAuditMitigationActionsTask": 1, "sns:Publish": 1}


def test_mitigation_reads_every_findings_page_and_starts_a_task_per_25_findings(tmp_path: Path) -> None:
    """The measured audit has three non-compliant checks: one with findings on three pages, one with one page,
    one the stub has no findings for; each delivery reads all five pages and starts a task per chunk of 25 findings
    with one not suppressed."""
    candidate = own_candidate("mitigate_audit_findings", batch_size=1)
    assert candidate.trigger == "event"
    findings = [finding for path in sorted(AUDIT_FINDINGS.glob("*.json")) for finding in json.loads(path.read_text())["findings"]]
    by_check: dict[str, list[str]] = {}
    for finding in findings:
        by_check.setdefault(finding["checkName"], []).append(finding["findingId"])
    suppressed = {f["findingId"] for f in findings if f["isSuppressed"]}  # in the chunks, left out of the targets
    tasks = {
        check: sum(bool(set(sorted(ids)[start : start + 25]) - suppressed) for start in range(0, len(ids), 25))
        for check, ids in by_check.items()
    }
    with AwsStub() as aws:
        image = build_image(tmp_path, [candidate])
        result = run_child(candidate, image, aws, warm_invocations=2, first_event_records=1)
    assert result.measurements["handler_calls"] == 3
    assert result.aws_calls == {"iot:ListAuditFindings": 3 * 5, "iot:StartAuditMitigationActionsTask": 3 * sum(tasks.values())}


def test_remediation_of_a_shared_certificate_revokes_it_quarantines_both_devices_and_notifies(tmp_path: Path) -> None:
    """Every write of the stub succeeds, so each delivery is remediated as a new finding: four changes (revoke,
    two quarantines, a notice), each claimed and then marked done."""
    candidate = own_candidate("remediate_finding", batch_size=1)
    assert candidate.trigger == "event"
    with AwsStub() as aws:
        image = build_image(tmp_path, [candidate])
        result = run_child(candidate, image, aws, warm_invocations=2, first_event_records=1)
    assert result.measurements["handler_calls"] == 3
    per_delivery = {
        "iot:DescribeCertificate": 1, "iot:ListPrincipalThings": 1, "iot:UpdateCertificate": 1,
        "iot:AddThingToThingGroup": len(SHARING_THINGS), "sns:Publish": 1, "dynamodb:UpdateItem": 2 * (2 + len(SHARING_THINGS)),
    }  # fmt: skip
    assert result.aws_calls == {operation: 3 * count for operation, count in per_delivery.items()}
