"""The inventory kept from registry events: things, thing groups and memberships, in one table.

Items (partition key `pk`, sort key `sk`):
- a thing:          THING#<thingName> / THING
- a group:          GROUP#<groupName> / GROUP
- a membership:     THING#<thingName> / GROUP#<groupName>   (so one query returns a thing and its groups)
- a thing deletion: THING#<thingName> / DELETED#<thingId>  (what ended the memberships of that thing)

Registry events arrive at least once and in any order, so every item records the position of the event that
wrote it and each event is one conditional write:
- things and groups carry versionNumber (1 on create, +1 per update; a delete repeats the last number): the
  higher number wins, and at the same number a delete wins. A name deleted and created again is a new
  entity (new thingId): across entities the later timestamp wins.
- memberships have no version: the later timestamp wins. Within one millisecond the membershipId decides
  (each addition gets a new one): a removal wins over the addition of the same membership, and an addition
  wins over the removal of another membership (a thing removed and added again). Two additions or two
  removals of different memberships in one millisecond cannot both be what IoT did (a removal or an
  addition lies between them), so they are ordered by membershipId only to keep the order total.
- a thing's deletion ends its memberships: each of the thing's membership items of that thingId becomes
  `member` false, `thingDeleted` true, at the deletion's timestamp, which wins over every event of that
  thing (at the same millisecond too) and over nothing of a thing created again under the name (another
  thingId). The deletion is recorded on its own item first, and a membership event applied after it reads
  that record, so the memberships end in whichever order the deletion and the membership events come.
What stays ambiguous: three or more changes of one thing's membership of one group (the thing's deletion
counting as one) within the same millisecond; the order between them is then total but may not be IoT's.
Deleted things, groups, removed memberships and deletion records stay as tombstones, so that a late, stale
event cannot bring them back, and expire after TOMBSTONE_SECONDS (the longest a message can wait in SQS)
through the TTL.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol

from event_processing.conditional_writes import Attr, Condition, ConditionalWrite, Update
from track_inventory.models import RegistryEvent, ThingEvent, ThingGroupEvent, ThingGroupMembershipEvent

TOMBSTONE_SECONDS = 14 * 24 * 3600

_version = Attr("versionNumber")
_event_timestamp = Attr("eventTimestamp")
_member = Attr("member")
_membership_id = Attr("membershipId")
_thing_id = Attr("thingId")
_thing_deleted = Attr("thingDeleted")
MEMBERSHIP_PREFIX = "GROUP#"


class InventoryTable(Protocol):
    """The table as the inventory's logic uses it: DynamoDB in the function, a dict in the tests."""

    def write(self, write: ConditionalWrite) -> bool: ...

    def read(self, key: Mapping[str, str]) -> Mapping[str, Any] | None: ...  # strongly consistent

    def sort_keys(self, partition: Mapping[str, str], sort_key: str, prefix: str) -> list[str]: ...


class Recorded(NamedTuple):
    applied: bool  # the event's own write happened (it was newer than what the item held)
    memberships_ended: int  # membership items the thing's deletion ended


def thing_key(thing_name: str) -> dict[str, str]:
    return {"pk": f"THING#{thing_name}", "sk": "THING"}


def group_key(group_name: str) -> dict[str, str]:
    return {"pk": f"GROUP#{group_name}", "sk": "GROUP"}


def membership_key(thing_name: str, group_name: str) -> dict[str, str]:
    return {"pk": f"THING#{thing_name}", "sk": f"{MEMBERSHIP_PREFIX}{group_name}"}


def deletion_key(thing_name: str, thing_id: str) -> dict[str, str]:
    return {"pk": f"THING#{thing_name}", "sk": f"DELETED#{thing_id}"}


