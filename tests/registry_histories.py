"""Generated registry histories: what really happened to one thing name and its groups, and the events IoT
Core publishes for it.

A thing is created (a new thingId each time the name is created again), added to and removed from groups
(each addition a new membershipId), maybe deleted, maybe created again. A removal and the next addition, or
an addition and its removal, may share a millisecond; three changes of one membership item (the thing's
deletion counting as one) never do: the ambiguity the inventory documents.
"""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st

from tests.lifecycle_histories import Happened

BASE_TIME = 1_795_420_800_000
ARN = "arn:aws:iot:eu-west-1:123456789012"
THING = "greenhouse-sensor"
GROUPS = ("greenhouse-a", "greenhouse-b")


class Truth(NamedTuple):
    """What the registry holds at the end: the groups the thing is a member of (none once it is deleted)."""

    groups: frozenset[str]


def _thing_event(operation: str, thing_id: str, at: int, number: int) -> Happened:
    return Happened(
        at,
        {
            "eventType": "THING_EVENT",
            "eventId": f"{thing_id}-{operation}",
            "timestamp": at,
            "operation": operation,
            "accountId": "123456789012",
            "thingId": thing_id,
            "thingName": THING,
            "versionNumber": number,
            "thingTypeName": None,
            "attributes": {},
        },
    )


def _membership_event(operation: str, thing_id: str, group: str, membership_id: str, at: int) -> Happened:
    return Happened(
        at,
        {
            "eventType": "THING_GROUP_MEMBERSHIP_EVENT",
            "eventId": f"{membership_id}-{operation}",
            "timestamp": at,
            "operation": operation,
            "accountId": "123456789012",
            "groupArn": f"{ARN}:thinggroup/{group}",
            "groupId": f"id-{group}",
            "thingArn": f"{ARN}:thing/{THING}",
            "thingId": thing_id,
            "membershipId": membership_id,
        },
    )


@st.composite
def registry_history(draw: st.DrawFn) -> tuple[list[Happened], Truth]:
    """The events of one thing name, in the order they happened, and the registry's state after them."""
    happened: list[Happened] = []
    now = BASE_TIME
    # Per membership item: the timestamp of its last change and how many changes share it.
    last_change: dict[str, tuple[int, int]] = {}
    members: dict[str, str] = {}  # group -> membershipId, while the thing is a member

    def changed(group: str, at: int) -> None:
        at_before, count = last_change.get(group, (None, 0))
        last_change[group] = (at, count + 1 if at_before == at else 1)

    def may_share_millisecond(*groups: str) -> bool:
        return all(last_change.get(group, (None, 0)) != (now, 2) for group in groups)

    incarnations = draw(st.integers(1, 3))
    for incarnation in range(incarnations):
        thing_id = f"thing-{incarnation}"
        now += draw(st.integers(1, 60_000))  # created strictly after the previous one's deletion
        happened.append(_thing_event("CREATED", thing_id, now, 1))
        members.clear()
        for change in range(draw(st.integers(0, 8))):
            group = draw(st.sampled_from(GROUPS))
            now += draw(st.sampled_from([0, 1, 1_000, 30_000])) if may_share_millisecond(group) else 1
            if group in members:
                happened.append(_membership_event("REMOVED", thing_id, group, members.pop(group), now))
            else:
                members[group] = f"{thing_id}-membership-{change}"
                happened.append(_membership_event("ADDED", thing_id, group, members[group], now))
            changed(group, now)
        if incarnation < incarnations - 1 or draw(st.booleans()):
            now += draw(st.sampled_from([0, 1, 5_000])) if may_share_millisecond(*GROUPS) else 1
            happened.append(_thing_event("DELETED", thing_id, now, 1))
            for group in GROUPS:
                changed(group, now)
            members.clear()
    return happened, Truth(frozenset(members))
