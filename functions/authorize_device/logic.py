"""Whether a connection may proceed, as whom, with which policy and for how long: plain values in, a Decision out.

A device presents a JWT signed by the operator (see keys.py for the keys):

    header   {"alg": <the pinned algorithm>, "kid": <a key of the JWKS>, "typ": "JWT" (optional)}
    claims   sub  the device's client ID (= its thing name), [a-zA-Z0-9:_-]{1,128}
             exp  required; nbf, iat optional (numbers, seconds since the epoch)
             iss  = the configured issuer; aud = the configured audience (or a list holding it)

Checked, in this order, every failure a denial with its own reason: the token's form (three canonical base64url
segments, RFC 7515: no padding, no other alphabet, no spare bits; so there is exactly one spelling of a valid
token), the algorithm (exactly the pinned one: `none`, HS256 and the rest are refused before any key is used),
the signature's encoding (ES256: r and s in [1, n-1] and s at most n/2, the one spelling of each ECDSA signature;
its twin with s' = n - s verifies just as well, and is refused), the key (`kid`, or the set's only key), the
signature, the claims (`iss`, `aud`, types), the times (with the
configured clock skew), the subject (a client ID a policy ARN can hold) and, over MQTT, that the connection's
client ID is the token's subject (compared in constant time).

The answer's policy allows only what that one device needs: `iot:Connect` as its own client ID, and
publish / subscribe / receive on the configured topic templates with `{clientId}` replaced by it. Its principal
ID is the SHA-256 of the client ID in hex: alphanumeric, 64 characters, one per device. It stays connected
until the token expires at the latest (`disconnectAfterInSeconds` = min(exp - now, 24 h)) and the policy is
refreshed (IoT invokes the authorizer again) every `policy_refresh_seconds`, never past that: a token that has
less than 300 s left (AWS's minimum for both) is denied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any, Iterable

import jwt

from authorize_device.keys import KeySet
from authorize_device.models import (
    ALGORITHMS,
    AUTHORIZED,
    CLIENT_ID,
    DENIED_ALGORITHM,
    DENIED_AUDIENCE,
    DENIED_CLIENT_ID,
    DENIED_CLIENT_MISMATCH,
    DENIED_CONFIGURATION,
    DENIED_EXPIRED,
    DENIED_EXPIRES_SOON,
    DENIED_INVALID_TOKEN,
    DENIED_ISSUER,
    DENIED_MALFORMED_TOKEN,
    DENIED_MISSING_CLAIM,
    DENIED_NO_TOKEN,
    DENIED_NONCANONICAL_SIGNATURE,
    DENIED_NOT_YET_VALID,
    DENIED_POLICY_SIZE,
    DENIED_SIGNATURE,
    DENIED_UNKNOWN_KEY,
    MAX_TOKEN_LENGTH,
    AuthorizationRequest,
    Decision,
    Refusal,
    Settings,
    VerifiedToken,
)

# AWS's bounds of disconnectAfterInSeconds and refreshAfterInSeconds.
MIN_SECONDS = 300
MAX_SECONDS = 86_400
# AWS's limits of the policy documents an authorizer returns.
MAX_POLICY_DOCUMENTS = 10
MAX_POLICY_CHARACTERS = 2048  # each, without whitespace
POLICY_VERSION = "2012-10-17"
# The resource type of each action's ARN.
RESOURCE_TYPES = {"iot:Connect": "client", "iot:Publish": "topic", "iot:Subscribe": "topicfilter", "iot:Receive": "topic"}
TOPIC_ACTIONS = {"publish": "iot:Publish", "subscribe": "iot:Subscribe", "receive": "iot:Receive"}
SIGNATURE_BYTES = {"ES256": 64, "EdDSA": 64}  # RS256's is the key's size: checked by the verification
# The order n of P-256's group (SEC 2, secp256r1). An ES256 signature is r || s, 32 bytes each, big-endian.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# Signature, `iss`, `aud` and the types of `sub` / `jti` are PyJWT's to check; the times are checked here,
# against the decision's own clock, with stricter types (PyJWT accepts "123" as a time).
_JWT = jwt.PyJWT(
    {
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_iss": True,
        "verify_aud": True,
        "verify_sub": True,
        "verify_jti": True,
        "require": ["exp", "iss", "aud", "sub"],
    }
)
_JWS = jwt.PyJWS()


def deny(reason: str, detail: str, client_id: str | None = None) -> Decision:
    return Decision(allowed=False, reason=reason, detail=detail, client_id=client_id)


def decide(
    request: AuthorizationRequest, keys: KeySet | None, settings: Settings, account: str, now: float
) -> Decision:
    """The decision on one connection. Never raises for anything a request can hold."""
    shown = request.client_id if _loggable(request.client_id) else None  # for the log line of a denial
    if request.token is None:
        return deny(DENIED_NO_TOKEN, "the request carries no token", shown)
    if keys is None:
        return deny(DENIED_CONFIGURATION, "no keys to verify tokens with", shown)
    try:
        token = verify_token(request.token, keys, settings, now)
        client_id = connection_client_id(request, token)
        seconds_left = math.floor(token.expires_at - now)
        if seconds_left < MIN_SECONDS:
            raise Refusal(DENIED_EXPIRES_SOON, f"the token expires in less than {MIN_SECONDS} s")
        disconnect_after = min(seconds_left, MAX_SECONDS)
        refresh_after = min(settings.policy_refresh_seconds, disconnect_after)
        documents = policy_documents(client_id, settings.region, account, settings.topics)
    except Refusal as refusal:
        return deny(refusal.reason, refusal.detail, shown)
    return Decision(
        allowed=True,
        reason=AUTHORIZED,
        detail=f"token of {client_id}",
        client_id=client_id,
        principal_id=principal_id(client_id),
        policy_documents=documents,
        disconnect_after_seconds=disconnect_after,
        refresh_after_seconds=refresh_after,
        context={"clientId": client_id},
        key_id=token.key_id,
    )


def verify_token(token: str, keys: KeySet, settings: Settings, now: float) -> VerifiedToken:
    """The token's verified subject and expiry; raises Refusal with the reason of the first check that fails."""
    signature = _canonical_segments(token)
    try:
        header = _JWS.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Refusal(DENIED_MALFORMED_TOKEN, "the token's header is not a JSON object") from None
    if header.get("alg") != settings.algorithm:
        raise Refusal(DENIED_ALGORITHM, f"the token is not signed with {settings.algorithm}")
    if "crit" in header:
        raise Refusal(DENIED_MALFORMED_TOKEN, "the token's header has critical extensions")
    if header.get("typ", "JWT") not in ("JWT", "jwt"):
        raise Refusal(DENIED_MALFORMED_TOKEN, "the token's typ is not JWT")
    if not signature or len(signature) != SIGNATURE_BYTES.get(settings.algorithm, len(signature)):
        raise Refusal(DENIED_SIGNATURE, f"the signature is not one of {settings.algorithm}")
    if settings.algorithm == "ES256" and not _low_s(signature):
        raise Refusal(DENIED_NONCANONICAL_SIGNATURE, "the signature is not ES256's canonical (low-S) encoding")
    key_id = header.get("kid")
    key = keys.only if key_id is None else keys.by_id.get(key_id)
    if key is None:
        raise Refusal(DENIED_UNKNOWN_KEY, "no key of the JWKS has the token's kid" if key_id else "the token has no kid")
    try:
        claims = _JWT.decode(
            token,
            key,
            algorithms=[settings.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
        )
    except jwt.InvalidSignatureError:
        raise Refusal(DENIED_SIGNATURE, "the signature does not verify") from None
    except jwt.InvalidAlgorithmError:
        raise Refusal(DENIED_ALGORITHM, f"the token is not signed with {settings.algorithm}") from None
    except jwt.MissingRequiredClaimError as error:
        raise Refusal(DENIED_MISSING_CLAIM, f"the token has no {error.claim}") from None
    except jwt.InvalidIssuerError:
        raise Refusal(DENIED_ISSUER, "the token's iss is not the configured issuer") from None
    except jwt.InvalidAudienceError:
        raise Refusal(DENIED_AUDIENCE, "the token's aud is not the configured audience") from None
    except jwt.DecodeError:
        raise Refusal(DENIED_MALFORMED_TOKEN, "the token's claims are not a JSON object") from None
    except jwt.InvalidTokenError as error:  # sub / jti types, and anything newer PyJWT checks
        raise Refusal(DENIED_INVALID_TOKEN, f"the token is invalid ({type(error).__name__})") from None
    expires_at = _time_claim(claims, "exp")
    not_before = _time_claim(claims, "nbf")
    issued_at = _time_claim(claims, "iat")
    leeway = settings.leeway_seconds
    if expires_at is None:
        raise Refusal(DENIED_MISSING_CLAIM, "the token has no exp")
    if now >= expires_at + leeway:
        raise Refusal(DENIED_EXPIRED, "the token has expired")
    if not_before is not None and now < not_before - leeway:
        raise Refusal(DENIED_NOT_YET_VALID, "the token is not valid yet (nbf)")
    if issued_at is not None and now < issued_at - leeway:
        raise Refusal(DENIED_NOT_YET_VALID, "the token is issued in the future (iat)")
    subject = claims["sub"]
    if not CLIENT_ID.fullmatch(subject):
        raise Refusal(DENIED_CLIENT_ID, "the token's sub is not a client ID a policy can name ([a-zA-Z0-9:_-]{1,128})")
    return VerifiedToken(subject=subject, expires_at=expires_at, key_id=key_id if isinstance(key_id, str) else None)


def connection_client_id(request: AuthorizationRequest, token: VerifiedToken) -> str:
    """The client ID the policy is for: the token's subject, which an MQTT connection's client ID must equal.
    Without an MQTT client ID (HTTP, a WebSocket upgrade) the policy is the subject's all the same: it allows
    iot:Connect only as that client ID."""
    if request.client_id is not None and not hmac.compare_digest(
        request.client_id.encode("utf-8", "surrogatepass"), token.subject.encode()
    ):
        raise Refusal(DENIED_CLIENT_MISMATCH, "the connection's client ID is not the token's sub")
    return token.subject


def principal_id(client_id: str) -> str:
    """[a-zA-Z0-9]{1,128}, one per client ID: the hex SHA-256 of its UTF-8 bytes (64 characters)."""
    return hashlib.sha256(client_id.encode()).hexdigest()


def policy_documents(
    client_id: str, region: str, account: str, topics: Iterable[tuple[str, Iterable[str]]]
) -> tuple[str, ...]:
    """The device's policy as compact JSON documents: one when it fits in AWS's 2,048 characters, else split by
    statement resources over as few as needed, at most 10 (Refusal beyond: the topic configuration is too big)."""
    prefix = f"arn:aws:iot:{region}:{account}:"
    grants: list[tuple[str, str]] = [("iot:Connect", f"{prefix}client/{client_id}")]
    for kind, templates in topics:
        action = TOPIC_ACTIONS[kind]
        for template in templates:
            grants.append((action, f"{prefix}{RESOURCE_TYPES[action]}/{template.replace('{clientId}', client_id)}"))
    whole = _document(grants)
    if _policy_size(whole) <= MAX_POLICY_CHARACTERS:
        return (whole,)
    documents: list[str] = []
    current: list[tuple[str, str]] = []
    for grant in grants:
        if current and _policy_size(_document([*current, grant])) > MAX_POLICY_CHARACTERS:
            documents.append(_document(current))
            current = []
        current.append(grant)
    documents.append(_document(current))
    if len(documents) > MAX_POLICY_DOCUMENTS or any(_policy_size(d) > MAX_POLICY_CHARACTERS for d in documents):
        raise Refusal(DENIED_POLICY_SIZE, "the device's policy does not fit in 10 documents of 2,048 characters")
    return tuple(documents)


def _document(grants: list[tuple[str, str]]) -> str:
    by_action: dict[str, list[str]] = {}
    for action, resource in grants:
        by_action.setdefault(action, []).append(resource)
    statements = [{"Effect": "Allow", "Action": action, "Resource": resources} for action, resources in by_action.items()]
    return json.dumps({"Version": POLICY_VERSION, "Statement": statements}, separators=(",", ":"))


def _policy_size(document: str) -> int:
    """The length AWS limits: without whitespace."""
    return len("".join(document.split()))


def _canonical_segments(token: str) -> bytes:
    """The decoded signature of a compact JWS whose three segments are canonical base64url (the signature's may
    be empty here: the algorithm is checked first, and then an empty signature is a bad one); Refusal otherwise."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Refusal(DENIED_MALFORMED_TOKEN, f"the token is longer than {MAX_TOKEN_LENGTH} characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise Refusal(DENIED_MALFORMED_TOKEN, "the token is not three dot-separated segments (a compact JWS)")
    decoded = b""
    for position, segment in enumerate(segments):
        if (not segment and position < 2) or len(segment) % 4 == 1 or not _B64URL.issuperset(segment):
            raise Refusal(DENIED_MALFORMED_TOKEN, "a segment of the token is not base64url without padding")
        decoded = urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if urlsafe_b64encode(decoded).rstrip(b"=").decode() != segment:  # spare bits set: a second spelling
            raise Refusal(DENIED_MALFORMED_TOKEN, "a segment of the token is not canonical base64url")
    return decoded


def _low_s(signature: bytes) -> bool:
    """Whether r || s is canonical: OpenSSL verifies (r, s) and (r, n - s) alike, so without this check a token
    would have a second spelling. (EdDSA needs none: OpenSSL refuses an Ed25519 S that is not below the
    group's order, the one way to respell it.)"""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return 0 < r < P256_ORDER and 0 < s <= P256_ORDER // 2


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refusal(DENIED_INVALID_TOKEN, f"the token's {name} is not a number of seconds")
    return float(value)


def _loggable(client_id: str | None) -> bool:
    return client_id is not None and CLIENT_ID.fullmatch(client_id) is not None


def account_of(function_arn: str | None) -> str | None:
    """The account ID of a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)."""
    parts = (function_arn or "").split(":")
    account = parts[4] if len(parts) >= 6 and parts[0] == "arn" else ""
    return account if len(account) == 12 and account.isdigit() else None


def load_settings(environment: dict[str, str] | Any) -> Settings:
    """The settings from the environment the stack gives the function; Refusal (missing configuration) naming
    the variable when one is missing or wrong."""
    def required(name: str) -> str:
        value = environment.get(name, "")
        if not value:
            raise Refusal(DENIED_CONFIGURATION, f"{name} is not set")
        return value

    def number(name: str, default: int, low: int, high: int) -> int:
        raw = environment.get(name, "")
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise Refusal(DENIED_CONFIGURATION, f"{name} is not a whole number") from None
        if not low <= value <= high:
            raise Refusal(DENIED_CONFIGURATION, f"{name} is not within {low}-{high}")
        return value

    algorithm = required("TOKEN_ALGORITHM")
    if algorithm not in ALGORITHMS:
        raise Refusal(DENIED_CONFIGURATION, f"TOKEN_ALGORITHM is not one of {', '.join(ALGORITHMS)}")
    return Settings(
        region=required("AWS_REGION"),
        keys_parameter=required("TOKEN_KEYS_PARAMETER"),
        algorithm=algorithm,
        issuer=required("TOKEN_ISSUER"),
        audience=required("TOKEN_AUDIENCE"),
        leeway_seconds=number("CLOCK_SKEW_SECONDS", 60, 0, 300),
        keys_refresh_seconds=number("KEYS_REFRESH_SECONDS", 300, 1, 86_400),
        token_key_name=required("TOKEN_KEY_NAME"),
        topics=parse_topics(required("DEVICE_TOPICS")),
        policy_refresh_seconds=number("POLICY_REFRESH_SECONDS", 3600, MIN_SECONDS, MAX_SECONDS),
    )


def parse_topics(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """DEVICE_TOPICS: {"publish": [...], "subscribe": [...], "receive": [...]}, templates holding {clientId},
    IoT policy wildcards (*) allowed, MQTT's (+ #) not: in a policy they are literal characters."""
    try:
        value = json.loads(text)
    except ValueError:
        raise Refusal(DENIED_CONFIGURATION, "DEVICE_TOPICS is not JSON") from None
    if not isinstance(value, dict) or set(value) != set(TOPIC_ACTIONS):
        raise Refusal(DENIED_CONFIGURATION, "DEVICE_TOPICS must have exactly publish, subscribe and receive")
    for templates in value.values():
        if not isinstance(templates, list) or not all(
            isinstance(t, str) and "{clientId}" in t and not set(t) & {"+", "#"} and 0 < len(t) <= 256
            for t in templates
        ):
            raise Refusal(DENIED_CONFIGURATION, "DEVICE_TOPICS templates must hold {clientId} and no + or #")
    return tuple((kind, tuple(value[kind])) for kind in TOPIC_ACTIONS)
