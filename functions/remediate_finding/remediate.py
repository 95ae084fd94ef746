"""One finding, end to end: decide, record, act, and mark done; in a dry run, decide and record only.

The steps are ordered so that any of them may fail and the whole be retried (SNS invokes the function
asynchronously; Lambda retries a failed invocation twice, then sends it to the dead-letter queue): the
certificate is described and its things listed first (reads), then each change is claimed, made and marked
done in turn, the revoke first so that the certificate stops authenticating anything before anything else
happens. A retry skips the changes marked done and makes the ones a failure left planned (given back at once)
or a crash left planned (once the crashed invocation's time is over); a copy delivered while another runs stops
where the other is (logic.py).
"""

from __future__ import annotations

import datetime
from contextlib import suppress
from typing import Any, Callable, Iterator, NamedTuple

from botocore.exceptions import ClientError

from event_processing.dynamodb import write_or_get_current
from event_processing.fields import MalformedEvent
from event_processing.sns import publish
from remediate_finding.logic import (
    DONE,
    NOTIFY,
    PLANNED,
    QUARANTINE,
    REVOKE,
    Change,
    certificate_changes,
    claim_write,
    done_write,
    needs_custom_remediation,
    notice,
    received_write,
    release_write,
)
from remediate_finding.models import Finding

REMEDIATED, ALREADY_DONE, IN_PROGRESS, DRY_RUN_DECISIONS, WITHOUT_REMEDIATION = (
    "FindingsRemediated",
    "RemediationsAlreadyDone",
    "RemediationsInProgressElsewhere",
    "DryRunDecisions",
    "FindingsWithoutRemediation",
)


class Settings(NamedTuple):
    table: str
    notices_topic_arn: str
    quarantine_group: str
    dry_run: bool


class Decision(NamedTuple):
    change: str
    action: str
    resource: str
    status: str  # done (by this invocation), already-done, in-progress (by another delivery), dry-run
    outcome: str | None = None


class Outcome(NamedTuple):
    result: str  # the metric to count
    decisions: tuple[Decision, ...] = ()


class Clients(NamedTuple):
    iot: Any
    dynamodb: Any
    sns: Callable[[], Any]  # made on first use: most findings notify nobody


