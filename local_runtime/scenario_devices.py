"""The real devices of a scenario (scenario.py's device steps): paho-mqtt clients, MQTT 3.1.1 over TLS on
loopback, against the local device endpoint; what an operator gives each of them to connect; and what IoT made
of each step. The runtime is used only through the endpoint (its thread) while the devices play.

Each step waits for what shows that IoT handled it: the endpoint hands the rules a lifecycle event for a
connect, a subscribe and a disconnect, and the device's message for a publish it lets through (HandedToRules);
or it records a refusal, and closes the connection. So a step's effects are queued on the runtime's thread
before the next step's, as they would be on IoT, and a drain after it sees them.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import paho.mqtt.client as mqtt
from botocore.exceptions import ClientError

from device_pki import CertificateAuthority
from local_runtime.device_endpoint import DeviceEndpoint, HandedToRules
from local_runtime.device_gateway import CUSTOM_AUTH, MTLS
from local_runtime.errors import LocalRuntimeError
from local_runtime.lifecycle_events import publishes_lifecycle_events
from local_runtime.outcomes import Sent
from local_runtime.runtime import LocalRuntime
from local_runtime.scenario import (
    CERTIFICATE,
    DROP,
    DeviceConnect,
    DeviceDisconnect,
    DeviceOutcome,
    DevicePublish,
    DeviceStep,
    DeviceSubscribe,
)
from local_runtime.topics import TopicFilter

STEP_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 60
TOKEN_TTL_S = 3600
DEVICE_POLICY_VARIABLE = "DEVICE_POLICY_NAME"  # how the app's functions name its shared device policy
_POLL_S = 0.02
_PRESENCE, _SUBSCRIBED = "$aws/events/presence/{}/{}", "$aws/events/subscriptions/subscribed/{}"


@dataclass
class _Session:
    """One paho client's connection, as the device saw it."""

    client: mqtt.Client
    closed: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Device:
    name: str
    client_id: str
    listener: str  # MTLS or CUSTOM_AUTH
    tls: dict[str, str]  # paho's tls_set arguments besides the CA
    credentials: Callable[[], tuple[str, str]] | None = None  # token devices: a fresh (username, password)
    session: _Session | None = None
    received: list[str] = field(default_factory=list)  # the topics of what it received, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connected(self) -> bool:
        return self.session is not None and not self.session.closed.is_set()

    def receive(self, topic: str) -> None:
        with self.lock:
            self.received.append(topic)

    def received_since(self, mark: int, topic_filter: str) -> tuple[str, ...]:
        matches = TopicFilter(topic_filter).matches
        with self.lock:
            return tuple(topic for topic in self.received[mark:] if matches(topic))


@dataclass
class _Played:
    number: int
    step: DeviceStep
    refusal: str | None
    detail: str
    receipt_mark: int


