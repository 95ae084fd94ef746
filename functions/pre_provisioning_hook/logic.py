"""Whether a device may be provisioned, and with which parameters: plain values in, a Decision out.

The allow-list (table, key `serialNumber`) holds the devices manufacturing made. An item:

    serialNumber  S  the key: the serial the device sends as the SerialNumber parameter
    status        S  optional: absent or ALLOWED provisions; BLOCKED refuses; any other value refuses too
    thingName     S  optional: the thing name to give the device; default: the serial
    model         S  optional: the thing's `model` attribute (default: `unknown`)
    batch         S  optional: the thing's `batch` attribute, the manufacturing batch or lot (default: `unknown`)

A device is provisioned only when its serial is on the list and the item says nothing against it. An item
that cannot be used as it is (a thing name or attribute IoT would refuse) refuses the device: a typo in the
list must not provision a device under a name nobody chose.

A serial may provision again (a device that lost its keys, or was reset): the hook does not write, so it
cannot mark a serial used. To stop a serial, set its status to BLOCKED (or delete the item).
"""

from __future__ import annotations

from typing import Any

from pre_provisioning_hook.models import (
    ATTRIBUTE_VALUE,
    THING_NAME,
    AllowListEntry,
    Decision,
    ProvisioningRequest,
    parse_allow_list_item,
)

ALLOWED_STATUS = "ALLOWED"
BLOCKED_STATUS = "BLOCKED"

# Outcomes: each is a metric (count) and the `reason` of the log line.
ALLOWED = "ProvisioningAllowed"
DENIED_MALFORMED = "DeniedMalformedRequest"
DENIED_UNKNOWN = "DeniedNotOnAllowList"
DENIED_BLOCKED = "DeniedBlocked"
DENIED_BAD_ITEM = "DeniedInvalidAllowListItem"
DENIED_ERROR = "DeniedHookError"
DENIED = (DENIED_MALFORMED, DENIED_UNKNOWN, DENIED_BLOCKED, DENIED_BAD_ITEM, DENIED_ERROR)

# The template parameters the hook sets (the template declares them; see stacks/onboarding/fleet_provisioning.py).
# It always sets every one of them: a device may send any parameter the template declares, and what the thing
# is named and described as must come from the allow-list, not from the device.
THING_NAME_PARAMETER = "ThingName"
ATTRIBUTE_PARAMETERS = {"model": "Model", "batch": "Batch"}
NOT_GIVEN = "unknown"  # an attribute the allow-list item does not give


def deny(reason: str, detail: str) -> Decision:
    return Decision(allowed=False, reason=reason, detail=detail)


def decide(request: ProvisioningRequest, entry: AllowListEntry | None) -> Decision:
    """`entry` is the allow-list item of the request's serial, or None when there is none."""
    if entry is None:
        return deny(DENIED_UNKNOWN, "the serial number is not on the allow-list")
    if entry.serial_number != request.serial_number:
        return deny(DENIED_BAD_ITEM, "the allow-list item is not the serial number's")
    status = ALLOWED_STATUS if entry.status is None else entry.status
    if status == BLOCKED_STATUS:
        return deny(DENIED_BLOCKED, "the serial number is blocked on the allow-list")
    if status != ALLOWED_STATUS:
        return deny(DENIED_BAD_ITEM, f"the allow-list status is neither {ALLOWED_STATUS} nor {BLOCKED_STATUS}")
    thing_name = request.serial_number if entry.thing_name is None else entry.thing_name
    if not THING_NAME.fullmatch(thing_name):
        return deny(DENIED_BAD_ITEM, "the allow-list thingName is not a valid thing name")
    overrides = {THING_NAME_PARAMETER: thing_name}
    for field, parameter in ATTRIBUTE_PARAMETERS.items():
        value = getattr(entry, field)
        if value is None:
            value = NOT_GIVEN
        elif not ATTRIBUTE_VALUE.fullmatch(value):
            return deny(DENIED_BAD_ITEM, f"the allow-list {field} is not a valid thing attribute value")
        overrides[parameter] = value
    return Decision(allowed=True, reason=ALLOWED, detail="on the allow-list", parameter_overrides=overrides)


def look_up(dynamodb: Any, table_name: str, serial_number: str) -> AllowListEntry | None:
    """The allow-list item of `serial_number`: one strongly consistent GetItem, so that a serial blocked a
    moment ago is blocked now. Raises on any AWS error (the caller denies); MalformedEvent on an item whose
    fields are not strings."""
    response = dynamodb.get_item(
        TableName=table_name,
        Key={"serialNumber": {"S": serial_number}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    return None if item is None else parse_allow_list_item(item)
