"""Real devices against the local device endpoint: paho-mqtt and the AWS IoT Device SDK v2, over TLS on
loopback, drive the synthesized app (its CA registered for JITR, its custom authorizer on) as they would drive
IoT Core: a new device is registered and activated by JITR, reconnects, publishes a reading and receives the
threshold command; a token device connects through the authorizer and is disconnected outside its policy;
presence follows the sessions, takeovers included. And IoT's gateway behaviour as devices see it: QoS 0 and 1,
retained messages, the message size limit and reserved topics, subscription lifecycle events, republish, the
authorizer's request. Every endpoint a test starts, the test stops."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest
from boto3.dynamodb.types import TypeDeserializer

from device_pki.authority import CertificateAuthority
from device_tokens import mint
from local_runtime import LocalRuntime
from local_runtime.account import ACCOUNT_ID, REGION
from local_runtime.device_endpoint import DeviceEndpoint
from local_runtime.trust_material import put_crl
from tests.conftest import authorizer_context, session_build_dir

AUTHORIZER = "iot_backend_devices"
WAIT_S = 60


@pytest.fixture(scope="module")
def device_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Path]:
    folder = tmp_path_factory.mktemp("device-ca")
    authority = CertificateAuthority.create("Greenhouse Factory CA")
    authority.save(folder)
    return authority, folder


@pytest.fixture(scope="module")
def device_assembly(device_ca: tuple[CertificateAuthority, Path], authorizer_keys: Path) -> Path:
    """The app with its custom authorizer on and the test's CA registered for JITR."""
    from app import build_app

    _, folder = device_ca
    context = {
        **authorizer_context(authorizer_keys),
        "deviceBackend.onboarding.certificateAuthorities": [
            {"name": "Factory", "certificate": str(folder / "ca.pem"), "verificationCertificate": None, "mode": "JITR"}
        ],
    }
    outdir = session_build_dir("test.cdk.out.devices")
    build_app(context=context, outdir=str(outdir)).synth()
    return outdir


@contextmanager
def serving(assembly: Path, folder: Path, **options: Any) -> Iterator[DeviceEndpoint]:
    with LocalRuntime(assembly) as runtime, DeviceEndpoint(runtime, folder, **options) as endpoint:
        yield endpoint


@dataclass
class Device:
    """A paho-mqtt client with what it went through recorded."""

    client: mqtt.Client
    connects: list[Any] = field(default_factory=list)
    disconnects: list[Any] = field(default_factory=list)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connected(self) -> bool:
        return self.client.is_connected()


