"""Registry events as AWS IoT Core publishes them once event configurations enable them.

Topics: `$aws/events/thing/<thingName>/{created,updated,deleted}`,
`$aws/events/thingGroup/<groupName>/{created,updated,deleted}` and
`$aws/events/thingGroupMembership/thingGroup/<groupName>/thing/<thingName>/{added,removed}`.
Membership events name neither the thing nor the group; both names come from the ARNs they carry.
Today's events spell eventType THING_EVENT, THING_GROUP_EVENT, THING_GROUP_MEMBERSHIP_EVENT; the 2018 guide
spelled them thingEvent, thingGroupEvent, thingGroupMembershipEvent. Both are accepted.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, NamedTuple

from event_processing.fields import (
    MalformedEvent,
    decode_object,
    one_of,
    optional_text,
    string_map,
    text,
    whole_number,
)

THING_EVENT, THING_GROUP_EVENT, MEMBERSHIP_EVENT = "THING_EVENT", "THING_GROUP_EVENT", "THING_GROUP_MEMBERSHIP_EVENT"
EVENT_TYPES = {
    THING_EVENT: THING_EVENT,
    THING_GROUP_EVENT: THING_GROUP_EVENT,
    MEMBERSHIP_EVENT: MEMBERSHIP_EVENT,
    "thingEvent": THING_EVENT,
    "thingGroupEvent": THING_GROUP_EVENT,
    "thingGroupMembershipEvent": MEMBERSHIP_EVENT,
}
LIFECYCLE_OPERATIONS = ("CREATED", "UPDATED", "DELETED")
MEMBERSHIP_OPERATIONS = ("ADDED", "REMOVED")
# Thing and thing-group names: 1-128 of [a-zA-Z0-9:_-] (CreateThing / CreateThingGroup).
_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_RESOURCE_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:(thing|thinggroup)/([a-zA-Z0-9:_-]{1,128})")


class ThingEvent(NamedTuple):
    eventId: str
    timestamp: int
    operation: Literal["CREATED", "UPDATED", "DELETED"]
    thingId: str
    thingName: str
    versionNumber: int
    thingTypeName: str | None
    attributes: dict[str, str]


class ThingGroupEvent(NamedTuple):
    eventId: str
    timestamp: int
    operation: Literal["CREATED", "UPDATED", "DELETED"]
    thingGroupId: str
    thingGroupName: str
    versionNumber: int
    parentGroupName: str | None
    description: str | None
    attributes: dict[str, str]


class ThingGroupMembershipEvent(NamedTuple):
    eventId: str
    timestamp: int
    operation: Literal["ADDED", "REMOVED"]
    groupArn: str
    groupId: str
    thingArn: str
    thingId: str
    membershipId: str
    thingName: str  # from thingArn
    thingGroupName: str  # from groupArn


RegistryEvent = ThingEvent | ThingGroupEvent | ThingGroupMembershipEvent


def parse_registry_event(body: str | Mapping[str, Any]) -> RegistryEvent:
    event = decode_object(body)
    event_type = EVENT_TYPES[one_of(event, "eventType", tuple(EVENT_TYPES))]
    common = {"eventId": text(event, "eventId", max_length=128), "timestamp": whole_number(event, "timestamp")}
    if event_type == THING_EVENT:
        return ThingEvent(
            operation=one_of(event, "operation", LIFECYCLE_OPERATIONS),
            thingId=text(event, "thingId", max_length=128),
            thingName=_name(event, "thingName"),
            versionNumber=whole_number(event, "versionNumber"),
            thingTypeName=optional_text(event, "thingTypeName", max_length=128),
            attributes=string_map(event, "attributes"),
            **common,
        )
    if event_type == THING_GROUP_EVENT:
        return ThingGroupEvent(
            operation=one_of(event, "operation", LIFECYCLE_OPERATIONS),
            thingGroupId=text(event, "thingGroupId", max_length=128),
            thingGroupName=_name(event, "thingGroupName"),
            versionNumber=whole_number(event, "versionNumber"),
            parentGroupName=optional_text(event, "parentGroupName", max_length=128),
            description=optional_text(event, "description", max_length=2028),
            attributes=string_map(event, "attributes"),
            **common,
        )
    group_arn = text(event, "groupArn", max_length=2048)
    thing_arn = text(event, "thingArn", max_length=2048)
    return ThingGroupMembershipEvent(
        operation=one_of(event, "operation", MEMBERSHIP_OPERATIONS),
        groupArn=group_arn,
        groupId=text(event, "groupId", max_length=128),
        thingArn=thing_arn,
        thingId=text(event, "thingId", max_length=128),
        membershipId=text(event, "membershipId", max_length=128),
        thingName=_name_in_arn(thing_arn, "thing", "thingArn"),
        thingGroupName=_name_in_arn(group_arn, "thinggroup", "groupArn"),
        **common,
    )


def _name(event: Mapping[str, Any], field_name: str) -> str:
    value = text(event, field_name, max_length=128)
    if not _NAME.fullmatch(value):
        raise MalformedEvent(f"{field_name} must be 1-128 characters of a-z, A-Z, 0-9, ':', '_' or '-'")
    return value


def _name_in_arn(arn: str, resource_type: str, field_name: str) -> str:
    match = _RESOURCE_ARN.fullmatch(arn)
    if not match or match.group(1) != resource_type:
        raise MalformedEvent(f"{field_name} is not an IoT {resource_type} ARN")
    return match.group(2)
