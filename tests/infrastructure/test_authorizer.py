"""The custom authorizer as synthesized with `deviceBackend.authorizer.enabled`: the authorizer and its token
signing, who may invoke its function, what the function is given and may do, the domain configuration, the
monitoring; and that the default app (authorizer off) has none of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import STACK_NAME, build_app
from device_tokens import create_keys, mint
from stacks.config import AuthorizerConfig, ConfigError
from tests.conftest import ROOT, authorizer_context
from tests.infrastructure.conftest import acknowledged_findings, find, resources
from tests.infrastructure.test_fleet_provisioning import _grants, _text

FUNCTION = "/Authorizer/AuthorizeDevice/"
AUTHORIZER_TYPES = ("AWS::IoT::Authorizer", "AWS::SSM::Parameter", "AWS::IoT::DomainConfiguration")


@pytest.fixture(scope="module")
def keys(authorizer_keys: Path) -> Path:
    return authorizer_keys


def _context(keys: Path, **settings: object) -> dict:
    return authorizer_context(keys, **settings)


def _synth(name: str, context: dict) -> Path:
    """Synthesized with the cdk-nag checks (an unacknowledged finding fails here), into build/ so that the
    dependency layer is built once, not per run."""
    outdir = ROOT / "build" / f"test.cdk.out.{name}"
    build_app(context=context, outdir=str(outdir)).synth()
    return outdir


@pytest.fixture(scope="module")
def signed_assembly(authorizer_assembly: Path) -> Path:
    return authorizer_assembly


@pytest.fixture(scope="module")
def signed(signed_assembly: Path) -> dict:
    return json.loads((signed_assembly / f"{STACK_NAME}.template.json").read_text())


@pytest.fixture(scope="module")
def unsigned_assembly(keys: Path) -> Path:
    return _synth(
        "authorizer_unsigned",
        _context(
            keys, tokenSigningDisabled=True, tokenSigningPublicKeys={}, defaultForDomain=True, tokenKeyName="tok",
            reservedConcurrency=20,
        ),
    )


@pytest.fixture(scope="module")
def unsigned(unsigned_assembly: Path) -> dict:
    return json.loads((unsigned_assembly / f"{STACK_NAME}.template.json").read_text())


def _authorizer(template: dict) -> tuple[str, dict]:
    return find(template, "AWS::IoT::Authorizer", "/Authorizer/")


def _function(template: dict) -> tuple[str, dict]:
    return find(template, "AWS::Lambda::Function", FUNCTION)


def test_an_active_authorizer_with_token_signing_on_with_the_configured_key(signed, keys):
    function, _ = _function(signed)
    assert _authorizer(signed)[1]["Properties"] == {
        "AuthorizerName": "iot_backend_devices",
        "AuthorizerFunctionArn": {"Fn::GetAtt": [function, "Arn"]},
        "Status": "ACTIVE",
        "SigningDisabled": False,
        "TokenKeyName": "x-device-token",
        "TokenSigningPublicKeys": {"factory-2026": (keys / "token-signing-public.pem").read_text()},
        "EnableCachingForHttp": True,
    }


def test_only_iot_for_this_account_through_this_authorizer_may_invoke_the_function(signed):
    function, _ = _function(signed)
    authorizer, _ = _authorizer(signed)
    permissions = [
        p["Properties"] for p in resources(signed, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function, "Arn"]}
    ]  # fmt: skip
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
            "Principal": "iot.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
            "SourceArn": {"Fn::GetAtt": [authorizer, "Arn"]},
        }
    ]


def test_the_function_gets_its_settings_and_answers_within_iots_limit(signed):
    parameter, _ = find(signed, "AWS::SSM::Parameter", "/Authorizer/TokenKeys/")
    properties = _function(signed)[1]["Properties"]
    variables = properties["Environment"]["Variables"]
    defaults = AuthorizerConfig()
    assert {name: value for name, value in variables.items() if not name.startswith("POWERTOOLS_")} == {
        "TOKEN_KEYS_PARAMETER": {"Ref": parameter},
        "TOKEN_ALGORITHM": "ES256",
        "TOKEN_ISSUER": "device-backend",
        "TOKEN_AUDIENCE": "iot",
        "CLOCK_SKEW_SECONDS": "60",
        "KEYS_REFRESH_SECONDS": "300",
        "TOKEN_KEY_NAME": "x-device-token",
        "DEVICE_TOPICS": variables["DEVICE_TOPICS"],
    }
    assert json.loads(variables["DEVICE_TOPICS"]) == {action: list(t) for action, t in defaults.topics}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "authorize_device"
    assert properties["Handler"] == "authorize_device.handler.handler"
    assert (properties["Runtime"], properties["Architectures"]) == ("python3.13", ["arm64"])
    assert properties["Timeout"] <= 5  # IoT waits 5 s for the answer


def test_the_jwks_is_in_a_parameter_the_function_alone_may_read(signed, keys):
    parameter, resource = find(signed, "AWS::SSM::Parameter", "/Authorizer/TokenKeys/")
    assert resource["Properties"]["Type"] == "String"  # public keys: nothing to encrypt
    assert resource["Properties"]["Value"] == (keys / "jwks.json").read_text()
    assert resource["Properties"]["Name"] == "/iot_backend/authorizer/jwt-keys"
    logs, _ = find(signed, "AWS::Logs::LogGroup", FUNCTION)
    assert _grants(signed, f"{FUNCTION}Role/") == {
        ("logs:CreateLogStream", f"${{{logs}.Arn}}"),
        ("logs:PutLogEvents", f"${{{logs}.Arn}}"),
        ("ssm:GetParameter", f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{parameter}}}"),
    }


def test_a_token_minted_by_the_tool_is_authorized_by_the_function_as_deployed(signed, keys):
    """The function's own decision, with the environment and the keys the template gives it."""
    from authorize_device.keys import parse_jwks
    from authorize_device.logic import decide, load_settings
    from authorize_device.models import parse_request

    variables = _function(signed)[1]["Properties"]["Environment"]["Variables"]
    parameter = find(signed, "AWS::SSM::Parameter", "/Authorizer/TokenKeys/")[1]["Properties"]
    settings = load_settings({**variables, "TOKEN_KEYS_PARAMETER": parameter["Name"], "AWS_REGION": "eu-west-1"})
    key_set = parse_jwks(parameter["Value"], settings.algorithm)
    minted = mint(keys, "sensor-1", ttl_seconds=3600)
    other_keys = keys.parent / "other-keys"
    if not other_keys.exists():
        create_keys(other_keys, "ES256")

    def connect(token: str, client_id: str = "sensor-1"):
        event = {
            "token": token,
            "signatureVerified": True,
            "protocols": ["tls", "mqtt"],
            "protocolData": {"mqtt": {"clientId": client_id, "username": client_id}},
            "connectionMetadata": {"id": "e2d2ba9c-0b53-4a16-9f1d-8a1b8d2f0a53"},
        }
        return decide(parse_request(event, settings.token_key_name), key_set, settings, "123456789012", minted.claims["iat"])

    decision = connect(minted.token)
    assert decision.allowed and decision.client_id == "sensor-1", decision
    assert decision.disconnect_after_seconds <= 3600
    assert not connect(minted.token, client_id="sensor-2").allowed
    assert not connect(mint(other_keys, "sensor-1").token).allowed  # signed by a key not in the JWKS


