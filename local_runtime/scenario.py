"""Scenarios: a JSON list of steps played against the runtime, then a final drain.

A step is one of
    {"publish": {"topic": "...", "payload": {...} or "text",   a message as IoT Core or a device publishes it
                 "clientId": "...", "principal": "..."}}       (optional: the publishing MQTT client)
    {"sleep": seconds}                                          time passes; the event sources keep polling
    {"drain": true}                                             poll until the work queues are empty
and may carry a "note" (printed, to tell the story). Published messages go out back to back, as a burst; the
functions run while time passes (sleep) and on drains, when the event sources poll, so consecutive
publishes reach a function in batches as a burst does on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from local_runtime.errors import LocalRuntimeError
from local_runtime.rules import NO_CLIENT
from local_runtime.runtime import LocalRuntime


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    note: str | None = None
    client_id: str = NO_CLIENT
    principal: str | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float
    note: str | None = None


@dataclass(frozen=True)
class Drain:
    note: str | None = None


Step = Publish | Sleep | Drain


def load_scenario(path: Path) -> list[Step]:
    try:
        steps = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LocalRuntimeError(f"Cannot read the scenario {path}: {error}") from None
    if not isinstance(steps, list):
        raise LocalRuntimeError(f"{path}: a scenario is a JSON list of steps")
    return [_step(step, f"{path} step {number}") for number, step in enumerate(steps, 1)]


def _step(step: Any, where: str) -> Step:
    kinds = set(step) - {"note"} if isinstance(step, dict) else set()
    note = step.get("note") if isinstance(step, dict) else None
    publish = step.get("publish") if isinstance(step, dict) else None
    if kinds == {"publish"} and isinstance(publish, dict) and isinstance(publish.get("topic"), str):
        unknown = set(publish) - {"topic", "payload", "clientId", "principal"}
        if unknown:
            raise LocalRuntimeError(f"{where}: a publish has topic, payload, clientId and principal, not {sorted(unknown)}")
        payload = encode_payload(publish.get("payload", ""), where)
        client_id, principal = publish.get("clientId", NO_CLIENT), publish.get("principal")
        return Publish(publish["topic"], payload, note, client_id, principal)
    if kinds == {"sleep"} and isinstance(step["sleep"], (int, float)) and step["sleep"] >= 0:
        return Sleep(float(step["sleep"]), note)
    if kinds == {"drain"} and step["drain"] is True:
        return Drain(note)
    expected = '{"publish": {"topic": ..., "payload": ...}}, {"sleep": seconds} or {"drain": true}'
    raise LocalRuntimeError(f"{where}: expected {expected}, got {json.dumps(step)}")


def encode_payload(payload: Any, where: str) -> bytes:
    """A JSON object is published as its JSON text; a string as it is (any text, even one that is not JSON)."""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":")).encode()
    raise LocalRuntimeError(f"{where}: a payload is a JSON object or a string")


def run_scenario(runtime: LocalRuntime, steps: list[Step], announce: Callable[[str], None]) -> None:
    """Plays the steps, announcing each; the runtime's observer reports what the rules and functions did."""
    runtime.start_event_flow()
    width = len(str(len(steps)))
    for number, step in enumerate(steps, 1):
        prefix = f"[{number:>{width}}]"
        if step.note:
            announce(f"{' ' * len(prefix)} # {step.note}")
        if isinstance(step, Publish):
            announce(f"{prefix} publish {step.topic}")
            runtime.publish(step.topic, step.payload, step.client_id, step.principal)
        elif isinstance(step, Sleep):
            announce(f"{prefix} sleep {step.seconds:g} s")
            runtime.run_for(step.seconds)
        else:
            announce(f"{prefix} drain")
            runtime.drain()
    announce("[end] drain")
    runtime.drain()
