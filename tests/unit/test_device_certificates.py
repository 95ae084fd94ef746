"""Device certificates at the local endpoint (local_runtime/device_certificates.py): IoT's decision on a client
certificate (registered status, JITR, JITP, validity), against moto in process, with certificates the development
PKI makes here; and the TLS layer's trust, over a real handshake on loopback."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from moto import mock_aws
from moto.core import config as moto_config

from device_pki import CertificateAuthority, IssuedCertificate
from events import sqs_bodies
from local_runtime.device_certificates import (
    REGISTERED_TOPIC,
    DeviceTrust,
    EndpointCredentials,
    ProvisioningTemplate,
    ProvisioningTemplates,
    admit,
    install,
)
from local_runtime.errors import NotEmulated
from local_runtime.iot_registry import IotRegistry
from stacks.onboarding.certificate_authorities import jitp_template_body

ACCOUNT, REGION = "123456789012", "eu-west-1"
JITP_TEMPLATE, POLICY, GROUP = "iot_backend_jitp", "iot_backend_device", "iot_backend_fleet"


@pytest.fixture
def iot() -> Iterator[Any]:
    saved = moto_config.default_user_config.get("iot")
    moto_config.default_user_config["iot"] = {"use_valid_cert": True}  # certificate ids as IoT computes them
    try:
        with mock_aws():
            uninstall = install()
            try:
                yield boto3.client("iot", region_name=REGION)
            finally:
                uninstall()
    finally:
        moto_config.default_user_config["iot"] = saved or {"use_valid_cert": False}


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(common_name="Factory CA")


def register(iot: Any, ca: CertificateAuthority, *, active: bool = True, auto: bool = True, template: str | None = None) -> str:
    request: dict[str, Any] = {
        "caCertificate": ca.certificate_pem,
        "verificationCertificate": ca.certificate_pem,  # moto does not check the proof of possession
        "setAsActive": active,
        "allowAutoRegistration": auto,
    }
    if template:
        request["registrationConfig"] = {"templateName": template}
    return iot.register_ca_certificate(**request)["certificateId"]


def der(device: IssuedCertificate) -> bytes:
    return device.certificate.public_bytes(serialization.Encoding.DER)


def now_ms() -> int:
    return int(time.time() * 1000)


def decide(iot: Any, device: IssuedCertificate, templates: ProvisioningTemplates | None = None, at_ms: int | None = None):
    templates = templates or ProvisioningTemplates()
    return admit(IotRegistry(ACCOUNT, REGION), iot, der(device), templates=templates, account=ACCOUNT, now_ms=at_ms or now_ms())


def status(iot: Any, certificate_id: str) -> str:
    return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]


# --- registered certificates -------------------------------------------------------------------------------------


def test_a_registered_active_certificate_is_admitted(iot: Any, ca: CertificateAuthority) -> None:
    register(iot, ca)
    device = ca.issue_device("sensor-1")
    certificate_id = iot.register_certificate(
        certificatePem=device.certificate_pem, caCertificatePem=ca.certificate_pem, status="ACTIVE"
    )["certificateId"]
    admission = decide(iot, device)
    assert (admission.admitted, admission.certificate_id, admission.events) == (True, certificate_id, [])
    assert admission.certificate_arn == f"arn:aws:iot:eu-west-1:{ACCOUNT}:cert/{certificate_id}"


@pytest.mark.parametrize("refused_status", ["REVOKED", "INACTIVE", "PENDING_TRANSFER"])
def test_a_registered_certificate_that_is_not_active_is_refused_without_registering_anything(
    iot: Any, ca: CertificateAuthority, refused_status: str
) -> None:
    register(iot, ca)
    device = ca.issue_device("sensor-1")
    iot.register_certificate(certificatePem=device.certificate_pem, caCertificatePem=ca.certificate_pem, status=refused_status)
    admission = decide(iot, device)
    assert not admission.admitted and refused_status in admission.reason and admission.events == []
    assert len(iot.list_certificates()["certificates"]) == 1


def test_a_certificate_that_is_expired_or_not_yet_valid_is_refused(iot: Any, ca: CertificateAuthority) -> None:
    register(iot, ca)
    now = datetime.now(timezone.utc)
    expired = ca.issue_device("old", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    early = ca.issue_device("early", not_before=now + timedelta(days=1), not_after=now + timedelta(days=30))
    assert "expired" in decide(iot, expired).reason and "not valid before" in decide(iot, early).reason
    assert iot.list_certificates()["certificates"] == []  # neither was auto-registered


def test_a_certificate_of_no_registered_ca_is_refused(iot: Any, ca: CertificateAuthority) -> None:
    register(iot, ca)
    stranger = CertificateAuthority.create(common_name="Factory CA")  # same name, another key
    admission = decide(iot, stranger.issue_device("sensor-1"))
    assert not admission.admitted and "no CA certificate registered with IoT issued it" in admission.reason


# --- JITR --------------------------------------------------------------------------------------------------------


def test_jitr_registers_a_new_certificate_pending_publishes_iots_event_and_closes_the_connection(
    iot: Any, ca: CertificateAuthority
) -> None:
    ca_id = register(iot, ca)
    device = ca.issue_device("sensor-1")
    at = now_ms()
    admission = decide(iot, device, at_ms=at)
    assert not admission.admitted and "closed" in admission.reason
    assert status(iot, admission.certificate_id) == "PENDING_ACTIVATION"
    assert [c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]] == [
        admission.certificate_id
    ]
    [(topic, payload)] = admission.events
    assert topic == REGISTERED_TOPIC.format(ca_id) == f"$aws/events/certificates/registered/{ca_id}"
    event = json.loads(payload)
    assert event == {
        "certificateId": admission.certificate_id,
        "caCertificateId": ca_id,
        "timestamp": at,
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": ACCOUNT,
        "certificateRegistrationTimestamp": str(at),
    }
    # The same fields, in the same order and of the same types, as the sample the activation function's tests use.
    [sample] = sqs_bodies("activate_certificate/new")
    assert list(event) == list(sample) and [type(v) for v in event.values()] == [type(v) for v in sample.values()]


def test_a_pending_certificate_presented_again_is_refused_with_the_event_again_until_the_app_activates_it(
    iot: Any, ca: CertificateAuthority
) -> None:
    ca_id = register(iot, ca)
    device = ca.issue_device("sensor-1")
    first = decide(iot, device)
    again = decide(iot, device)
    assert not again.admitted and "PENDING_ACTIVATION" in again.reason
    [(topic, payload)] = again.events
    assert topic.endswith(ca_id) and json.loads(payload)["certificateId"] == first.certificate_id
    iot.update_certificate(certificateId=first.certificate_id, newStatus="ACTIVE")  # what activate_certificate does
    assert decide(iot, device).admitted
    assert len(iot.list_certificates()["certificates"]) == 1


@pytest.mark.parametrize(("active", "auto", "said"), [(True, False, "auto-registration DISABLE"), (False, True, "INACTIVE")])
def test_a_new_certificate_is_refused_and_not_registered_when_its_ca_is_inactive_or_without_auto_registration(
    iot: Any, ca: CertificateAuthority, active: bool, auto: bool, said: str
) -> None:
    register(iot, ca, active=active, auto=auto)
    admission = decide(iot, ca.issue_device("sensor-1"))
    assert not admission.admitted and said in admission.reason and admission.events == []
    assert iot.list_certificates()["certificates"] == []


def test_auto_registration_follows_update_ca_certificate(iot: Any, ca: CertificateAuthority) -> None:
    ca_id = register(iot, ca, auto=False)
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="ENABLE")
    description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    assert description["autoRegistrationStatus"] == "ENABLE"
    assert decide(iot, ca.issue_device("sensor-1")).events  # registered by JITR now


# --- JITP --------------------------------------------------------------------------------------------------------


def app_templates() -> ProvisioningTemplates:
    body = json.dumps(jitp_template_body(policy_name=POLICY, fleet_group_name=GROUP))
    return ProvisioningTemplates([ProvisioningTemplate.parse(JITP_TEMPLATE, "JITP", True, body, "test")])


def test_jitp_provisions_the_thing_group_policy_and_active_certificate_and_the_retry_connects(
    iot: Any, ca: CertificateAuthority
) -> None:
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iot.create_thing_group(thingGroupName=GROUP)
    register(iot, ca, template=JITP_TEMPLATE)
    device = ca.issue_device("greenhouse-7")
    templates = app_templates()

    first = decide(iot, device, templates)
    assert not first.admitted and "first connection is closed" in first.reason and first.events == []
    assert status(iot, first.certificate_id) == "ACTIVE"
    thing = iot.describe_thing(thingName="greenhouse-7")
    assert thing["attributes"] == {"certificateSerial": device.serial_hex}
    assert [t for t in iot.list_things_in_thing_group(thingGroupName=GROUP)["things"]] == ["greenhouse-7"]
    assert [p["policyName"] for p in iot.list_attached_policies(target=first.certificate_arn)["policies"]] == [POLICY]
    assert iot.list_thing_principals(thingName="greenhouse-7")["principals"] == [first.certificate_arn]

    second = decide(iot, device, templates)
    assert second.admitted and second.certificate_id == first.certificate_id
    assert len(iot.list_things()["things"]) == 1 and len(iot.list_certificates()["certificates"]) == 1


def test_jitp_fails_without_registering_when_the_certificate_lacks_a_declared_parameter(
    iot: Any, ca: CertificateAuthority
) -> None:
    body = jitp_template_body(policy_name=POLICY, fleet_group_name=GROUP)
    body["Parameters"]["AWS::IoT::Certificate::Country"] = {"Type": "String"}  # device_pki puts only a CN
    templates = ProvisioningTemplates([ProvisioningTemplate.parse(JITP_TEMPLATE, "JITP", True, json.dumps(body), "test")])
    register(iot, ca, template=JITP_TEMPLATE)
    admission = decide(iot, ca.issue_device("greenhouse-7"), templates)
    assert not admission.admitted and "AWS::IoT::Certificate::Country" in admission.reason
    assert iot.list_certificates()["certificates"] == [] and iot.list_things()["things"] == []


def test_jitp_creates_an_inline_policy_under_its_hash_and_joins_values_with_intrinsic_functions(
    iot: Any, ca: CertificateAuthority
) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
    body = {
        "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}, "Site": {"Type": "String", "Default": "lyon"}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Fn::Join": ["-", [{"Ref": "Site"}, {"Ref": "AWS::IoT::Certificate::CommonName"}]]},
                    "AttributePayload": {"site": {"Fn::Sub": "site ${Site}"}},
                },
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}},
        },
    }
    templates = ProvisioningTemplates([ProvisioningTemplate.parse("inline", "JITP", True, json.dumps(body), "test")])
    register(iot, ca, template="inline")
    admission = decide(iot, ca.issue_device("pump"), templates)
    assert "provisioned" in admission.reason and status(iot, admission.certificate_id) == "ACTIVE"
    assert iot.describe_thing(thingName="lyon-pump")["attributes"] == {"site": "site lyon"}
    [policy] = iot.list_attached_policies(target=admission.certificate_arn)["policies"]
    assert json.loads(iot.get_policy(policyName=policy["policyName"])["policyDocument"]) == json.loads(document)


def test_an_existing_thing_keeps_its_groups_and_attributes_when_the_template_says_do_nothing(
    iot: Any, ca: CertificateAuthority
) -> None:
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iot.create_thing_group(thingGroupName=GROUP)
    iot.create_thing(thingName="greenhouse-7", attributePayload={"attributes": {"owner": "someone"}})
    register(iot, ca, template=JITP_TEMPLATE)
    decide(iot, ca.issue_device("greenhouse-7"), app_templates())
    assert iot.describe_thing(thingName="greenhouse-7")["attributes"] == {"owner": "someone"}
    assert iot.list_things_in_thing_group(thingGroupName=GROUP)["things"] == []


@pytest.mark.parametrize(
    ("resources", "said"),
    [
        ({"group": {"Type": "AWS::IoT::ThingGroup", "Properties": {}}}, "AWS::IoT::ThingGroup"),
        ({"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": ["c", "a", "b"]}}}}, "Fn::If"),
        ({"thing": {"Type": "AWS::IoT::Thing", "Properties": {"BillingGroup": "b"}}}, "BillingGroup"),
        ({"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": "x"}}}, "CertificateSigningRequest"),
    ],
)
def test_a_jitp_template_the_runtime_cannot_follow_is_refused_when_kept(resources: dict, said: str) -> None:
    with pytest.raises(NotEmulated, match=said):
        ProvisioningTemplate.parse("t", "JITP", True, json.dumps({"Resources": resources}), "Stack/JitpTemplate")


# --- TLS ---------------------------------------------------------------------------------------------------------


def test_endpoint_credentials_are_made_once_with_private_keys_readable_by_the_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "endpoint"
    first = EndpointCredentials.in_folder(folder)
    certificate = first.certificate_file.read_bytes()
    again = EndpointCredentials.in_folder(folder)
    assert again == first and again.certificate_file.read_bytes() == certificate
    for key in (folder / "ca.key", first.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


class HandshakeServer:
    """A TLS server on loopback that answers b"ok" to each client whose handshake succeeds."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.refusals: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            with connection:
                try:
                    with self._context.wrap_socket(connection, server_side=True) as tls:
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError) as error:
                    self.refusals.append(str(error))

    def stop(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not, on Linux)
        self._listener.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


