"""Device Defender's audit notification, as the audit notifications SNS topic hands it to the function.

IoT publishes one notification when an audit task ends; the stack subscribes the function to that topic, so
the event is an SNS event and `Records[].Sns.Message` is the notification as JSON text. Its format, from the
Device Defender developer guide, "Audit" > "Notifications" ("payload example" and "payload JSON schema",
`$id` arn:aws:iot:::schema:auditnotification/1.0;
https://docs.aws.amazon.com/iot-device-defender/latest/devguide/device-defender-audit.html, source
awsdocs/aws-iot-docs developerguide/device-defender-audit.md):

    {"accountId": "123456789012", "taskId": "4e2bcd1ccbc2a5dd15292a82ab80c380",
     "taskStatus": "FAILED|CANCELED|COMPLETED", "taskType": "ON_DEMAND_AUDIT_TASK|SCHEDULED_AUDIT_TASK",
     "scheduledAuditName": "myWeeklyAudit", "failedChecksCount": 0, "canceledChecksCount": 0,
     "nonCompliantChecksCount": 1, "compliantChecksCount": 0, "totalChecksCount": 1,
     "taskStartTime": 1524740766191,
     "auditDetails": [{"checkName": "...", "checkRunStatus": "FAILED|CANCELED|COMPLETED_COMPLIANT|
                       COMPLETED_NON_COMPLIANT", "nonCompliantResourcesCount": 1, "totalResourcesCount": 1,
                       "message": "optional message if an error occurred",
                       "errorCode": "INSUFFICIENT_PERMISSIONS|AUDIT_CHECK_DISABLED"}]}

The schema requires accountId, taskId, taskStatus, taskType, the five counts, taskStartTime and auditDetails,
and per check checkName, checkRunStatus and both resource counts. What the function acts on (taskId,
taskStatus, each check's name and run status) is required here; the rest is typed when present and not
required, so that a notification AWS trims one day is still acted on. The statuses are read against the API's
enums (AuditTaskStatus adds IN_PROGRESS, AuditCheckRunStatus adds IN_PROGRESS and
WAITING_FOR_DATA_COLLECTION: DescribeAuditTask, seed-api.md §8.3), which contain the notification's.

Every reader names the field, never its value (event_processing.fields).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from event_processing.fields import (
    MalformedEvent,
    decode_object,
    one_of,
    optional_text,
    optional_whole_number,
    text,
)

TASK_STATUSES = ("COMPLETED", "FAILED", "CANCELED", "IN_PROGRESS")
TASK_TYPES = ("SCHEDULED_AUDIT_TASK", "ON_DEMAND_AUDIT_TASK")
CHECK_RUN_STATUSES = (
    "COMPLETED_NON_COMPLIANT",
    "COMPLETED_COMPLIANT",
    "FAILED",
    "CANCELED",
    "IN_PROGRESS",
    "WAITING_FOR_DATA_COLLECTION",
)
# An audit task id: 1-40 of [a-zA-Z0-9-] (ListAuditFindings' taskId, seed-api.md §8.5).
AUDIT_TASK_ID = re.compile(r"[a-zA-Z0-9-]{1,40}")
# Check names are upper-case words joined by '_'; any name a mitigation task id can carry is accepted.
CHECK_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
ACCOUNT_ID = re.compile(r"[0-9]{12}")


class CheckResult(NamedTuple):
    checkName: str
    checkRunStatus: str
    nonCompliantResourcesCount: int | None = None
    totalResourcesCount: int | None = None
    errorCode: str | None = None
    message: str | None = None


class AuditNotification(NamedTuple):
    taskId: str
    taskStatus: str
    auditDetails: tuple[CheckResult, ...]
    accountId: str | None = None
    taskType: str | None = None
    scheduledAuditName: str | None = None
    taskStartTime: int | None = None
    nonCompliantChecksCount: int | None = None

    @property
    def completed(self) -> bool:
        return self.taskStatus == "COMPLETED"

    def checks(self, status: str) -> tuple[str, ...]:
        return tuple(check.checkName for check in self.auditDetails if check.checkRunStatus == status)


def parse_notification(message: str) -> AuditNotification:
    notification = decode_object(message)
    task_id = text(notification, "taskId", max_length=40)
    if not AUDIT_TASK_ID.fullmatch(task_id):
        raise MalformedEvent("taskId must be an audit task id (1-40 of a-z, A-Z, 0-9 and -)")
    account_id = optional_text(notification, "accountId", max_length=12)
    if account_id is not None and not ACCOUNT_ID.fullmatch(account_id):
        raise MalformedEvent("accountId must be 12 digits")
    details = notification.get("auditDetails")
    if not isinstance(details, list):
        raise MalformedEvent("auditDetails must be a list")
    for count in ("failedChecksCount", "canceledChecksCount", "compliantChecksCount", "totalChecksCount"):
        optional_whole_number(notification, count)
    return AuditNotification(
        taskId=task_id,
        taskStatus=one_of(notification, "taskStatus", TASK_STATUSES),
        auditDetails=tuple(_check(detail, index) for index, detail in enumerate(details)),
        accountId=account_id,
        taskType=None if notification.get("taskType") is None else one_of(notification, "taskType", TASK_TYPES),
        scheduledAuditName=optional_text(notification, "scheduledAuditName", max_length=128),
        taskStartTime=optional_whole_number(notification, "taskStartTime"),
        nonCompliantChecksCount=optional_whole_number(notification, "nonCompliantChecksCount"),
    )


def _check(detail: Any, index: int) -> CheckResult:
    if not isinstance(detail, Mapping):
        raise MalformedEvent(f"auditDetails[{index}] must be an object")
    try:
        name = text(detail, "checkName", max_length=128)
        if not CHECK_NAME.fullmatch(name):
            raise MalformedEvent("checkName must be an audit check name (1-128 of a-z, A-Z, 0-9, _ and -)")
        return CheckResult(
            checkName=name,
            checkRunStatus=one_of(detail, "checkRunStatus", CHECK_RUN_STATUSES),
            nonCompliantResourcesCount=optional_whole_number(detail, "nonCompliantResourcesCount"),
            totalResourcesCount=optional_whole_number(detail, "totalResourcesCount"),
            errorCode=optional_text(detail, "errorCode", max_length=128),
            message=optional_text(detail, "message", max_length=2048),
        )
    except MalformedEvent as error:
        raise MalformedEvent(f"auditDetails[{index}].{error}") from None
