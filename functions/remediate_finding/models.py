"""Audit findings as Device Defender's PUBLISH_FINDING_TO_SNS mitigation action delivers them: an SNS event
whose `Records[].Sns.Message` is the JSON text of one finding.

The message format. The Device Defender developer guide says only that "all audit checks support publishing
the audit findings to Amazon SNS so you can take custom actions in response to the notification"
(https://docs.aws.amazon.com/iot/latest/developerguide/dd-mitigation-actions.html, "Audit mitigation
actions"; the CloudFormation and API references of PublishFindingToSnsParams say the same: "You can implement
your own custom actions in response to the Amazon SNS messages"). None of the pages we could search prints the
message itself. What they do define is the finding: the AuditFinding structure of ListAuditFindings /
DescribeAuditFinding (findingId, taskId, checkName, taskStartTime, findingTime, severity,
nonCompliantResource {resourceType, resourceIdentifier {deviceCertificateId, caCertificateId, clientId,
policyVersionIdentifier, account, ...}, additionalInfo}, relatedResources, reasonForNonCompliance,
reasonForNonComplianceCode, isSuppressed; shared/reference/seed-api.md §8.5 and
https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeAuditFinding.html), with a real
DEVICE_CERTIFICATE_SHARED_CHECK finding in the AWS CLI's example (aws/aws-cli,
awscli/examples/iot/list-audit-findings.rst). So two shapes are accepted, because the docs cannot settle
which one arrives:
  - the finding's fields at the top of the message, with the mitigation task's fields beside them;
  - the finding under a `finding` key, with the mitigation task's fields at the top.
The mitigation task's fields (`mitigationActionsTaskId` or `actionTaskId`, `actionName`, `actionId`) are
optional and recorded when present. In both shapes `taskId` inside the finding is the audit task's id.

Every reader is strict and names the field, never its value; resource types and check names we do not know
are accepted (AWS adds them), and read as plain strings.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from event_processing.fields import MalformedEvent, decode_object, one_of, optional_text, text

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
_CERTIFICATE_ID = re.compile(r"(0x)?[a-fA-F0-9]{64}")
_FINDING_ID = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_AUDIT_TASK_ID = re.compile(r"[a-zA-Z0-9-]{1,40}")


class Mitigation(NamedTuple):
    """The mitigation actions task that published the finding, as far as the message says."""

    taskId: str | None = None
    actionName: str | None = None
    actionId: str | None = None


class Finding(NamedTuple):
    findingId: str
    auditTaskId: str
    checkName: str
    severity: str
    resourceType: str
    reasonForNonComplianceCode: str | None
    reasonForNonCompliance: str | None
    deviceCertificateId: str | None = None
    caCertificateId: str | None = None
    clientId: str | None = None
    mitigation: Mitigation = Mitigation()


class Delivery(NamedTuple):
    """One SNS record: the finding, and the SNS message id it came in (for the logs)."""

    messageId: str
    finding: Finding


def _object(event: Mapping[str, Any], field: str, path: str) -> Mapping[str, Any]:
    value = event.get(field)
    if not isinstance(value, dict):
        raise MalformedEvent(f"{path} must be an object")
    return value


def _optional_object(event: Mapping[str, Any], field: str, path: str) -> Mapping[str, Any]:
    value = event.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"{path} must be an object when present")
    return value


def _matching(event: Mapping[str, Any], field: str, pattern: re.Pattern[str], path: str, what: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedEvent(f"{path} must be {what}")
    return value


def _optional_matching(event: Mapping[str, Any], field: str, pattern: re.Pattern[str], path: str, what: str) -> str | None:
    return None if event.get(field) is None else _matching(event, field, pattern, path, what)


def parse_finding(message: str | Mapping[str, Any]) -> Finding:
    outer = decode_object(message)
    finding = _optional_object(outer, "finding", "finding") or outer
    resource = _object(finding, "nonCompliantResource", "nonCompliantResource")
    identifier = _object(resource, "resourceIdentifier", "nonCompliantResource.resourceIdentifier")
    where = "nonCompliantResource.resourceIdentifier"
    return Finding(
        findingId=_matching(finding, "findingId", _FINDING_ID, "findingId", "1-128 of a-z, A-Z, 0-9, _ and -"),
        auditTaskId=_matching(finding, "taskId", _AUDIT_TASK_ID, "taskId", "an audit task id (1-40 of a-z, A-Z, 0-9 and -)"),
        checkName=text(finding, "checkName", max_length=128),
        severity=one_of(finding, "severity", SEVERITIES),
        resourceType=text(resource, "resourceType", max_length=64) if "resourceType" in resource else "UNKNOWN",
        reasonForNonComplianceCode=optional_text(finding, "reasonForNonComplianceCode", max_length=256),
        reasonForNonCompliance=optional_text(finding, "reasonForNonCompliance", max_length=1024),
        deviceCertificateId=_optional_matching(
            identifier, "deviceCertificateId", _CERTIFICATE_ID, f"{where}.deviceCertificateId", "a certificate id (64 hex digits)"
        ),
        caCertificateId=_optional_matching(
            identifier, "caCertificateId", _CERTIFICATE_ID, f"{where}.caCertificateId", "a certificate id (64 hex digits)"
        ),
        clientId=optional_text(identifier, "clientId", max_length=128),
        mitigation=Mitigation(
            taskId=optional_text(outer, "mitigationActionsTaskId", max_length=128)
            or optional_text(outer, "actionTaskId", max_length=128),
            actionName=optional_text(outer, "actionName", max_length=128),
            actionId=optional_text(outer, "actionId", max_length=128),
        ),
    )
