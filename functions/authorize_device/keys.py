"""The operator's public keys that verify device tokens: a JWKS, kept in an SSM parameter (String), loaded once
per container and refreshed after a bounded time.

- Cold start: one GetParameter. The keys are then used from memory: no AWS call on the request path.
- After `refresh_seconds`, the next request refreshes them (one GetParameter, on that request only).
- A refresh that fails (SSM error or timeout, a parameter that is not a usable JWKS) keeps the keys in use
  for at most one more period, with attempts at most every `retry_seconds`; after that, and whenever no key
  was ever loaded, there are no keys and every request is denied (missing configuration).

Only keys for the pinned algorithm are kept: ES256 needs an EC P-256 key, RS256 an RSA key of 2048 bits or
more, EdDSA an Ed25519 key. A key whose `use` is not `sig`, whose `alg` names another algorithm, or that holds
private material (`d`) is skipped: what verifies a token is public. Nothing here logs or raises key material.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Mapping, NamedTuple

import jwt

# What each algorithm needs of a JWK: its kty, and its crv where the kty has curves.
_KEY_TYPES = {"ES256": ("EC", "P-256"), "RS256": ("RSA", None), "EdDSA": ("OKP", "Ed25519")}
MIN_RSA_BITS = 2048
MAX_RETRY_SECONDS = 30


class KeysUnavailable(Exception):
    """The JWKS cannot be used; the message is a fixed text that names no key material."""


class KeySet(NamedTuple):
    by_id: Mapping[str, Any]  # kid -> the public key object PyJWT verifies with
    only: Any | None  # the key a token without a `kid` uses: the set's only key, else None
    skipped: int  # keys of the JWKS not usable with the algorithm


def parse_jwks(text: str | bytes, algorithm: str) -> KeySet:
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        raise KeysUnavailable("the keys parameter is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeysUnavailable('the keys parameter is not a JWKS (an object with a "keys" list)')
    kty, crv = _KEY_TYPES[algorithm]
    by_id: dict[str, Any] = {}
    usable: list[Any] = []
    skipped = 0
    for jwk in keys:
        key = _public_key(jwk, algorithm, kty, crv)
        if key is None:
            skipped += 1
            continue
        usable.append(key)
        kid = jwk.get("kid")
        if isinstance(kid, str) and kid:
            if kid in by_id:
                raise KeysUnavailable("the JWKS has two keys with one kid")
            by_id[kid] = key
    if not usable:
        raise KeysUnavailable(f"the JWKS has no public key for {algorithm}")
    return KeySet(by_id, usable[0] if len(usable) == 1 else None, skipped)


def _public_key(jwk: Any, algorithm: str, kty: str, crv: str | None) -> Any | None:
    if not isinstance(jwk, dict) or jwk.get("kty") != kty or "d" in jwk:
        return None
    if crv is not None and jwk.get("crv") != crv:
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", algorithm) != algorithm:
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
    except Exception:  # a malformed key (its message may quote the key: not kept)
        return None
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        return None
    return key


class KeyStore:
    def __init__(
        self,
        fetch: Callable[[], str],
        algorithm: str,
        refresh_seconds: float,
        *,
        on_failure: Callable[[str], None] = lambda detail: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch, self._algorithm, self._refresh = fetch, algorithm, refresh_seconds
        self._on_failure, self._clock = on_failure, clock
        self._retry = min(MAX_RETRY_SECONDS, refresh_seconds)
        self._keys: KeySet | None = None
        self._loaded_at = -math.inf
        self._next_attempt = -math.inf
        self.loads = 0  # successful loads, for tests and logs
        self.failures = 0

    def load(self) -> bool:
        """One attempt now (the cold start's); never raises. True when keys were loaded."""
        return self._attempt(self._clock())

    def current(self) -> KeySet | None:
        """The keys to verify with now, or None (deny: missing configuration)."""
        now = self._clock()
        if self._keys is not None and now - self._loaded_at < self._refresh:
            return self._keys
        if now >= self._next_attempt:
            self._attempt(now)
        if self._keys is not None and now - self._loaded_at < 2 * self._refresh:
            return self._keys
        return None

    def _attempt(self, now: float) -> bool:
        try:
            keys = parse_jwks(self._fetch(), self._algorithm)
        except KeysUnavailable as error:
            return self._failed(now, str(error))
        except Exception as error:  # an AWS error or timeout; its type and code, not its message
            response = getattr(error, "response", None)
            code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
            return self._failed(now, f"loading the keys failed: {type(error).__name__}{f' ({code})' if code else ''}")
        self._keys, self._loaded_at, self._next_attempt = keys, now, -math.inf
        self.loads += 1
        return True

    def _failed(self, now: float, detail: str) -> bool:
        self._next_attempt = now + self._retry
        self.failures += 1
        self._on_failure(detail)
        return False


def ssm_parameter(ssm: Any, name: str) -> Callable[[], str]:
    """Reads the parameter's value (a String parameter holding the JWKS)."""

    def fetch() -> str:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]

    return fetch
