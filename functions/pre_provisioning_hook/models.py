"""The pre-provisioning hook's request and answer, as AWS IoT fleet provisioning defines them.

IoT invokes the hook synchronously on every RegisterThing request of a device (MQTT
`$aws/provisioning-templates/<template>/provision/json`), with:

    {"claimCertificateId": "...", "certificateId": "...", "certificatePem": "...", "templateArn": "...",
     "clientId": "...", "parameters": {"SerialNumber": "...", ...}}

`parameters` is what the device put in its RegisterThing request. The answer is
`{"allowProvisioning": true|false, "parameterOverrides": {...}}`: the overrides are added to the parameters the
template is evaluated with. Anything but `allowProvisioning` true (including an error, or no answer within
5 seconds) fails the device's request with ACCESS_DENIED.

The models are NamedTuples: typed, and cheap at cold start. The certificate PEM is never kept: the hook does
not need it, and what is not kept cannot be logged.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from event_processing.fields import MalformedEvent, decode_object, optional_text, text

# The device parameter that names it. It is also the default thing name, so it must be a valid one:
# AWS IoT thing names match [a-zA-Z0-9:_-]+ and are at most 128 characters.
SERIAL_PARAMETER = "SerialNumber"
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# Thing attribute values (the template puts the overrides into attributes): [a-zA-Z0-9_.,@/:#-]*, at most 800.
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#-]{0,800}")
# IoT certificate ids are 64 hex digits; a client id is at most 128 characters.
CERTIFICATE_ID = re.compile(r"[0-9a-fA-F]{64}")
MAX_PARAMETERS = 50


class ProvisioningRequest(NamedTuple):
    serial_number: str
    certificate_id: str
    claim_certificate_id: str | None
    client_id: str | None
    template_arn: str | None
    parameters: dict[str, str]  # everything the device sent, SerialNumber included


class AllowListEntry(NamedTuple):
    """An item of the allow-list table (key `serialNumber`); see logic.decide for what each field does."""

    serial_number: str
    status: str | None
    thing_name: str | None
    model: str | None
    batch: str | None


class Decision(NamedTuple):
    allowed: bool
    reason: str  # the metric name of the outcome, also logged
    detail: str = ""  # why, for the log line; never a secret
    parameter_overrides: dict[str, str] = {}

    def answer(self) -> dict[str, Any]:
        """The hook's response, exactly as IoT expects it."""
        if not self.allowed:
            return {"allowProvisioning": False}
        return {"allowProvisioning": True, "parameterOverrides": dict(self.parameter_overrides)}


def parse_request(event: Any) -> ProvisioningRequest:
    """Raises MalformedEvent, naming the field but never its value, for anything IoT would not send."""
    request = decode_object(event)
    parameters = request.get("parameters")
    if not isinstance(parameters, dict):
        raise MalformedEvent("parameters must be an object")
    if len(parameters) > MAX_PARAMETERS or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in parameters.items()
    ):
        raise MalformedEvent(f"parameters must be at most {MAX_PARAMETERS} string values")
    serial_number = text(parameters, SERIAL_PARAMETER, max_length=128)
    if not THING_NAME.fullmatch(serial_number):
        raise MalformedEvent(f"parameters.{SERIAL_PARAMETER} must match [a-zA-Z0-9:_-]{{1,128}} (a thing name)")
    certificate_id = text(request, "certificateId", max_length=64)
    if not CERTIFICATE_ID.fullmatch(certificate_id):
        raise MalformedEvent("certificateId must be 64 hexadecimal digits")
    return ProvisioningRequest(
        serial_number=serial_number,
        certificate_id=certificate_id,
        claim_certificate_id=optional_text(request, "claimCertificateId", max_length=64),
        client_id=optional_text(request, "clientId", max_length=128),
        template_arn=optional_text(request, "templateArn", max_length=2048),
        parameters=dict(parameters),
    )


def parse_allow_list_item(item: Mapping[str, Any]) -> AllowListEntry:
    """A DynamoDB item in its typed form ({"name": {"S": "..."}}); only string attributes are read.
    Raises MalformedEvent when a field the hook uses is not a string."""
    return AllowListEntry(
        serial_number=_string(item, "serialNumber", required=True) or "",
        status=_string(item, "status"),
        thing_name=_string(item, "thingName"),
        model=_string(item, "model"),
        batch=_string(item, "batch"),
    )


def _string(item: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise MalformedEvent(f"allow-list item has no {name}")
        return None
    if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
        raise MalformedEvent(f"allow-list item field {name} must be a string")
    return value["S"]
