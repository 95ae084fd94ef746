"""The inventory kept from registry events: things, thing groups and memberships, in one table.

Items (partition key `pk`, sort key `sk`):
- a thing:      THING#<thingName> / THING
- a group:      GROUP#<groupName> / GROUP
- a membership: THING#<thingName> / GROUP#<groupName>   (so one query returns a thing and its groups)

Registry events arrive at least once and in any order, so every item records the position of the event that
wrote it and each event is one conditional write:
- things and groups carry versionNumber (1 on create, +1 per update; a delete repeats the last number): the
  higher number wins, and at the same number a delete wins. A name deleted and created again is a new
  entity (new thingId): across entities the later timestamp wins.
- memberships have no version: the later timestamp wins, and at the same timestamp a removal wins.
Deleted things, groups and removed memberships stay as tombstones, so that a late, stale event cannot bring
them back, and expire after TOMBSTONE_SECONDS (the longest a message can wait in SQS) through the TTL.
"""

from __future__ import annotations

from typing import Any

from event_processing.conditional_writes import Attr, Condition, ConditionalWrite, Update
from track_inventory.models import RegistryEvent, ThingEvent, ThingGroupEvent, ThingGroupMembershipEvent

TOMBSTONE_SECONDS = 14 * 24 * 3600

_version = Attr("versionNumber")
_event_timestamp = Attr("eventTimestamp")


def thing_key(thing_name: str) -> dict[str, str]:
    return {"pk": f"THING#{thing_name}", "sk": "THING"}


def group_key(group_name: str) -> dict[str, str]:
    return {"pk": f"GROUP#{group_name}", "sk": "GROUP"}


def membership_key(thing_name: str, group_name: str) -> dict[str, str]:
    return {"pk": f"THING#{thing_name}", "sk": f"GROUP#{group_name}"}


def inventory_write(event: RegistryEvent, processed_at_ms: int) -> ConditionalWrite:
    if isinstance(event, ThingGroupMembershipEvent):
        return _membership_write(event, processed_at_ms)
    if isinstance(event, ThingEvent):
        key, id_attribute, entity_id = thing_key(event.thingName), "thingId", event.thingId
        values: dict[str, Any] = {
            "thingName": event.thingName,
            "thingId": event.thingId,
            "thingTypeName": event.thingTypeName,
        }
    else:
        key, id_attribute, entity_id = group_key(event.thingGroupName), "thingGroupId", event.thingGroupId
        values = {
            "thingGroupName": event.thingGroupName,
            "thingGroupId": event.thingGroupId,
            "parentGroupName": event.parentGroupName,
            "description": event.description,
        }
    deleted = event.operation == "DELETED"
    values |= {
        "attributes": event.attributes,
        "versionNumber": event.versionNumber,
        "deleted": deleted,
        "eventTimestamp": event.timestamp,
        "updatedAt": processed_at_ms,
        "expiresAt": processed_at_ms // 1000 + TOMBSTONE_SECONDS if deleted else None,
    }
    return _write(key, values, _versioned_entity_is_newer(event, id_attribute, entity_id))


def _versioned_entity_is_newer(event: ThingEvent | ThingGroupEvent, id_attribute: str, entity_id: str) -> Condition:
    later_version = _version.lt(event.versionNumber)
    if event.operation == "DELETED":
        later_version = later_version | (_version.eq(event.versionNumber) & Attr("deleted").eq(False))
    same_entity = Attr(id_attribute).eq(entity_id)
    other_entity_earlier = Attr(id_attribute).ne(entity_id) & _event_timestamp.lt(event.timestamp)
    return Attr("pk").missing() | (same_entity & later_version) | other_entity_earlier


def _membership_write(event: ThingGroupMembershipEvent, processed_at_ms: int) -> ConditionalWrite:
    removed = event.operation == "REMOVED"
    newer = Attr("pk").missing() | _event_timestamp.lt(event.timestamp)
    if removed:
        newer = newer | (_event_timestamp.eq(event.timestamp) & Attr("member").eq(True))
    values = {
        "thingName": event.thingName,
        "thingGroupName": event.thingGroupName,
        "thingId": event.thingId,
        "thingGroupId": event.groupId,
        "membershipId": event.membershipId,
        "member": not removed,
        "eventTimestamp": event.timestamp,
        "updatedAt": processed_at_ms,
        "expiresAt": processed_at_ms // 1000 + TOMBSTONE_SECONDS if removed else None,
    }
    return _write(membership_key(event.thingName, event.thingGroupName), values, newer)


def _write(key: dict[str, str], values: dict[str, Any], condition: Condition) -> ConditionalWrite:
    return ConditionalWrite(
        key=key,
        update=Update(
            set={name: value for name, value in values.items() if value is not None},
            remove=tuple(name for name, value in values.items() if value is None),
        ),
        condition=condition,
    )