def paho_device(client_id: str, endpoint: DeviceEndpoint, **tls: Any) -> Device:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(endpoint.ca_file), **tls)
    device = Device(client)
    client.on_connect = lambda _c, _u, _f, reason, _p: device.connects.append(reason)
    client.on_disconnect = lambda _c, _u, _f, reason, _p: device.disconnects.append(reason)
    client.on_message = lambda _c, _u, message: device.messages.append(message)
    return device


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def presence(endpoint: DeviceEndpoint) -> dict[str, dict[str, Any]]:
    """The app's Connectivity table by client ID, once everything handed to the runtime has run."""

    def read(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
        runtime.drain()
        [logical_id] = [
            r.logical_id for r in runtime.cloud.created if r.type == "AWS::DynamoDB::Table" and "Connectivity" in r.logical_id
        ]
        items = runtime.cloud.client("dynamodb").scan(TableName=runtime.cloud.physical[logical_id].ref)["Items"]
        rows = [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in items]
        return {row["clientId"]: row for row in rows}

    return endpoint.call(read)


def thing_connectivity(endpoint: DeviceEndpoint, thing_name: str) -> dict[str, Any]:
    """GetThingConnectivityData, as an operator's tool asks the embedded AWS for it."""
    answer = endpoint.runtime.cloud.client("iot").get_thing_connectivity_data(thingName=thing_name)
    return {key: value for key, value in answer.items() if key != "ResponseMetadata"}


def certificate_status(endpoint: DeviceEndpoint, pem: str) -> str | None:
    iot = endpoint.runtime.cloud.client("iot")
    for certificate in iot.list_certificates()["certificates"]:
        described = iot.describe_certificate(certificateId=certificate["certificateId"])["certificateDescription"]
        if described["certificatePem"].strip() == pem.strip():
            return str(described["status"])
    return None


def test_a_new_device_is_activated_by_jitr_reconnects_publishes_and_receives_its_threshold_command(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    authority, _ = device_ca
    issued = authority.issue_device("soil-sensor-77")
    certificate, key = issued.save(tmp_path / "device", "soil-sensor-77")
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        iot = endpoint.runtime.cloud.client("iot")
        [ca] = iot.list_ca_certificates()["certificates"]
        assert put_crl(endpoint.runtime, authority.crl()) == ca["certificateId"]  # as `serve --crl` does
        device = paho_device("soil-sensor-77", endpoint, certfile=str(certificate), keyfile=str(key))
        port = endpoint.ports["mtls"]

        # First connection: IoT registers the certificate PENDING_ACTIVATION and closes the connection. The
        # client retries on its own, as devices do; a retry connects once the certificate is ACTIVE.
        device.client.reconnect_delay_set(min_delay=1, max_delay=2)
        device.client.connect("localhost", port)
        device.client.loop_start()
        try:
            wait_for(lambda: device.disconnects, "the first connection to be closed")
            assert not device.connects
            wait_for(lambda: certificate_status(endpoint, issued.certificate_pem) == "ACTIVE", "JITR's activation")

            wait_for(lambda: device.connected, "the retry to connect")
            device.client.subscribe("cmd/fleet/soil-sensor-77/#", qos=1)
            wait_for(lambda: "soil-sensor-77" in presence(endpoint), "presence")
            reading = {"ts": int(time.time() * 1000), "moisture": 12.5, "temperature": 18.0}
            device.client.publish("dt/fleet/soil-sensor-77/soil", json.dumps(reading), qos=1).wait_for_publish(10)
            command = wait_for(lambda: device.messages, "the threshold command")[0]
            assert command.topic == "cmd/fleet/soil-sensor-77/threshold"
            assert json.loads(command.payload)
            connected = presence(endpoint)["soil-sensor-77"]
            while_connected = thing_connectivity(endpoint, "soil-sensor-77")
            device.client.disconnect()
            wait_for(lambda: not endpoint.connected_clients(), "the disconnect")
        finally:
            device.client.loop_stop()
        after = presence(endpoint)["soil-sensor-77"]
        connectivity = thing_connectivity(endpoint, "soil-sensor-77")
        iot = endpoint.runtime.cloud.client("iot")
        with pytest.raises(iot.exceptions.ResourceNotFoundException):
            iot.get_thing_connectivity_data(thingName="no-such-thing")
    assert connected["connected"] is True and while_connected["connected"] is True
    assert after["connected"] is False and connectivity["connected"] is False
    assert connectivity["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert connectivity["timestamp"] >= while_connected["timestamp"]


def test_a_certificate_of_an_unknown_ca_is_refused_at_the_handshake(
    device_assembly: Path, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.create("Somebody Else's CA").issue_device("soil-sensor-78")
    certificate, key = stranger.save(tmp_path / "device", "soil-sensor-78")
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        device = paho_device("soil-sensor-78", endpoint, certfile=str(certificate), keyfile=str(key))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            device.client.connect("localhost", endpoint.ports["mtls"])
            device.client.loop_start()
            wait_for(lambda: device.disconnects, "the refusal", timeout_s=10)
            raise ConnectionError("closed after the handshake")
        device.client.loop_stop()
        registered = endpoint.runtime.cloud.client("iot").list_certificates()["certificates"]
    assert registered == []


def token_device(client_id: str, endpoint: DeviceEndpoint, authorizer_keys: Path, ttl_seconds: int = 3600) -> Device:
    """A paho-mqtt device with its own token, presented as IoT's MQTT contract says: the authorizer's name, IoT's
    signature and the token on the username's query string, the token again as the password."""
    minted = mint(authorizer_keys, client_id, ttl_seconds=ttl_seconds)
    device = paho_device(client_id, endpoint)
    username = (
        f"{client_id}?x-amz-customauthorizer-name={AUTHORIZER}"
        f"&x-amz-customauthorizer-signature={quote(minted.signature, safe='')}&x-device-token={minted.token}"
    )
    device.client.username_pw_set(username, minted.token)
    return device


def test_a_token_device_connects_through_the_authorizer_and_is_disconnected_outside_its_policy(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        device = token_device("sensor-1", endpoint, authorizer_keys)
        device.client.connect("localhost", endpoint.ports["custom_auth"])
        device.client.loop_start()
        try:
            wait_for(lambda: device.connected, "the connection")
            device.client.publish("dt/fleet/sensor-1/soil", json.dumps({"ts": int(time.time() * 1000), "moisture": 40.0, "temperature": 20.0}), qos=1).wait_for_publish(10)
            assert device.connected
            device.client.publish("dt/fleet/sensor-2/soil", b"{}", qos=1)
            wait_for(lambda: device.disconnects, "the disconnect for the denied publish")
        finally:
            device.client.loop_stop()
        wait_for(lambda: not endpoint.connected_clients(), "the endpoint to see it")
        row = presence(endpoint)["sensor-1"]
        connectivity = endpoint.thing_connectivity("sensor-1")
        refusals = list(endpoint.refusals)
    assert row["connected"] is False
    assert connectivity["disconnectReason"] == "AUTH_ERROR"
    assert any("dt/fleet/sensor-2/soil" in why for client_id, why in refusals if client_id == "sensor-1")


def test_a_second_connection_with_the_same_client_id_takes_over_and_presence_follows(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        first, second = (token_device("sensor-5", endpoint, authorizer_keys) for _ in range(2))
        for device in (first, second):
            device.client.reconnect_delay_set(60, 120)  # the old unit must not fight back
        first.client.connect("localhost", endpoint.ports["custom_auth"])
        first.client.loop_start()
        try:
            wait_for(lambda: first.connected, "the first connection")
            first_session = wait_for(lambda: presence(endpoint).get("sensor-5"), "presence of the first")
            second.client.connect("localhost", endpoint.ports["custom_auth"])
            second.client.loop_start()
            wait_for(lambda: second.connected and first.disconnects, "the takeover")
            taken_over = presence(endpoint)["sensor-5"]
            second.client.disconnect()
            wait_for(lambda: not endpoint.connected_clients(), "the disconnect")
        finally:
            first.client.loop_stop()
            second.client.loop_stop()
        final = presence(endpoint)["sensor-5"]
    assert first_session["connected"] is True and taken_over["connected"] is True
    assert taken_over["sessionIdentifier"] != first_session["sessionIdentifier"]
    assert final["connected"] is False


def test_serve_prints_the_endpoint_and_its_ca_puts_the_crl_in_and_stops_cleanly(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from local_runtime.__main__ import main

    authority, _ = device_ca
    crl = tmp_path / "ca.crl"
    crl.write_text(authority.crl_pem())
    folder = tmp_path / "endpoint"
    ports = ["--mtls-port", "0", "--custom-auth-port", "0", "--websocket-port", "0"]
    serve = ["serve", "--assembly", str(device_assembly), "--folder", str(folder), "--crl", str(crl), "--seconds", "1"]
    code = main([*serve, *ports])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{crl}: the CRL of CA certificate " in out and "in the trust bucket" in out
    assert f"devices verify it with {folder / 'ca.pem'}" in out
    assert "x-amz-customauthorizer-name=<authorizer>" in out and "iot_backend_devices" in out
    assert "Final state" in out


def test_serve_refuses_a_crl_no_registered_ca_signed(
    device_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from local_runtime.__main__ import main

    crl = tmp_path / "other.crl"
    crl.write_bytes(CertificateAuthority.create("Someone Else's CA").crl())
    ports = ["--mtls-port", "0", "--custom-auth-port", "0", "--websocket-port", "0"]
    code = main(["serve", "--assembly", str(device_assembly), "--folder", str(tmp_path), "--crl", str(crl), *ports])
    assert code == 2
    assert "no CA certificate registered in the app signed the CRL of CN=Someone Else's CA" in capsys.readouterr().err


def register_device(
    endpoint: DeviceEndpoint,
    authority: CertificateAuthority | None,
    issued: Any,
    thing: str,
    policies: tuple[str, ...] = ("iot_backend_device",),
) -> None:
    """As an operator onboards a device ahead of its first connection: its certificate ACTIVE (registered
    with its CA, or without one when `authority` is None), its thing, its policies (the app's shared device
    policy unless said)."""
    iot = endpoint.runtime.cloud.client("iot")
    if authority is None:
        arn = iot.register_certificate_without_ca(certificatePem=issued.certificate_pem, status="ACTIVE")["certificateArn"]
    else:
        arn = iot.register_certificate(
            certificatePem=issued.certificate_pem, caCertificatePem=authority.certificate_pem, status="ACTIVE"
        )["certificateArn"]
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=arn)
    for policy in policies:
        iot.attach_policy(policyName=policy, target=arn)


def certificate_device(
    endpoint: DeviceEndpoint,
    authority: CertificateAuthority,
    folder: Path,
    thing: str,
    policies: tuple[str, ...] = ("iot_backend_device",),
    *,
    registered_with_ca: bool = True,
) -> Device:
    """A paho-mqtt device with its own certificate, onboarded as `register_device` does, that does not reconnect
    by itself once a test has seen it disconnected."""
    issued = authority.issue_device(thing)
    certificate, key = issued.save(folder / thing, thing)
    register_device(endpoint, authority if registered_with_ca else None, issued, thing, policies)
    device = paho_device(thing, endpoint, certfile=str(certificate), keyfile=str(key))
    device.client.reconnect_delay_set(60, 120)
    return device


def create_policy(endpoint: DeviceEndpoint, name: str, *statements: tuple[str | list[str], str]) -> str:
    """An IoT policy of Allow statements (action, resource below the account's arn:aws:iot ARN)."""
    base = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": f"{base}:{resource}"} for action, resource in statements],
    }
    endpoint.runtime.cloud.client("iot").create_policy(policyName=name, policyDocument=json.dumps(document))
    return name


@contextmanager
def looping(*devices: Device) -> Iterator[None]:
    """The network loops `connect` starts for these devices are stopped when the block ends."""
    try:
        yield
    finally:
        for device in devices:
            device.client.loop_stop()


def connect(device: Device, endpoint: DeviceEndpoint, listener: str = "mtls", *, admitted: bool = True) -> None:
    """Connects and starts the device's network loop; waits for the connection when it is to be admitted."""
    device.client.connect("localhost", endpoint.ports[listener])
    device.client.loop_start()
    if admitted:
        wait_for(lambda: device.connected, "the connection")


def lifecycle_events(endpoint: DeviceEndpoint, kind: str, client_id: str) -> list[dict[str, Any]]:
    """The lifecycle events of `kind` (subscribed, unsubscribed ...) IoT published about `client_id`."""
    topics = {f"$aws/events/subscriptions/{kind}/{client_id}", f"$aws/events/presence/{kind}/{client_id}"}
    return [json.loads(m.payload) for m in list(endpoint.handed_to_rules) if not m.from_device and m.topic in topics]


def test_the_aws_iot_device_sdk_connects_with_its_certificate_publishes_and_receives_its_command(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    authority, _ = device_ca
    issued = authority.issue_device("soil-sensor-90")
    certificate, key = issued.save(tmp_path / "device", "soil-sensor-90")
    commands: list[tuple[str, bytes]] = []
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        register_device(endpoint, authority, issued, "soil-sensor-90")
        connection = mqtt_connection_builder.mtls_from_path(
            endpoint="localhost",
            port=endpoint.ports["mtls"],
            cert_filepath=str(certificate),
            pri_key_filepath=str(key),
            ca_filepath=str(endpoint.ca_file),
            client_id="soil-sensor-90",
            clean_session=True,
            keep_alive_secs=30,
        )
        connection.connect().result(WAIT_S)
        try:
            subscribed, _ = connection.subscribe(
                "cmd/fleet/soil-sensor-90/#", crt_mqtt.QoS.AT_LEAST_ONCE,
                callback=lambda topic, payload, **_: commands.append((topic, payload)),
            )
            subscribed.result(WAIT_S)
            reading = {"ts": int(time.time() * 1000), "moisture": 9.0, "temperature": 17.0}
            published, _ = connection.publish("dt/fleet/soil-sensor-90/soil", json.dumps(reading), crt_mqtt.QoS.AT_LEAST_ONCE)
            published.result(WAIT_S)
            wait_for(lambda: commands, "the threshold command")
            row = presence(endpoint)["soil-sensor-90"]
        finally:
            connection.disconnect().result(WAIT_S)
        wait_for(lambda: not endpoint.connected_clients(), "the disconnect")
        connectivity = thing_connectivity(endpoint, "soil-sensor-90")
    assert commands[0][0] == "cmd/fleet/soil-sensor-90/threshold"
    assert row["connected"] is True and row["principalIdentifier"]
    assert connectivity["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"


def test_the_aws_iot_device_sdk_connects_through_the_custom_authorizer_builder(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    minted = mint(authorizer_keys, "sensor-9", ttl_seconds=3600)
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        connection = mqtt_connection_builder.direct_with_custom_authorizer(
            endpoint="localhost",
            ca_filepath=str(endpoint.ca_file),
            client_id="sensor-9",
            auth_username="sensor-9",
            auth_authorizer_name=AUTHORIZER,
            auth_authorizer_signature=minted.signature,
            auth_token_key_name="x-device-token",
            auth_token_value=minted.token,
            auth_password=minted.token,
        )
        # The builder fixes IoT's port 443 (ALPN mqtt); the local endpoint listens on a free port instead.
        connection.port = endpoint.ports["custom_auth"]
        connection.connect().result(WAIT_S)
        try:
            reading = {"ts": int(time.time() * 1000), "moisture": 40.0, "temperature": 20.0}
            published, _ = connection.publish("dt/fleet/sensor-9/soil", json.dumps(reading), crt_mqtt.QoS.AT_LEAST_ONCE)
            published.result(WAIT_S)
            row = wait_for(lambda: presence(endpoint).get("sensor-9"), "presence")
        finally:
            connection.disconnect().result(WAIT_S)
    assert row["connected"] is True


def test_a_device_silent_past_one_and_a_half_keep_alives_is_disconnected(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    # IoT's minimum keep-alive is 30 s; the test lowers it to see a 5 s keep-alive expire after 7.5 s.
    with serving(device_assembly, tmp_path / "endpoint", keep_alive_min_s=1) as endpoint:
        device = token_device("sensor-6", endpoint, authorizer_keys)
        device.client.connect("localhost", endpoint.ports["custom_auth"], keepalive=5)
        started = time.monotonic()
        while not device.connects and time.monotonic() - started < WAIT_S:  # no loop thread: no PINGREQ ever
            device.client.loop(0.05)
        assert device.connects and not device.connects[0].is_failure
        wait_for(lambda: "disconnectReason" in endpoint.thing_connectivity("sensor-6"), "the expiry")
        silent_for = time.monotonic() - started
        device.client.loop(0.2)
        connectivity = endpoint.thing_connectivity("sensor-6")
    assert connectivity["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    assert 7.5 <= silent_for < 30


def test_the_authorizers_disconnect_after_and_refresh_are_enforced(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    # A token valid for 2 h: the authorizer answers disconnectAfterInSeconds 7,200 and refreshAfterInSeconds
    # 3,600 (its default refresh). The endpoint runs those timers 1,000 times faster: 7.2 s and 3.6 s.
    with serving(device_assembly, tmp_path / "endpoint", authorizer_time_scale=0.001) as endpoint:
        device = token_device("sensor-7", endpoint, authorizer_keys, ttl_seconds=7200)
        device.client.reconnect_delay_set(60, 120)
        device.client.connect("localhost", endpoint.ports["custom_auth"])
        device.client.loop_start()
        try:
            wait_for(lambda: device.connected, "the connection")
            wait_for(lambda: device.disconnects, "the disconnect at the token's end")
        finally:
            device.client.loop_stop()
        wait_for(lambda: not endpoint.connected_clients(), "the endpoint to see it")
        connectivity = endpoint.thing_connectivity("sensor-7")
        authorizations = list(endpoint.authorizations)
    assert connectivity["disconnectReason"] == "CUSTOMAUTH_TTL_EXPIRATION"
    # the connect, then the refresh at 300 s (3 s here), with the same connection id: IoT's contract
    assert len(authorizations) == 2 and all(allowed for _, _, allowed in authorizations)
    assert len({connection_id for _, connection_id, _ in authorizations}) == 1


def test_a_token_device_connects_over_websocket_with_its_token_in_the_upgrade_request(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    minted = mint(authorizer_keys, "sensor-8", ttl_seconds=3600)
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sensor-8", transport="websockets")
        client.tls_set(ca_certs=str(endpoint.ca_file))
        client.ws_set_options(
            path="/mqtt",
            headers={
                "x-amz-customauthorizer-name": AUTHORIZER,
                "x-amz-customauthorizer-signature": minted.signature,
                "x-device-token": minted.token,
            },
        )
        device = Device(client)
        client.on_connect = lambda _c, _u, _f, reason, _p: device.connects.append(reason)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: device.disconnects.append(reason)
        client.connect("localhost", endpoint.ports["websocket"])
        client.loop_start()
        try:
            wait_for(lambda: device.connected, "the connection")
            row = wait_for(lambda: presence(endpoint).get("sensor-8"), "presence")
            client.disconnect()
            wait_for(lambda: not endpoint.connected_clients(), "the disconnect")
        finally:
            client.loop_stop()
    assert row["connected"] is True


def test_the_aws_iot_device_sdk_connects_over_websocket_through_the_custom_authorizer_builder(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path
) -> None:
    from awsiot import mqtt_connection_builder

    minted = mint(authorizer_keys, "sensor-10", ttl_seconds=3600)
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        connection = mqtt_connection_builder.websockets_with_custom_authorizer(
            endpoint="localhost",
            port=endpoint.ports["websocket"],
            ca_filepath=str(endpoint.ca_file),
            client_id="sensor-10",
            auth_username="sensor-10",
            auth_authorizer_name=AUTHORIZER,
            auth_authorizer_signature=minted.signature,
            auth_token_key_name="x-device-token",
            auth_token_value=minted.token,
            auth_password=minted.token,
        )
        connection.connect().result(WAIT_S)
        try:
            row = wait_for(lambda: presence(endpoint).get("sensor-10"), "presence")
        finally:
            connection.disconnect().result(WAIT_S)
    assert row["connected"] is True


SHARED = "shared/greenhouse"


def test_devices_exchange_messages_at_qos_0_and_1_and_a_retained_one_reaches_a_later_subscriber(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    authority, _ = device_ca
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        shared = create_policy(
            endpoint,
            "greenhouse_shared",
            (["iot:Publish", "iot:RetainPublish", "iot:Receive"], f"topic/{SHARED}/*"),
            ("iot:Subscribe", f"topicfilter/{SHARED}/*"),
        )
        policies = ("iot_backend_device", shared)
        door = certificate_device(endpoint, authority, tmp_path, "door-sensor-1", policies)
        panel = certificate_device(endpoint, authority, tmp_path, "control-panel-1", policies)
        with looping(door, panel):
            connect(door, endpoint)
            door.client.publish(f"{SHARED}/door", b"open", qos=1, retain=True).wait_for_publish(10)
            connect(panel, endpoint)
            panel.client.subscribe(f"{SHARED}/*", qos=1)  # a policy's * is no MQTT wildcard: nothing matches it
            panel.client.subscribe(f"{SHARED}/#", qos=1)
            retained = wait_for(lambda: panel.messages, "the retained message")[0]
            door.client.publish(f"{SHARED}/light", b"zero", qos=0)
            door.client.publish(f"{SHARED}/light", b"one", qos=1).wait_for_publish(10)
            wait_for(lambda: len(panel.messages) == 3, "both messages")
            assert door.connected and panel.connected
    assert (retained.topic, retained.payload, retained.retain, retained.qos) == (f"{SHARED}/door", b"open", True, 1)
    assert [(m.payload, m.qos, m.retain) for m in panel.messages[1:]] == [(b"zero", 0, False), (b"one", 1, False)]


def test_a_publish_over_128_kb_to_a_reserved_topic_or_retained_without_retain_publish_disconnects_the_device(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    authority, _ = device_ca
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        # Allowed to publish anywhere: what refuses these publishes is IoT's limits, not the policy.
        anywhere = create_policy(endpoint, "publish_anywhere", ("iot:Publish", "topic/*"))
        big, reserved = (
            certificate_device(endpoint, authority, tmp_path, name, ("iot_backend_device", anywhere))
            for name in ("camera-1", "camera-2")
        )
        retaining = certificate_device(endpoint, authority, tmp_path, "camera-3")
        with looping(big, reserved, retaining):
            for device in (big, reserved, retaining):
                connect(device, endpoint)
            big.client.publish("$aws/things/camera-1/shadow/update", b"x" * 128 * 1024, qos=1).wait_for_publish(10)
            assert big.connected
            big.client.publish("$aws/things/camera-1/shadow/update", b"x" * (128 * 1024 + 1), qos=1)
            reserved.client.publish("$aws/events/presence/connected/camera-2", b"{}", qos=1)
            retaining.client.publish("dt/fleet/camera-3/image", b"{}", qos=1, retain=True)
            wait_for(lambda: big.disconnects and reserved.disconnects and retaining.disconnects, "three disconnects")
        wait_for(lambda: not endpoint.connected_clients(), "the endpoint to see them")
        reasons = {name: endpoint.thing_connectivity(name)["disconnectReason"] for name in ("camera-1", "camera-2", "camera-3")}
        refusals = dict(endpoint.refusals)
        published = [m.topic for m in endpoint.handed_to_rules if m.from_device]
    assert reasons == {"camera-1": "CLIENT_ERROR", "camera-2": "CLIENT_ERROR", "camera-3": "AUTH_ERROR"}
    assert "the payload is 131073 bytes, over IoT's 131072" in refusals["camera-1"]
    assert "is a reserved topic" in refusals["camera-2"]
    assert "iot:RetainPublish" in refusals["camera-3"]
    assert published == ["$aws/things/camera-1/shadow/update"]  # the one of 128 KB; none of the refused


def test_subscribing_and_unsubscribing_publish_iots_events_and_a_denied_filter_disconnects(
    device_assembly: Path, device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    authority, _ = device_ca
    own = "cmd/fleet/valve-1/#"
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        valve = certificate_device(endpoint, authority, tmp_path, "valve-1")
        with looping(valve):
            connect(valve, endpoint)
            valve.client.subscribe(own, qos=1)
            wait_for(lambda: lifecycle_events(endpoint, "subscribed", "valve-1"), "the subscribed event")
            valve.client.unsubscribe(own)
            wait_for(lambda: lifecycle_events(endpoint, "unsubscribed", "valve-1"), "the unsubscribed event")
            valve.client.subscribe("cmd/fleet/valve-2/#", qos=1)
            wait_for(lambda: valve.disconnects, "the disconnect for the denied filter")
        wait_for(lambda: not endpoint.connected_clients(), "the endpoint to see it")
        [subscribed] = lifecycle_events(endpoint, "subscribed", "valve-1")
        [unsubscribed] = lifecycle_events(endpoint, "unsubscribed", "valve-1")
        [connected] = lifecycle_events(endpoint, "connected", "valve-1")
        reason = endpoint.thing_connectivity("valve-1")["disconnectReason"]
    assert (subscribed["eventType"], subscribed["topics"]) == ("subscribed", [own])
    assert (unsubscribed["eventType"], unsubscribed["topics"]) == ("unsubscribed", [own])
    assert subscribed["sessionIdentifier"] == connected["sessionIdentifier"] == unsubscribed["sessionIdentifier"]
    assert reason == "AUTH_ERROR"


def test_a_republish_rule_sends_what_a_device_published_to_the_device_subscribed_to_its_target(
    device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    from tests.e2e.assemblies import topic_rule, write_assembly

    authority, _ = device_ca
    republish = {"Republish": {"Topic": "cmd/${topic(2)}/reboot", "RoleArn": "arn:aws:iam::123456789012:role/unused", "Qos": 1}}
    rule = topic_rule("forward_faults", "SELECT 'reboot' AS command, reason FROM 'faults/+'", [republish])
    assembly = write_assembly(tmp_path / "app", {"ForwardFaults": rule})
    with serving(assembly, tmp_path / "endpoint") as endpoint:
        policy = create_policy(
            endpoint,
            "pump",
            ("iot:Connect", "client/${iot:Connection.Thing.ThingName}"),
            ("iot:Publish", "topic/faults/${iot:Connection.Thing.ThingName}"),
            ("iot:Subscribe", "topicfilter/cmd/${iot:Connection.Thing.ThingName}/*"),
            ("iot:Receive", "topic/cmd/${iot:Connection.Thing.ThingName}/*"),
        )
        pump = certificate_device(endpoint, authority, tmp_path, "pump-1", (policy,), registered_with_ca=False)
        with looping(pump):
            connect(pump, endpoint)
            pump.client.subscribe("cmd/pump-1/+", qos=1)
            wait_for(lambda: lifecycle_events(endpoint, "subscribed", "pump-1"), "the subscription")
            pump.client.publish("faults/pump-1", json.dumps({"reason": "dry run"}), qos=1).wait_for_publish(10)
            command = wait_for(lambda: pump.messages, "the republished command")[0]
    assert command.topic == "cmd/pump-1/reboot"
    assert json.loads(command.payload) == {"command": "reboot", "reason": "dry run"}


def test_the_authorizer_gets_iots_request_for_a_real_mqtt_connection_and_a_bad_signature_never_reaches_it(
    device_assembly: Path, authorizer_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    requests: list[dict[str, Any]] = []
    authorize = LocalRuntime.authorize

    def recording(runtime: LocalRuntime, name: str, connection: Any) -> Any:
        decision = authorize(runtime, name, connection)
        if decision.request is not None and decision.invocation is not None:
            requests.append(decision.request)
        return decision

    monkeypatch.setattr(LocalRuntime, "authorize", recording)
    with serving(device_assembly, tmp_path / "endpoint") as endpoint:
        forger = token_device("sensor-12", endpoint, authorizer_keys)
        username, password = forger.client._username.decode(), forger.client._password
        forged = username.replace("x-amz-customauthorizer-signature=", "x-amz-customauthorizer-signature=AAAA", 1)
        forger.client.username_pw_set(forged, password)
        forger.client.reconnect_delay_set(60, 120)
        device = token_device("sensor-11", endpoint, authorizer_keys)
        with looping(forger, device):
            connect(forger, endpoint, "custom_auth", admitted=False)
            wait_for(lambda: forger.disconnects, "the forged token's refusal")
            connect(device, endpoint, "custom_auth")
            session = endpoint.session_identifiers()["sensor-11"]
            device.client.disconnect()
        refusals = dict(endpoint.refusals)
        username = device.client._username.decode()
    [request] = requests  # the forger's connection never reached the function
    assert not forger.connects
    assert "does not verify with the authorizer's signing keys" in refusals["sensor-12"]
    assert request["protocols"] == ["tls", "mqtt"]
    assert request["signatureVerified"] is True and request["token"] == username.rpartition("x-device-token=")[2]
    assert request["protocolData"]["tls"] == {"serverName": "localhost"}
    mqtt_data = request["protocolData"]["mqtt"]
    assert mqtt_data["clientId"] == "sensor-11" and mqtt_data["username"] == username
    assert base64.b64decode(mqtt_data["password"]).decode() == request["token"]
    assert request["connectionMetadata"] == {"id": session}


def test_a_device_publishing_with_basic_ingest_reaches_only_its_rule_and_no_subscriber(
    device_ca: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html
    from tests.e2e.assemblies import topic_rule, write_assembly

    authority, _ = device_ca
    republish = {"Republish": {"Topic": "cmd/${topic(2)}/ack", "RoleArn": "arn:aws:iam::123456789012:role/unused", "Qos": 1}}
    rule = topic_rule("BuildingManager", "SELECT topic() AS ingested, topic(2) AS building FROM 'Buildings/#'", [republish])
    assembly = write_assembly(tmp_path / "app", {"BuildingManager": rule})
    with serving(assembly, tmp_path / "endpoint") as endpoint:
        policy = create_policy(
            endpoint,
            "panel",
            ("iot:Connect", "client/${iot:Connection.Thing.ThingName}"),
            ("iot:Publish", "topic/$aws/rules/*"),
            ("iot:Subscribe", "topicfilter/*"),
            ("iot:Receive", "topic/*"),
        )
        panel = certificate_device(endpoint, authority, tmp_path, "panel-1", (policy,), registered_with_ca=False)
        with looping(panel):
            connect(panel, endpoint)
            panel.client.subscribe([("$aws/rules/#", 1), ("cmd/+/ack", 1)])
            wait_for(lambda: lifecycle_events(endpoint, "subscribed", "panel-1"), "the subscriptions")
            panel.client.publish("$aws/rules/NoSuchRule/Buildings/b-7", b"{}", qos=1).wait_for_publish(10)
            panel.client.publish("$aws/rules/BuildingManager/Buildings/b-5/Lights", b"{}", qos=1).wait_for_publish(10)
            ack = wait_for(lambda: panel.messages, "the rule's republished ack")[0]
            assert panel.connected
        handed = [(m.topic, [(f.rule, f.rule_not_found) for f in m.fired.result(10)]) for m in endpoint.handed_to_rules if m.from_device]
    assert (ack.topic, json.loads(ack.payload)) == ("cmd/b-5/ack", {"ingested": "Buildings/b-5/Lights", "building": "b-5"})
    assert [m.topic for m in panel.messages] == ["cmd/b-5/ack"]  # not its own Basic Ingest messages
    assert handed == [
        ("$aws/rules/NoSuchRule/Buildings/b-7", [("NoSuchRule", True)]),
        ("$aws/rules/BuildingManager/Buildings/b-5/Lights", [("BuildingManager", False)]),
    ]