def test_the_dashboard_graphs_every_outcome_and_an_alarm_watches_for_a_burst_of_denials(signed):
    from authorize_device.models import AUTHORIZED, DENIED

    (dashboard,) = resources(signed, "AWS::CloudWatch::Dashboard").values()
    body = _text(dashboard["Properties"]["DashboardBody"])
    assert "Device authorizations" in body
    for outcome in (AUTHORIZED, *DENIED, "KeysLoadFailed"):
        assert f'"{outcome}"' in body, outcome
    function, _ = _function(signed)
    [burst] = [a["Properties"] for a in resources(signed, "AWS::CloudWatch::Alarm").values() if "Metrics" in a["Properties"]
               and "denied" in a["Properties"]["AlarmDescription"]]  # fmt: skip
    metrics = {m["Id"]: m for m in burst["Metrics"]}
    assert metrics["invocations"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": function}}
    ]
    assert metrics["authorized"]["MetricStat"]["Metric"]["MetricName"] == AUTHORIZED
    [expression] = [m for m in burst["Metrics"] if m.get("ReturnData", True)]
    assert expression["Expression"] == "FILL(invocations, 0) - FILL(authorized, 0)"
    assert burst["Threshold"] >= 10 and burst["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert burst["AlarmActions"] == [{"Ref": next(iter(resources(signed, "AWS::SNS::Topic")))}]


def test_no_domain_configuration_unless_asked(signed):
    assert resources(signed, "AWS::IoT::DomainConfiguration") == {}


def test_signing_is_off_only_with_the_flag_and_synth_then_warns(unsigned, unsigned_assembly):
    properties = _authorizer(unsigned)[1]["Properties"]
    assert properties["SigningDisabled"] is True
    assert "TokenSigningPublicKeys" not in properties
    assert properties["TokenKeyName"] == "tok"
    metadata = json.loads((unsigned_assembly / f"{STACK_NAME}.metadata.json").read_text())
    warnings = [e["data"] for e in metadata.get("/DeviceBackend/Authorizer/Authorizer", []) if e["type"] == "aws:cdk:warning"]
    assert len(warnings) == 1 and "token signing is off" in warnings[0]


def test_the_iot_checks_accept_signing_off_and_no_reserved_concurrency_only_when_the_operator_chose_them(
    signed, signed_assembly, unsigned, unsigned_assembly
):
    path = "/DeviceBackend/Authorizer/Authorizer"
    signed_acknowledged = {rule for where, rule in acknowledged_findings(signed_assembly, "IoT") if where == path}
    unsigned_acknowledged = {rule for where, rule in acknowledged_findings(unsigned_assembly, "IoT") if where == path}
    assert signed_acknowledged == {"Annotation::IoT-AUT3"}
    assert "ReservedConcurrentExecutions" not in _function(signed)[1]["Properties"]
    assert unsigned_acknowledged == {"Annotation::IoT-AUT1"}
    assert _function(unsigned)[1]["Properties"]["ReservedConcurrentExecutions"] == 20


def test_the_default_domain_configuration_uses_only_this_authorizer_once_it_may_be_invoked(unsigned):
    authorizer, _ = _authorizer(unsigned)
    permission, _ = find(unsigned, "AWS::Lambda::Permission", FUNCTION)
    _, domain = find(unsigned, "AWS::IoT::DomainConfiguration", "/Authorizer/")
    assert domain["Properties"] == {
        "DomainConfigurationName": "iot_backend_devices",
        "DomainConfigurationStatus": "ENABLED",
        "ServiceType": "DATA",
        "AuthorizerConfig": {"DefaultAuthorizerName": "iot_backend_devices", "AllowAuthorizerOverride": False},
    }
    assert {authorizer, permission} <= set(domain["DependsOn"])


def test_enabled_without_signing_keys_or_the_flag_fails_synth_clearly(keys, tmp_path):
    context = _context(keys)
    del context["deviceBackend.authorizer.tokenSigningPublicKeys"]
    with pytest.raises(ConfigError, match="tokenSigningPublicKeys.*unless.*tokenSigningDisabled"):
        build_app(context=context, outdir=str(tmp_path))


def test_a_jwks_too_large_for_a_parameter_fails_synth_clearly(keys, tmp_path):
    (jwk,) = json.loads((keys / "jwks.json").read_text())["keys"]
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"keys": [{**jwk, "kid": f"key-{n}"} for n in range(60)]}))
    with pytest.raises(ConfigError, match="SSM parameter holds at most 8192"):
        build_app(context={**_context(keys), "deviceBackend.authorizer.jwtKeys": str(many)}, outdir=str(tmp_path))