def handshake(port: int, credentials: EndpointCredentials, device: IssuedCertificate | None, tmp_path: Path) -> bytes:
    """What a device reads after connecting, as a device verifies the endpoint: against the CA file, for localhost."""
    context = ssl.create_default_context(cafile=credentials.ca_file)
    if device is not None:
        cert, key = device.save(tmp_path / "device", device.serial_hex)
        context.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            try:
                return tls.recv(2)
            except (ssl.SSLError, ConnectionResetError):
                return b""  # TLS 1.3: the server's refusal of the client certificate arrives after the client's handshake


@pytest.fixture
def server(iot: Any, tmp_path: Path) -> Iterator[tuple[HandshakeServer, EndpointCredentials]]:
    credentials = EndpointCredentials.in_folder(tmp_path / "endpoint")
    trust = DeviceTrust(IotRegistry(ACCOUNT, REGION), credentials, max_age_s=0)
    running = HandshakeServer(trust.server_context())
    try:
        yield running, credentials
    finally:
        running.stop()


def test_a_ca_registered_after_the_server_started_is_trusted_from_the_next_handshake(
    iot: Any, ca: CertificateAuthority, server: tuple[HandshakeServer, EndpointCredentials], tmp_path: Path
) -> None:
    running, credentials = server
    device = ca.issue_device("sensor-1")
    assert handshake(running.port, credentials, device, tmp_path) == b""  # not registered yet
    register(iot, ca)
    assert handshake(running.port, credentials, device, tmp_path) == b"ok"
    assert any("unknown ca" in refusal or "certificate verify failed" in refusal for refusal in running.refusals)


