"""Device tokens for the custom authorizer, for tests and for trying real clients (not a production issuer):
the key pairs (JWT signing key and JWKS; IoT's token-signing RSA key pair) and minted tokens with their
signature for IoT token signing.

    from device_tokens import create_keys, mint
    create_keys(Path("tokens"), "ES256")
    minted = mint(Path("tokens"), "sensor-1", ttl_seconds=3600)
    minted.token, minted.signature

The same from a shell: `python -m device_tokens --help`.
"""

from __future__ import annotations

from device_tokens.keys import ALGORITHMS, KeyFiles, TokenToolError, create_keys, public_jwk, thumbprint
from device_tokens.tokens import MintedToken, mint, sign_for_iot

__all__ = [
    "ALGORITHMS",
    "KeyFiles",
    "MintedToken",
    "TokenToolError",
    "create_keys",
    "mint",
    "public_jwk",
    "sign_for_iot",
    "thumbprint",
]
