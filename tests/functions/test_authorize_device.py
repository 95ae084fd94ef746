"""The custom authorizer as IoT invokes it: every events/ sample, with the JWKS in moto's SSM.

What a user would notice: the devices of the valid samples connect with a policy for themselves alone; every other
request is denied, logged with its reason and counted; the keys are read at the cold start and after their
refresh period only; without keys or configuration every connection is denied; an exception is a denial, not an
error; and no token, password, signature or key ever appears in what the function prints or logs.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from events import load_event
from tests.authorizer_tokens import (
    ACCOUNT,
    DEVICE_KID,
    ENVIRONMENT,
    NOW,
    SAMPLE_JWKS,
    SAMPLE_OUTCOMES,
    SAMPLES,
    assert_valid_answer,
    attacker_key,
    b64url,
    device_jwks,
    device_key,
    mint,
    mqtt_request,
    unb64url,
)
from tests.functions.conftest import LambdaContext, _import_fresh, emitted

PARAMETER = ENVIRONMENT["TOKEN_KEYS_PARAMETER"]
SAMPLE_NAMES = sorted(path.stem for path in SAMPLES.glob("*.json") if path.stem != "jwks")
DAY = 86_400


@pytest.fixture
def ssm(monkeypatch) -> Iterator[Any]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "authorize_device")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "IotDeviceBackend")
    with mock_aws():
        yield boto3.client("ssm")


def live(sub: str = "sensor-0001", seconds_left: int = DAY, **overrides: Any) -> str:
    """A token valid now (by the real clock the handler uses), for `seconds_left` more seconds."""
    now = int(time.time())
    return mint(sub, **{"iat": now - 60, "nbf": now - 60, "exp": now + seconds_left, **overrides})


def put_keys(ssm: Any, jwks: str) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=jwks, Type="String", Overwrite=True)


def cold_start(ssm: Any, jwks: str | None = SAMPLE_JWKS) -> Any:
    if jwks is not None:
        put_keys(ssm, jwks)
    return _import_fresh("authorize_device.handler")


def decisions(out: str) -> list[dict]:
    logs, _ = emitted(out)
    return [log for log in logs if log["message"] in ("Connection authorized", "Connection denied")]


def test_every_sample_gets_its_decision_reason_and_metric(ssm, capsys):
    assert set(SAMPLE_NAMES) == set(SAMPLE_OUTCOMES), "every sample has its expected outcome"
    handler = cold_start(ssm)
    capsys.readouterr()
    for sample in SAMPLE_NAMES:
        reason, client_id = SAMPLE_OUTCOMES[sample]
        answer = handler.handler(load_event(f"authorize_device/{sample}"), LambdaContext())
        out = capsys.readouterr().out
        (line,) = decisions(out)
        _, metrics = emitted(out)
        assert line["reason"] == reason, sample
        assert metrics == {reason: 1}, sample
        if client_id is None:
            assert answer == {"isAuthenticated": False}, sample
            assert line["level"] == "WARNING"
        else:
            assert_valid_answer(answer, client_id)
            assert line["clientId"] == client_id and line["keyId"] == "device-backend-sample-2026"
            assert line["disconnectAfterInSeconds"] == answer["disconnectAfterInSeconds"] == DAY
            assert line["refreshAfterInSeconds"] == answer["refreshAfterInSeconds"] == 3600


def test_the_samples_say_where_their_token_came_from(ssm, capsys):
    handler = cold_start(ssm)
    sources = {}
    for sample in ("mqtt_username_password", "http_header", "query_string", "websocket", "mqtt_username_query", "format_2018"):
        capsys.readouterr()
        handler.handler(load_event(f"authorize_device/{sample}"), LambdaContext())
        (line,) = decisions(capsys.readouterr().out)
        sources[sample] = line["tokenSource"]
    assert sources == {
        "mqtt_username_password": "mqtt.password",
        "http_header": "token",
        "query_string": "http.queryString",
        "websocket": "http.header",
        "mqtt_username_query": "mqtt.username",
        "format_2018": "authorizationToken",
    }


def test_the_keys_are_read_at_the_cold_start_only_then_after_their_refresh_period(ssm, monkeypatch, capsys):
    monkeypatch.setenv("KEYS_REFRESH_SECONDS", "1")
    handler = cold_start(ssm)
    calls: list[str] = []
    real = handler.ssm.get_parameter
    monkeypatch.setattr(handler.ssm, "get_parameter", lambda **kw: calls.append(kw["Name"]) or real(**kw))
    token = live("sensor-0001")  # signed by a key the samples' JWKS does not hold
    request = mqtt_request(token)
    assert handler.handler(request, LambdaContext()) == {"isAuthenticated": False}
    put_keys(ssm, device_jwks())  # the operator rotates the keys
    for _ in range(20):
        assert handler.handler(request, LambdaContext()) == {"isAuthenticated": False}  # cached keys, no AWS call
    assert calls == []
    time.sleep(1.05)
    assert handler.handler(request, LambdaContext())["isAuthenticated"] is True
    assert calls == [PARAMETER]
    reasons = [line["reason"] for line in decisions(capsys.readouterr().out)]
    assert reasons == ["DeniedUnknownKey"] * 21 + ["Authorized"]

    # The parameter is gone: the keys in use serve one more period, then every connection is denied.
    ssm.delete_parameter(Name=PARAMETER)
    time.sleep(1.05)
    assert handler.handler(request, LambdaContext())["isAuthenticated"] is True
    time.sleep(1.05)
    assert handler.handler(request, LambdaContext()) == {"isAuthenticated": False}
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics["KeysLoadFailed"] >= 1 and metrics["DeniedMissingConfiguration"] == 1
    failure = next(log for log in logs if log["message"] == "The token keys could not be loaded")
    assert failure["detail"] == "loading the keys failed: ParameterNotFound (ParameterNotFound)"


def test_without_keys_every_connection_is_denied_as_missing_configuration(ssm, capsys):
    handler = cold_start(ssm, jwks=None)
    for sample in SAMPLE_NAMES:
        assert handler.handler(load_event(f"authorize_device/{sample}"), LambdaContext()) == {"isAuthenticated": False}
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics["DeniedMissingConfiguration"] == 11  # all but the two refused before any key is needed
    assert metrics["DeniedNoToken"] == metrics["DeniedOversized"] == 1
    assert metrics["KeysLoadFailed"] == 1  # the cold start's attempt; the next is 30 s later, not per request


def test_keys_for_another_algorithm_or_a_private_key_are_no_keys(ssm, capsys):
    private = json.loads(device_jwks())
    private["keys"][0]["d"] = b64url(device_key().private_numbers().private_value.to_bytes(32, "big"))
    handler = cold_start(ssm, json.dumps(private))
    token = live()
    assert handler.handler(mqtt_request(token), LambdaContext()) == {"isAuthenticated": False}
    logs, _ = emitted(capsys.readouterr().out)
    assert any(log.get("detail") == "the JWKS has no public key for ES256" for log in logs)
    assert [line["reason"] for line in decisions("\n".join(json.dumps(log) for log in logs))] == ["DeniedMissingConfiguration"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TOKEN_ISSUER", None), ("TOKEN_ALGORITHM", "HS256"), ("DEVICE_TOPICS", '{"publish": ["#"]}'), ("TOKEN_KEYS_PARAMETER", None)],
)
def test_a_missing_or_wrong_setting_denies_every_connection(ssm, monkeypatch, capsys, variable, value):
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    handler = cold_start(ssm)
    answer = handler.handler(load_event("authorize_device/mqtt_username_password"), LambdaContext())
    assert answer == {"isAuthenticated": False}
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"DeniedMissingConfiguration": 1}
    (line,) = decisions("\n".join(json.dumps(log) for log in logs))
    assert variable in line["detail"]


def test_an_invocation_without_the_function_arn_is_denied(ssm):
    handler = cold_start(ssm)
    context = replace(LambdaContext(), invoked_function_arn="")
    assert handler.handler(load_event("authorize_device/mqtt_username_password"), context) == {"isAuthenticated": False}


def test_an_exception_is_a_denial_logged_without_its_message(ssm, monkeypatch, capsys):
    handler = cold_start(ssm)
    password = load_event("authorize_device/mqtt_username_password")["protocolData"]["mqtt"]["password"]

    def explode(*args: Any) -> None:
        raise ValueError(f"something quoted the password {password}")

    monkeypatch.setattr(handler, "decide", explode)
    answer = handler.handler(load_event("authorize_device/mqtt_username_password"), LambdaContext())
    assert answer == {"isAuthenticated": False}
    out = capsys.readouterr().out
    (line,) = decisions(out)
    assert line["reason"] == "DeniedAuthorizerError"
    assert re.fullmatch(r"unexpected ValueError at test_authorize_device\.py:\d+", line["detail"])
    assert password not in out and "quoted" not in out


def test_nothing_a_device_sends_can_make_the_handler_raise(ssm):
    handler = cold_start(ssm)
    weird: list[Any] = [None, [], "x", 7, {"protocolData": None}, {"protocolData": {"mqtt": None, "http": 5}},
                        {"type": "TOKEN", "authorizationToken": 5}, {"token": {"a": 1}}, {"protocols": [None]},
                        {"protocolData": {"http": {"headers": {"x-device-token": ["a"]}}}},
                        {"protocolData": {"http": {"queryString": 5}}}, {"connectionMetadata": {"id": 5}},
                        {"protocolData": {"mqtt": {"password": "////", "clientId": "\udc80"}}}]  # fmt: skip
    for event in weird:
        assert handler.handler(event, LambdaContext()) == {"isAuthenticated": False}, event


# --- no secret in any output ---------------------------------------------------------------------------------------


def secrets_of(event: dict) -> set[str]:
    """Every credential a request carries, and its parts: the token and its segments, the base64 password,
    IoT's token signature."""
    found: set[str] = set()

    def add_token(token: str) -> None:
        found.add(token)
        found.update(part for part in token.split(".") if len(part) >= 16)

    for key in ("token", "authorizationToken"):
        if isinstance(event.get(key), str):
            add_token(event[key])
    mqtt = (event.get("protocolData") or {}).get("mqtt") or {}
    if mqtt.get("password"):
        found.add(mqtt["password"])
        try:
            add_token(base64.b64decode(mqtt["password"]).decode())
        except ValueError:
            pass
    http = (event.get("protocolData") or {}).get("http") or {}
    for name, value in (http.get("headers") or {}).items():
        if name.lower() in ("x-device-token", "x-amz-customauthorizer-signature"):
            add_token(value)
    for text in (http.get("queryString") or "", mqtt.get("username") or ""):
        for pair in text.lstrip("?").split("?")[-1].split("&"):
            name, _, value = pair.partition("=")
            if name in ("x-device-token", "x-amz-customauthorizer-signature") and value:
                add_token(value)
    return {secret for secret in found if len(secret) >= 16}


