"""Device Defender audit mitigation: on each audit notification (SNS), every finding of every non-compliant
check that MITIGATION_ACTIONS covers gets the check's mitigation actions, through audit mitigation action
tasks with deterministic ids, so that a redelivered notification starts nothing twice. DRY_RUN=true decides
and logs every task (findings, actions, ids) and starts none.

IoT invokes nothing here: SNS invokes the function asynchronously, Lambda retries a failure twice and then
keeps the event in the dead-letter queue. A malformed notification is kept in DEAD_LETTER_QUEUE_URL with its
reason and not retried; an account at its limit of running mitigation tasks makes the invocation fail, so
that it is retried later.
"""

from __future__ import annotations

import gc

# See track_presence.handler: no garbage collection while the container initialises.
gc.disable()

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from event_processing.fields import MalformedEvent
from event_processing.rejections import reject
from event_processing.sns import kept_event, sns_messages
from mitigate_audit_findings.logic import parse_actions_map
from mitigate_audit_findings.mitigate import Outcome, Settings, mitigate
from mitigate_audit_findings.models import AuditNotification, parse_notification

STARTED = "MitigationTasksStarted"
ALREADY_STARTED = "MitigationTasksAlreadyStarted"
DRY_RUN_DECISIONS = "DryRunDecisions"
NOT_COMPLETED = "AuditTasksNotCompleted"
MALFORMED = "MalformedNotifications"

SETTINGS = Settings(
    actions=parse_actions_map(os.environ["MITIGATION_ACTIONS"]),
    dry_run=os.environ.get("DRY_RUN", "false").lower() == "true",
)

logger = Logger()
metrics = Metrics()
# Adaptive retries slow the calls down when IoT throttles (Device Defender's APIs have low rates, shared with
# the console and other tools); what still fails makes the invocation fail, and Lambda retries it.
iot = boto3.client("iot", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))
gc.freeze()
gc.enable()


class MitigationTasksLimited(RuntimeError):
    """The account runs as many mitigation tasks as it may: the invocation fails so that Lambda retries it."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        messages = sns_messages(event)
    except MalformedEvent as rejection:
        return {"results": [_reject(json.dumps(event), str(rejection), context)]}
    results, limited = [], []
    for record, _, message in messages:
        try:
            notification = parse_notification(message)
        except MalformedEvent as rejection:
            results.append(_reject(kept_event(record), str(rejection), context))
            continue
        with logger.append_context_keys(auditTaskId=notification.taskId):
            result = _handle(notification)
        results.append(result)
        if result.get("notStarted"):
            limited.append(notification.taskId)
    if limited:
        raise MitigationTasksLimited(
            f"Too many mitigation tasks running in the account; audit task(s) {', '.join(limited)} to be retried"
        )
    return {"results": results}


def _handle(notification: AuditNotification) -> dict[str, Any]:
    if not notification.completed:
        logger.warning("Audit task not completed: nothing mitigated", extra={"taskStatus": notification.taskStatus})
        metrics.add_metric(name=NOT_COMPLETED, unit=MetricUnit.Count, value=1)
        return {"auditTaskId": notification.taskId, "result": NOT_COMPLETED, "taskStatus": notification.taskStatus}
    for check in notification.auditDetails:
        if check.checkRunStatus in ("FAILED", "CANCELED"):
            with logger.append_context_keys(checkName=check.checkName):
                logger.warning(
                    "Audit check did not run to completion",
                    extra={"checkRunStatus": check.checkRunStatus, "errorCode": check.errorCode, "reason": check.message},
                )
    outcome = mitigate(notification, iot, SETTINGS)
    for check in outcome.uncovered:
        with logger.append_context_keys(checkName=check):
            logger.info("Non-compliant check has no mitigation actions configured: left alone")
    _log_decisions(outcome)
    if SETTINGS.dry_run:
        metrics.add_metric(name=DRY_RUN_DECISIONS, unit=MetricUnit.Count, value=len(outcome.planned))
        result = DRY_RUN_DECISIONS
    else:
        metrics.add_metric(name=STARTED, unit=MetricUnit.Count, value=len(outcome.started))
        metrics.add_metric(name=ALREADY_STARTED, unit=MetricUnit.Count, value=len(outcome.already_started))
        result = STARTED
    summary = {
        "auditTaskId": notification.taskId,
        "result": result,
        "planned": [task.taskId for task in outcome.planned],
        "started": [task.taskId for task in outcome.started],
        "alreadyStarted": [task.taskId for task in outcome.already_started],
        "notStarted": [task.taskId for task in outcome.not_started],
        "uncoveredChecks": list(outcome.uncovered),
        "suppressedFindings": outcome.suppressed,
    }
    details = {key: value for key, value in summary.items() if key not in ("auditTaskId", "result")}
    logger.info("Audit mitigation decided (dry run)" if SETTINGS.dry_run else "Audit mitigated", extra=details)
    return summary


def _log_decisions(outcome: Outcome) -> None:
    if SETTINGS.dry_run:
        decided = [(task, logger.info, "Dry run: mitigation task decided, not started") for task in outcome.planned]
    else:
        decided = [
            *((task, logger.info, "Mitigation task started") for task in outcome.started),
            *((task, logger.info, "Mitigation task already started by an earlier delivery") for task in outcome.already_started),
            *(
                (task, logger.warning, "Mitigation task not started: the account's running tasks are at the limit")
                for task in outcome.not_started
            ),
        ]
    for task, log, message in decided:
        decision = {
            "taskId": task.taskId,
            "clientRequestToken": task.clientRequestToken,
            "actions": list(task.actions),
            "findingIds": list(task.findingIds),
            "followUp": task.followUp,  # for findings unsuppressed since its chunk's task started
        }
        with logger.append_context_keys(checkName=task.checkName):
            log(message, extra=decision)


def _reject(body: str, reason: str, context: Any) -> dict[str, Any]:
    # Kept with its reason, not retried: the same notification would fail the same way every time.
    reject(body, reason, {"rejectedBy": context.function_name})
    logger.warning("Notification rejected to the dead-letter queue", extra={"reason": reason})
    metrics.add_metric(name=MALFORMED, unit=MetricUnit.Count, value=1)
    return {"result": MALFORMED, "reason": reason}
