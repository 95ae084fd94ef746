"""Scenarios: a JSON list of steps played against the runtime, then a final drain.

A step is one of
    {"publish": {"topic": "...", "payload": {...} or "text",   a message as IoT Core or a device publishes it
                 "clientId": "...", "principal": "..."}}       (optional: the publishing MQTT client)
    {"sleep": seconds}                                          time passes; the event sources keep polling
    {"drain": true}                                             poll until the work queues are empty
    {"device": {...}}                                           a real device does something (below)
and may carry a "note" (printed, to tell the story). Published messages go out back to back, as a burst; the
functions run while time passes (sleep) and on drains, when the event sources poll, so consecutive
publishes reach a function in batches as a burst does on AWS.

Times are relative to the moment the scenario is loaded to be played: {"$time": "-5m"} anywhere in a step is
that moment less five minutes, in epoch ms (events/__init__.py has the notation). A publish step may declare
that its message is to be rejected: "expect": {"rejected": "<part of the reason>"}; every other message is
expected to be accepted. After the final drain, each message's outcome is known (outcomes.py): a message
rejected that was expected to pass, or accepted that was expected to be rejected, fails the scenario, as
does a rejection no message accounts for.

Device steps: real MQTT clients (paho-mqtt, MQTT 3.1.1 over TLS on loopback) connect to the local device
endpoint (device_endpoint.py), which the scenario starts beside the runtime when it has a device step (on free
ports) and stops at its end. A device is named by the step; its client ID is that name unless "clientId"
says otherwise (two devices with one client ID: the second connection takes the first over, as on IoT).
    {"device": {"connect": "<device>", "as": "certificate", "clientId": "...", "policy": "<policy name>"}}
    {"device": {"connect": "<device>", "as": "token", "keys": "<folder>", "authorizer": "<name>"}}
    {"device": {"subscribe": "<device>", "topic": "<topic filter>", "qos": 1}}
    {"device": {"publish": "<device>", "topic": "...", "payload": {...} or "text", "qos": 1, "retain": false}}
    {"device": {"disconnect": "<device>", "how": "clean"}}     "clean": an MQTT DISCONNECT; "drop": the
                                                                connection is cut (IoT sees CONNECTION_LOST)
"as" defaults to "certificate", "qos" to 1, "how" to "clean". Each step waits for IoT's answer (the CONNACK
and the connected event, the subscribed event, the publish through the gateway, the disconnected event) or
its refusal, which closes the connection as IoT does.
- A certificate device gets what an operator gives a device on AWS, before the first step: a key and a
  certificate issued for it by a scenario CA (device_pki), registered ACTIVE without its CA
  (RegisterCertificateWithoutCA: the endpoint trusts a registered certificate itself, see
  device_certificates.DeviceTrust), the thing named after its client ID (created if the registry has none),
  the certificate attached to it, and "policy" attached to the certificate: by default the app's shared device
  policy, the one its onboarding gives every device (the DEVICE_POLICY_NAME of its functions). The embedded AWS
  publishes no registry event for these calls.
  https://docs.aws.amazon.com/iot/latest/developerguide/manual-cert-registration.html
- A token device (only where the app has a custom authorizer) mints a token for its client ID with the keys
  in "keys" (a folder of `python -m device_tokens keys`, relative to the scenario file) and connects through
  the authorizer ("authorizer", needed only when the app has several), as IoT's custom authentication expects
  the MQTT username: `<clientId>?x-amz-customauthorizer-name=...&x-amz-customauthorizer-signature=...&<token
  key>=<token>`, the token as password.
Expected outcomes of device steps:
    "expect": {"refused": "<part of IoT's reason>"}   a connect, subscribe or publish IoT is to refuse
    "expect": {"receives": {"topic": "<filter>"}}     on a subscribe or publish: the device is to receive a
                                                      message on a matching topic after the step, before the
                                                      scenario ends (a command, for instance)
    "expect": {"rejected": "..."}                     on a publish IoT lets through: as for a publish step
Every other device step is expected to succeed. A drain also waits (up to 10 s) for the messages devices are
still expected to receive. At the end, after the final drain, the devices still connected disconnect (clean)
and the runtime drains again, so the final state holds every session's end.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from events import RelativeTimeError, now_ms, resolve_times
from local_runtime.errors import LocalRuntimeError
from local_runtime.outcomes import Rejection, Sent, attribute, rejections
from local_runtime.rules import NO_CLIENT
from local_runtime.runtime import LocalRuntime
from local_runtime.topics import TopicFilter

CERTIFICATE, TOKEN = "certificate", "token"
CLEAN, DROP = "clean", "drop"
RECEIPT_WAIT_S = 10.0
Result = TypeVar("Result")


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    note: str | None = None
    client_id: str = NO_CLIENT
    principal: str | None = None
    expected_rejection: str | None = None  # part of the reason it is to be rejected for; None: to be accepted


@dataclass(frozen=True)
class Sleep:
    seconds: float
    note: str | None = None


@dataclass(frozen=True)
class Drain:
    note: str | None = None


@dataclass(frozen=True)
class DeviceConnect:
    device: str
    client_id: str
    credentials: str  # CERTIFICATE or TOKEN
    where: str  # the step, for messages
    policy: str | None = None  # certificate: the policy attached to it (None: the app's device policy)
    keys: Path | None = None  # token: the folder of the keys that mint it
    authorizer: str | None = None  # token: the authorizer (None: the app's only one)
    note: str | None = None
    expected_refusal: str | None = None
    expected_receipt: None = None  # a connect expects no message


@dataclass(frozen=True)
class DeviceSubscribe:
    device: str
    topic_filter: str
    qos: int
    where: str
    note: str | None = None
    expected_refusal: str | None = None
    expected_receipt: str | None = None  # a topic filter


@dataclass(frozen=True)
class DevicePublish:
    device: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    where: str
    note: str | None = None
    expected_refusal: str | None = None
    expected_rejection: str | None = None  # by the app, once IoT let it through: as Publish's
    expected_receipt: str | None = None


@dataclass(frozen=True)
class DeviceDisconnect:
    device: str
    how: str  # CLEAN or DROP
    where: str
    note: str | None = None
    expected_refusal: None = None  # a disconnect cannot be refused
    expected_receipt: None = None


DeviceStep = DeviceConnect | DeviceSubscribe | DevicePublish | DeviceDisconnect
Step = Publish | Sleep | Drain | DeviceStep


@dataclass(frozen=True)
class Outcome:
    """What became of one message the rules got: a publish step's, or a device's that IoT let through."""

    number: int  # the step's number, from 1
    step: Publish | DevicePublish
    rejections: tuple[str, ...]  # why it was rejected; empty when it was accepted

    @property
    def as_expected(self) -> bool:
        if self.step.expected_rejection is None:
            return not self.rejections
        return any(self.step.expected_rejection in reason for reason in self.rejections)


@dataclass(frozen=True)
class DeviceOutcome:
    """What IoT made of one device step."""

    number: int
    step: DeviceStep
    refusal: str | None  # why IoT refused it (or why it could not happen); None: it happened
    detail: str = ""  # what happened, for the summary (a session, a disconnect reason)
    received: tuple[str, ...] = ()  # the topics of the expected receipt the device got after the step

    @property
    def as_expected(self) -> bool:
        expected = self.step.expected_refusal
        if expected is not None:
            return self.refusal is not None and expected in self.refusal
        return self.refusal is None and (self.step.expected_receipt is None or bool(self.received))


@dataclass(frozen=True)
class Played:
    outcomes: tuple[Outcome, ...]
    unaccounted: tuple[Rejection, ...]  # rejections no published message accounts for
    device_outcomes: tuple[DeviceOutcome, ...] = ()

    @property
    def passed(self) -> bool:
        return (
            not self.unaccounted
            and all(outcome.as_expected for outcome in self.outcomes)
            and all(outcome.as_expected for outcome in self.device_outcomes)
        )


def load_scenario(path: Path, at_ms: int | None = None) -> list[Step]:
    """The steps, their relative times resolved against `at_ms` (default: now, the moment it is played)."""
    try:
        steps = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LocalRuntimeError(f"Cannot read the scenario {path}: {error}") from None
    if not isinstance(steps, list):
        raise LocalRuntimeError(f"{path}: a scenario is a JSON list of steps")
    try:
        steps = resolve_times(steps, now_ms() if at_ms is None else at_ms, where=str(path))
    except RelativeTimeError as error:
        raise LocalRuntimeError(str(error)) from None
    parsed = [_step(step, f"{path} step {number}", path.parent) for number, step in enumerate(steps, 1)]
    _check_devices(parsed)
    return parsed


def _step(step: Any, where: str, folder: Path) -> Step:
    kinds = set(step) - {"note", "expect"} if isinstance(step, dict) else set()
    note = step.get("note") if isinstance(step, dict) else None
    publish = step.get("publish") if isinstance(step, dict) else None
    if kinds == {"publish"} and isinstance(publish, dict) and isinstance(publish.get("topic"), str):
        unknown = set(publish) - {"topic", "payload", "clientId", "principal"}
        if unknown:
            raise LocalRuntimeError(f"{where}: a publish has topic, payload, clientId and principal, not {sorted(unknown)}")
        payload = encode_payload(publish.get("payload", ""), where)
        client_id, principal = publish.get("clientId", NO_CLIENT), publish.get("principal")
        expected = _expected(step, where, {"rejected"})
        return Publish(publish["topic"], payload, note, client_id, principal, expected.get("rejected"))
    if kinds == {"device"}:
        return _device_step(step["device"], step, where, folder, note)
    if isinstance(step, dict) and "expect" in step and not kinds & {"publish", "device"}:
        raise LocalRuntimeError(f"{where}: only a publish or device step has an expected outcome")
    if kinds == {"sleep"} and isinstance(step["sleep"], (int, float)) and step["sleep"] >= 0:
        return Sleep(float(step["sleep"]), note)
    if kinds == {"drain"} and step["drain"] is True:
        return Drain(note)
    expected = '{"publish": {"topic": ..., "payload": ...}}, {"sleep": seconds}, {"drain": true} or {"device": {...}}'
    raise LocalRuntimeError(f"{where}: expected {expected}, got {json.dumps(step)}")


_DEVICE_OPTIONS = {
    "connect": {"as", "clientId", "policy", "keys", "authorizer"},
    "subscribe": {"topic", "qos"},
    "publish": {"topic", "payload", "qos", "retain"},
    "disconnect": {"how"},
}
_DEVICE_EXPECTATIONS = {
    "connect": {"refused"},
    "subscribe": {"refused", "receives"},
    "publish": {"refused", "rejected", "receives"},
    "disconnect": set(),
}


def _device_step(device: Any, step: dict[str, Any], where: str, folder: Path, note: Any) -> DeviceStep:
    actions = sorted(set(device) & set(_DEVICE_OPTIONS)) if isinstance(device, dict) else []
    if len(actions) != 1:
        raise LocalRuntimeError(
            f'{where}: a device step is {{"device": {{"connect"|"subscribe"|"publish"|"disconnect": "<device>", ...}}}}, '
            f"not {json.dumps(device)}"
        )
    [action] = actions
    name = device[action]
    if not isinstance(name, str) or not name:
        raise LocalRuntimeError(f'{where}: "{action}" names the device, a non-empty string, not {json.dumps(name)}')
    unknown = sorted(set(device) - {action} - _DEVICE_OPTIONS[action])
    if unknown:
        allowed = ", ".join(sorted(_DEVICE_OPTIONS[action])) or "nothing else"
        raise LocalRuntimeError(f"{where}: a device {action} has {allowed}, not {', '.join(unknown)}")
    if action == "disconnect" and "expect" in step:
        raise LocalRuntimeError(f"{where}: a device disconnect has no expected outcome")
    expected = _expected(step, where, _DEVICE_EXPECTATIONS[action])
    if "refused" in expected and len(expected) > 1:
        raise LocalRuntimeError(f"{where}: a step expected to be refused expects nothing else")
    refusal, receipt = expected.get("refused"), expected.get("receives")
    if action == "connect":
        return _connect(device, name, where, folder, note, refusal)
    if action == "disconnect":
        how = device.get("how", CLEAN)
        if how not in (CLEAN, DROP):
            raise LocalRuntimeError(f'{where}: "how" is "{CLEAN}" or "{DROP}", not {json.dumps(how)}')
        return DeviceDisconnect(name, how, where, note)
    topic = device.get("topic")
    if not isinstance(topic, str) or not topic:
        raise LocalRuntimeError(f'{where}: a device {action} needs a "topic" (a string)')
    qos = device.get("qos", 1)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise LocalRuntimeError(f'{where}: "qos" is 0 or 1 (IoT refuses 2), not {json.dumps(qos)}')
    if action == "subscribe":
        return DeviceSubscribe(name, topic, qos, where, note, refusal, receipt)
    retain = device.get("retain", False)
    if not isinstance(retain, bool):
        raise LocalRuntimeError(f'{where}: "retain" is true or false, not {json.dumps(retain)}')
    payload = encode_payload(device.get("payload", ""), where)
    return DevicePublish(name, topic, payload, qos, retain, where, note, refusal, expected.get("rejected"), receipt)


def _connect(device: dict[str, Any], name: str, where: str, folder: Path, note: Any, refusal: str | None) -> DeviceConnect:
    credentials = device.get("as", CERTIFICATE)
    if credentials not in (CERTIFICATE, TOKEN):
        raise LocalRuntimeError(f'{where}: "as" is "{CERTIFICATE}" or "{TOKEN}", not {json.dumps(credentials)}')
    client_id = device.get("clientId", name)
    if not isinstance(client_id, str) or not client_id:
        raise LocalRuntimeError(f'{where}: "clientId" is a non-empty string, not {json.dumps(client_id)}')
    options = {"policy"} if credentials == CERTIFICATE else {"keys", "authorizer"}
    misplaced = sorted(set(device) & {"policy", "keys", "authorizer"} - options)
    if misplaced:
        raise LocalRuntimeError(f"{where}: a {credentials} device has no {', '.join(misplaced)}")
    for option in ("policy", "keys", "authorizer"):
        if option in device and not (isinstance(device[option], str) and device[option]):
            raise LocalRuntimeError(f'{where}: "{option}" is a non-empty string, not {json.dumps(device[option])}')
    if credentials == TOKEN and "keys" not in device:
        raise LocalRuntimeError(f'{where}: a token device needs "keys", the folder of the keys that mint its token')
    keys = folder / device["keys"] if "keys" in device else None
    return DeviceConnect(
        name, client_id, credentials, where, device.get("policy"), keys, device.get("authorizer"), note, refusal
    )


def _check_devices(steps: list[Step]) -> None:
    """Every device step names a device an earlier step connects, and a device keeps its credentials."""
    connects: dict[str, DeviceConnect] = {}
    for step in steps:
        if isinstance(step, DeviceConnect):
            first = connects.setdefault(step.device, step)
            same = (first.client_id, first.credentials, first.policy, first.keys, first.authorizer)
            if same != (step.client_id, step.credentials, step.policy, step.keys, step.authorizer):
                raise LocalRuntimeError(
                    f"{step.where}: {step.device} keeps the client ID and credentials it connected with in "
                    f"{first.where}; another device connects with other ones"
                )
        elif isinstance(step, (DeviceSubscribe, DevicePublish, DeviceDisconnect)) and step.device not in connects:
            raise LocalRuntimeError(f"{step.where}: no earlier step connects the device {step.device}")


def encode_payload(payload: Any, where: str) -> bytes:
    """A JSON object is published as its JSON text; a string as it is (any text, even one that is not JSON)."""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":")).encode()
    raise LocalRuntimeError(f"{where}: a payload is a JSON object or a string")


_EXPECTATION_SHAPES = {
    "rejected": '"rejected": "<part of the reason>"',
    "refused": '"refused": "<part of the reason>"',
    "receives": '"receives": {"topic": "<topic filter>"}',
}


def _expected(step: dict[str, Any], where: str, allowed: set[str]) -> dict[str, str]:
    """The step's "expect", checked: each of its keys one of `allowed`, each reason a non-empty string."""
    if "expect" not in step:
        return {}
    expect = step["expect"]
    shapes = " or ".join(f"{{{_EXPECTATION_SHAPES[key]}}}" for key in sorted(allowed))
    if not (isinstance(expect, dict) and expect and set(expect) <= allowed):
        raise LocalRuntimeError(f'{where}: "expect" is {shapes}, not {json.dumps(expect)}')
    found: dict[str, str] = {}
    for key, value in expect.items():
        if key == "receives":
            if not (isinstance(value, dict) and set(value) == {"topic"} and isinstance(value["topic"], str)):
                raise LocalRuntimeError(f"{where}: {{{_EXPECTATION_SHAPES[key]}}}, not {json.dumps(value)}")
            TopicFilter.parse(value["topic"], f"{where}: expect.receives.topic")
            found[key] = value["topic"]
        elif not isinstance(value, str):
            raise LocalRuntimeError(f'{where}: "expect" is {shapes}, not {json.dumps(expect)}')
        elif not value:
            raise LocalRuntimeError(f"{where}: an expected {'rejection' if key == 'rejected' else 'refusal'} names part of its reason")
        else:
            found[key] = value
    return found


