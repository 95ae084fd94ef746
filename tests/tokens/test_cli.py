"""`python -m device_tokens` end to end in temporary directories: the keys it writes, the context it prints (which
the app's configuration accepts), the token and signature it prints (never a private key), and its errors (exit 2)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from device_tokens import __main__ as cli
from device_tokens.__main__ import main
from stacks.config import AuthorizerConfig, BackendConfig, load_config
from tests.tokens.test_tokens import verify_iot_signature, verify_jwt

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """The CLI in this process (fast): its exit status, stdout and stderr."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def printed_context(out: str) -> dict:
    lines = [line.strip().rstrip(",") for line in out.splitlines() if line.startswith('  "deviceBackend.')]
    return json.loads("{" + ",".join(lines) + "}")


def no_private_key_in(*texts: str) -> bool:
    return not any("PRIVATE KEY" in text for text in texts)


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "keys"
    assert run(capsys, "keys", "--out", directory)[0] == 0
    return directory


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_keys_prints_the_context_that_enables_the_authorizer_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str
) -> None:
    directory = tmp_path / "keys"

    status, out, err = run(capsys, "keys", "--out", directory, "--algorithm", algorithm, "--signing-key-name", "k1")

    assert (status, err) == (0, "")
    assert no_private_key_in(out)
    for name, file_mode in [("jwt-private.pem", 0o600), ("token-signing-private.pem", 0o600),
                            ("jwks.json", 0o644), ("token-signing-public.pem", 0o644)]:  # fmt: skip
        assert stat.S_IMODE((directory / name).stat().st_mode) == file_mode
    context = printed_context(out)
    assert context == {
        "deviceBackend.authorizer.enabled": True,
        "deviceBackend.authorizer.jwtKeys": str(directory / "jwks.json"),  # outside the project: absolute
        "deviceBackend.authorizer.jwtAlgorithm": algorithm,
        "deviceBackend.authorizer.tokenSigningPublicKeys": {"k1": str(directory / "token-signing-public.pem")},
    }
    settings = load_config(context).authorizer  # what the printed context configures
    assert settings.enabled and settings.jwt_algorithm == algorithm
    assert settings.jwt_keys == (directory / "jwks.json").read_text()
    assert settings.token_signing_public_keys == (("k1", (directory / "token-signing-public.pem").read_text()),)


def test_keys_inside_the_project_are_given_relative_to_it(capsys: pytest.CaptureFixture[str]) -> None:
    directory = ROOT / "build" / "test.device_tokens"
    shutil.rmtree(directory, ignore_errors=True)

    status, out, _ = run(capsys, "keys", "--out", directory)

    assert status == 0
    assert printed_context(out)["deviceBackend.authorizer.jwtKeys"] == "build/test.device_tokens/jwks.json"
    assert re.search(r'"signing-\d{4}-\d{2}-\d{2}": "build/test\.device_tokens/token-signing-public\.pem"', out)