class ScenarioDevices:
    def __init__(self, endpoint: DeviceEndpoint, folder: Path) -> None:
        self._endpoint = endpoint
        self._folder = folder
        self._devices: dict[str, _Device] = {}
        self._played: list[_Played] = []
        self._messages: list[tuple[int, DevicePublish, HandedToRules]] = []

    # -- before the first step ------------------------------------------------------------------------------

    def prepare(self, connects: list[DeviceConnect], announce: Callable[[str], None]) -> None:
        """Gives each device what it connects with (see scenario.py): certificates are registered now, before
        any handshake, so the endpoint trusts them from the first one."""
        firsts = list({step.device: step for step in reversed(connects)}.values())[::-1]
        authority = None
        for index, step in enumerate(firsts):
            if step.credentials == CERTIFICATE:
                authority = authority or CertificateAuthority.create("Scenario devices CA")
                self._devices[step.device] = self._certificate_device(step, authority, f"device-{index}", announce)
            else:
                self._devices[step.device] = self._token_device(step)

    def _certificate_device(
        self, step: DeviceConnect, authority: CertificateAuthority, file_name: str, announce: Callable[[str], None]
    ) -> _Device:
        issued = authority.issue_device(step.client_id)
        certificate_file, key_file = issued.save(self._folder, file_name)
        policy, certificate_id = self._endpoint.call(lambda r: _register(r, step, issued.certificate_pem))
        announce(
            f"      {step.device}: certificate {certificate_id[:12]}... registered ACTIVE, attached to the thing "
            f"{step.client_id} and the policy {policy}"
        )
        return _Device(step.device, step.client_id, MTLS, {"certfile": str(certificate_file), "keyfile": str(key_file)})

    def _token_device(self, step: DeviceConnect) -> _Device:
        from device_tokens import TokenToolError, mint

        authorizers = self._endpoint.call(lambda r: r.authorizers)
        if not authorizers:
            raise LocalRuntimeError(
                f"{step.where}: a token device connects through the app's custom authorizer, and the app has none "
                "(deviceBackend.authorizer.enabled)"
            )
        name = step.authorizer or (next(iter(authorizers)) if len(authorizers) == 1 else None)
        if name not in authorizers:
            raise LocalRuntimeError(
                f'{step.where}: "authorizer" is one of the app\'s: {", ".join(sorted(authorizers))}, not {name!r}'
            )
        authorizer = authorizers[name]
        assert step.keys is not None

        def credentials() -> tuple[str, str]:
            try:
                minted = mint(step.keys, step.client_id, ttl_seconds=TOKEN_TTL_S)
            except (TokenToolError, OSError) as error:
                raise LocalRuntimeError(f"{step.where}: cannot mint the device's token: {error}") from None
            username = f"{step.client_id}?x-amz-customauthorizer-name={quote(name, safe='')}"
            if minted.signature is not None and not authorizer.signing_disabled:
                username += f"&x-amz-customauthorizer-signature={quote(minted.signature, safe='')}"
            if authorizer.token_key_name is not None:
                username += f"&{authorizer.token_key_name}={minted.token}"
            return username, minted.token

        credentials()  # a token that cannot be minted fails before the first step
        return _Device(step.device, step.client_id, CUSTOM_AUTH, {}, credentials)

    # -- the steps ------------------------------------------------------------------------------------------

    @staticmethod
    def describe(step: DeviceStep) -> str:
        if isinstance(step, DeviceConnect):
            client = f", client ID {step.client_id}" if step.client_id != step.device else ""
            return f"device {step.device} connects ({step.credentials}{client})"
        if isinstance(step, DeviceSubscribe):
            return f"device {step.device} subscribes to {step.topic_filter}"
        if isinstance(step, DevicePublish):
            return f"device {step.device} publishes {step.topic}"
        return f"device {step.device} {'drops its connection' if step.how == DROP else 'disconnects'}"

    def play(self, number: int, step: DeviceStep, announce: Callable[[str], None]) -> None:
        device = self._devices[step.device]
        mark = len(device.received)
        if isinstance(step, DeviceConnect):
            refusal, detail = self._connect(device)
        elif not device.connected:
            refusal, detail = f"{device.name} is not connected", ""
        elif isinstance(step, DeviceSubscribe):
            refusal, detail = self._subscribe(device, step)
        elif isinstance(step, DevicePublish):
            refusal, detail = self._publish(number, device, step)
        else:
            refusal, detail = self._disconnect(device, step)
        announce(f"      {'refused: ' + refusal if refusal is not None else detail}")
        self._played.append(_Played(number, step, refusal, detail, mark))

    def _connect(self, device: _Device) -> tuple[str | None, str]:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device.client_id, protocol=mqtt.MQTTv311)
        client.tls_set(ca_certs=str(self._endpoint.ca_file), **device.tls)
        if device.credentials is not None:
            client.username_pw_set(*device.credentials())
        session = _Session(client)

        def closed(mqtt_client: mqtt.Client, *_: Any) -> None:
            session.closed.set()
            mqtt_client.loop_stop()  # from its own thread: it ends, instead of reconnecting

        client.on_disconnect = closed
        client.on_message = lambda _client, _data, message: device.receive(message.topic)
        marks = self._marks()
        try:
            client.connect("localhost", self._endpoint.ports[device.listener], keepalive=KEEP_ALIVE_S)
        except (ssl.SSLError, OSError) as error:
            return f"the connection failed in the TLS handshake: {error}", ""
        client.loop_start()
        device.session = session
        topic = _PRESENCE.format("connected", device.client_id)
        event = self._wait(device, marks, topic, lifecycle=True)
        if isinstance(event, str):
            return event, ""
        identity = json.loads(event.payload) if event is not None else {}
        return None, (
            f"connected: session {identity.get('sessionIdentifier', '?')}, version {identity.get('versionNumber', '?')}"
        )

    def _subscribe(self, device: _Device, step: DeviceSubscribe) -> tuple[str | None, str]:
        assert device.session is not None
        marks = self._marks()
        device.session.client.subscribe(step.topic_filter, qos=step.qos)
        event = self._wait(device, marks, _SUBSCRIBED.format(device.client_id), lifecycle=True)
        if isinstance(event, str):
            return event, ""
        return None, f"subscribed to {step.topic_filter}"

    def _publish(self, number: int, device: _Device, step: DevicePublish) -> tuple[str | None, str]:
        assert device.session is not None
        marks = self._marks()
        device.session.client.publish(step.topic, step.payload, qos=step.qos, retain=step.retain)
        handed = self._wait(device, marks, step.topic, payload=step.payload)
        if isinstance(handed, str):
            return handed, ""
        assert handed is not None
        self._messages.append((number, step, handed))
        return None, f"IoT let it through to the rules (QoS {step.qos})"

    def _disconnect(self, device: _Device, step: DeviceDisconnect) -> tuple[str | None, str]:
        assert device.session is not None
        marks = self._marks()
        client = device.session.client
        if step.how == DROP:
            client.loop_stop()
            sock = client.socket()
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # no MQTT DISCONNECT, no TLS close_notify: the line is cut
                except OSError:
                    pass
                sock.close()
            device.session.closed.set()
        else:
            client.disconnect()
        event = self._wait(device, marks, _PRESENCE.format("disconnected", device.client_id), lifecycle=True)
        if isinstance(event, str):
            return event, ""
        reason = json.loads(event.payload).get("disconnectReason") if event is not None else None
        return None, f"disconnected: {reason}"

    def _marks(self) -> tuple[int, int]:
        return len(self._endpoint.handed_to_rules), len(self._endpoint.refusals)

    def _wait(
        self,
        device: _Device,
        marks: tuple[int, int],
        topic: str,
        *,
        lifecycle: bool = False,
        payload: bytes | None = None,
    ) -> HandedToRules | str | None:
        """What the endpoint handed the rules on `topic` for the device since `marks` (None: a client ID that
        gets no lifecycle events, once it is connected), or IoT's refusal, or why there is neither."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        ending = topic.startswith(_PRESENCE.format("disconnected", ""))
        while time.monotonic() < deadline:
            # Read first: a refusal is recorded before its connection closes, so one seen closed is explained below.
            closed = device.session is not None and device.session.closed.is_set() and not ending
            for handed in self._endpoint.handed_to_rules[marks[0] :]:
                if (
                    handed.client_id == device.client_id
                    and handed.topic == topic
                    and handed.from_device is not lifecycle
                    and (payload is None or handed.payload == payload)
                ):
                    return handed
            for client_id, why in self._endpoint.refusals[marks[1] :]:
                if client_id == device.client_id:
                    # IoT closes the connection it refused something on: the next step must find it closed.
                    if device.session is not None:
                        device.session.closed.wait(max(0.0, deadline - time.monotonic()))
                    return why
            if lifecycle and not publishes_lifecycle_events(device.client_id):
                if device.client_id in self._endpoint.connected_clients():
                    return None
            if closed:
                return "the connection was closed"
            time.sleep(_POLL_S)
        return f"no answer from the endpoint in {STEP_TIMEOUT_S:g} s"

    # -- the end --------------------------------------------------------------------------------------------

    def await_receipts(self, timeout_s: float) -> None:
        """Waits until every connected device has received what a step expects it to, or `timeout_s` passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            self._devices[p.step.device].connected for p in self._played if self._missing_receipt(p)
        ):
            time.sleep(_POLL_S)

    def _missing_receipt(self, played: _Played) -> bool:
        expected = played.step.expected_receipt
        return (
            played.refusal is None
            and expected is not None
            and not self._devices[played.step.device].received_since(played.receipt_mark, expected)
        )

    def disconnect_all(self, announce: Callable[[str], None]) -> bool:
        """The devices still connected disconnect (clean); whether there were any."""
        connected = [device for device in self._devices.values() if device.connected]
        for device in connected:
            announce(f"[end] device {device.name} disconnects: the scenario is over")
            refusal, detail = self._disconnect(device, DeviceDisconnect(device.name, "clean", "[end]"))
            announce(f"      {refusal or detail}")
        return bool(connected)

    def messages(self) -> list[tuple[int, DevicePublish, Sent]]:
        """The devices' messages IoT let through, with the rules they fired (all run by now)."""
        return [
            (number, step, Sent(handed.payload, tuple(handed.fired.result(STEP_TIMEOUT_S))))
            for number, step, handed in self._messages
        ]

    def outcomes(self) -> list[DeviceOutcome]:
        found = []
        for played in self._played:
            expected = played.step.expected_receipt
            device = self._devices[played.step.device]
            received = device.received_since(played.receipt_mark, expected) if expected is not None else ()
            found.append(DeviceOutcome(played.number, played.step, played.refusal, played.detail, received))
        return found

    def stop(self) -> None:
        """Every device's network thread ends; the endpoint closes what is still open as it stops."""
        for device in self._devices.values():
            if device.session is not None:
                device.session.client.loop_stop()


