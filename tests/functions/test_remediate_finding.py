"""remediate_finding on the samples of events/remediate_finding (what the PUBLISH_FINDING_TO_SNS mitigation
action's topic hands the function), against IoT's registry, DynamoDB, SNS and SQS in moto."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from events import load_event
from tests.functions.conftest import Deployed, _deploy, emitted

QUARANTINE = "quarantine"
SHARED, REVOKED_STILL_ACTIVE = "device_certificate_shared", "revoked_certificate_still_active"


@pytest.fixture
def remediation(monkeypatch, aws) -> Deployed:
    """remediate_finding with the stack's environment: its table, an operators' topic (read through a subscribed
    queue), the quarantine group, real mode (a test sets DRY_RUN before the first invocation to change that)."""
    deployed = _deploy(monkeypatch, aws, "remediate_finding", {"REMEDIATIONS_TABLE": ("findingId", "change")})
    sns = boto3.client("sns")
    topic_arn = sns.create_topic(Name="remediation-notices")["TopicArn"]
    notices_url = deployed.sqs.create_queue(QueueName="notices-subscriber")["QueueUrl"]
    notices_arn = deployed.sqs.get_queue_attributes(QueueUrl=notices_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=notices_arn, Attributes={"RawMessageDelivery": "true"})
    boto3.client("iot").create_thing_group(thingGroupName=QUARANTINE)
    monkeypatch.setenv("NOTICES_TOPIC_ARN", topic_arn)
    monkeypatch.setenv("QUARANTINE_GROUP", QUARANTINE)
    monkeypatch.setenv("DRY_RUN", "false")
    deployed.alerts_queue_url = notices_url
    return deployed


def device_certificate(*things: str, status: str = "ACTIVE") -> str:
    """A device certificate in IoT attached to each of `things` (several: a shared certificate)."""
    iot = boto3.client("iot")
    created = iot.create_keys_and_certificate(setAsActive=True)
    for thing in things:
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=created["certificateArn"])
    if status != "ACTIVE":
        iot.update_certificate(certificateId=created["certificateId"], newStatus=status)
    return created["certificateId"]


def finding_event(name: str, certificate_id: str | None = None) -> dict[str, Any]:
    """The sample, about `certificate_id` (moto makes its own ids)."""
    event = copy.deepcopy(load_event(f"remediate_finding/{name}"))
    if certificate_id:
        message = json.loads(event["Records"][0]["Sns"]["Message"])
        finding = message.get("finding", message)
        finding["nonCompliantResource"]["resourceIdentifier"]["deviceCertificateId"] = certificate_id
        event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def finding_of(event: dict) -> dict:
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    return message.get("finding", message)


def certificate_status(certificate_id: str) -> str:
    return boto3.client("iot").describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]


def quarantined() -> list[str]:
    return sorted(boto3.client("iot").list_things_in_thing_group(thingGroupName=QUARANTINE)["things"])


def notices(deployed: Deployed) -> list[dict]:
    messages = deployed.sqs.receive_message(QueueUrl=deployed.alerts_queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def records(deployed: Deployed, finding_id: str) -> dict[str, dict]:
    from boto3.dynamodb.types import TypeDeserializer

    found = deployed.dynamodb.query(
        TableName=deployed.tables["REMEDIATIONS_TABLE"],
        KeyConditionExpression="findingId = :f",
        ExpressionAttributeValues={":f": {"S": finding_id}},
    )["Items"]
    deserialize = TypeDeserializer().deserialize
    return {item["change"]["S"]: {k: deserialize(v) for k, v in item.items()} for item in found}


def count_calls(deployed: Deployed, operation: str) -> list[str]:
    """Each call the function's IoT client makes to `operation` appends to the list returned."""
    calls: list[str] = []
    deployed.handler.clients.iot.meta.events.register(f"before-call.iot.{operation}", lambda **kw: calls.append(operation))
    return calls