def _now(after_ms: int = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(milliseconds=after_ms)
    return moment.isoformat(timespec="milliseconds")


def invocation_end(remaining_ms: int) -> str:
    """The end of the invocation (Lambda's context.get_remaining_time_in_millis()), in the records' format."""
    return _now(after_ms=remaining_ms)


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def describe_certificate(iot: Any, certificate_id: str) -> tuple[str, str] | None:
    """(ARN, status), or None when the certificate no longer exists. The PEM in the answer is never kept."""
    try:
        description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return None
        raise
    return description["certificateArn"], description["status"]


def principal_things(iot: Any, principal_arn: str) -> Iterator[str]:
    """Every thing attached to the principal, page by page (`nextToken` is absent or null on the last page)."""
    token = None
    while True:
        page = iot.list_principal_things(principal=principal_arn, maxResults=250, **({"nextToken": token} if token else {}))
        yield from page.get("things", [])
        token = page.get("nextToken")
        if not token:
            return


def remediate(
    finding: Finding, clients: Clients, settings: Settings, log: Callable[[str, dict[str, Any]], None], *, deadline: str
) -> Outcome:
    """`deadline`: when this invocation ends (Lambda's timeout), until which its claims hold."""
    if not needs_custom_remediation(finding):
        write = received_write(finding, _now(), dry_run=settings.dry_run)
        written = write_or_get_current(clients.dynamodb, settings.table, write)
        status = "dry-run" if settings.dry_run else ("done" if written.applied else "already-done")
        decision = Decision("no-remediation", "no-remediation", write.update.set["resource"], status, "no-custom-remediation")
        return Outcome(WITHOUT_REMEDIATION, (decision,))
    if finding.deviceCertificateId is None:
        raise MalformedEvent(f"nonCompliantResource.resourceIdentifier.deviceCertificateId is required for {finding.checkName}")

    described = describe_certificate(clients.iot, finding.deviceCertificateId)
    arn, status_before = described if described else (None, None)
    things = sorted(set(principal_things(clients.iot, arn))) if arn else []
    changes = certificate_changes(finding, things, settings.notices_topic_arn)

    decisions: list[Decision] = []
    outcomes: dict[str, str] = {}
    for change in changes:
        claim = claim_write(finding, change, _now(), dry_run=settings.dry_run, lease_until=deadline)
        claimed = write_or_get_current(clients.dynamodb, settings.table, claim)
        if not claimed.applied:
            current = claimed.current or {}
            if current.get("status") == PLANNED:
                # Another delivery of the finding is making this change: it makes the rest too, in this order.
                log("Change in progress in another delivery: left to it", {"change": change.key})
                decisions.append(Decision(change.key, change.action, change.resource, "in-progress"))
                return Outcome(IN_PROGRESS, tuple(decisions))
            outcomes[change.key] = current.get("outcome", DONE)
            decisions.append(Decision(change.key, change.action, change.resource, "already-done", outcomes[change.key]))
            continue
        if settings.dry_run:
            outcome = _would(change, status_before)
            log("Dry run: change decided, not made", {"change": change.key, "action": change.action, "wouldBe": outcome})
            outcomes[change.key] = f"dry-run: {outcome}"
            decisions.append(Decision(change.key, change.action, change.resource, "dry-run", outcome))
            continue
        try:
            outcome = _make(change, finding, clients, settings, status_before, things, outcomes)
        except Exception:
            with suppress(ClientError):  # else the claim ends with this invocation's lease
                write_or_get_current(clients.dynamodb, settings.table, release_write(finding, change, _now()))
            raise
        write_or_get_current(clients.dynamodb, settings.table, done_write(finding, change, outcome, _now()))
        log("Change made", {"change": change.key, "action": change.action, "outcome": outcome})
        outcomes[change.key] = outcome
        decisions.append(Decision(change.key, change.action, change.resource, "done", outcome))

    if settings.dry_run:
        return Outcome(DRY_RUN_DECISIONS, tuple(decisions))
    if all(d.status == "already-done" for d in decisions):
        return Outcome(ALREADY_DONE, tuple(decisions))
    return Outcome(REMEDIATED, tuple(decisions))


def _would(change: Change, status_before: str | None) -> str:
    if change.action == REVOKE:
        return "certificate-not-found" if status_before is None else ("already-revoked" if status_before == "REVOKED" else "revoke")
    return {QUARANTINE: "add-to-quarantine-group", NOTIFY: "publish"}.get(change.action, "none")


def _make(
    change: Change,
    finding: Finding,
    clients: Clients,
    settings: Settings,
    status_before: str | None,
    things: list[str],
    outcomes: dict[str, str],
) -> str:
    if change.action == REVOKE:
        if status_before is None:
            return "certificate-not-found"
        if status_before == "REVOKED":
            return "already-revoked"  # left as it is: no second UpdateCertificate
        clients.iot.update_certificate(certificateId=change.resource, newStatus="REVOKED")
        return "revoked"
    if change.action == QUARANTINE:
        try:
            clients.iot.add_thing_to_thing_group(thingGroupName=settings.quarantine_group, thingName=change.resource)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return "thing-not-found"  # deleted since it was listed: nothing left to quarantine
            raise
        return "added"
    if change.action == NOTIFY:
        publish(
            clients.sns(),
            settings.notices_topic_arn,
            f"Device Defender: {finding.checkName} remediated",
            notice(finding, status_before, things, outcomes),
            {"checkName": finding.checkName, "severity": finding.severity, "findingId": finding.findingId},
        )
        return "published"
    raise ValueError(f"No way to make a change of action {change.action}")
