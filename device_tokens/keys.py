"""The two key pairs of the custom authorizer, written to one directory:

- the JWT signing key pair: `jwt-private.pem` (0600; whoever mints device tokens keeps it) and `jwks.json` (its
  public key as a JWKS with a `kid`: `deviceBackend.authorizer.jwtKeys`, read by the authorizer function);
- IoT's token-signing key pair: `token-signing-private.pem` (0600; signs each token so that IoT rejects forged
  ones before it invokes the function) and `token-signing-public.pem` (RSA 2048:
  `deviceBackend.authorizer.tokenSigningPublicKeys`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

JWT_PRIVATE_KEY = "jwt-private.pem"
JWKS = "jwks.json"
SIGNING_PRIVATE_KEY = "token-signing-private.pem"
SIGNING_PUBLIC_KEY = "token-signing-public.pem"
ALGORITHMS = ("ES256", "RS256", "EdDSA")  # those the authorizer's configuration allows (jwtAlgorithm)
SIGNING_KEY_BITS = 2048  # IoT verifies token signatures with RSA keys (SHA256withRSA)

_MAKE_KEYS = "make the keys with: python -m device_tokens keys --out "
# RFC 7638: the members of a JWK that its thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


class TokenToolError(Exception):
    """A request the tool cannot carry out; the message says why (and how to fix it)."""


@dataclass(frozen=True)
class KeyFiles:
    directory: Path
    algorithm: str
    kid: str

    @property
    def jwks(self) -> Path:
        return self.directory / JWKS

    @property
    def signing_public_key(self) -> Path:
        return self.directory / SIGNING_PUBLIC_KEY


def _new_jwt_key(algorithm: str) -> PrivateKeyTypes:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise TokenToolError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, str]) -> str:
    """The JWK's RFC 7638 SHA-256 thumbprint: a `kid` that names the key itself."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(private_key: PrivateKeyTypes, algorithm: str) -> dict[str, str]:
    """The public half of `private_key` as a JWK with its `kid`, `alg` and `use`."""
    jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(private_key.public_key(), as_dict=True)  # type: ignore[union-attr]
    jwk = {name: value for name, value in jwk.items() if name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    return {**jwk, "kid": thumbprint(jwk), "alg": algorithm, "use": "sig"}


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Writes atomically; a private file is 0600 from its creation, whatever the umask."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _private_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_keys(directory: Path, algorithm: str = "ES256") -> KeyFiles:
    """Makes both key pairs in `directory` (created if need be); refuses to replace existing keys, since
    tokens already minted and the deployed configuration depend on them."""
    names = (JWT_PRIVATE_KEY, JWKS, SIGNING_PRIVATE_KEY, SIGNING_PUBLIC_KEY)
    existing = [name for name in names if (directory / name).exists()]
    if existing:
        raise TokenToolError(f"{directory} already holds keys ({', '.join(existing)}); use another directory")
    jwt_key = _new_jwt_key(algorithm)
    jwk = public_jwk(jwt_key, algorithm)
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=SIGNING_KEY_BITS)
    directory.mkdir(parents=True, exist_ok=True)
    write_file(directory / JWT_PRIVATE_KEY, _private_pem(jwt_key), private=True)
    write_file(directory / SIGNING_PRIVATE_KEY, _private_pem(signing_key), private=True)
    write_file(
        directory / SIGNING_PUBLIC_KEY,
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    write_file(directory / JWKS, (json.dumps({"keys": [jwk]}, indent=2) + "\n").encode())
    return KeyFiles(directory=directory, algorithm=algorithm, kid=jwk["kid"])


def load_private_key(path: Path, what: str) -> PrivateKeyTypes:
    if not path.is_file():
        raise TokenToolError(f"no {what} at {path}; {_MAKE_KEYS}{path.parent}")
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise TokenToolError(f"{path} is not an unencrypted PEM private key ({error})") from None


def load_signing_key(directory: Path) -> tuple[PrivateKeyTypes, str, str]:
    """The JWT signing key of `directory`, with its algorithm and kid as jwks.json states them."""
    key = load_private_key(directory / JWT_PRIVATE_KEY, "JWT signing key")
    jwks_path = directory / JWKS
    try:
        keys = json.loads(jwks_path.read_text())["keys"]
    except FileNotFoundError:
        raise TokenToolError(f"no {JWKS} in {directory}; {_MAKE_KEYS}{directory}") from None
    except (ValueError, KeyError, TypeError):
        raise TokenToolError(f"{jwks_path} is not a JWKS (JSON with a \"keys\" list)") from None
    for jwk in keys if isinstance(keys, list) else []:
        algorithm = jwk.get("alg") if isinstance(jwk, dict) else None
        if algorithm in ALGORITHMS and _kid_of(key, algorithm) == jwk.get("kid"):
            return key, algorithm, jwk["kid"]
    raise TokenToolError(f"{jwks_path} holds no public key of {directory / JWT_PRIVATE_KEY}")


def _kid_of(key: PrivateKeyTypes, algorithm: str) -> str | None:
    try:
        return public_jwk(key, algorithm)["kid"]
    except (TypeError, ValueError, KeyError, AttributeError, jwt.InvalidKeyError):  # a key of another type
        return None