def test_a_shared_certificate_is_revoked_its_things_quarantined_and_operators_told_once(remediation, capsys):
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)
    finding = finding_of(event)

    [result] = remediation.invoke(event)["results"]

    assert result["result"] == "FindingsRemediated"
    assert certificate_status(certificate) == "REVOKED"
    assert quarantined() == ["sensor-0042", "sensor-0043"]
    [notice] = notices(remediation)
    assert (notice["noticeId"], notice["certificateId"], notice["things"]) == (
        finding["findingId"], certificate, ["sensor-0042", "sensor-0043"]
    )  # fmt: skip
    assert notice["finding"]["checkName"] == "DEVICE_CERTIFICATE_SHARED_CHECK" and notice["finding"]["severity"] == "CRITICAL"
    assert notice["changes"][f"revoke-certificate#{certificate}"] == "revoked"
    out = capsys.readouterr().out
    assert emitted(out)[1] == {"FindingsRemediated": 1}
    assert "BEGIN CERTIFICATE" not in out


def test_every_change_is_recorded_with_what_why_and_which_finding(remediation):
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)
    finding = finding_of(event)
    remediation.invoke(event)

    recorded = records(remediation, finding["findingId"])
    assert set(recorded) == {f"revoke-certificate#{certificate}", "quarantine#sensor-0042", "quarantine#sensor-0043", "notify"}
    revoke = recorded[f"revoke-certificate#{certificate}"]
    assert (revoke["action"], revoke["resource"], revoke["status"], revoke["outcome"]) == (
        "revoke-certificate", certificate, "done", "revoked"
    )  # fmt: skip
    for item in recorded.values():
        assert item["status"] == "done" and item["recordedAt"] <= item["doneAt"]
        assert (item["checkName"], item["reasonForNonComplianceCode"], item["reasonForNonCompliance"]) == (
            finding["checkName"], finding["reasonForNonComplianceCode"], finding["reasonForNonCompliance"]
        )  # fmt: skip
        assert (item["auditTaskId"], item["severity"], item["certificateId"]) == (finding["taskId"], "CRITICAL", certificate)
        assert item["mitigation"]["taskId"].startswith("defender-remediation-")
    assert recorded["quarantine#sensor-0042"]["outcome"] == "added"
    assert recorded["notify"]["outcome"] == "published"


def test_a_redelivered_finding_changes_nothing_and_notifies_nobody_again(remediation, capsys):
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)
    remediation.invoke(event)
    before = records(remediation, finding_of(event)["findingId"])
    revokes = count_calls(remediation, "UpdateCertificate")
    additions = count_calls(remediation, "AddThingToThingGroup")

    [again] = remediation.invoke(event)["results"]

    assert again["result"] == "RemediationsAlreadyDone"
    assert {d["status"] for d in again["decisions"]} == {"already-done"}
    assert revokes == [] and additions == []
    assert len(notices(remediation)) == 1
    assert records(remediation, finding_of(event)["findingId"]) == before
    assert emitted(capsys.readouterr().out)[1] == {"FindingsRemediated": 1, "RemediationsAlreadyDone": 1}


def test_a_copy_delivered_while_the_first_is_revoking_changes_nothing_and_notifies_nobody(remediation, capsys):
    """SNS and Lambda may deliver the same finding twice at once: the copy finds the revoke claimed by the other
    delivery, whose invocation has not ended, and leaves everything to it (which notifies once, after revoking)."""
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)
    finding_id = finding_of(event)["findingId"]
    remediation.dynamodb.put_item(
        TableName=remediation.tables["REMEDIATIONS_TABLE"],
        Item={
            "findingId": {"S": finding_id},
            "change": {"S": f"revoke-certificate#{certificate}"},
            "status": {"S": "planned"},
            "leaseUntil": {"S": "2999-01-01T00:00:00.000+00:00"},  # the other invocation is still running
        },
    )
    revokes = count_calls(remediation, "UpdateCertificate")

    [result] = remediation.invoke(event)["results"]

    assert result["result"] == "RemediationsInProgressElsewhere"
    assert [(d["change"], d["status"]) for d in result["decisions"]] == [(f"revoke-certificate#{certificate}", "in-progress")]
    assert revokes == [] and certificate_status(certificate) == "ACTIVE" and quarantined() == []
    assert notices(remediation) == []
    assert set(records(remediation, finding_id)) == {f"revoke-certificate#{certificate}"}
    assert emitted(capsys.readouterr().out)[1] == {"RemediationsInProgressElsewhere": 1}


