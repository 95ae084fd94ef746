"""The pre-provisioning hook of the fleet-provisioning template: IoT asks it, synchronously, whether a device
that sent RegisterThing may be provisioned, and waits at most 5 seconds for the answer.

It fails closed: a malformed request, a missing configuration, an AWS error or timeout, any exception, all
answer `allowProvisioning: false`, logged with the reason and counted. The certificate PEM in the request is
never read, logged or answered.
"""

from __future__ import annotations

import gc

# As in track_presence: the objects a cold start creates live as long as the container; collecting them during
# the cold start is wasted time, and this function's cold start is a device waiting.
gc.disable()

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from event_processing.fields import MalformedEvent
from pre_provisioning_hook.logic import (
    DENIED_BAD_ITEM,
    DENIED_ERROR,
    DENIED_MALFORMED,
    decide,
    deny,
    look_up,
)
from pre_provisioning_hook.models import Decision, parse_request

ALLOW_LIST_TABLE = os.environ.get("ALLOW_LIST_TABLE", "")

# IoT waits 5 s for the answer. Worst case with these settings: two attempts of (0.5 s connect + 0.5 s read)
# and one backoff of at most 1 s, about 3 s, and then a denial; a GetItem normally takes milliseconds.
AWS_CONFIG = Config(connect_timeout=0.5, read_timeout=0.5, retries={"mode": "standard", "total_max_attempts": 2})

logger = Logger()
metrics = Metrics()
dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
gc.freeze()
gc.enable()


def provisioning_decision(event: Any) -> Decision:
    try:
        request = parse_request(event)
    except MalformedEvent as rejection:
        return deny(DENIED_MALFORMED, str(rejection))
    logger.append_keys(
        serialNumber=request.serial_number,
        certificateId=request.certificate_id,
        clientId=request.client_id,
        claimCertificateId=request.claim_certificate_id,
    )
    if not ALLOW_LIST_TABLE:
        return deny(DENIED_ERROR, "ALLOW_LIST_TABLE is not configured")
    try:
        entry = look_up(dynamodb, ALLOW_LIST_TABLE, request.serial_number)
    except MalformedEvent as rejection:
        return deny(DENIED_BAD_ITEM, str(rejection))
    except Exception as error:
        response = getattr(error, "response", None)  # a ClientError's; timeouts and connection errors have none
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        return deny(DENIED_ERROR, f"the allow-list lookup failed: {type(error).__name__}{f' ({code})' if code else ''}")
    return decide(request, entry)


@logger.inject_lambda_context(log_event=False, clear_state=True)  # the event holds the certificate PEM
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        decision = provisioning_decision(event)
    except Exception as error:  # fail closed, whatever went wrong
        logger.exception("The hook failed; denying")  # the traceback names code, not the request's values
        decision = deny(DENIED_ERROR, f"unexpected {type(error).__name__}")
    answer = decision.answer()
    log = logger.info if decision.allowed else logger.warning
    log(
        "Provisioning allowed" if decision.allowed else "Provisioning denied",
        extra={"reason": decision.reason, "detail": decision.detail, "parameterOverrides": decision.parameter_overrides},
    )
    metrics.add_metric(name=decision.reason, unit=MetricUnit.Count, value=1)
    return answer
