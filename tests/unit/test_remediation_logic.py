"""remediate_finding's parsing and decisions, without AWS: the finding's two accepted shapes, strict readers
that name the field and never the value, the changes a finding calls for, and the claim / done writes that
make a redelivery and a retry safe (evaluated in memory with ConditionalWrite.apply_to)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from event_processing.fields import MalformedEvent
from events import load_event
from remediate_finding.logic import (
    certificate_changes,
    claim_write,
    done_write,
    needs_custom_remediation,
    notice,
    received_write,
    release_write,
)
from event_processing.sns import sns_messages
from remediate_finding.models import Mitigation, parse_finding
from remediate_finding.remediate import principal_things

CERT = "b193ab7162c0fadca83246d24fa090300a1236fe58137e121b011804d8ac1d6b"
NOW, LATER = "2026-03-02T04:12:10.000+00:00", "2026-03-02T04:12:11.000+00:00"
END = "2026-03-02T04:12:40.000+00:00"  # the end of the invocation that claims at NOW: its lease
AFTER_END = "2026-03-02T04:13:10.000+00:00"  # Lambda's first retry of a failed invocation: a minute later


def message(name: str) -> dict[str, Any]:
    [(_, _, text)] = sns_messages(load_event(f"remediate_finding/{name}"))
    return json.loads(text)


def shared() -> dict[str, Any]:
    return message("device_certificate_shared")


def test_a_finding_at_the_top_of_the_message_is_read_with_its_mitigation_task():
    finding = parse_finding(json.dumps(shared()))
    assert (finding.findingId, finding.auditTaskId, finding.checkName, finding.severity) == (
        "9f3b1c7e-5d2a-4e8b-a1c6-0d4e2f7a9b31", "eeef61068b0eb03c456d746c5a26ee04", "DEVICE_CERTIFICATE_SHARED_CHECK", "CRITICAL"
    )  # fmt: skip
    assert (finding.resourceType, finding.deviceCertificateId) == ("DEVICE_CERTIFICATE", CERT)
    assert finding.reasonForNonComplianceCode == "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES"
    assert finding.mitigation == Mitigation("defender-remediation-eeef61068b0eb03c456d746c5a26ee04", "PublishFindingToRemediation")


def test_a_finding_under_a_finding_key_is_read_the_same_way():
    finding = parse_finding(json.dumps(message("revoked_certificate_still_active")))
    assert finding.checkName == "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK" and finding.auditTaskId == "a3aea009955e501a31b764abe1bebd3d"
    assert finding.mitigation.actionId == "5d3c1b2a-0f9e-4d8c-b7a6-1e2f3a4b5c6d"
    assert needs_custom_remediation(finding)


def test_unknown_resource_types_and_checks_are_accepted():
    document = shared()
    document["checkName"] = "SOME_FUTURE_CHECK"
    document["nonCompliantResource"] = {"resourceType": "ISSUER_CERTIFICATE", "resourceIdentifier": {"issuerCertificateIdentifier": {"issuerId": "x"}}}
    finding = parse_finding(document)
    assert (finding.resourceType, finding.deviceCertificateId) == ("ISSUER_CERTIFICATE", None)
    assert not needs_custom_remediation(finding)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"findingId": "has spaces and <script>"}, "findingId"),
        ({"findingId": None}, "findingId"),
        ({"taskId": "x" * 41}, "taskId"),
        ({"severity": "APOCALYPTIC"}, "severity"),
        ({"checkName": ""}, "checkName"),
        ({"nonCompliantResource": "DEVICE_CERTIFICATE"}, "nonCompliantResource"),
        ({"nonCompliantResource": {"resourceType": "DEVICE_CERTIFICATE", "resourceIdentifier": {"deviceCertificateId": "zz-secret"}}}, "deviceCertificateId"),
        ({"reasonForNonCompliance": 42}, "reasonForNonCompliance"),
    ],
)
def test_a_malformed_finding_is_refused_naming_the_field_never_the_value(change, field):
    document = {**shared(), **change}
    with pytest.raises(MalformedEvent) as refused:
        parse_finding(json.dumps(document))
    assert field in str(refused.value)
    for value in change.values():
        if isinstance(value, str) and value:
            assert value not in str(refused.value)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", ""])
def test_a_message_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(MalformedEvent):
        parse_finding(body)


def test_a_certificate_finding_revokes_first_quarantines_each_thing_once_and_notifies_last():
    changes = certificate_changes(parse_finding(shared()), ["b", "a", "b"], "arn:topic")
    assert [c.key for c in changes] == [f"revoke-certificate#{CERT}", "quarantine#a", "quarantine#b", "notify"]
    assert [c.action for c in changes] == ["revoke-certificate", "quarantine-thing", "quarantine-thing", "notify-operators"]


def test_a_change_is_claimed_when_new_left_planned_or_only_dry_run_and_never_once_done():
    finding = parse_finding(shared())
    [revoke, *_] = certificate_changes(finding, ["a"], "arn:topic")
    claim = claim_write(finding, revoke, NOW, dry_run=False, lease_until=END)
    planned = claim.apply_to(None)
    assert planned["status"] == "planned" and planned["findingId"] == finding.findingId and planned["change"] == revoke.key
    assert (planned["action"], planned["resource"], planned["checkName"], planned["auditTaskId"], planned["severity"]) == (
        "revoke-certificate", CERT, "DEVICE_CERTIFICATE_SHARED_CHECK", finding.auditTaskId, "CRITICAL"
    )  # fmt: skip
    retry = claim_write(finding, revoke, AFTER_END, dry_run=False, lease_until=END)
    assert retry.apply_to(planned) is not None  # a crash left it planned: the retry makes it
    dry = claim_write(finding, revoke, NOW, dry_run=True, lease_until=END).apply_to(None)
    assert dry["status"] == "dry-run" and claim.apply_to(dry)["status"] == "planned"

    done = done_write(finding, revoke, "revoked", LATER).apply_to(planned)
    assert (done["status"], done["outcome"], done["doneAt"], done["recordedAt"]) == ("done", "revoked", LATER, NOW)
    assert claim.apply_to(done) is None  # a redelivery does nothing already done
    assert claim_write(finding, revoke, NOW, dry_run=True, lease_until=END).apply_to(done) is None  # nor a dry run
    assert done_write(finding, revoke, "revoked", LATER).apply_to(dry) is None  # a dry-run decision is never marked done


def test_a_claimed_change_is_held_until_its_invocation_ends_or_gives_it_back():
    finding = parse_finding(shared())
    [revoke, *_] = certificate_changes(finding, ["a"], "arn:topic")
    planned = claim_write(finding, revoke, NOW, dry_run=False, lease_until=END).apply_to(None)
    assert planned["leaseUntil"] == END
    copy_delivered_meanwhile = claim_write(finding, revoke, LATER, dry_run=False, lease_until=AFTER_END)
    assert copy_delivered_meanwhile.apply_to(planned) is None  # the first delivery is still making it
    released = release_write(finding, revoke, LATER).apply_to(planned)  # making it failed: given back
    assert released["status"] == "planned" and released["leaseUntil"] == LATER
    retry = claim_write(finding, revoke, "2026-03-02T04:12:12.000+00:00", dry_run=False, lease_until=AFTER_END)
    assert retry.apply_to(released)["leaseUntil"] == AFTER_END
    done = done_write(finding, revoke, "revoked", LATER).apply_to(planned)
    assert release_write(finding, revoke, LATER).apply_to(done) is None  # a done change is never given back


def test_a_finding_without_custom_remediation_is_recorded_done_once_or_as_a_dry_run():
    document = message("without_custom_remediation")
    finding = parse_finding(document)
    received = received_write(finding, NOW, dry_run=False)
    item = received.apply_to(None)
    assert (item["change"], item["status"], item["outcome"], item["nonCompliantResourceType"]) == (
        "no-remediation", "done", "no-custom-remediation", "ACCOUNT_SETTINGS"
    )  # fmt: skip
    assert received.apply_to(item) is None
    assert received_write(finding, NOW, dry_run=True).apply_to(None)["status"] == "dry-run"


def test_the_notice_names_the_certificate_the_things_and_the_finding():
    finding = parse_finding(shared())
    sent = notice(finding, "ACTIVE", iter(["b", "a"]), {"notify": "x", f"revoke-certificate#{CERT}": "revoked"})
    assert (sent["noticeId"], sent["certificateId"], sent["things"], sent["certificateStatusBefore"]) == (
        finding.findingId, CERT, ["a", "b"], "ACTIVE"
    )  # fmt: skip
    assert "2 thing(s)" in sent["summary"] and sent["finding"]["auditTaskId"] == finding.auditTaskId


class _PagedIot:
    def __init__(self, pages: list[list[str]]) -> None:
        self.pages, self.calls = pages, []

    def list_principal_things(self, principal: str, maxResults: int, nextToken: str | None = None) -> dict:
        self.calls.append(nextToken)
        index = int(nextToken or 0)
        more = index + 1 < len(self.pages)
        return {"things": self.pages[index], "nextToken": str(index + 1) if more else None}


def test_every_page_of_a_certificates_things_is_read():
    iot = _PagedIot([["a", "b"], ["c"], ["d"]])
    assert list(principal_things(iot, "arn:cert")) == ["a", "b", "c", "d"]
    assert iot.calls == [None, "1", "2"]
