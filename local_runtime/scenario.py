"""Scenarios: a JSON list of steps played against the runtime, then a final drain.

A step is one of
    {"publish": {"topic": "...", "payload": {...} or "text",   a message as IoT Core or a device publishes it
                 "clientId": "...", "principal": "..."}}       (optional: the publishing MQTT client)
    {"sleep": seconds}                                          time passes; the event sources keep polling
    {"drain": true}                                             poll until the work queues are empty
and may carry a "note" (printed, to tell the story). Published messages go out back to back, as a burst; the
functions run while time passes (sleep) and on drains, when the event sources poll, so consecutive
publishes reach a function in batches as a burst does on AWS.

Times are relative to the moment the scenario is loaded to be played: {"$time": "-5m"} anywhere in a step is
that moment less five minutes, in epoch ms (events/__init__.py has the notation). A publish step may declare
that its message is to be rejected: "expect": {"rejected": "<part of the reason>"}; every other message is
expected to be accepted. After the final drain, each message's outcome is known (outcomes.py): a message
rejected that was expected to pass, or accepted that was expected to be rejected, fails the scenario, as
does a rejection no message accounts for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from events import RelativeTimeError, now_ms, resolve_times
from local_runtime.errors import LocalRuntimeError
from local_runtime.outcomes import Rejection, Sent, attribute, rejections
from local_runtime.rules import NO_CLIENT
from local_runtime.runtime import LocalRuntime


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


Step = Publish | Sleep | Drain


@dataclass(frozen=True)
class Outcome:
    """What became of one published message."""

    number: int  # the step's number, from 1
    step: Publish
    rejections: tuple[str, ...]  # why it was rejected; empty when it was accepted

    @property
    def as_expected(self) -> bool:
        if self.step.expected_rejection is None:
            return not self.rejections
        return any(self.step.expected_rejection in reason for reason in self.rejections)


@dataclass(frozen=True)
class Played:
    outcomes: tuple[Outcome, ...]
    unaccounted: tuple[Rejection, ...]  # rejections no published message accounts for

    @property
    def passed(self) -> bool:
        return not self.unaccounted and all(outcome.as_expected for outcome in self.outcomes)


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
    return [_step(step, f"{path} step {number}") for number, step in enumerate(steps, 1)]


def _step(step: Any, where: str) -> Step:
    kinds = set(step) - {"note", "expect"} if isinstance(step, dict) else set()
    note = step.get("note") if isinstance(step, dict) else None
    publish = step.get("publish") if isinstance(step, dict) else None
    if kinds == {"publish"} and isinstance(publish, dict) and isinstance(publish.get("topic"), str):
        unknown = set(publish) - {"topic", "payload", "clientId", "principal"}
        if unknown:
            raise LocalRuntimeError(f"{where}: a publish has topic, payload, clientId and principal, not {sorted(unknown)}")
        payload = encode_payload(publish.get("payload", ""), where)
        client_id, principal = publish.get("clientId", NO_CLIENT), publish.get("principal")
        return Publish(publish["topic"], payload, note, client_id, principal, _expected_rejection(step, where))
    if isinstance(step, dict) and "expect" in step and "publish" not in step:
        raise LocalRuntimeError(f"{where}: only a publish step has an expected outcome")
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


def _expected_rejection(step: dict[str, Any], where: str) -> str | None:
    if "expect" not in step:
        return None
    expect = step["expect"]
    if not (isinstance(expect, dict) and set(expect) == {"rejected"} and isinstance(expect["rejected"], str)):
        raise LocalRuntimeError(f'{where}: "expect" is {{"rejected": "<part of the reason>"}}, not {json.dumps(expect)}')
    if not expect["rejected"]:
        raise LocalRuntimeError(f"{where}: an expected rejection names part of its reason")
    return expect["rejected"]


def run_scenario(runtime: LocalRuntime, steps: list[Step], announce: Callable[[str], None]) -> Played:
    """Plays the steps, announcing each; the runtime's observer reports what the rules and functions did. Then
    what became of each published message."""
    runtime.start_event_flow()
    width = len(str(len(steps)))
    published: list[tuple[int, Publish]] = []
    sent: list[Sent] = []
    for number, step in enumerate(steps, 1):
        prefix = f"[{number:>{width}}]"
        if step.note:
            announce(f"{' ' * len(prefix)} # {step.note}")
        if isinstance(step, Publish):
            announce(f"{prefix} publish {step.topic}")
            fired = runtime.publish(step.topic, step.payload, step.client_id, step.principal)
            published.append((number, step))
            sent.append(Sent(step.payload, tuple(fired)))
        elif isinstance(step, Sleep):
            announce(f"{prefix} sleep {step.seconds:g} s")
            runtime.run_for(step.seconds)
        else:
            announce(f"{prefix} drain")
            runtime.drain()
    announce("[end] drain")
    runtime.drain()
    reasons, unaccounted = attribute(sent, rejections(runtime))
    outcomes = tuple(Outcome(number, step, tuple(why)) for (number, step), why in zip(published, reasons))
    return Played(outcomes, tuple(unaccounted))


def outcome_lines(played: Played) -> list[str]:
    """Each published message's outcome, then a summary line; what was not as expected in capitals."""
    width = len(str(max((outcome.number for outcome in played.outcomes), default=1)))
    lines = []
    for outcome in played.outcomes:
        expected = outcome.step.expected_rejection
        if outcome.rejections:
            state = "rejected, as expected" if outcome.as_expected else (
                "REJECTED, expected to be accepted" if expected is None else f"REJECTED, but not for {expected!r}"
            )
        else:
            state = "accepted" if expected is None else f"ACCEPTED, expected to be rejected for {expected!r}"
        lines.append(f"[{outcome.number:>{width}}] {state}: {outcome.step.topic}")
        lines += [f"{' ' * (width + 3)}{reason}" for reason in outcome.rejections]
    for rejection in played.unaccounted:
        lines.append(f"REJECTED, no published message accounts for it: {rejection.reason} ({rejection.where})")
    accepted = sum(not outcome.rejections for outcome in played.outcomes)
    unexpected = sum(not outcome.as_expected for outcome in played.outcomes) + len(played.unaccounted)
    lines.append(
        f"{len(played.outcomes)} messages: {accepted} accepted, {len(played.outcomes) - accepted} rejected; "
        + ("all as expected" if not unexpected else f"{unexpected} NOT as expected")
    )
    return lines