def test_the_default_app_has_no_authorizer(template):
    for resource_type in AUTHORIZER_TYPES:
        assert resources(template, resource_type) == {}, resource_type
    handlers = {f["Properties"]["Handler"] for f in resources(template, "AWS::Lambda::Function").values()}
    assert "authorize_device.handler.handler" not in handlers


@pytest.mark.parametrize("assembly", ["signed_assembly", "unsigned_assembly"])
def test_cfn_lint_finds_nothing_in_the_enabled_templates(assembly, request):
    template_path = request.getfixturevalue(assembly) / f"{STACK_NAME}.template.json"
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # reads .cfnlintrc.yaml from the repo root
    result = subprocess.run(
        [str(cfn_lint), "--format", "json", "--", str(template_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stdout + result.stderr


@pytest.mark.parametrize("assembly", ["signed_assembly", "unsigned_assembly"])
def test_the_authorizer_needs_no_cdk_nag_acknowledgement_but_every_functions_runtime(assembly, request):
    acknowledged = acknowledged_findings(request.getfixturevalue(assembly))
    ours = {finding for finding in acknowledged if finding[0].startswith("/DeviceBackend/Authorizer")}
    assert ours == {("/DeviceBackend/Authorizer/AuthorizeDevice/Function", "Annotation::AwsSolutions-L1")}
