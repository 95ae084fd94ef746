"""Minting a device token: a JWT whose subject is the device's client ID, and the signature IoT checks
before it invokes the authorizer (token signing): base64 of SHA256withRSA over the token's exact text.

ES256 signatures are minted canonical (low S): ECDSA's s is random, and the authorizer accepts only the one
of s and n - s that is at most n/2 (the other spelling of the same signature)."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from device_tokens.keys import SIGNING_PRIVATE_KEY, TokenToolError, load_private_key, load_signing_key

# A client ID the device policy can name: the thing-name alphabet (no '/', '+', '#', '*' or '$'), as onboarding.
CLIENT_ID = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 30 * 24 * 3600
# The order n of P-256's group (SEC 2, secp256r1): ES256 signs with it.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class MintedToken:
    token: str  # the JWT
    signature: str | None  # base64 SHA256withRSA over `token` with the token-signing key; None without that key
    claims: dict[str, Any]
    kid: str
    algorithm: str


def sign_jwt(claims: dict[str, Any], key: Any, algorithm: str, headers: dict[str, Any]) -> str:
    """The compact JWT of `claims`, signed with `key`; with ES256, the low-S spelling of its signature."""
    token = jwt.encode(claims, key, algorithm=algorithm, headers=headers)
    if algorithm != "ES256":
        return token
    signing_input, signature = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    s = int.from_bytes(raw[32:], "big")
    if s <= P256_ORDER // 2:
        return token
    low = raw[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return f"{signing_input}.{base64.urlsafe_b64encode(low).rstrip(b'=').decode()}"


def sign_for_iot(token: str, signing_key: rsa.RSAPrivateKey) -> str:
    """What IoT's token signing verifies with the authorizer's TokenSigningPublicKeys (as
    `echo -n TOKEN | openssl dgst -sha256 -sign key.pem | openssl base64 -A`)."""
    signature = signing_key.sign(token.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def mint(
    keys: Path,
    client_id: str,
    *,
    ttl_seconds: int = 3600,
    issuer: str = "device-backend",
    audience: str = "iot",
    now: int | None = None,
    with_signature: bool = True,
) -> MintedToken:
    """A token for `client_id` valid from `now` for `ttl_seconds`, signed with the keys in `keys`."""
    if not CLIENT_ID.fullmatch(client_id):
        raise TokenToolError(
            f"client ID {client_id!r} is not 1-128 of a-z, A-Z, 0-9, ':', '_' and '-' (it names the device's topics)"
        )
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        raise TokenToolError(f"the lifetime must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} seconds, not {ttl_seconds}")
    key, algorithm, kid = load_signing_key(keys)
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    token = sign_jwt(claims, key, algorithm, {"kid": kid})
    signature = None
    if with_signature:
        signing_key = load_private_key(keys / SIGNING_PRIVATE_KEY, "token-signing key")
        if not isinstance(signing_key, rsa.RSAPrivateKey):
            raise TokenToolError(f"{keys / SIGNING_PRIVATE_KEY} is not an RSA key; IoT token signing uses RSA")
        signature = sign_for_iot(token, signing_key)
    return MintedToken(token=token, signature=signature, claims=claims, kid=kid, algorithm=algorithm)