def record_registry_event(event: RegistryEvent, table: InventoryTable, processed_at_ms: int) -> Recorded:
    """The event's write, and the end of memberships that a thing's deletion brings.

    A deletion records itself, then ends the thing's membership items it finds; a membership event, once
    applied, looks for that record. One of the two always sees the other, whatever their order and
    concurrency: the record is written before the query, and the membership item before the read (both
    strongly consistent)."""
    applied = table.write(inventory_write(event, processed_at_ms))
    if isinstance(event, ThingEvent) and event.operation == "DELETED":
        # Whether or not the tombstone was written (a repeat, or a newer thing of that name holds the item):
        # the memberships of this thingId end with it all the same.
        table.write(_deletion_record_write(event, processed_at_ms))
        groups = [
            sort_key.removeprefix(MEMBERSHIP_PREFIX)
            for sort_key in table.sort_keys({"pk": f"THING#{event.thingName}"}, "sk", MEMBERSHIP_PREFIX)
        ]
        endings = [
            membership_ended_by_deletion(event.thingName, group, event.thingId, event.timestamp, processed_at_ms)
            for group in groups
        ]
        return Recorded(applied, sum(table.write(ending) for ending in endings))
    if isinstance(event, ThingGroupMembershipEvent) and applied:
        deletion = table.read(deletion_key(event.thingName, event.thingId))
        if deletion is not None:
            ending = membership_ended_by_deletion(
                event.thingName, event.thingGroupName, event.thingId, int(deletion["eventTimestamp"]), processed_at_ms
            )
            return Recorded(applied, int(table.write(ending)))
    return Recorded(applied, 0)


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
    plain = _thing_deleted.missing()  # ended by an addition or a removal, not by the thing's deletion
    if removed:
        same_millisecond = (plain & _member.eq(True) & _membership_id.eq(event.membershipId)) | (
            plain & _member.eq(False) & _membership_id.lt(event.membershipId)
        )
    else:
        same_millisecond = (plain & _member.eq(False) & _membership_id.ne(event.membershipId)) | (
            plain & _member.eq(True) & _membership_id.lt(event.membershipId)
        )
    # A deletion at the same millisecond ends this thing's memberships, not those of a thing created again.
    same_millisecond = same_millisecond | (_thing_deleted.eq(True) & _thing_id.ne(event.thingId))
    newer = (
        Attr("pk").missing()
        | _event_timestamp.lt(event.timestamp)
        | (_event_timestamp.eq(event.timestamp) & same_millisecond)
    )
    values = {
        "thingName": event.thingName,
        "thingGroupName": event.thingGroupName,
        "thingId": event.thingId,
        "thingGroupId": event.groupId,
        "membershipId": event.membershipId,
        "member": not removed,
        "thingDeleted": None,
        "eventTimestamp": event.timestamp,
        "updatedAt": processed_at_ms,
        "expiresAt": processed_at_ms // 1000 + TOMBSTONE_SECONDS if removed else None,
    }
    return _write(membership_key(event.thingName, event.thingGroupName), values, newer)


def membership_ended_by_deletion(
    thing_name: str, group_name: str, thing_id: str, deleted_at: int, processed_at_ms: int
) -> ConditionalWrite:
    """The membership item of a deleted thing (`thing_id`), ended at `deleted_at`. The item keeps only what
    the deletion says (not the membershipId or groupId of whichever membership event came before it), so
    every delivery order ends with the same item. It never creates an item, nor ends one of another thingId."""
    values = {
        "thingName": thing_name,
        "thingGroupName": group_name,
        "thingId": thing_id,
        "thingGroupId": None,
        "membershipId": None,
        "member": False,
        "thingDeleted": True,
        "eventTimestamp": deleted_at,
        "updatedAt": processed_at_ms,
        "expiresAt": processed_at_ms // 1000 + TOMBSTONE_SECONDS,
    }
    older = _event_timestamp.lt(deleted_at) | (_event_timestamp.eq(deleted_at) & _thing_deleted.missing())
    return _write(membership_key(thing_name, group_name), values, _thing_id.eq(thing_id) & older)


def _deletion_record_write(event: ThingEvent, processed_at_ms: int) -> ConditionalWrite:
    """A thingId is deleted once: the record is the same at every delivery, and outlives the thing's
    tombstone when the name is created again."""
    values = {
        "thingName": event.thingName,
        "thingId": event.thingId,
        "eventTimestamp": event.timestamp,
        "updatedAt": processed_at_ms,
        "expiresAt": processed_at_ms // 1000 + TOMBSTONE_SECONDS,
    }
    return _write(deletion_key(event.thingName, event.thingId), values, None)


def _write(key: dict[str, str], values: dict[str, Any], condition: Condition | None) -> ConditionalWrite:
    return ConditionalWrite(
        key=key,
        update=Update(
            set={name: value for name, value in values.items() if value is not None},
            remove=tuple(name for name, value in values.items() if value is None),
        ),
        condition=condition,
    )