def run_scenario(runtime: LocalRuntime, steps: list[Step], announce: Callable[[str], None]) -> Played:
    """Plays the steps, announcing each; the runtime's observer reports what the rules and functions did. Then
    what became of each published message and each device step. With device steps, a device endpoint serves
    the devices while the steps play (the runtime is used from its thread meanwhile), and stops at the end."""
    runtime.start_event_flow()
    if not any(isinstance(step, (DeviceConnect, DeviceSubscribe, DevicePublish, DeviceDisconnect)) for step in steps):
        return _play(_Direct(runtime), steps, announce)
    from local_runtime.device_endpoint import DeviceEndpoint  # the broker and the device clients: only for devices
    from local_runtime.scenario_devices import ScenarioDevices

    with tempfile.TemporaryDirectory(prefix="scenario-devices-") as folder:
        with DeviceEndpoint(runtime, Path(folder) / "endpoint") as endpoint:
            devices = ScenarioDevices(endpoint, Path(folder) / "devices")
            try:
                devices.prepare([step for step in steps if isinstance(step, DeviceConnect)], announce)
                return _play(_Served(endpoint, devices), steps, announce)
            finally:
                devices.stop()


class _Direct:
    """The runtime, used from this thread."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime

    def call(self, job: Callable[[LocalRuntime], Result]) -> Result:
        return job(self._runtime)

    def sleep(self, seconds: float) -> None:
        self._runtime.run_for(seconds)


class _Served:
    """The runtime while the device endpoint runs: used from its own thread, which polls the event sources
    whenever it has nothing else to do, so time passing is a plain sleep."""

    def __init__(self, endpoint: Any, devices: Any) -> None:
        self._endpoint = endpoint
        self.devices = devices

    def call(self, job: Callable[[LocalRuntime], Result]) -> Result:
        return self._endpoint.call(job)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class _Record:
    messages: list[tuple[int, Publish | DevicePublish, Sent]] = field(default_factory=list)
    device_outcomes: list[DeviceOutcome] = field(default_factory=list)


def _play(runtime: _Direct | _Served, steps: list[Step], announce: Callable[[str], None]) -> Played:
    width = len(str(len(steps)))
    record = _Record()
    devices = runtime.devices if isinstance(runtime, _Served) else None
    for number, step in enumerate(steps, 1):
        prefix = f"[{number:>{width}}]"
        if step.note:
            announce(f"{' ' * len(prefix)} # {step.note}")
        if isinstance(step, Publish):
            announce(f"{prefix} publish {step.topic}")
            fired = runtime.call(lambda r, s=step: r.publish(s.topic, s.payload, s.client_id, s.principal))
            record.messages.append((number, step, Sent(step.payload, tuple(fired))))
        elif isinstance(step, Sleep):
            announce(f"{prefix} sleep {step.seconds:g} s")
            runtime.sleep(step.seconds)
        elif isinstance(step, Drain):
            announce(f"{prefix} drain")
            runtime.call(lambda r: r.drain())
            if devices is not None:
                devices.await_receipts(RECEIPT_WAIT_S)
        else:
            assert devices is not None
            announce(f"{prefix} {devices.describe(step)}")
            devices.play(number, step, announce)
    announce("[end] drain")
    runtime.call(lambda r: r.drain())
    if devices is not None:
        devices.await_receipts(RECEIPT_WAIT_S)
        if devices.disconnect_all(announce):
            announce("[end] drain")
            runtime.call(lambda r: r.drain())
        record.messages += devices.messages()
        record.device_outcomes = devices.outcomes()
    record.messages.sort(key=lambda message: message[0])
    reasons, unaccounted = attribute([sent for _, _, sent in record.messages], runtime.call(rejections))
    outcomes = tuple(Outcome(number, step, tuple(why)) for (number, step, _), why in zip(record.messages, reasons))
    return Played(outcomes, tuple(unaccounted), tuple(record.device_outcomes))


def outcome_lines(played: Played) -> list[str]:
    """Each message's and device step's outcome, in step order, then a summary; what was not as expected in
    capitals."""
    numbers = [outcome.number for outcome in (*played.outcomes, *played.device_outcomes)]
    width = len(str(max(numbers, default=1)))
    indent = " " * (width + 3)
    by_number: dict[int, list[str]] = {}
    for outcome in played.outcomes:
        by_number.setdefault(outcome.number, []).extend(_message_lines(outcome, width, indent))
    for device_outcome in played.device_outcomes:
        by_number.setdefault(device_outcome.number, []).extend(_device_lines(device_outcome, width, indent))
    lines = [line for number in sorted(by_number) for line in by_number[number]]
    for rejection in played.unaccounted:
        lines.append(f"REJECTED, no published message accounts for it: {rejection.reason} ({rejection.where})")
    accepted = sum(not outcome.rejections for outcome in played.outcomes)
    unexpected = sum(not outcome.as_expected for outcome in played.outcomes) + len(played.unaccounted)
    lines.append(
        f"{len(played.outcomes)} messages: {accepted} accepted, {len(played.outcomes) - accepted} rejected; "
        + ("all as expected" if not unexpected else f"{unexpected} NOT as expected")
    )
    if played.device_outcomes:
        refused = sum(outcome.refusal is not None for outcome in played.device_outcomes)
        wrong = sum(not outcome.as_expected for outcome in played.device_outcomes)
        lines.append(
            f"{len(played.device_outcomes)} device steps: {len(played.device_outcomes) - refused} done, {refused} "
            "refused; " + ("all as expected" if not wrong else f"{wrong} NOT as expected")
        )
    return lines


def _message_lines(outcome: Outcome, width: int, indent: str) -> list[str]:
    expected = outcome.step.expected_rejection
    if outcome.rejections:
        state = "rejected, as expected" if outcome.as_expected else (
            "REJECTED, expected to be accepted" if expected is None else f"REJECTED, but not for {expected!r}"
        )
    else:
        state = "accepted" if expected is None else f"ACCEPTED, expected to be rejected for {expected!r}"
    by = f" (from {outcome.step.device})" if isinstance(outcome.step, DevicePublish) else ""
    return [f"[{outcome.number:>{width}}] {state}: {outcome.step.topic}{by}", *(indent + r for r in outcome.rejections)]


def _device_lines(outcome: DeviceOutcome, width: int, indent: str) -> list[str]:
    step, prefix = outcome.step, f"[{outcome.number:>{width}}]"
    verb = {
        DeviceConnect: "connect", DeviceSubscribe: "subscribe", DevicePublish: "publish", DeviceDisconnect: "disconnect"
    }[type(step)]  # fmt: skip
    target = (
        f" {step.topic_filter}" if isinstance(step, DeviceSubscribe) else f" {step.topic}" if isinstance(step, DevicePublish) else ""
    )
    expected = step.expected_refusal
    lines = []
    if outcome.refusal is not None:
        state = "refused, as expected" if outcome.as_expected else (
            "REFUSED, expected to go through" if expected is None else f"REFUSED, but not for {expected!r}"
        )
        lines += [f"{prefix} {state}: {step.device} {verb}{target}", indent + outcome.refusal]
    elif expected is not None:
        lines.append(
            f"{prefix} {verb.upper()} WENT THROUGH, expected to be refused for {expected!r}: {step.device}{target}"
        )
    elif not isinstance(step, DevicePublish):  # a publish IoT let through has its message's line
        lines.append(f"{prefix} {step.device} {outcome.detail}")
    if step.expected_receipt is not None and outcome.refusal is None:
        if outcome.received:
            lines.append(f"{indent}{step.device} received {', '.join(outcome.received)}, as expected")
        else:
            lines.append(f"{indent}{step.device} DID NOT RECEIVE a message on {step.expected_receipt}")
    return lines
