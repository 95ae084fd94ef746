"""The pre-provisioning hook's decisions on plain values: who is provisioned, under which name, and why not."""

from __future__ import annotations

import copy

import pytest

from events import load_event
from event_processing.fields import MalformedEvent
from pre_provisioning_hook.logic import (
    ALLOWED,
    DENIED_BAD_ITEM,
    DENIED_BLOCKED,
    DENIED_UNKNOWN,
    decide,
)
from pre_provisioning_hook.models import AllowListEntry, Decision, parse_allow_list_item, parse_request


def request(**parameters: str):
    event = load_event("pre_provisioning_hook/allowed")
    event["parameters"] = {"SerialNumber": "SN-000123", **parameters}
    return parse_request(event)


def entry(**fields) -> AllowListEntry:
    values = {"serial_number": "SN-000123", "status": None, "thing_name": None, "model": None, "batch": None}
    return AllowListEntry(**{**values, **fields})


def test_parses_the_request_iot_sends_without_keeping_the_certificate_pem() -> None:
    parsed = request()
    assert parsed.serial_number == "SN-000123"
    assert parsed.certificate_id == "5d3c8e1f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d"
    assert parsed.client_id == "b6c1f1f4-3c1e-4a7b-9d2e-6f0a1b2c3d4e"
    assert parsed.template_arn.endswith(":provisioningtemplate/iot_backend_fleet")
    assert "BEGIN CERTIFICATE" not in repr(parsed)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("parameters"), "parameters"),
        (lambda e: e.update(parameters=["SN-000123"]), "parameters"),
        (lambda e: e["parameters"].update(SerialNumber=123), "parameters"),
        (lambda e: e["parameters"].pop("SerialNumber"), "SerialNumber"),
        (lambda e: e["parameters"].update(SerialNumber=""), "SerialNumber"),
        (lambda e: e["parameters"].update(SerialNumber="SN 1"), "SerialNumber"),
        (lambda e: e["parameters"].update(SerialNumber="SN/1"), "SerialNumber"),
        (lambda e: e["parameters"].update(SerialNumber="SN#1"), "SerialNumber"),
        (lambda e: e["parameters"].update(SerialNumber="x" * 129), "SerialNumber"),
        (lambda e: e["parameters"].update({f"p{i}": "v" for i in range(60)}), "parameters"),
        (lambda e: e.pop("certificateId"), "certificateId"),
        (lambda e: e.update(certificateId="not-a-certificate-id"), "certificateId"),
        (lambda e: e.update(clientId=7), "clientId"),
    ],
)
def test_a_request_iot_would_not_send_is_malformed_naming_the_field(change, field) -> None:
    event = copy.deepcopy(load_event("pre_provisioning_hook/allowed"))
    change(event)
    with pytest.raises(MalformedEvent, match=field):
        parse_request(event)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", b"\xff", None, 42])
def test_a_request_that_is_not_an_object_is_malformed(body) -> None:
    with pytest.raises(MalformedEvent):
        parse_request(body)


def test_serials_that_are_thing_names_are_accepted() -> None:
    for serial in ("a", "SN:0001_x-2", "x" * 128):
        assert request(SerialNumber=serial).serial_number == serial


def test_a_serial_on_the_allow_list_is_provisioned_as_a_thing_named_after_it() -> None:
    decision = decide(request(), entry())
    assert decision == Decision(
        allowed=True,
        reason=ALLOWED,
        detail="on the allow-list",
        parameter_overrides={"ThingName": "SN-000123", "Model": "unknown", "Batch": "unknown"},
    )
    assert decision.answer() == {
        "allowProvisioning": True,
        "parameterOverrides": {"ThingName": "SN-000123", "Model": "unknown", "Batch": "unknown"},
    }


def test_the_allow_list_item_names_the_thing_and_gives_its_attributes() -> None:
    decision = decide(request(), entry(thing_name="line4-press-07", model="PX-200", batch="2025-W14", status="ALLOWED"))
    assert decision.allowed
    assert decision.parameter_overrides == {"ThingName": "line4-press-07", "Model": "PX-200", "Batch": "2025-W14"}


def test_what_the_device_asks_for_does_not_name_or_describe_its_thing() -> None:
    decision = decide(request(ThingName="admin", Model="evil", Batch="x"), entry(model="PX-200"))
    assert decision.parameter_overrides == {"ThingName": "SN-000123", "Model": "PX-200", "Batch": "unknown"}


def test_a_serial_not_on_the_allow_list_is_denied() -> None:
    decision = decide(request(), None)
    assert (decision.allowed, decision.reason) == (False, DENIED_UNKNOWN)
    assert decision.answer() == {"allowProvisioning": False}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "BLOCKED"}, DENIED_BLOCKED),
        ({"status": "allowed"}, DENIED_BAD_ITEM),  # statuses are exact: doubt denies
        ({"status": "USED"}, DENIED_BAD_ITEM),
        ({"status": ""}, DENIED_BAD_ITEM),
        ({"thing_name": "bad name"}, DENIED_BAD_ITEM),
        ({"thing_name": ""}, DENIED_BAD_ITEM),
        ({"thing_name": "x" * 129}, DENIED_BAD_ITEM),
        ({"model": "has spaces"}, DENIED_BAD_ITEM),
        ({"batch": "x" * 801}, DENIED_BAD_ITEM),
        ({"serial_number": "SN-000124"}, DENIED_BAD_ITEM),
    ],
)
def test_an_item_that_says_no_or_cannot_be_used_as_it_is_denies(fields, reason) -> None:
    decision = decide(request(), entry(**fields))
    assert (decision.allowed, decision.reason) == (False, reason)
    assert decision.answer() == {"allowProvisioning": False}
    assert decision.detail


def test_allow_list_items_are_read_from_their_dynamodb_form() -> None:
    item = {"serialNumber": {"S": "SN-1"}, "status": {"S": "ALLOWED"}, "model": {"S": "PX"}, "note": {"N": "3"}}
    assert parse_allow_list_item(item) == AllowListEntry("SN-1", "ALLOWED", None, "PX", None)
    with pytest.raises(MalformedEvent, match="thingName"):
        parse_allow_list_item({"serialNumber": {"S": "SN-1"}, "thingName": {"N": "7"}})
    with pytest.raises(MalformedEvent, match="serialNumber"):
        parse_allow_list_item({"model": {"S": "PX"}})
