"""Property: a valid device token changed in any way is refused.

Hypothesis tampers a token the authorizer accepts: bytes of its header, claims and signature (as text and as
decoded bytes), its claims (sub, exp, aud, iss, nbf, iat) with the signature kept, its algorithm (none, HMAC
with the public key as the secret: the classic confusion attack, others), its encoding (padding, the standard
base64 alphabet, spare bits, whitespace), truncation, additions, re-signing with a key not in the JWKS. Not one
of them is accepted: only the exact token the operator signed is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from base64 import b64encode
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, assume, given, settings as hypothesis_settings, strategies as st

from authorize_device.keys import parse_jwks
from authorize_device.logic import decide
from authorize_device.models import Refusal, parse_request
from tests.authorizer_tokens import (
    ACCOUNT,
    DEVICE_KID,
    NOW,
    TOKEN_KEY_NAME,
    attacker_key,
    b64url,
    claims,
    device_jwks,
    device_key,
    mint,
    mqtt_request,
    public_jwk,
    settings,
    unb64url,
)

KEYS = parse_jwks(device_jwks(), "ES256")
SETTINGS = settings()
VALID = mint("sensor-0001")
HEADER, PAYLOAD, SIGNATURE = VALID.split(".")
CLAIMS = json.loads(unb64url(PAYLOAD))
PUBLIC_PEM = device_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def accepted(token: str, client_id: str | None = "sensor-0001") -> bool:
    try:
        request = parse_request(mqtt_request(token, client_id), TOKEN_KEY_NAME)
    except Refusal:
        return False
    return decide(request, KEYS, SETTINGS, ACCOUNT, NOW).allowed


def test_the_token_mutated_below_is_accepted_as_it_is():
    assert accepted(VALID)
    assert accepted(VALID, client_id=None)


def _segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


@st.composite
def character_changes(draw: st.DrawFn) -> str:
    position = draw(st.integers(0, len(VALID) - 1))
    replacement = draw(st.sampled_from(B64URL + "=+/.!~ \t%\x00é"))
    return VALID[:position] + replacement + VALID[position + 1 :]


@st.composite
def bit_flips(draw: st.DrawFn) -> str:
    index = draw(st.integers(0, 2))
    raw = bytearray(unb64url(VALID.split(".")[index]))
    position = draw(st.integers(0, len(raw) - 1))
    raw[position] ^= 1 << draw(st.integers(0, 7))
    return _segment(VALID, index, b64url(bytes(raw)))


CLAIM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "sub": st.one_of(st.sampled_from(["sensor-0002", "sensor-00011", "*", "SENSOR-0001", ""]), st.text(max_size=20)),
    "exp": st.one_of(st.integers(int(NOW) - 10**6, int(NOW) + 10**9), st.floats(allow_nan=False), st.text(max_size=5)),
    "aud": st.one_of(st.sampled_from(["iotx", "IOT", ["iot", "x"], ""]), st.text(max_size=10)),
    "iss": st.one_of(st.sampled_from(["device-backend ", "Device-Backend", ""]), st.text(max_size=10)),
    "nbf": st.one_of(st.integers(int(NOW) - 10**6, int(NOW) + 10**6), st.none()),
    "iat": st.integers(0, int(NOW) + 10**6),
    "jti": st.text(max_size=8),
}


@st.composite
def claim_changes(draw: st.DrawFn) -> str:
    """Claims changed (one or several, or removed), the original signature kept."""
    changed = dict(CLAIMS)
    for name in draw(st.lists(st.sampled_from(sorted(CLAIM_VALUES)), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            changed[name] = draw(CLAIM_VALUES[name])
        else:
            changed.pop(name, None)
    assume(changed != CLAIMS)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return _segment(VALID, 1, b64url(json.dumps(changed, separators=separators).encode()))


@st.composite
def algorithm_swaps(draw: st.DrawFn) -> str:
    """Another algorithm in the header; signed with HMAC keyed by the public key in one of its forms, or with
    no signature, or with the original one."""
    algorithm = draw(st.sampled_from(["none", "None", "NONE", "HS256", "HS384", "HS512", "RS256", "PS256", "ES384", "ES512", "EdDSA", "es256", "ES256 ", ""]))
    header = {"alg": algorithm, "kid": DEVICE_KID, "typ": "JWT"}
    if draw(st.booleans()):
        header.pop("kid")
    signing_input = f"{b64url(json.dumps(header).encode())}.{PAYLOAD}"
    secrets = [PUBLIC_PEM, PUBLIC_PEM.strip(), json.dumps(public_jwk(device_key(), DEVICE_KID)).encode(), device_jwks().encode()]
    signature = draw(
        st.one_of(
            st.just(""),
            st.just(SIGNATURE),
            st.sampled_from(secrets).map(lambda secret: b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())),
        )
    )
    return f"{signing_input}.{signature}"


@st.composite
def reencodings(draw: st.DrawFn) -> str:
    """The same bytes spelled differently: padding, the standard alphabet, spare bits, whitespace, case."""
    index = draw(st.integers(0, 2))
    segment = VALID.split(".")[index]
    raw = unb64url(segment)
    kind = draw(st.sampled_from(["padding", "standard", "spare-bits", "whitespace", "percent"]))
    if kind == "padding":
        spelled = b64url(raw) + "=" * draw(st.integers(1, 3))
    elif kind == "standard":
        spelled = b64encode(raw).decode().rstrip("=" if draw(st.booleans()) else "")
        assume(spelled != segment)
    elif kind == "spare-bits":
        spare = (6 - (len(raw) * 8) % 6) % 6
        assume(spare > 0)
        last = B64URL.index(segment[-1])
        spelled = segment[:-1] + B64URL[last ^ draw(st.integers(1, (1 << spare) - 1))]
    elif kind == "whitespace":
        position = draw(st.integers(0, len(segment)))
        spelled = segment[:position] + draw(st.sampled_from([" ", "\n", "\t", "\r\n"])) + segment[position:]
    else:
        position = draw(st.integers(0, len(segment) - 1))
        spelled = segment[:position] + f"%{ord(segment[position]):02X}" + segment[position + 1 :]
    return _segment(VALID, index, spelled)


truncations = st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n])
additions = st.tuples(st.text(min_size=1, max_size=40), st.booleans()).map(
    lambda pair: VALID + pair[0] if pair[1] else pair[0] + VALID
)
resigned = st.builds(
    lambda sub, kid: mint(sub, key=attacker_key(), kid=kid),
    st.sampled_from(["sensor-0001", "sensor-0002"]),
    st.sampled_from([DEVICE_KID, None, "other"]),
)
segment_shuffles = st.permutations(VALID.split(".")).map(".".join)


@hypothesis_settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        character_changes(),
        bit_flips(),
        claim_changes(),
        algorithm_swaps(),
        reencodings(),
        truncations,
        additions,
        resigned,
        segment_shuffles,
    )
)
def test_no_tampered_token_is_accepted(token: str) -> None:
    assume(token != VALID)
    assert not accepted(token)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=130))
def test_the_valid_token_admits_no_other_client_id(client_id: str) -> None:
    assume(client_id != "sensor-0001")
    assert not accepted(VALID, client_id=client_id)


def test_claims_the_issuer_signs_are_what_is_checked():
    # the same claims, signed by the operator's key, are accepted: the mutations above fail for what they change
    assert accepted(mint("sensor-0001", **{k: v for k, v in claims().items() if k != "sub"}))