def key_material() -> set[str]:
    material = set()
    for jwks in (SAMPLE_JWKS, device_jwks()):
        for key in json.loads(jwks)["keys"]:
            material.update(key[name] for name in ("x", "y", "n", "d") if name in key)
    numbers = device_key().private_numbers()
    material.add(b64url(numbers.private_value.to_bytes(32, "big")))
    return material


def test_no_token_password_signature_or_key_appears_in_any_output(ssm, monkeypatch, capfd, caplog):
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.INFO)  # everything any library logs at INFO and above (botocore's DEBUG echoes bodies)
    logging.getLogger("authorize_device").setLevel(logging.DEBUG)
    keys = json.loads(SAMPLE_JWKS)["keys"] + json.loads(device_jwks())["keys"]
    handler = cold_start(ssm, json.dumps({"keys": keys}))
    valid = live("sensor-0001")
    header, payload, signature = valid.split(".")
    tokens = [
        valid,
        live("sensor-0002"),
        live("sensor-0001", -DAY),
        live("sensor-0001", 100),
        live("sensor-0001", aud="other"),
        live("sensor-0001", key=attacker_key()),
        live("sensor-0001", kid="unknown"),
        f"{header}.{payload}.{signature[:-4]}AAAA",
        f"{header}.{b64url(unb64url(payload).replace(b'sensor-0001', b'sensor-0009'))}.{signature}",
        f"{header}.{payload}=.{signature}",
        valid + "x",
        valid[:100],
    ]
    events = [load_event(f"authorize_device/{sample}") for sample in SAMPLE_NAMES]
    events += [mqtt_request(token) for token in tokens] + [mqtt_request(token, client_id="sensor-0002") for token in tokens]
    events += [{"token": token, "signatureVerified": True, "protocols": ["tls", "http"]} for token in tokens]
    events += [{"protocolData": {"http": {"queryString": f"?x-device-token={token}"}}} for token in tokens]
    answers = [handler.handler(event, LambdaContext()) for event in events]
    assert any(answer["isAuthenticated"] for answer in answers) and not all(answer["isAuthenticated"] for answer in answers)

    captured = capfd.readouterr()
    output = captured.out + captured.err + "\n".join(
        record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records
    )
    assert len(decisions(captured.out)) == len(events)  # the output is there to be searched
    secrets = set().union(*(secrets_of(event) for event in events)) | key_material()
    assert len(secrets) > 50
    leaked = sorted(secret for secret in secrets if secret in output)
    assert leaked == []
    assert DEVICE_KID in output  # key IDs are not secret: they say which key verified a token


