"""JITR: activates device certificates from IoT Core's certificate-registered events, delivered through SQS
with bounded concurrency (IoT's UpdateCertificate allows about 10 calls a second)."""

from __future__ import annotations

import gc

# See track_presence.handler: no garbage collection while the container initialises.
gc.disable()

import datetime
import os
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Metrics
from botocore.config import Config

from activate_certificate.logic import Settings, activate
from activate_certificate.models import parse_certificate_registered
from activate_certificate.trust import TrustStore
from event_processing import sqs_batch

SETTINGS = Settings(
    policy_name=os.environ["DEVICE_POLICY_NAME"],
    thing_group_name=os.environ["FLEET_THING_GROUP"],
    require_allow_list=os.environ.get("REQUIRE_ALLOW_LIST") == "true",
)

logger = Logger()
metrics = Metrics()
# Adaptive retries slow the calls down when IoT throttles (shared quotas: other tools call these APIs too);
# what still fails goes back to SQS for a later delivery.
iot = boto3.client("iot", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))
trust = TrustStore(iot, boto3.client("s3"), os.environ["TRUST_BUCKET"], int(os.environ["TRUST_REFRESH_SECONDS"]))
gc.freeze()
gc.enable()


def activate_certificate(record: Mapping[str, Any]) -> str:
    event = parse_certificate_registered(record["body"])
    with logger.append_context_keys(certificateId=event.certificateId, caCertificateId=event.caCertificateId):
        outcome = activate(event, iot, trust, SETTINGS, datetime.datetime.now(datetime.timezone.utc))
        if outcome.result == "CertificatesRevoked":
            logger.warning("Certificate revoked", reason=outcome.reason, serial=outcome.serial)
        elif outcome.result == "CertificatesActivated":
            logger.info("Certificate activated", thingName=outcome.thing_name, serial=outcome.serial)
        else:
            logger.info("Certificate left as it is", reason=outcome.reason)
    return outcome.result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sqs_batch.consume(event, activate_certificate, logger=logger, metrics=metrics)