def test_mint_prints_a_token_and_its_signature_that_verify(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "--ttl", "600",
                           "--issuer", "factory", "--audience", "fleet")  # fmt: skip

    assert (status, err) == (0, "")
    assert no_private_key_in(out)
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    signature = re.search(r"^signature: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    claims = verify_jwt(keys, token, algorithm="ES256", issuer="factory", audience="fleet")
    assert claims["sub"] == "sensor-1" and claims["exp"] - claims["iat"] == 600
    verify_iot_signature(keys, token, signature)


def test_mint_shows_how_clients_present_the_token(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "--authorizer-name", "fleet_devices",
                         "--token-key-name", "x-token")  # fmt: skip

    assert status == 0
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    signature = re.search(r"^signature: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    # The shell variables the example commands use, as a shell would expand them.
    variables = dict(re.findall(r"^  (TOKEN|SIGNATURE|SIGNATURE_URL)=(\S+)", out, re.MULTILINE))
    assert variables["TOKEN"] == token and variables["SIGNATURE"].strip("'") == signature
    mqtt_signed, mqtt_password = [line for line in out.splitlines() if line.lstrip().startswith("mosquitto_pub")]
    assert "-p 443 --tls-alpn mqtt" in mqtt_signed and "-i sensor-1" in mqtt_signed
    username = re.search(r'-u "([^"]+)"', mqtt_signed).group(1)  # type: ignore[union-attr]
    username = username.replace("$SIGNATURE_URL", variables["SIGNATURE_URL"].strip("'")).replace("$TOKEN", token)
    name, _, query = username.partition("?")
    parameters = parse_qs(query, strict_parsing=True)
    assert name == "sensor-1"
    assert parameters == {
        "x-amz-customauthorizer-name": ["fleet_devices"],
        "x-amz-customauthorizer-signature": [signature],  # URL-decoding gives the base64 back
        "x-token": [token],
    }
    assert '-u "sensor-1?x-amz-customauthorizer-name=fleet_devices" -P "$TOKEN"' in mqtt_password
    (curl,) = [line for line in out.splitlines() if line.lstrip().startswith("curl")]
    assert '"https://$IOT_ENDPOINT/topics/dt/demo/sensor-1/telemetry?qos=1"' in curl
    for header in ("x-amz-customauthorizer-name: fleet_devices", "x-token: $TOKEN",
                   "x-amz-customauthorizer-signature: $SIGNATURE"):  # fmt: skip
        assert f'-H "{header}"' in curl


def test_mint_json_is_one_object_for_scripts(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "--json")

    assert status == 0
    minted = json.loads(out)
    assert set(minted) == {"clientId", "token", "signature", "expiresAt", "kid", "algorithm"}
    verify_jwt(keys, minted["token"], algorithm="ES256")
    verify_iot_signature(keys, minted["token"], minted["signature"])


def test_mint_without_signature_for_an_authorizer_with_signing_off(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "--no-signature")

    assert status == 0
    assert not re.search(r"^signature:", out, re.MULTILINE) and "x-amz-customauthorizer-signature" not in out
    assert '-P "$TOKEN"' in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("mint", "--keys", "{missing}", "--client-id", "sensor-1"), "no JWT signing key at {missing}/jwt-private.pem"),
        (("mint", "--keys", "{keys}", "--client-id", "a/b"), "client ID 'a/b' is not 1-128 of"),
        (("mint", "--keys", "{keys}", "--client-id", "sensor-1", "--ttl", "10"), "the lifetime must be 60 to"),
        (("keys", "--out", "{keys}"), "already holds keys"),
        (("mint", "--keys", "{keys}/jwks.json", "--client-id", "sensor-1"), "no JWT signing key at"),
        (("keys", "--out", "{keys}/jwks.json/sub"), "Not a directory"),
        (("keys", "--out", "{keys}x", "--algorithm", "HS256"), "invalid choice: 'HS256'"),
        (("mint", "--keys", "{keys}", "--client-id", "sensor-1", "--ttl", "soon"), "invalid int value: 'soon'"),
    ],
)
def test_errors_exit_2_with_a_message_and_print_nothing(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    values = {"keys": str(keys), "missing": str(tmp_path / "missing")}

    status, out, err = run(capsys, *(arg.format(**values) for arg in argv))

    assert (status, out) == (2, "")
    assert message.format(**values) in err and err.startswith(("python -m device_tokens: error:", "usage:"))


def test_a_jwks_that_is_not_one_is_an_error(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (keys / "jwks.json").write_text("not json")

    status, _, err = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1")

    assert status == 2 and f"{keys / 'jwks.json'} is not a JWKS" in err


def test_the_example_defaults_are_the_apps_defaults() -> None:
    defaults = AuthorizerConfig()
    assert cli.DEFAULT_TOKEN_KEY_NAME == defaults.token_key_name
    assert (cli.DEFAULT_ISSUER, cli.DEFAULT_AUDIENCE) == (defaults.jwt_issuer, defaults.jwt_audience)
    assert cli.DEFAULT_AUTHORIZER_NAME == f"{BackendConfig().name_prefix}_devices"


def test_python_dash_m_runs_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "device_tokens", "keys", "--out", str(tmp_path / "k")],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "device_tokens", "mint", "--keys", str(tmp_path / "k")],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "--client-id" in result.stderr
