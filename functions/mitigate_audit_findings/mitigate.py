"""One audit notification, end to end: every finding of every covered non-compliant check, then the
mitigation tasks, started or (dry run) only decided.

ListAuditFindings (https://docs.aws.amazon.com/iot/latest/apireference/API_ListAuditFindings.html; boto3
paginator `list_audit_findings`, https://docs.aws.amazon.com/boto3/latest/reference/services/iot/paginator/ListAuditFindings.html)
is read with taskId and checkName, 250 findings a page (the maximum), through every nextToken: a check with
more findings than one page would otherwise be mitigated only in part. Suppressed findings (`isSuppressed`)
are left alone: a suppression is an operator's decision that the finding is accepted.

StartAuditMitigationActionsTask's answers (seed 003:L591-606, seed-api.md §9.3):
- TaskAlreadyExistsException: the task id is taken, by this same task started by an earlier delivery. It is
  counted as already started, never started again under another id.
- LimitExceededException: at most 10 mitigation tasks run at once in an account. Nothing more is started;
  the outcome says so and the handler raises, so that Lambda retries the notification later (twice, then the
  dead-letter queue, which an operator can redrive). The ids being the same, a retry starts only what is
  missing.
- ThrottlingException: retried by the client (botocore's adaptive mode, see handler.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mitigate_audit_findings.logic import ActionsMap, PlannedTask, covered_checks, plan_check
from mitigate_audit_findings.models import AuditNotification

PAGE_SIZE = 250


class Settings(NamedTuple):
    actions: ActionsMap
    dry_run: bool


class Outcome(NamedTuple):
    planned: tuple[PlannedTask, ...] = ()
    started: tuple[PlannedTask, ...] = ()
    already_started: tuple[PlannedTask, ...] = ()
    not_started: tuple[PlannedTask, ...] = ()  # left for a retry: the account's running tasks are at the limit
    uncovered: tuple[str, ...] = ()  # non-compliant checks the map has no actions for
    suppressed: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.not_started)


class Findings(NamedTuple):
    ids: tuple[str, ...]
    suppressed: int


def list_findings(iot: Any, audit_task_id: str, check_name: str) -> Findings:
    ids, suppressed = [], 0
    pages = iot.get_paginator("list_audit_findings").paginate(
        taskId=audit_task_id, checkName=check_name, PaginationConfig={"PageSize": PAGE_SIZE}
    )
    for page in pages:
        for finding in page.get("findings", []):
            if finding.get("isSuppressed"):
                suppressed += 1
            elif finding.get("findingId"):
                ids.append(finding["findingId"])
    return Findings(tuple(ids), suppressed)


def plan(notification: AuditNotification, iot: Any, actions: ActionsMap) -> Outcome:
    covered, uncovered = covered_checks(notification.checks("COMPLETED_NON_COMPLIANT"), actions)
    planned: list[PlannedTask] = []
    suppressed = 0
    for check in covered:
        findings = list_findings(iot, notification.taskId, check)
        suppressed += findings.suppressed
        planned.extend(plan_check(notification.taskId, check, actions[check], findings.ids))
    return Outcome(planned=tuple(planned), uncovered=tuple(uncovered), suppressed=suppressed)


def mitigate(notification: AuditNotification, iot: Any, settings: Settings) -> Outcome:
    """Only for a COMPLETED audit task: the handler leaves the others alone."""
    decided = plan(notification, iot, settings.actions)
    if settings.dry_run:
        return decided
    from botocore.exceptions import ClientError

    started: list[PlannedTask] = []
    already: list[PlannedTask] = []
    for index, task in enumerate(decided.planned):
        try:
            iot.start_audit_mitigation_actions_task(**task.request())
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "TaskAlreadyExistsException":
                already.append(task)
                continue
            if code == "LimitExceededException":
                not_started = decided.planned[index:]
                return decided._replace(started=tuple(started), already_started=tuple(already), not_started=not_started)
            raise
        started.append(task)
    return decided._replace(started=tuple(started), already_started=tuple(already))
