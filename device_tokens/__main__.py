"""`python -m device_tokens`: keys and device tokens for the app's custom authorizer (development and tests).

    keys --out DIR [--algorithm ES256|RS256|EdDSA] [--signing-key-name NAME]
        DIR/jwt-private.pem (0600) and DIR/jwks.json: the JWT signing key pair (the JWKS carries a kid);
        DIR/token-signing-private.pem (0600) and DIR/token-signing-public.pem: IoT's token-signing RSA 2048 pair;
        prints the cdk.json context that deploys the authorizer with them.
    mint --keys DIR --client-id NAME [--ttl 3600] [--issuer ISS] [--audience AUD] [--kind KIND]
         [-c deviceBackend.KEY=VALUE ...] [--json]
        prints the token (a JWT for that client ID), its signature for IoT token signing, and how real
        clients (mosquitto_pub, curl) and the local runtime present them: a reading of KIND published on
        the app's telemetry topic. Names, issuer, audience and topic come from the app's configuration
        (cdk.json, and -c as `cdk -c` gives it, e.g. -c deviceBackend.stage=dev).

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
from typing import Any
from urllib.parse import quote

from device_tokens.keys import ALGORITHMS, JWT_PRIVATE_KEY, SIGNING_PRIVATE_KEY, TokenToolError, create_keys
from device_tokens.tokens import mint
from stacks.config import BackendConfig, ConfigError, load_config
from stacks.function_code import function_module

PROJECT = Path(__file__).resolve().parents[1]  # where cdk.json is: the configuration's paths are relative to it
_kinds = function_module("ingest_telemetry/kinds.py")  # the kinds of readings and their topic, as the app's rules
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


def _app_config(overrides: Sequence[str]) -> BackendConfig:
    """The app's configuration as `cdk synth` reads it: cdk.json's context, then each `-c key=value`."""
    context = json.loads((PROJECT / "cdk.json").read_text()).get("context", {})
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or not key:
            raise TokenToolError(f"-c takes KEY=VALUE, as cdk does; {override!r} is not")
        context[key] = value
    try:
        return load_config(context)
    except ConfigError as error:
        raise TokenToolError(f"the app's configuration: {error}") from None


def sample_reading(config: BackendConfig, kind: str, ts_ms: int) -> dict[str, Any]:
    """A valid reading of `kind` as a device publishes it: each measure in the middle of what the sensor can
    report and the configured thresholds allow, so that it is stored and raises no alert."""
    reading: dict[str, Any] = {"ts": ts_ms}
    limits = config.telemetry.thresholds.get(kind, {})
    for measure, spec in _kinds.KINDS[kind].measures.items():
        low = max(spec.low, limits.get(measure, {}).get("min", spec.low))
        high = min(spec.high, limits.get(measure, {}).get("max", spec.high))
        reading[measure] = round((low + high) / 2, 1)
    return reading


def _mint(args: argparse.Namespace) -> None:
    from stacks.authorizer import authorizer_name  # here: it loads the CDK, which `keys` does not need

    config = _app_config(args.context)
    settings = config.authorizer
    minted = mint(
        args.keys,
        args.client_id,
        ttl_seconds=args.ttl,
        issuer=settings.jwt_issuer if args.issuer is None else args.issuer,
        audience=settings.jwt_audience if args.audience is None else args.audience,
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
    application = config.telemetry.application
    topic = _kinds.telemetry_topic(application, args.client_id, args.kind)
    reading = sample_reading(config, args.kind, minted.claims["iat"] * 1000)
    _print_usage(args.client_id, authorizer_name(config), settings.token_key_name, minted.token, minted.signature,
                 topic, reading)  # fmt: skip


def _print_usage(
    client: str, authorizer: str, key_name: str, token: str, signature: str | None, topic: str, reading: dict[str, Any]
) -> None:
    """Shell lines that connect with the token and publish a reading: variables first, so each command stays
    readable (and a script can take them: `make authorize-demo` does)."""
    named = f"{client}?x-amz-customauthorizer-name=$AUTHORIZER"
    mqtt = f'mosquitto_pub -h "$IOT_ENDPOINT" -p 443 --tls-alpn mqtt --capath /etc/ssl/certs -i {shlex.quote(client)}'
    publish = '-t "$TOPIC" -m "$READING"'
    print()
    print("try it (custom authentication: MQTT on port 443 with ALPN mqtt, HTTPS on port 443):")
    print(f"  {ENDPOINT_LOOKUP}")
    print(f"  AUTHORIZER={shlex.quote(authorizer)}")
    print(f"  TOKEN={shlex.quote(token)}")
    if signature is not None:
        print(f"  SIGNATURE={shlex.quote(signature)}")
        print(f"  SIGNATURE_URL={shlex.quote(quote(signature, safe=''))}  # URL-encoded, for a query string")
        # MQTT with IoT token signing on: the token and its signature in the username's query string
        print(f'  MQTT_USERNAME="{named}&x-amz-customauthorizer-signature=$SIGNATURE_URL&{quote(key_name, safe="")}=$TOKEN"')
    else:
        print(f'  MQTT_USERNAME="{named}"')
    print(f"  TOPIC={shlex.quote(topic)}  # dt/<telemetry.application>/<client ID>/<kind>: its kind's rule reads it")
    print(f"  READING={shlex.quote(json.dumps(reading))}")
    if signature is not None:
        print("  # MQTT with IoT token signing on: the token and its signature in the username's query string")
        print(f'  {mqtt} -u "$MQTT_USERNAME" {publish}')
        print("  # MQTT with token signing off (tokenSigningDisabled): the token as the password")
        print(f'  {mqtt} -u "{named}" -P "$TOKEN" {publish}')
    else:
        print("  # MQTT (token signing off): the token as the password")
        print(f'  {mqtt} -u "$MQTT_USERNAME" -P "$TOKEN" {publish}')
    print("  # HTTPS publish")
    headers = ["x-amz-customauthorizer-name: $AUTHORIZER", f"{key_name}: $TOKEN"]
    if signature is not None:
        headers.append("x-amz-customauthorizer-signature: $SIGNATURE")
    print(
        '  curl --fail-with-body -X POST "https://$IOT_ENDPOINT/topics/$TOPIC?qos=1" '
        + " ".join(f'-H "{header}"' for header in headers)
        + ' -d "$READING"'
    )
    print("  # the same connection through the local runtime, on the app synthesized with this authorizer")
    password = "" if signature is not None else ' --password "$TOKEN"'
    print(f'  python -m local_runtime authorize "$AUTHORIZER" --client-id {shlex.quote(client)} --username "$MQTT_USERNAME"{password}')


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
    mint_.add_argument("--issuer", help="iss claim (default: the configured authorizer.jwtIssuer)")
    mint_.add_argument("--audience", help="aud claim (default: the configured authorizer.jwtAudience)")
    mint_.add_argument("--no-signature", action="store_true", help="no IoT token signature (signing disabled)")
    kinds = list(_kinds.KINDS)
    mint_.add_argument("--kind", choices=kinds, default=kinds[0], help=f"the examples' reading (default {kinds[0]})")
    mint_.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE",
        help="a configuration value over cdk.json, as with cdk -c (e.g. deviceBackend.stage=dev); repeatable",
    )  # fmt: skip
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
