"""`python -m device_tokens`: keys and device tokens for the app's custom authorizer (development and tests).

    keys --out DIR [--algorithm ES256|RS256|EdDSA] [--signing-key-name NAME]
        DIR/jwt-private.pem (0600) and DIR/jwks.json: the JWT signing key pair (the JWKS carries a kid);
        DIR/token-signing-private.pem (0600) and DIR/token-signing-public.pem: IoT's token-signing RSA 2048 pair;
        prints the cdk.json context that deploys the authorizer with them.
    mint --keys DIR --client-id NAME [--ttl 3600] [--issuer ISS] [--audience AUD] [--json]
        prints the token (a JWT for that client ID), its signature for IoT token signing, and how real
        clients (mosquitto_pub, curl) present them.

Exit status: 0 done; 2 the request cannot be done (no keys in DIR, keys already there, a bad client ID or
lifetime), with the reason on stderr. Private keys go to files with mode 0600 and are never printed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from device_tokens.keys import ALGORITHMS, JWT_PRIVATE_KEY, SIGNING_PRIVATE_KEY, TokenToolError, create_keys
from device_tokens.tokens import mint

PROJECT = Path(__file__).resolve().parents[1]  # where cdk.json is: the configuration's paths are relative to it
# The app's defaults (stacks/config.py AuthorizerConfig, namePrefix): tests/tokens checks they stay in step.
DEFAULT_AUTHORIZER_NAME = "iot_backend_devices"
DEFAULT_TOKEN_KEY_NAME = "x-device-token"
DEFAULT_ISSUER = "device-backend"
DEFAULT_AUDIENCE = "iot"
ENDPOINT_LOOKUP = (
    "IOT_ENDPOINT=$(aws iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text)"
)


def _config_path(path: Path) -> str:
    """A path as the configuration reads it: relative to the project when inside it, else absolute."""
    absolute = path.resolve()
    return str(absolute.relative_to(PROJECT)) if absolute.is_relative_to(PROJECT) else str(absolute)


def _keys(args: argparse.Namespace) -> None:
    files = create_keys(args.out, args.algorithm)
    signing_key_name = args.signing_key_name or f"signing-{datetime.now(timezone.utc):%Y-%m-%d}"
    print(f"JWT signing key ({files.algorithm}, kid {files.kid}): {args.out / JWT_PRIVATE_KEY} (secret: it mints tokens)")
    print(f"its public key (JWKS): {files.jwks}")
    print(f"token-signing key (RSA 2048): {args.out / SIGNING_PRIVATE_KEY} (secret: it signs tokens for IoT)")
    print(f"its public key: {files.signing_public_key}")
    print('set in cdk.json "context" (or pass each with -c key=value):')
    context = {
        "deviceBackend.authorizer.enabled": True,
        "deviceBackend.authorizer.jwtKeys": _config_path(files.jwks),
        "deviceBackend.authorizer.jwtAlgorithm": files.algorithm,
        "deviceBackend.authorizer.tokenSigningPublicKeys": {signing_key_name: _config_path(files.signing_public_key)},
    }
    for key, value in context.items():
        print(f"  {json.dumps(key)}: {json.dumps(value)},")
    print(f"then mint a token with: python -m device_tokens mint --keys {args.out} --client-id <thing name>")


def _mint(args: argparse.Namespace) -> None:
    minted = mint(
        args.keys,
        args.client_id,
        ttl_seconds=args.ttl,
        issuer=args.issuer,
        audience=args.audience,
        with_signature=not args.no_signature,
    )
    expires = datetime.fromtimestamp(minted.claims["exp"], timezone.utc).isoformat()
    if args.json:
        print(json.dumps({"clientId": args.client_id, "token": minted.token, "signature": minted.signature,
                          "expiresAt": expires, "kid": minted.kid, "algorithm": minted.algorithm}))  # fmt: skip
        return
    print(f"client ID: {args.client_id}")
    print(f"expires: {expires}")
    print(f"token: {minted.token}")
    if minted.signature is not None:
        print(f"signature: {minted.signature}")
    _print_usage(args, minted.token, minted.signature)


def _print_usage(args: argparse.Namespace, token: str, signature: str | None) -> None:
    """Shell lines that connect with the token: variables first, so each command stays readable."""
    client, name, key_name = args.client_id, quote(args.authorizer_name, safe=""), args.token_key_name
    topic = args.topic.replace("{clientId}", client)
    message = shlex.quote('{"hello": "world"}')
    mqtt = f'mosquitto_pub -h "$IOT_ENDPOINT" -p 443 --tls-alpn mqtt --capath /etc/ssl/certs -i {shlex.quote(client)}'
    print()
    print("try it (custom authentication: MQTT on port 443 with ALPN mqtt, HTTPS on port 443):")
    print(f"  {ENDPOINT_LOOKUP}")
    print(f"  TOKEN={shlex.quote(token)}")
    if signature is not None:
        print(f"  SIGNATURE={shlex.quote(signature)}")
        print(f"  SIGNATURE_URL={shlex.quote(quote(signature, safe=''))}  # URL-encoded, for a query string")
        print("  # MQTT with IoT token signing on: the token and its signature in the username's query string")
        username = (
            f"{client}?x-amz-customauthorizer-name={name}&x-amz-customauthorizer-signature=$SIGNATURE_URL"
            f"&{quote(key_name, safe='')}=$TOKEN"
        )
        print(f'  {mqtt} -u "{username}" -t {shlex.quote(topic)} -m {message}')
    print("  # MQTT with token signing off (tokenSigningDisabled): the token as the password")
    print(f'  {mqtt} -u "{client}?x-amz-customauthorizer-name={name}" -P "$TOKEN" -t {shlex.quote(topic)} -m {message}')
    print("  # HTTPS publish")
    headers = [f"x-amz-customauthorizer-name: {args.authorizer_name}", f"{key_name}: $TOKEN"]
    if signature is not None:
        headers.append("x-amz-customauthorizer-signature: $SIGNATURE")
    print(
        f'  curl --fail-with-body -X POST "https://$IOT_ENDPOINT/topics/{quote(topic, safe="/")}?qos=1" '
        + " ".join(f'-H "{header}"' for header in headers)
        + f" -d {message}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device_tokens",
        description="Keys and device tokens for the custom authorizer (development and tests, not production).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="make the JWT signing key pair and IoT's token-signing key pair")
    keys.add_argument("--out", type=Path, required=True, help="directory for the keys (must not hold keys yet)")
    keys.add_argument("--algorithm", choices=ALGORITHMS, default="ES256", help="JWT algorithm (default ES256)")
    keys.add_argument(
        "--signing-key-name", help="name of the token-signing key in the authorizer (default signing-<today>)"
    )
    keys.set_defaults(run=_keys)

    mint_ = commands.add_parser("mint", help="a device token and its signature for IoT token signing")
    mint_.add_argument("--keys", type=Path, required=True, help="the directory `keys --out` wrote")
    mint_.add_argument("--client-id", required=True, help="the device's MQTT client ID (its thing name)")
    mint_.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    mint_.add_argument("--issuer", default=DEFAULT_ISSUER, help=f"iss claim (default {DEFAULT_ISSUER})")
    mint_.add_argument("--audience", default=DEFAULT_AUDIENCE, help=f"aud claim (default {DEFAULT_AUDIENCE})")
    mint_.add_argument("--no-signature", action="store_true", help="no IoT token signature (signing disabled)")
    mint_.add_argument(
        "--authorizer-name", default=DEFAULT_AUTHORIZER_NAME, help=f"for the examples (default {DEFAULT_AUTHORIZER_NAME})"
    )
    mint_.add_argument(
        "--token-key-name", default=DEFAULT_TOKEN_KEY_NAME, help=f"for the examples (default {DEFAULT_TOKEN_KEY_NAME})"
    )
    mint_.add_argument("--topic", default="dt/demo/{clientId}/telemetry", help="for the examples")
    mint_.add_argument("--json", action="store_true", help="print one JSON object (token, signature, ...) only")
    mint_.set_defaults(run=_mint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except TokenToolError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a directory that cannot be written or read
        print(f"{parser.prog}: error: {error.strerror}: {error.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
