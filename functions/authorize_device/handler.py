"""The custom authorizer of AWS IoT Core: IoT asks it, synchronously, on every connection that uses it (MQTT
username/password, HTTP header or query string, WebSocket), whether the device may connect, as whom and with
which policy; the device waits for the answer.

It denies by default: a malformed request, no or a bad token, a client ID that is not the token's, a missing
configuration, any exception all answer `{"isAuthenticated": false}`, logged with a reason and counted (one
metric per reason). It never raises. The token, the MQTT password and the keys are never logged: the event is
not logged, the request's repr hides the token, and errors are logged by type and place, not by message.

Configuration (environment, set by the stack):
    TOKEN_KEYS_PARAMETER  SSM parameter (String) holding the JWKS of the operator's public keys
    TOKEN_ALGORITHM       ES256 | RS256 | EdDSA: the only algorithm a token may use
    TOKEN_ISSUER, TOKEN_AUDIENCE   the `iss` and `aud` a token must have
    CLOCK_SKEW_SECONDS    leeway on exp / nbf / iat (default 60)
    KEYS_REFRESH_SECONDS  how long the keys are used before they are read again (default 300)
    TOKEN_KEY_NAME        the header / query-string parameter that carries the token
    DEVICE_TOPICS         {"publish": [...], "subscribe": [...], "receive": [...]} templates with {clientId}
    POLICY_REFRESH_SECONDS  optional (default 3600, 300-86400): refreshAfterInSeconds, never past the token's exp
The region is AWS_REGION (Lambda sets it); the account is the invoked function's ARN's.
"""

from __future__ import annotations

import gc

# As in the other functions: what a cold start creates lives as long as the container, and this function's cold
# start is a device waiting to connect.
gc.disable()

import os
import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from authorize_device.keys import KeyStore, ssm_parameter
from authorize_device.logic import account_of, decide, deny, load_settings
from authorize_device.models import (
    CLIENT_ID,
    DENIED_CONFIGURATION,
    DENIED_ERROR,
    Decision,
    Refusal,
    Settings,
    parse_request,
)

# The keys are read at the cold start and once per refresh period; the device waits meanwhile. Worst case with
# these settings: two attempts of (0.5 s connect + 0.5 s read) and a backoff, about 3 s, and then a denial.
AWS_CONFIG = Config(connect_timeout=0.5, read_timeout=0.5, retries={"mode": "standard", "total_max_attempts": 2})
KEYS_LOAD_FAILED = "KeysLoadFailed"

logger = Logger()
metrics = Metrics()


def _keys_failed(detail: str) -> None:
    logger.warning("The token keys could not be loaded", extra={"reason": KEYS_LOAD_FAILED, "detail": detail})
    metrics.add_metric(name=KEYS_LOAD_FAILED, unit=MetricUnit.Count, value=1)


SETTINGS: Settings | None
try:
    SETTINGS, CONFIGURATION_PROBLEM = load_settings(os.environ), ""
except Refusal as problem:
    SETTINGS, CONFIGURATION_PROBLEM = None, problem.detail
    logger.error("The authorizer is not configured; every connection is denied", extra={"detail": problem.detail})

ssm = boto3.client("ssm", config=AWS_CONFIG)
KEYS = (
    None
    if SETTINGS is None
    else KeyStore(
        ssm_parameter(ssm, SETTINGS.keys_parameter),
        SETTINGS.algorithm,
        SETTINGS.keys_refresh_seconds,
        on_failure=_keys_failed,
    )
)
if KEYS is not None:
    KEYS.load()
gc.freeze()
gc.enable()

_accounts: dict[str, str | None] = {}


def authorization(event: Any, context: Any) -> Decision:
    if SETTINGS is None or KEYS is None:
        return deny(DENIED_CONFIGURATION, CONFIGURATION_PROBLEM)
    try:
        request = parse_request(event, SETTINGS.token_key_name)
    except Refusal as refusal:
        return deny(refusal.reason, refusal.detail)
    logger.append_keys(
        connectionId=request.connection_id if _safe(request.connection_id) else None,
        protocols=list(request.protocols) or None,
        tokenSource=request.token_source,
        signatureVerified=request.signature_verified,
        format2018=request.format_2018 or None,
    )
    arn = getattr(context, "invoked_function_arn", None) or ""
    if arn not in _accounts:
        _accounts[arn] = account_of(arn)
    account = _accounts[arn]
    if account is None:
        return deny(DENIED_CONFIGURATION, "the account is not in the invoked function's ARN")
    return decide(request, KEYS.current(), SETTINGS, account, time.time())


@logger.inject_lambda_context(log_event=False, clear_state=True)  # the event holds the token and the password
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        decision = authorization(event, context)
    except Exception as error:  # fail closed, whatever went wrong
        decision = deny(DENIED_ERROR, f"unexpected {type(error).__name__} at {_where(error)}")
    extra = {"reason": decision.reason, "detail": decision.detail, "clientId": decision.client_id}
    if decision.allowed:
        extra.update(
            keyId=decision.key_id,
            principalId=decision.principal_id,
            policyDocuments=len(decision.policy_documents),
            disconnectAfterInSeconds=decision.disconnect_after_seconds,
            refreshAfterInSeconds=decision.refresh_after_seconds,
        )
        logger.info("Connection authorized", extra=extra)
    else:
        logger.warning("Connection denied", extra=extra)
    metrics.add_metric(name=decision.reason, unit=MetricUnit.Count, value=1)
    return decision.answer()


def _safe(value: str | None) -> bool:
    """Whether a value of the request may go into a log line: short, and of an ID's characters."""
    return value is not None and CLIENT_ID.fullmatch(value) is not None


def _where(error: BaseException) -> str:
    """file:line of the innermost frame: where it failed, without the error's message (which may quote input)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return "?"
    return f"{os.path.basename(traceback.tb_frame.f_code.co_filename)}:{traceback.tb_lineno}"