def test_the_handshake_refuses_an_unknown_ca_and_a_device_without_a_certificate(
    iot: Any, ca: CertificateAuthority, server: tuple[HandshakeServer, EndpointCredentials], tmp_path: Path
) -> None:
    running, credentials = server
    register(iot, ca)
    stranger = CertificateAuthority.create(common_name="Factory CA")
    assert handshake(running.port, credentials, stranger.issue_device("sensor-1"), tmp_path) == b""
    assert handshake(running.port, credentials, None, tmp_path) == b""
    assert handshake(running.port, credentials, ca.issue_device("sensor-2"), tmp_path) == b"ok"
    assert len(running.refusals) == 2


def test_a_certificate_registered_without_a_ca_is_its_own_trust_anchor(
    iot: Any, server: tuple[HandshakeServer, EndpointCredentials], tmp_path: Path
) -> None:
    running, credentials = server
    device = CertificateAuthority.create(common_name="Unregistered CA").issue_device("sensor-1")
    iot.register_certificate_without_ca(certificatePem=device.certificate_pem, status="ACTIVE")
    assert handshake(running.port, credentials, device, tmp_path) == b"ok"
    assert decide(iot, device).admitted


def test_the_server_certificate_does_not_verify_for_another_name(
    server: tuple[HandshakeServer, EndpointCredentials],
) -> None:
    running, credentials = server
    context = ssl.create_default_context(cafile=credentials.ca_file)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            context.wrap_socket(raw, server_hostname="iot.example.com")