def test_a_crash_after_the_revoke_is_finished_by_the_retry_once(remediation):
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)
    finding_id = finding_of(event)["findingId"]
    revokes = count_calls(remediation, "UpdateCertificate")
    failures = []

    def fail_once(**kwargs):
        if not failures:
            failures.append(1)
            raise ClientError({"Error": {"Code": "InternalFailureException", "Message": "injected"}}, "AddThingToThingGroup")

    remediation.handler.clients.iot.meta.events.register("before-call.iot.AddThingToThingGroup", fail_once)

    with pytest.raises(ClientError):  # the invocation fails: Lambda retries it
        remediation.invoke(event)
    crashed = records(remediation, finding_id)
    assert crashed[f"revoke-certificate#{certificate}"]["status"] == "done"
    assert crashed["quarantine#sensor-0042"]["status"] == "planned"  # recorded before it was made
    assert "notify" not in crashed and notices(remediation) == [] and quarantined() == []

    [retried] = remediation.invoke(event)["results"]

    assert retried["result"] == "FindingsRemediated"
    assert revokes == ["UpdateCertificate"]  # once, by the first attempt
    assert quarantined() == ["sensor-0042", "sensor-0043"]
    assert {change: item["status"] for change, item in records(remediation, finding_id).items()} == dict.fromkeys(
        [f"revoke-certificate#{certificate}", "notify", "quarantine#sensor-0042", "quarantine#sensor-0043"], "done"
    )
    [notice] = notices(remediation)
    assert notice["changes"][f"revoke-certificate#{certificate}"] == "revoked"


def test_a_dry_run_records_every_decision_and_changes_nothing(remediation, monkeypatch, capsys):
    monkeypatch.setenv("DRY_RUN", "true")
    certificate = device_certificate("sensor-0042", "sensor-0043")
    event = finding_event(SHARED, certificate)

    [result] = remediation.invoke(event)["results"]

    assert result["result"] == "DryRunDecisions"
    assert certificate_status(certificate) == "ACTIVE" and quarantined() == [] and notices(remediation) == []
    recorded = records(remediation, finding_of(event)["findingId"])
    assert {change: (item["status"], item["action"]) for change, item in recorded.items()} == {
        f"revoke-certificate#{certificate}": ("dry-run", "revoke-certificate"),
        "quarantine#sensor-0042": ("dry-run", "quarantine-thing"),
        "quarantine#sensor-0043": ("dry-run", "quarantine-thing"),
        "notify": ("dry-run", "notify-operators"),
    }
    assert {d["change"]: d["outcome"] for d in result["decisions"]}[f"revoke-certificate#{certificate}"] == "revoke"
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"DryRunDecisions": 1}
    assert len([line for line in logs if line["message"] == "Dry run: change decided, not made"]) == 4


def test_an_already_revoked_certificate_is_left_as_it_is_and_its_things_quarantined(remediation):
    certificate = device_certificate("sensor-0042", "sensor-0043", status="REVOKED")
    event = finding_event(SHARED, certificate)
    revokes = count_calls(remediation, "UpdateCertificate")

    remediation.invoke(event)

    assert revokes == []
    assert records(remediation, finding_of(event)["findingId"])[f"revoke-certificate#{certificate}"]["outcome"] == "already-revoked"
    assert quarantined() == ["sensor-0042", "sensor-0043"]
    [notice] = notices(remediation)
    assert notice["certificateStatusBefore"] == "REVOKED"


