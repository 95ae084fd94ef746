"""One audit notification, end to end: every finding of every covered non-compliant check, then the
mitigation tasks, started or (dry run) only decided.

ListAuditFindings (https://docs.aws.amazon.com/iot/latest/apireference/API_ListAuditFindings.html; boto3
paginator `list_audit_findings`, https://docs.aws.amazon.com/boto3/latest/reference/services/iot/paginator/ListAuditFindings.html)
is read with taskId and checkName, 250 findings a page (the maximum), through every nextToken: a check with
more findings than one page would otherwise be mitigated only in part. Without `listSuppressedFindings` it
lists suppressed and unsuppressed findings alike: all of them make the chunks (logic.py), and the suppressed
ones (`isSuppressed`) are left out of the tasks' targets: a suppression is an operator's decision that the
finding is accepted.

StartAuditMitigationActionsTask's answers (seed 003:L591-606, seed-api.md §9.3):
- TaskAlreadyExistsException: the task id is taken, by this task started by an earlier delivery. It is
  counted as already started, never started again under another id. Its target may be older than the
  findings' suppressions: DescribeAuditMitigationActionsTask
  (https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeAuditMitigationActionsTask.html) tells
  which findings it covers, and a follow-up task (logic.follow_up) covers those unsuppressed since.
- LimitExceededException: at most 10 mitigation tasks run at once in an account. Nothing more is started;
  the outcome says so and the handler raises, so that Lambda retries the notification later (twice, then the
  dead-letter queue, which an operator can redrive). The ids being the same, a retry starts only what is
  missing.
- ThrottlingException: retried by the client (botocore's adaptive mode, see handler.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mitigate_audit_findings.logic import ActionsMap, PlannedTask, covered_checks, follow_up, plan_check
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
    ids: tuple[str, ...]  # every finding of the check, suppressed or not
    suppressed: frozenset[str]


def list_findings(iot: Any, audit_task_id: str, check_name: str) -> Findings:
    ids, suppressed = [], set()
    pages = iot.get_paginator("list_audit_findings").paginate(
        taskId=audit_task_id, checkName=check_name, PaginationConfig={"PageSize": PAGE_SIZE}
    )
    for page in pages:
        for finding in page.get("findings", []):
            if finding.get("findingId"):
                ids.append(finding["findingId"])
                if finding.get("isSuppressed"):
                    suppressed.add(finding["findingId"])
    return Findings(tuple(ids), frozenset(suppressed))


def covered_findings(iot: Any, task_id: str) -> tuple[str, ...]:
    """The findings an existing mitigation task applies its actions to (its target, as it was started)."""
    return tuple(iot.describe_audit_mitigation_actions_task(taskId=task_id).get("target", {}).get("findingIds", []))


def plan(notification: AuditNotification, iot: Any, actions: ActionsMap) -> Outcome:
    covered, uncovered = covered_checks(notification.checks("COMPLETED_NON_COMPLIANT"), actions)
    planned: list[PlannedTask] = []
    suppressed = 0
    for check in covered:
        findings = list_findings(iot, notification.taskId, check)
        suppressed += len(findings.suppressed)
        planned.extend(plan_check(notification.taskId, check, actions[check], findings.ids, findings.suppressed))
    return Outcome(planned=tuple(planned), uncovered=tuple(uncovered), suppressed=suppressed)


def mitigate(notification: AuditNotification, iot: Any, settings: Settings) -> Outcome:
    """Only for a COMPLETED audit task: the handler leaves the others alone."""
    decided = plan(notification, iot, settings.actions)
    if settings.dry_run:
        return decided
    from botocore.exceptions import ClientError

    started: list[PlannedTask] = []
    already: list[PlannedTask] = []
    waiting = list(decided.planned)
    while waiting:
        task = waiting.pop(0)
        try:
            iot.start_audit_mitigation_actions_task(**task.request())
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "TaskAlreadyExistsException":
                already.append(task)
                # A follow-up's id names exactly its findings: only a chunk's task can cover fewer than asked.
                missing = None if task.followUp else follow_up(task, covered_findings(iot, task.taskId))
                if missing:
                    waiting.insert(0, missing)
                continue
            if code == "LimitExceededException":
                not_started = (task, *waiting)
                return decided._replace(started=tuple(started), already_started=tuple(already), not_started=not_started)
            raise
        started.append(task)
    return decided._replace(started=tuple(started), already_started=tuple(already))
