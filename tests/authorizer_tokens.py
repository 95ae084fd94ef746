"""Device tokens for the authorizer's tests: keys made per test session (only their public halves are ever in a
JWKS), tokens signed with them, the samples' public JWKS, and the checks every policy document must pass.

The samples in events/authorize_device/ were signed once with a key that is not in the repository; their
public JWKS is events/authorize_device/jwks.json. Their signatures are low-S, except high_s_signature's (the
twin of mqtt_username_password's). Tests that need new tokens sign them with device_key() here, low-S as
device_tokens mints them.
"""

from __future__ import annotations

import base64
import json
import re
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from authorize_device.models import Settings
from device_tokens.tokens import P256_ORDER, sign_jwt
from events import EVENTS_DIR

SAMPLES = EVENTS_DIR / "authorize_device"
SAMPLE_JWKS = (SAMPLES / "jwks.json").read_text()
SAMPLE_KID = json.loads(SAMPLE_JWKS)["keys"][0]["kid"]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
ISSUER = "device-backend"
AUDIENCE = "iot"
TOKEN_KEY_NAME = "x-device-token"
NOW = 1_800_000_000.0  # 2027-01-15: a fixed clock for the logic's tests
TOPICS = {
    "publish": ["dt/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
    "subscribe": ["cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
    "receive": ["cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
}
DEVICE_KID = "device-key-1"
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493  # RFC 8032, L
# What the stack gives the function (stacks/authorizer), with the samples' values.
ENVIRONMENT = {
    "TOKEN_KEYS_PARAMETER": "/iot_backend/authorizer/token-keys",
    "TOKEN_ALGORITHM": "ES256",
    "TOKEN_ISSUER": ISSUER,
    "TOKEN_AUDIENCE": AUDIENCE,
    "CLOCK_SKEW_SECONDS": "60",
    "KEYS_REFRESH_SECONDS": "300",
    "TOKEN_KEY_NAME": TOKEN_KEY_NAME,
    "DEVICE_TOPICS": json.dumps(TOPICS),
}
SAMPLE_OUTCOMES = {
    "mqtt_username_password": ("Authorized", "sensor-0001"),
    "http_header": ("Authorized", "sensor-0002"),
    "query_string": ("Authorized", "sensor-0003"),
    "websocket": ("Authorized", "sensor-0004"),
    "mqtt_username_query": ("Authorized", "sensor-0005"),
    "format_2018": ("Authorized", "sensor-0006"),
    "expired": ("DeniedExpired", None),
    "tampered": ("DeniedBadSignature", None),
    "high_s_signature": ("DeniedNonCanonicalSignature", None),  # mqtt_username_password's token, s' = n - s
    "wrong_client_id": ("DeniedClientIdMismatch", None),
    "alg_none": ("DeniedWrongAlgorithm", None),
    "missing_fields": ("DeniedNoToken", None),
    "oversized": ("DeniedOversized", None),
}


def settings(**overrides: Any) -> Settings:
    values = dict(
        region=REGION,
        keys_parameter=ENVIRONMENT["TOKEN_KEYS_PARAMETER"],
        algorithm="ES256",
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=60,
        keys_refresh_seconds=300,
        token_key_name=TOKEN_KEY_NAME,
        topics=tuple((kind, tuple(templates)) for kind, templates in TOPICS.items()),
        policy_refresh_seconds=3600,
    )
    return Settings(**{**values, **overrides})


@lru_cache(maxsize=None)
def device_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@lru_cache(maxsize=None)
def attacker_key() -> ec.EllipticCurvePrivateKey:
    """A key that is in no JWKS: what an attacker signs with."""
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", **extra}


def device_jwks() -> str:
    """The JWKS of device_key(): public only."""
    return json.dumps({"keys": [public_jwk(device_key(), DEVICE_KID)]})


def claims(sub: str = "sensor-0001", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": int(NOW) - 60,
        "nbf": int(NOW) - 60,
        "exp": int(NOW) + 7 * 86_400,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def mint(
    sub: str = "sensor-0001",
    *,
    key: Any = None,
    kid: str | None = DEVICE_KID,
    algorithm: str = "ES256",
    **claim_overrides: Any,
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return sign_jwt(claims(sub, **claim_overrides), key or device_key(), algorithm, headers)


def with_signature(token: str, signature: bytes) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64url(signature)}"


def high_s_twin(token: str) -> str:
    """The same ES256 token with its signature respelled (r, n - s): what OpenSSL verifies just as well."""
    raw = unb64url(token.split(".")[2])
    return with_signature(token, raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big"))


def eddsa_twin(token: str) -> str:
    """The same EdDSA token with its signature's S respelled S + L (L the order of Ed25519's group)."""
    raw = unb64url(token.split(".")[2])
    return with_signature(token, raw[:32] + (int.from_bytes(raw[32:], "little") + ED25519_ORDER).to_bytes(32, "little"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def mqtt_request(token: str, client_id: str | None = "sensor-0001") -> dict[str, Any]:
    mqtt: dict[str, Any] = {"username": "device?x-amz-customauthorizer-name=devices", "password": base64.b64encode(token.encode()).decode()}
    if client_id is not None:
        mqtt["clientId"] = client_id
    return {
        "signatureVerified": False,
        "protocols": ["tls", "mqtt"],
        "protocolData": {"tls": {"serverName": "example-ats.iot.eu-west-1.amazonaws.com"}, "mqtt": mqtt},
        "connectionMetadata": {"id": "c0ffee00-0000-4000-8000-000000000001"},
    }


# --- what every returned policy document must be -----------------------------------------------------------------

ALLOWED_ACTIONS = {"iot:Connect": "client", "iot:Publish": "topic", "iot:Subscribe": "topicfilter", "iot:Receive": "topic"}


def assert_valid_answer(answer: dict[str, Any], client_id: str, region: str = REGION, account: str = ACCOUNT) -> None:
    """An allowing answer as AWS IoT accepts it, whose policy lets `client_id` connect as itself only."""
    assert answer["isAuthenticated"] is True
    assert set(answer) <= {"isAuthenticated", "principalId", "policyDocuments", "disconnectAfterInSeconds", "refreshAfterInSeconds", "context"}
    assert re.fullmatch(r"[a-zA-Z0-9]{1,128}", answer["principalId"])
    assert 300 <= answer["refreshAfterInSeconds"] <= 86_400
    assert 300 <= answer["disconnectAfterInSeconds"] <= 86_400
    assert answer["refreshAfterInSeconds"] <= answer["disconnectAfterInSeconds"]
    documents = answer["policyDocuments"]
    assert isinstance(documents, list) and 1 <= len(documents) <= 10
    connect_resources: list[str] = []
    for text in documents:
        assert isinstance(text, str)
        assert len("".join(text.split())) <= 2048
        document = json.loads(text)
        assert set(document) == {"Version", "Statement"} and document["Version"] == "2012-10-17"
        assert isinstance(document["Statement"], list) and document["Statement"]
        for statement in document["Statement"]:
            assert set(statement) == {"Effect", "Action", "Resource"} and statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert actions and resources
            for action in actions:
                assert action in ALLOWED_ACTIONS, action
                for resource in resources:
                    prefix = f"arn:aws:iot:{region}:{account}:{ALLOWED_ACTIONS[action]}/"
                    assert resource.startswith(prefix), resource
                    rest = resource[len(prefix) :]
                    assert "+" not in rest and "#" not in rest and "${" not in rest
                    if action == "iot:Connect":
                        connect_resources.append(rest)
                    else:
                        assert client_id in rest.split("/"), resource
    assert connect_resources == [client_id]
