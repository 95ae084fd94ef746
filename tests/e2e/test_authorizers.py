"""IoT Core's side of a custom authorizer in the local runtime: the request it builds from a connection, its
check of the token's signature, the invoke permission, and its checks of the function's answer."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local_runtime import LocalRuntime
from local_runtime.authorizers import Connection
from tests.e2e.assemblies import invoke_permission, python_function, write_assembly

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
# The function: allows a password of "open sesame" as principal "device1", and echoes what it got.
HANDLER = """
import base64, json
def handler(event, context):
    password = base64.b64decode(event.get("protocolData", {}).get("mqtt", {}).get("password", "") or b"")
    allowed = password == b"open sesame" or event.get("token") == "good-token"
    answer = {"isAuthenticated": allowed}
    if allowed:
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
        answer.update(principalId=event.get("principal", "device1"), policyDocuments=[json.dumps(policy)],
                      disconnectAfterInSeconds=3600, refreshAfterInSeconds=300)
    print(json.dumps({"got": sorted(event)}))
    return answer
"""


def signature(token: str) -> str:
    return base64.b64encode(KEY.sign(token.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def assembly(root: Path, *, signing: bool = True, permission: bool = True, handler: str = HANDLER) -> Path:
    authorizer: dict[str, Any] = {
        "AuthorizerFunctionArn": {"Fn::GetAtt": ["Handler", "Arn"]},
        "AuthorizerName": "devices",
        "Status": "ACTIVE",
        "TokenKeyName": "x-device-token",
    }
    if signing:
        authorizer["TokenSigningPublicKeys"] = {"key1": PUBLIC_PEM}
    else:
        authorizer["SigningDisabled"] = True
    resources: dict[str, Any] = {
        "Handler": python_function("handler"),
        "Authorizer": {"Type": "AWS::IoT::Authorizer", "Properties": authorizer},
    }
    if permission:
        resources["Permission"] = invoke_permission("Handler", "iot.amazonaws.com", "Authorizer")
    return write_assembly(root, resources, {"handler": {"app.py": handler}})


def test_a_signed_http_token_reaches_the_function_verified(tmp_path: Path) -> None:
    with LocalRuntime(assembly(tmp_path)) as runtime:
        headers = {"X-Device-Token": "good-token", "x-amz-customauthorizer-signature": signature("good-token")}
        decision = runtime.authorize("devices", Connection("http", headers=headers))
    assert decision.allowed and decision.reason == "authenticated"
    assert decision.request is not None
    assert (decision.request["token"], decision.request["signatureVerified"]) == ("good-token", True)
    assert decision.request["protocols"] == ["tls", "http"]
    assert decision.request["protocolData"]["http"]["headers"]["X-Device-Token"] == "good-token"


def test_a_bad_signature_is_refused_by_iot_without_invoking_the_function(tmp_path: Path) -> None:
    with LocalRuntime(assembly(tmp_path)) as runtime:
        username = f"device1?x-amz-customauthorizer-name=devices&x-device-token=good-token&x-amz-customauthorizer-signature={signature('other')}"
        decision = runtime.authorize("devices", Connection("mqtt", client_id="device1", username=username, password=b"x"))
    assert not decision.allowed and decision.invocation is None
    assert decision.reason == "the token's signature does not verify with the authorizer's signing keys"


def test_mqtt_credentials_arrive_as_iot_sends_them_when_signing_is_off(tmp_path: Path) -> None:
    with LocalRuntime(assembly(tmp_path, signing=False)) as runtime:
        decision = runtime.authorize(
            "devices", Connection("mqtt", client_id="device1", username="device1", password=b"open sesame")
        )
        denied = runtime.authorize("devices", Connection("mqtt", client_id="device1", username="u", password=b"nope"))
    assert decision.allowed and not denied.allowed and denied.reason == "the function denied it"
    mqtt = decision.request["protocolData"]["mqtt"] if decision.request else {}
    assert mqtt == {"clientId": "device1", "username": "device1", "password": base64.b64encode(b"open sesame").decode()}
    assert decision.request is not None and decision.request["signatureVerified"] is False


def test_an_answer_iot_would_refuse_is_reported(tmp_path: Path) -> None:
    bad = HANDLER.replace('event.get("principal", "device1")', '"device-1"')
    with LocalRuntime(assembly(tmp_path, signing=False, handler=bad)) as runtime:
        decision = runtime.authorize("devices", Connection("mqtt", client_id="d", username="d", password=b"open sesame"))
    assert not decision.allowed
    assert decision.reason == "IoT refuses the function's answer: principalId is not 1-128 letters and digits"


def test_without_the_invoke_permission_iot_cannot_call_the_function(tmp_path: Path) -> None:
    with LocalRuntime(assembly(tmp_path, permission=False)) as runtime:
        headers = {"x-device-token": "good-token", "x-amz-customauthorizer-signature": signature("good-token")}
        decision = runtime.authorize("devices", Connection("http", headers=headers))
    assert not decision.allowed and decision.invocation is None
    assert "no AWS::Lambda::Permission lets iot.amazonaws.com invoke" in decision.reason


def test_an_unknown_authorizer_name_lists_the_known_ones(tmp_path: Path) -> None:
    from local_runtime import LocalRuntimeError

    with LocalRuntime(assembly(tmp_path)) as runtime:
        with pytest.raises(LocalRuntimeError, match=r"No custom authorizer 'other' in the stack \(it has: devices\)"):
            runtime.authorize("other", Connection("http"))


def test_the_command_line_connects_through_the_authorizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from local_runtime.__main__ import main

    root = assembly(tmp_path, signing=False)
    args = ["authorize", "devices", "--assembly", str(root), "--client-id", "d1", "--username", "d1"]
    assert main([*args, "--password", "open sesame"]) == 0
    assert "ALLOWED: authenticated" in capsys.readouterr().out
    assert main([*args, "--password", "wrong"]) == 1
    assert "DENIED: the function denied it" in capsys.readouterr().out
