"""activate_certificate (JITR) on the events/activate_certificate samples, against moto's IoT, S3 and SQS."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Iterator

import time

import boto3
import botocore.retries.bucket
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from events import load_event
from tests import jitr_samples
from tests.functions.conftest import LambdaContext, _import_fresh, emitted

POLICY, GROUP = jitr_samples.POLICY, jitr_samples.GROUP
BUCKET = "trust-bucket"
REJECTED = ("revoked", "expired", "bad_common_name", "unknown_ca")


@dataclass
class Jitr:
    iot: Any
    sqs: Any
    ids: dict[str, str]
    dead_letter_queue_url: str
    handler: Any = None

    def deliver(self, sample: str | dict[str, Any]) -> dict[str, Any]:
        """A cold start on the first delivery; the same container afterwards."""
        if self.handler is None:
            self.handler = _import_fresh("activate_certificate.handler")
        event = load_event(f"activate_certificate/{sample}") if isinstance(sample, str) else sample
        return self.handler.handler(event, LambdaContext())

    def deliver_and_fail(self, sample: str) -> None:
        """Delivers a one-record sample that must fail: left to SQS to redeliver."""
        with pytest.raises(Exception) as failed:
            self.deliver(sample)
        # The class of the handler's own cold start (its modules are imported afresh).
        assert isinstance(failed.value, self.handler.sqs_batch.BatchFailed)

    def status(self, case: str) -> str:
        return jitr_samples.status(self.iot, self.ids[case])

    def things(self) -> list[str]:
        return sorted(thing["thingName"] for thing in self.iot.list_things()["things"])

    def device_of(self, case: str) -> dict[str, Any]:
        """What the certificate of `case` was given: its things, policies and the fleet group's members."""
        arn = self.iot.describe_certificate(certificateId=self.ids[case])["certificateDescription"]["certificateArn"]
        return {
            "things": self.iot.list_principal_things(principal=arn)["things"],
            "policies": [p["policyName"] for p in self.iot.list_attached_policies(target=arn)["policies"]],
            "fleet": self.iot.list_things_in_thing_group(thingGroupName=GROUP)["things"],
        }

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])


@pytest.fixture
def jitr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Jitr]:
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        iot, s3, sqs = boto3.client("iot"), boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        iot.create_thing_group(thingGroupName=GROUP)
        iot.create_policy(policyName=POLICY, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
        dead_letter_queue_url = sqs.create_queue(QueueName="activation-dlq")["QueueUrl"]
        environment = {
            "TRUST_BUCKET": BUCKET, "TRUST_REFRESH_SECONDS": "300", "REQUIRE_ALLOW_LIST": "false",
            "DEVICE_POLICY_NAME": POLICY, "FLEET_THING_GROUP": GROUP, "DEAD_LETTER_QUEUE_URL": dead_letter_queue_url,
            "POWERTOOLS_SERVICE_NAME": "activate_certificate", "POWERTOOLS_METRICS_NAMESPACE": "IotDeviceBackend",
        }  # fmt: skip
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        yield Jitr(iot, sqs, jitr_samples.install(iot, s3, BUCKET), dead_letter_queue_url)


def test_a_new_device_is_activated_with_its_thing_policy_and_group(jitr: Jitr, capsys: pytest.CaptureFixture[str]) -> None:
    assert jitr.deliver("new") == {"batchItemFailures": []}
    assert jitr.status("new") == "ACTIVE"
    thing = jitr.iot.describe_thing(thingName="greenhouse-sensor-0001")
    assert thing["attributes"] == {
        "certificateSerial": "3fffa2acb856790a1c0fb40badb51534ea7e86ef", "caCertificateId": jitr.ids["ca"]
    }  # fmt: skip
    assert jitr.device_of("new") == {"things": ["greenhouse-sensor-0001"], "policies": [POLICY], "fleet": ["greenhouse-sensor-0001"]}
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"CertificatesActivated": 1}
    assert any(log["message"] == "Certificate activated" and log["thingName"] == "greenhouse-sensor-0001" for log in logs)


