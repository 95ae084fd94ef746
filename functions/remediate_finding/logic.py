"""What to do about a finding, as plain values: the changes it calls for, the writes that record them, and the
notice to operators. No AWS here; remediate.py performs what this module decides.

Why a function at all: the built-in mitigation actions can only DEACTIVATE a device certificate, and a
deactivated certificate can be activated again by anyone allowed to. A certificate that several devices use at
once (DEVICE_CERTIFICATE_SHARED_CHECK), that its CA revoked (REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK) or
whose key is weak (DEVICE_CERTIFICATE_KEY_QUALITY_CHECK) has leaked or cannot be trusted: it is REVOKED, which is
permanent, its things are put in the quarantine group, and operators are told, with the finding.

Every change is one item of the remediations table, keyed by the finding and the change
(`revoke-certificate#<certificateId>`, `quarantine#<thingName>`, `notify`, or `no-remediation`), holding what
(action, resource), why (checkName, reason code and text), which finding (findingId, audit task, severity) and
when. A change is claimed before it is made (status `planned`, or `dry-run` when nothing may change) and marked
`done` after. The claim holds until `leaseUntil`, the end of the invocation that made it (or until that
invocation gives it back on an error), and a write succeeds only if the item is absent, only a dry run, or
`planned` with its lease over. So:
- a redelivered finding skips what is done and finishes what a failure or a crash left `planned`; the IoT calls
  it repeats are idempotent (UpdateCertificate to the status it has, AddThingToThingGroup of a member);
- a copy delivered while the first is still running (SNS and Lambda deliver at least once) stops at the first
  change the other holds, and leaves the rest to it: both go through the changes in the same order, so the
  one behind can never overtake, and the operators get one notice, sent after the revoke.
The notice carries the finding's id as `noticeId`, so a notice sent twice (a crash between publishing and
marking it done) can be told apart from a new one.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from event_processing.conditional_writes import Attr, ConditionalWrite, Update
from remediate_finding.models import Finding

REVOKE_AND_QUARANTINE = frozenset(
    {
        "DEVICE_CERTIFICATE_SHARED_CHECK",
        "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
        "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    }
)

PLANNED, DONE, DRY_RUN = "planned", "done", "dry-run"

REVOKE, QUARANTINE, NOTIFY, NO_REMEDIATION = "revoke-certificate", "quarantine-thing", "notify-operators", "no-remediation"


class Change(NamedTuple):
    key: str  # the table's sort key: unique per finding
    action: str
    resource: str
    resourceType: str


def needs_custom_remediation(finding: Finding) -> bool:
    return finding.checkName in REVOKE_AND_QUARANTINE


def certificate_changes(finding: Finding, things: Iterable[str], topic: str) -> tuple[Change, ...]:
    """Revoke first (the certificate stops connecting anything), then quarantine each thing, then tell operators."""
    certificate = finding.deviceCertificateId
    assert certificate is not None  # the caller checked: these checks are about a device certificate
    return (
        Change(f"revoke-certificate#{certificate}", REVOKE, certificate, "DEVICE_CERTIFICATE"),
        *(Change(f"quarantine#{thing}", QUARANTINE, thing, "THING") for thing in sorted(set(things))),
        Change("notify", NOTIFY, topic, "SNS_TOPIC"),
    )


def no_remediation_change(finding: Finding) -> Change:
    return Change("no-remediation", NO_REMEDIATION, finding.deviceCertificateId or finding.resourceType, finding.resourceType)


def _why_and_which(finding: Finding) -> dict[str, Any]:
    recorded: dict[str, Any] = {
        "checkName": finding.checkName,
        "reasonForNonComplianceCode": finding.reasonForNonComplianceCode,
        "reasonForNonCompliance": finding.reasonForNonCompliance,
        "auditTaskId": finding.auditTaskId,
        "severity": finding.severity,
        "nonCompliantResourceType": finding.resourceType,
    }
    if finding.deviceCertificateId:
        recorded["certificateId"] = finding.deviceCertificateId
    mitigation = {k: v for k, v in finding.mitigation._asdict().items() if v is not None}
    if mitigation:
        recorded["mitigation"] = mitigation
    return recorded


def claim_write(finding: Finding, change: Change, now: str, *, dry_run: bool, lease_until: str) -> ConditionalWrite:
    """Records the change before it is made, claimed until `lease_until` (timestamps in the same ISO format
    compare as strings). It fails when the change is done (a dry run after a real run leaves the record of what
    was done as it is) or another delivery holds it."""
    return ConditionalWrite(
        key={"findingId": finding.findingId, "change": change.key},
        update=Update(
            set={
                "action": change.action,
                "resource": change.resource,
                "resourceType": change.resourceType,
                **_why_and_which(finding),
                "status": DRY_RUN if dry_run else PLANNED,
                "recordedAt": now,
                "leaseUntil": lease_until,
            }
        ),
        condition=Attr("findingId").missing()
        | Attr("status").eq(DRY_RUN)
        | (Attr("status").eq(PLANNED) & Attr("leaseUntil").lt(now)),
    )


def release_write(finding: Finding, change: Change, now: str) -> ConditionalWrite:
    """Gives a claimed change back when making it failed, so that the retry need not wait for the lease."""
    return ConditionalWrite(
        key={"findingId": finding.findingId, "change": change.key},
        update=Update(set={"leaseUntil": now}),
        condition=Attr("status").eq(PLANNED),
    )


def done_write(finding: Finding, change: Change, outcome: str, now: str) -> ConditionalWrite:
    """Marks a claimed change done, with what came of it (`revoked`, `already-revoked`, `added`, `published`...)."""
    return ConditionalWrite(
        key={"findingId": finding.findingId, "change": change.key},
        update=Update(set={"status": DONE, "outcome": outcome, "doneAt": now}),
        condition=Attr("status").eq(PLANNED),
    )


def received_write(finding: Finding, now: str, *, dry_run: bool) -> ConditionalWrite:
    """The one record of a finding that needs no custom remediation: it was received, and nothing was changed."""
    change = no_remediation_change(finding)
    write = claim_write(finding, change, now, dry_run=dry_run, lease_until=now)
    values = {key: value for key, value in write.update.set.items() if key != "leaseUntil"}  # held by no one
    if not dry_run:
        values.update(status=DONE, outcome="no-custom-remediation", doneAt=now)
    return write._replace(update=Update(set=values))


# What the revoke's outcome (or `done`, for a revoke an earlier delivery made) says in the notice's summary.
_REVOKE_SUMMARY = {
    "revoked": "revoked",
    DONE: "revoked",
    "already-revoked": "already revoked",
    "certificate-not-found": "no longer exists",
}


def notice(finding: Finding, certificate_status: str | None, things: Iterable[str], outcomes: dict[str, str]) -> dict[str, Any]:
    """The operators' notice: which certificate, which things, which finding, and what was done about it."""
    things = sorted(set(things))
    revoked = next((outcome for key, outcome in outcomes.items() if key.startswith(f"{REVOKE}#")), None)
    quarantined = sum(1 for key, outcome in outcomes.items() if key.startswith("quarantine#") and outcome in ("added", DONE))
    return {
        "noticeId": finding.findingId,
        "summary": (
            f"{finding.checkName}: device certificate {finding.deviceCertificateId} "
            f"{_REVOKE_SUMMARY.get(revoked or '', 'not revoked')}; {quarantined} of {len(things)} thing(s) quarantined"
        ),
        "certificateId": finding.deviceCertificateId,
        "certificateStatusBefore": certificate_status,
        "things": things,
        "finding": {
            "findingId": finding.findingId,
            "auditTaskId": finding.auditTaskId,
            "checkName": finding.checkName,
            "severity": finding.severity,
            "reasonForNonComplianceCode": finding.reasonForNonComplianceCode,
            "reasonForNonCompliance": finding.reasonForNonCompliance,
        },
        "changes": dict(sorted(outcomes.items())),
    }
