"""The IoT calls of an activation, each safe to repeat (a rerun after a failure at any step completes the
work): CreateThing returns the existing thing when its attributes match, and attaching or adding what is
already there changes nothing. The certificate becomes ACTIVE last, so a device can connect only once
everything it needs is in place."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from event_processing.fields import MalformedEvent


def describe_certificate(iot: Any, certificate_id: str) -> dict[str, Any]:
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise MalformedEvent("no certificate with the event's certificateId (deleted since?)") from None
        raise


def provision(
    iot: Any,
    *,
    certificate_arn: str,
    certificate_id: str,
    thing_name: str,
    attributes: dict[str, str],
    policy_name: str,
    thing_group_name: str,
) -> None:
    try:
        iot.create_thing(thingName=thing_name, attributePayload={"attributes": attributes})
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
        # A thing of that name made for another certificate: giving this one access to it would hand that
        # device's identity over. The operator decides (the event waits in the dead-letter queue).
        raise MalformedEvent(
            f"a thing named {thing_name} already exists for another certificate; not activated"
        ) from None
    iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
    iot.attach_policy(policyName=policy_name, target=certificate_arn)
    iot.add_thing_to_thing_group(thingGroupName=thing_group_name, thingName=thing_name)
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")


def revoke(iot: Any, certificate_id: str) -> None:
    iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