def _register(runtime: LocalRuntime, step: DeviceConnect, certificate_pem: str) -> tuple[str, str]:
    """As an operator registers a device's certificate (on the runtime's thread): ACTIVE, without its CA, the thing
    created if need be, the certificate attached to it and to the policy. Returns the policy and certificate id."""
    iot = runtime.cloud.client("iot")
    policy = step.policy or _app_device_policy(runtime, step.where)
    try:
        iot.get_policy(policyName=policy)
    except ClientError:
        raise LocalRuntimeError(f"{step.where}: there is no IoT policy {policy!r} to attach to the device") from None
    registered = iot.register_certificate_without_ca(certificatePem=certificate_pem, status="ACTIVE")
    try:
        iot.describe_thing(thingName=step.client_id)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        iot.create_thing(thingName=step.client_id)
    iot.attach_thing_principal(thingName=step.client_id, principal=registered["certificateArn"])
    iot.attach_policy(policyName=policy, target=registered["certificateArn"])
    return policy, str(registered["certificateId"])


def _app_device_policy(runtime: LocalRuntime, where: str) -> str:
    """The policy the app's onboarding gives every device, as its functions' environment names it."""
    names = {
        variables[DEVICE_POLICY_VARIABLE]
        for function in runtime.stack.of_type("AWS::Lambda::Function")
        if isinstance(variables := function.properties.get("Environment", {}).get("Variables", {}), dict)
        and isinstance(variables.get(DEVICE_POLICY_VARIABLE), str)
    }
    if len(names) != 1:
        found = f"names {len(names)} ({', '.join(sorted(names))})" if names else "names none"
        raise LocalRuntimeError(
            f'{where}: name the policy of the device\'s certificate ("policy"): the app {found} in its functions\' '
            f"{DEVICE_POLICY_VARIABLE}"
        )
    return names.pop()
