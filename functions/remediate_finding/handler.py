"""Custom remediation of Device Defender audit findings, from the PUBLISH_FINDING_TO_SNS mitigation action's
topic: what the built-in actions cannot do (revoke a certificate for good, quarantine its things, tell
operators), recorded change by change; in dry-run mode, every decision recorded and nothing changed."""

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
from remediate_finding.models import parse_finding
from remediate_finding.remediate import Clients, Settings, invocation_end, remediate

MALFORMED_METRIC = "MalformedFindings"

SETTINGS = Settings(
    table=os.environ["REMEDIATIONS_TABLE"],
    notices_topic_arn=os.environ["NOTICES_TOPIC_ARN"],
    quarantine_group=os.environ["QUARANTINE_GROUP"],
    dry_run=os.environ.get("DRY_RUN", "false").strip().lower() == "true",
)

logger = Logger()
metrics = Metrics()
# Adaptive retries slow the calls down when IoT throttles (UpdateCertificate and AddThingToThingGroup have low
# account-wide quotas, shared with onboarding and the built-in mitigation actions); what still fails fails the
# invocation, which Lambda retries.
AWS_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8})
_sns: list[Any] = []


def _sns_client() -> Any:
    if not _sns:
        _sns.append(boto3.client("sns", config=AWS_CONFIG))
    return _sns[0]


clients = Clients(
    iot=boto3.client("iot", config=AWS_CONFIG), dynamodb=boto3.client("dynamodb", config=AWS_CONFIG), sns=_sns_client
)
gc.freeze()
gc.enable()


def _log(message: str, extra: dict[str, Any]) -> None:
    logger.info(message, extra=extra)


def _reject(body: str, reason: str, context: Any) -> dict[str, Any]:
    # Kept with its reason, not retried: the same message would fail the same way every time.
    reject(body, reason, {"rejectedBy": context.function_name})
    logger.warning("Finding rejected to the dead-letter queue", extra={"reason": reason})
    metrics.add_metric(name=MALFORMED_METRIC, unit=MetricUnit.Count, value=1)
    return {"result": MALFORMED_METRIC, "reason": reason}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        messages = sns_messages(event)
    except MalformedEvent as rejection:
        return {"results": [_reject(json.dumps(event), str(rejection), context)]}
    results = []
    for record, message_id, message in messages:
        try:
            finding = parse_finding(message)
            with logger.append_context_keys(
                snsMessageId=message_id,
                findingId=finding.findingId,
                checkName=finding.checkName,
                certificateId=finding.deviceCertificateId,
                dryRun=SETTINGS.dry_run,
            ):
                until = invocation_end(context.get_remaining_time_in_millis())  # when this invocation's claims end
                outcome = remediate(finding, clients, SETTINGS, _log, deadline=until)
                logger.info(outcome.result, extra={"decisions": [d._asdict() for d in outcome.decisions]})
        except MalformedEvent as rejection:
            results.append(_reject(kept_event(record), str(rejection), context))
            continue
        metrics.add_metric(name=outcome.result, unit=MetricUnit.Count, value=1)
        results.append({"result": outcome.result, "findingId": finding.findingId, "decisions": [d._asdict() for d in outcome.decisions]})
    return {"results": results}