def test_a_repeated_event_changes_nothing(jitr: Jitr, capsys: pytest.CaptureFixture[str]) -> None:
    assert jitr.deliver("duplicate") == {"batchItemFailures": []}
    jitr.deliver("new")  # and once more, as IoT publishes again when the device reconnects
    assert jitr.status("new") == "ACTIVE" and jitr.things() == ["greenhouse-sensor-0001"]
    assert jitr.device_of("new")["things"] == ["greenhouse-sensor-0001"]
    _, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"CertificatesActivated": 1, "AlreadyDecided": 2}


def test_an_active_certificate_is_left_as_it_is(jitr: Jitr, capsys: pytest.CaptureFixture[str]) -> None:
    assert jitr.deliver("already_active") == {"batchItemFailures": []}
    assert jitr.status("already_active") == "ACTIVE" and jitr.things() == []
    assert emitted(capsys.readouterr().out)[1] == {"AlreadyDecided": 1}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("revoked", "the certificate's serial number is on the CA's revocation list"),
        ("expired", "the certificate is outside its validity period"),
        ("bad_common_name", "the certificate's common name is not a valid thing name"),
        ("unknown_ca", "the certificate is not issued by the CA named in the event"),
    ],
)
def test_a_certificate_that_fails_a_check_is_revoked_and_gets_nothing(
    jitr: Jitr, capsys: pytest.CaptureFixture[str], case: str, reason: str
) -> None:
    assert jitr.deliver(case) == {"batchItemFailures": []}
    assert jitr.status(case) == "REVOKED"
    assert jitr.things() == []
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"CertificatesRevoked": 1}
    [revoked] = [log for log in logs if log["message"] == "Certificate revoked"]
    assert revoked["reason"] == reason and revoked["certificateId"] == jitr.ids[case]
    assert "BEGIN CERTIFICATE" not in json.dumps(logs)


def test_a_malformed_event_goes_to_the_dead_letter_queue_with_its_reason(jitr: Jitr) -> None:
    assert jitr.deliver("malformed") == {"batchItemFailures": []}
    [message] = jitr.dead_letters()
    assert message["MessageAttributes"]["rejectionReason"]["StringValue"] == (
        "certificateId must be 64 lower-case hex digits"
    )


def test_without_the_cas_revocation_list_the_certificate_waits(jitr: Jitr) -> None:
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=f"crl/{jitr.ids['ca']}.crl")
    jitr.deliver_and_fail("new")
    assert jitr.status("new") == "PENDING_ACTIVATION" and jitr.things() == []


STEPS = (
    "DescribeCertificate", "DescribeCACertificate", "GetObject", "CreateThing", "AttachThingPrincipal",
    "AttachPolicy", "AddThingToThingGroup", "UpdateCertificate",
)  # fmt: skip


@pytest.mark.parametrize("failing", STEPS)
def test_a_failure_at_any_step_then_a_retry_ends_active_with_everything_attached_once(jitr: Jitr, failing: str) -> None:
    handler = _import_fresh("activate_certificate.handler")
    jitr.handler = handler
    failures = []

    def fail_once(**_: Any) -> None:
        if not failures:
            failures.append(failing)
            raise ConnectionError(f"injected failure of {failing}")

    client = handler.trust._s3 if failing == "GetObject" else handler.iot
    client.meta.events.register(f"before-call.*.{failing}", fail_once)
    jitr.deliver_and_fail("new")
    assert jitr.status("new") == "PENDING_ACTIVATION"
    assert jitr.deliver("new") == {"batchItemFailures": []}  # SQS's redelivery
    assert failures == [failing]
    assert jitr.status("new") == "ACTIVE"
    assert jitr.device_of("new") == {"things": ["greenhouse-sensor-0001"], "policies": [POLICY], "fleet": ["greenhouse-sensor-0001"]}


