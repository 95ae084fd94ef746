"""The token library: the keys it makes, and that a minted token verifies as the authorizer and IoT verify it."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from device_tokens import ALGORITHMS, TokenToolError, create_keys, mint, thumbprint
from device_tokens.tokens import P256_ORDER


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verify_jwt(keys: Path, token: str, *, algorithm: str, issuer: str = "device-backend", audience: str = "iot") -> dict:
    """As the authorizer does: the key named by the token's kid in the JWKS, the algorithm pinned."""
    key_set = jwt.PyJWKSet.from_json((keys / "jwks.json").read_text())
    key = key_set[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(
        token, key, algorithms=[algorithm], issuer=issuer, audience=audience,
        options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
    )  # fmt: skip


def verify_iot_signature(keys: Path, token: str, signature: str) -> None:
    """As IoT's token signing does with the authorizer's TokenSigningPublicKeys: SHA256withRSA over the token."""
    public_key = serialization.load_pem_public_key((keys / "token-signing-public.pem").read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(base64.b64decode(signature, validate=True), token.encode(), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_are_written_private_0600_and_public_with_a_kid(tmp_path: Path, algorithm: str) -> None:
    files = create_keys(tmp_path / "keys", algorithm)

    assert mode(tmp_path / "keys" / "jwt-private.pem") == 0o600
    assert mode(tmp_path / "keys" / "token-signing-private.pem") == 0o600
    assert mode(files.jwks) == 0o644 and mode(files.signing_public_key) == 0o644
    (jwk,) = json.loads(files.jwks.read_text())["keys"]
    assert (jwk["alg"], jwk["use"], jwk["kid"]) == (algorithm, "sig", files.kid)
    assert jwk["kid"] == thumbprint(jwk)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)  # public members only
    signing_public = serialization.load_pem_public_key(files.signing_public_key.read_bytes())
    assert isinstance(signing_public, rsa.RSAPublicKey) and signing_public.key_size == 2048


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 7638, section 3.1: the example RSA key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6"
        "qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awap"
        "JzKnqDKgw",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_minted_token_verifies_with_the_jwks_and_carries_the_claims(tmp_path: Path, algorithm: str) -> None:
    files = create_keys(tmp_path, algorithm)

    minted = mint(tmp_path, "sensor-1", ttl_seconds=900, issuer="factory", audience="iot-eu")

    assert jwt.get_unverified_header(minted.token) == {"alg": algorithm, "kid": files.kid, "typ": "JWT"}
    claims = verify_jwt(tmp_path, minted.token, algorithm=algorithm, issuer="factory", audience="iot-eu")
    assert claims == minted.claims
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("sensor-1", "factory", "iot-eu")
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) == 32 and mint(tmp_path, "sensor-1").claims["jti"] != claims["jti"]
    with pytest.raises(jwt.InvalidAudienceError):
        verify_jwt(tmp_path, minted.token, algorithm=algorithm, issuer="factory", audience="iot")


def test_every_minted_es256_token_has_the_low_s_signature_the_authorizer_accepts(tmp_path: Path) -> None:
    """ECDSA's s is random: unnormalized, about half of these 64 would be high-S (all low: 2**-64)."""
    from authorize_device.keys import parse_jwks
    from authorize_device.logic import decide
    from authorize_device.models import parse_request
    from tests.authorizer_tokens import ACCOUNT, TOKEN_KEY_NAME, mqtt_request, settings

    files = create_keys(tmp_path, "ES256")
    keys = parse_jwks(files.jwks.read_text(), "ES256")
    for _ in range(64):
        minted = mint(tmp_path, "sensor-1", with_signature=False)
        raw = base64.urlsafe_b64decode(minted.token.split(".")[2] + "==")
        assert int.from_bytes(raw[32:], "big") <= P256_ORDER // 2
        verify_jwt(tmp_path, minted.token, algorithm="ES256")
        request = parse_request(mqtt_request(minted.token, "sensor-1"), TOKEN_KEY_NAME)
        assert decide(request, keys, settings(), ACCOUNT, minted.claims["iat"]).allowed


def test_a_token_expires_after_its_lifetime(tmp_path: Path) -> None:
    create_keys(tmp_path)

    minted = mint(tmp_path, "sensor-1", ttl_seconds=60, now=1_700_000_000)

    with pytest.raises(jwt.ExpiredSignatureError):
        verify_jwt(tmp_path, minted.token, algorithm="ES256")
    assert minted.claims["exp"] == 1_700_000_060


def test_the_signature_is_what_iot_token_signing_verifies_and_binds_the_exact_token(tmp_path: Path) -> None:
    create_keys(tmp_path)

    minted = mint(tmp_path, "sensor-1")

    assert minted.signature is not None
    verify_iot_signature(tmp_path, minted.token, minted.signature)
    assert len(base64.b64decode(minted.signature)) == 256  # RSA 2048
    other = mint(tmp_path, "sensor-2")
    with pytest.raises(InvalidSignature):  # a signature does not carry over to another token
        verify_iot_signature(tmp_path, other.token, minted.signature)
    with pytest.raises(InvalidSignature):
        verify_iot_signature(tmp_path, minted.token[:-1] + ("A" if minted.token[-1] != "A" else "B"), minted.signature)


def test_a_token_without_signature_when_asked(tmp_path: Path) -> None:
    create_keys(tmp_path)
    (tmp_path / "token-signing-private.pem").unlink()

    assert mint(tmp_path, "sensor-1", with_signature=False).signature is None
    with pytest.raises(TokenToolError, match="no token-signing key at"):
        mint(tmp_path, "sensor-1")


@pytest.mark.parametrize("client_id", ["", "a/b", "dev+", "dev#", "dev*", "${iot:ClientId}", "x" * 129, "sensör"])
def test_client_ids_a_policy_cannot_name_are_refused(tmp_path: Path, client_id: str) -> None:
    create_keys(tmp_path)

    with pytest.raises(TokenToolError, match="client ID"):
        mint(tmp_path, client_id)


def test_existing_keys_are_never_replaced(tmp_path: Path) -> None:
    create_keys(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(TokenToolError, match="already holds keys"):
        create_keys(tmp_path, "RS256")

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_jwks_of_other_keys_is_refused(tmp_path: Path) -> None:
    create_keys(tmp_path / "a")
    create_keys(tmp_path / "b", "RS256")
    (tmp_path / "a" / "jwks.json").write_text((tmp_path / "b" / "jwks.json").read_text())

    with pytest.raises(TokenToolError, match="holds no public key of"):
        mint(tmp_path / "a", "sensor-1")