def test_every_policy_document_of_every_admitted_device_is_within_awss_limits(ssm):
    handler = cold_start(ssm, device_jwks())
    for client_id in ("a", "sensor-0001", "x" * 128, "Thing_Name:with-all_chars", "0" * 64):
        for seconds in (300, 301, 3600, DAY, 400 * DAY):
            answer = handler.handler(mqtt_request(live(client_id, seconds + 5), client_id), LambdaContext())
            assert_valid_answer(answer, client_id, account=ACCOUNT)
            assert answer["disconnectAfterInSeconds"] <= seconds + 5
            assert answer["refreshAfterInSeconds"] <= answer["disconnectAfterInSeconds"]


def test_samples_verify_for_years(ssm):
    """The samples' tokens carry exp in 2036 (`expired` excepted): they are good for every run until then."""
    assert NOW < 2_082_758_400
    for sample, (reason, _) in SAMPLE_OUTCOMES.items():
        event = load_event(f"authorize_device/{sample}")
        if reason == "Authorized":
            token = event.get("token") or event.get("authorizationToken") or ""
            if not token:
                mqtt = event["protocolData"].get("mqtt", {})
                http = event["protocolData"].get("http", {})
                token = (
                    base64.b64decode(mqtt["password"]).decode() if "password" in mqtt
                    else (http.get("headers", {}).get("X-Device-Token") or (http.get("queryString") or mqtt.get("username", "")).split("x-device-token=")[1].split("&")[0])
                )  # fmt: skip
            assert json.loads(unb64url(token.split(".")[1]))["exp"] == 2_082_758_400, sample
    assert not Path(SAMPLES / "private.pem").exists() and "BEGIN" not in SAMPLE_JWKS and '"d"' not in SAMPLE_JWKS