def test_a_new_device_costs_six_iot_calls_once_the_trust_material_is_cached(jitr: Jitr) -> None:
    calls: list[str] = []
    handler = _import_fresh("activate_certificate.handler")
    jitr.handler = handler
    for client in (handler.iot, handler.trust._s3):
        client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    jitr.deliver("already_active")  # warms the container; the CA and CRL are fetched on the first new device
    jitr.deliver("new")
    first = list(calls)
    calls.clear()
    jitr.deliver("revoked")
    assert first == ["DescribeCertificate", "DescribeCertificate", "DescribeCACertificate", "GetObject", *STEPS[3:]]
    assert calls == ["DescribeCertificate", "UpdateCertificate"]  # a rejection: two


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_throttling_on_every_iot_call_ends_with_every_device_activated_and_none_lost(
    jitr: Jitr, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many devices of the example CA, each registered as JITR registers it.
    from device_pki import CertificateAuthority

    # botocore's back-off and adaptive pacing, without the waiting: what is tested is that nothing is lost.
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(botocore.retries.bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    ca = CertificateAuthority.create(common_name="Throttled fleet CA")
    registered = jitr.iot.register_ca_certificate(
        caCertificate=ca.certificate_pem, verificationCertificate=ca.certificate_pem, setAsActive=True, allowAutoRegistration=True
    )["certificateId"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"crl/{registered}.crl", Body=ca.crl())
    bodies = []
    for number in range(12):
        device = ca.issue_device(f"throttled-{number:02d}")
        certificate_id = jitr.iot.register_certificate(
            certificatePem=device.certificate_pem, caCertificatePem=ca.certificate_pem, status="PENDING_ACTIVATION"
        )["certificateId"]
        bodies.append({"certificateId": certificate_id, "caCertificateId": registered, "timestamp": 1,
                       "certificateStatus": "PENDING_ACTIVATION", "awsAccountId": "123456789012",
                       "certificateRegistrationTimestamp": "1"})  # fmt: skip
    handler = _import_fresh("activate_certificate.handler")
    jitr.handler = handler
    chance = random.Random(7)
    throttled = []

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        if chance.random() < 0.5:
            throttled.append(request.url)
            body = b'{"message": "Rate exceeded"}'
            headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
            return AWSResponse(request.url, 429, headers, _Raw(body))
        return None

    handler.iot.meta.events.register("before-send.iot", throttle)
    template = load_event("activate_certificate/new")["Records"][0]
    pending = [{**template, "messageId": f"m-{n}", "body": json.dumps(body)} for n, body in enumerate(bodies)]
    for _ in range(10):  # SQS redelivers what failed, until nothing does
        by_id = {record["messageId"]: record for record in pending}
        failed = []
        for start in range(0, len(pending), 5):
            try:
                response = jitr.deliver({"Records": pending[start : start + 5]})
            except Exception:  # the whole batch failed
                failed += pending[start : start + 5]
                continue
            failed += [by_id[failure["itemIdentifier"]] for failure in response["batchItemFailures"]]
        pending = failed
        if not pending:
            break
    assert pending == [] and len(throttled) > 20
    assert [jitr.iot.describe_certificate(certificateId=b["certificateId"])["certificateDescription"]["status"]
            for b in bodies] == ["ACTIVE"] * 12  # fmt: skip
    assert jitr.things() == [f"throttled-{n:02d}" for n in range(12)]
    assert jitr.dead_letters() == []


def test_a_thing_of_that_name_made_for_another_certificate_is_not_taken_over(jitr: Jitr) -> None:
    # AWS's CreateThing refuses a second thing of the same name with other attributes (moto does not check).
    from botocore.exceptions import ClientError

    handler = _import_fresh("activate_certificate.handler")
    jitr.handler = handler

    def exists(**_: Any) -> None:
        error = {"Error": {"Code": "ResourceAlreadyExistsException", "Message": "thing already exists"}}
        raise ClientError(error, "CreateThing")

    handler.iot.meta.events.register("before-call.iot.CreateThing", exists)
    assert jitr.deliver("new") == {"batchItemFailures": []}
    assert jitr.status("new") == "PENDING_ACTIVATION"
    [message] = jitr.dead_letters()
    assert message["MessageAttributes"]["rejectionReason"]["StringValue"] == (
        "a thing named greenhouse-sensor-0001 already exists for another certificate; not activated"
    )