def test_a_certificate_its_ca_revoked_is_revoked_in_iot_too(remediation):
    certificate = device_certificate("meter-7")
    event = finding_event(REVOKED_STILL_ACTIVE, certificate)  # the finding under a `finding` key

    [result] = remediation.invoke(event)["results"]

    assert result["result"] == "FindingsRemediated"
    assert certificate_status(certificate) == "REVOKED" and quarantined() == ["meter-7"]
    [notice] = notices(remediation)
    assert notice["finding"]["reasonForNonComplianceCode"] == "CERTIFICATE_REVOKED_BY_ISSUER"
    revoke = records(remediation, finding_of(event)["findingId"])[f"revoke-certificate#{certificate}"]
    assert revoke["mitigation"]["actionId"] == "5d3c1b2a-0f9e-4d8c-b7a6-1e2f3a4b5c6d"


def test_a_finding_without_custom_remediation_is_recorded_once_and_notifies_nobody(remediation, capsys):
    event = finding_event("without_custom_remediation")
    calls = count_calls(remediation, "*")

    [result] = remediation.invoke(event)["results"]
    [again] = remediation.invoke(event)["results"]

    assert result["result"] == again["result"] == "FindingsWithoutRemediation"
    [record] = records(remediation, finding_of(event)["findingId"]).values()
    assert (record["change"], record["status"], record["checkName"], record["nonCompliantResourceType"]) == (
        "no-remediation", "done", "LOGGING_DISABLED_CHECK", "ACCOUNT_SETTINGS"
    )  # fmt: skip
    assert calls == [] and notices(remediation) == []
    assert emitted(capsys.readouterr().out)[1] == {"FindingsWithoutRemediation": 2}


def test_a_malformed_finding_is_kept_with_its_reason_and_not_retried(remediation, capsys):
    event = load_event("remediate_finding/malformed")

    [result] = remediation.invoke(event)["results"]  # returns: an exception would make Lambda retry in vain

    assert result["result"] == "MalformedFindings"
    assert "deviceCertificateId" in result["reason"] and "not-a-certificate-id" not in result["reason"]
    [dead] = remediation.dead_letters()
    assert json.loads(dead["Body"]) == event  # the SNS event of the one record: replayable once fixed
    assert dead["MessageAttributes"]["rejectionReason"]["StringValue"] == result["reason"]
    assert records(remediation, finding_of(event)["findingId"]) == {} and notices(remediation) == []
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"MalformedFindings": 1}
    [line] = [line for line in logs if line["message"] == "Finding rejected to the dead-letter queue"]
    assert line["level"] == "WARNING" and line["reason"] == result["reason"]


def test_an_event_that_is_not_from_sns_is_rejected(remediation, capsys):
    [result] = remediation.invoke({"findingId": "x"})["results"]
    assert result["result"] == "MalformedFindings" and result["reason"].startswith("Records")
    [dead] = remediation.dead_letters()
    assert json.loads(dead["Body"]) == {"findingId": "x"}


def test_a_throttled_revoke_is_retried_by_the_client(remediation):
    certificate = device_certificate("sensor-0042", "sensor-0043")
    iot = remediation.handler.clients.iot
    assert iot.meta.config.retries["mode"] == "adaptive"
    attempts = []

    def throttle_once(request, **kwargs):
        attempts.append(request.url)
        if len(attempts) == 1:
            body = json.dumps({"message": "Rate exceeded"}).encode()
            headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
            return AWSResponse(request.url, 429, headers, _Raw(body))
        return None  # on to moto

    iot.meta.events.register_first("before-send.iot.UpdateCertificate", throttle_once)

    [result] = remediation.invoke(finding_event(SHARED, certificate))["results"]

    assert len(attempts) == 2  # throttled, then retried by botocore
    assert result["result"] == "FindingsRemediated" and certificate_status(certificate) == "REVOKED"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs):
        yield self._body
