"""`python -m device_tokens` end to end in temporary directories: the keys it writes, the context it prints (which
the app's configuration accepts), the token and signature it prints (never a private key), and its errors (exit 2)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from device_tokens import __main__ as cli
from device_tokens.__main__ import main
from stacks.config import AuthorizerConfig, load_config
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


def try_it(out: str) -> dict[str, list[list[str]]]:
    """What the printed "try it" lines run, as a shell runs them: each command's arguments after the shell's
    quoting and expansion (bash, with mosquitto_pub, curl, python and aws as functions that print them)."""
    lines = out.split("try it", 1)[1].splitlines()[1:]
    assert lines and all(line.startswith("  ") for line in lines)
    script = "\n".join([
        'aws() { echo example-ats.iot.eu-west-1.amazonaws.com; }',
        *(f'{command}() {{ printf "{command}\\0"; printf "%s\\0" "$@"; printf "\\n"; }}'
          for command in ("mosquitto_pub", "curl", "python")),
        *lines,
    ])  # fmt: skip
    result = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, check=True)
    commands: dict[str, list[list[str]]] = {}
    for line in result.stdout.splitlines():
        command, *arguments = line.rstrip("\0").split("\0")
        commands.setdefault(command, []).append(arguments)
    return commands


def option(arguments: list[str], name: str) -> str:
    return arguments[arguments.index(name) + 1]


def test_mint_shows_how_clients_present_the_token_on_the_apps_topics(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "--kind", "soil",
                         "-c", "deviceBackend.namePrefix=fleet", "-c", "deviceBackend.authorizer.tokenKeyName=x-token",
                         "-c", "deviceBackend.telemetry.application=greenhouse")  # fmt: skip

    assert status == 0
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    signature = re.search(r"^signature: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    commands = try_it(out)
    signed, password = commands["mosquitto_pub"]
    assert signed[:8] == ["-h", "example-ats.iot.eu-west-1.amazonaws.com", "-p", "443", "--tls-alpn", "mqtt",
                          "--capath", "/etc/ssl/certs"]  # fmt: skip
    assert option(signed, "-i") == "sensor-1" and "-P" not in signed
    name, _, query = option(signed, "-u").partition("?")
    assert name == "sensor-1"
    assert parse_qs(query, strict_parsing=True) == {
        "x-amz-customauthorizer-name": ["fleet_devices"],
        "x-amz-customauthorizer-signature": [signature],  # URL-decoding gives the base64 back
        "x-token": [token],
    }
    assert (option(password, "-u"), option(password, "-P")) == ("sensor-1?x-amz-customauthorizer-name=fleet_devices", token)
    (curl,) = commands["curl"]
    assert "https://example-ats.iot.eu-west-1.amazonaws.com/topics/dt/greenhouse/sensor-1/soil?qos=1" in curl
    headers = [value for flag, value in zip(curl, curl[1:]) if flag == "-H"]
    assert headers == ["x-amz-customauthorizer-name: fleet_devices", f"x-token: {token}",
                       f"x-amz-customauthorizer-signature: {signature}"]  # fmt: skip
    assert option(signed, "-t") == option(password, "-t") == "dt/greenhouse/sensor-1/soil"
    readings = [json.loads(option(signed, "-m")), json.loads(option(password, "-m")), json.loads(option(curl, "-d"))]
    assert readings[0] == readings[1] == readings[2] and set(readings[0]) == {"ts", "moisture", "temperature"}
    (local,) = commands["python"]
    assert local == ["-m", "local_runtime", "authorize", "fleet_devices", "--client-id", "sensor-1",
                     "--username", option(signed, "-u")]  # fmt: skip


def test_mint_takes_the_stage_issuer_and_audience_from_the_configuration(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "mint", "--keys", keys, "--client-id", "sensor-1", "-c", "deviceBackend.stage=dev",
                         "-c", "deviceBackend.authorizer.jwtIssuer=factory")  # fmt: skip

    assert status == 0
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    verify_jwt(keys, token, algorithm="ES256", issuer="factory", audience=AuthorizerConfig().jwt_audience)
    (local,) = try_it(out)["python"]
    assert local[3] == "iot_backend_dev_devices"


def test_the_sample_reading_is_within_the_sensor_range_and_the_thresholds() -> None:
    config = load_config({"deviceBackend.telemetry.thresholds": json.dumps({"environment": {"temperature": {"min": 10, "max": 30}}})})

    reading = cli.sample_reading(config, "environment", 1_000)

    assert reading == {"ts": 1_000, "temperature": 20.0, "humidity": 50.0}  # humidity: its 0-100 % range


def test_the_printed_commands_connect_and_publish_a_reading_the_app_stores(
    authorizer_assembly: Path, authorizer_keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from boto3.dynamodb.types import TypeDeserializer

    from local_runtime import LocalRuntime
    from local_runtime.authorizers import Connection

    status, out, _ = run(capsys, "mint", "--keys", authorizer_keys, "--client-id", "sensor-1")
    assert status == 0
    commands = try_it(out)
    signed = commands["mosquitto_pub"][0]
    (curl,) = commands["curl"]
    headers = dict(header.split(": ", 1) for flag, header in zip(curl, curl[1:]) if flag == "-H")
    (local,) = commands["python"]

    with LocalRuntime(authorizer_assembly) as runtime:
        over_mqtt = runtime.authorize(local[3], Connection("mqtt", option(signed, "-i"), option(signed, "-u")))
        over_https = runtime.authorize(headers["x-amz-customauthorizer-name"], Connection("http", headers=headers))
        runtime.publish(option(signed, "-t"), option(signed, "-m").encode(), client_id=option(signed, "-i"))
        runtime.drain()
        [table] = [r.logical_id for r in runtime.cloud.created if r.type == "AWS::DynamoDB::Table" and "Telemetry/Latest" in r.label]
        items = runtime.cloud.client("dynamodb").scan(TableName=runtime.cloud.physical[table].ref)["Items"]

    assert over_mqtt.allowed and over_https.allowed, (over_mqtt.reason, over_https.reason)
    assert over_mqtt.invocation is not None
    topic_arn = f"topic/{option(signed, '-t')}"
    statements = [s for document in over_mqtt.invocation.result["policyDocuments"] for s in json.loads(document)["Statement"]]
    assert any(
        statement["Effect"] == "Allow" and "iot:Publish" in statement["Action"]
        and any(fnmatch(topic_arn, resource.split(":", 5)[5]) for resource in statement["Resource"])
        for statement in statements
    )  # fmt: skip
    stored = [{name: TypeDeserializer().deserialize(value) for name, value in item.items()} for item in items]
    reading = json.loads(option(signed, "-m"))
    assert [(item["thingName"], item["kind"]) for item in stored] == [("sensor-1", "environment")]
    assert stored[0]["ts"] == reading.pop("ts")
    assert {measure: float(value) for measure, value in stored[0]["reading"].items()} == reading


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
        (("mint", "--keys", "{keys}", "--client-id", "sensor-1", "-c", "deviceBackend.stage"), "-c takes KEY=VALUE"),
        (("mint", "--keys", "{keys}", "--client-id", "sensor-1", "-c", "deviceBackend.stage=Dev"),
         "the app's configuration: Context key 'deviceBackend.stage' is 'Dev'"),
        (("mint", "--keys", "{keys}", "--client-id", "sensor-1", "--kind", "telemetry"), "invalid choice: 'telemetry'"),
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


def test_python_dash_m_runs_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "device_tokens", "keys", "--out", str(tmp_path / "k")],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "device_tokens", "mint", "--keys", str(tmp_path / "k")],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "--client-id" in result.stderr
