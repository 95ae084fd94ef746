"""More than one environment: `deviceBackend.stage` names the stack and every name the app sets, so that two
stages deploy into one account side by side; the stack's account and region come from the CLI's
CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION, and without them it stays environment-agnostic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import STACK_NAME, build_app
from tests.conftest import ROOT, authorizer_context

# Every kind of resource the app names itself, with the property that holds the name: a test below proves
# the list complete (no other literal name in the templates).
NAMED_TYPES = {
    "AWS::IoT::TopicRule": "RuleName",
    "AWS::IoT::Policy": "PolicyName",
    "AWS::IoT::ThingGroup": "ThingGroupName",
    "AWS::IoT::ProvisioningTemplate": "TemplateName",
    "AWS::IoT::Authorizer": "AuthorizerName",
    "AWS::IoT::DomainConfiguration": "DomainConfigurationName",
    "AWS::IoT::MitigationAction": "ActionName",
    "AWS::IoT::ScheduledAudit": "ScheduledAuditName",
    "AWS::SSM::Parameter": "Name",
}
# Literal `...Name` properties that are not the resource's own name in an account: labels, the metric an alarm
# watches, a role's inline policy (its name is the role's own), the request field carrying a device's token.
NOT_NAMES = {
    ("AWS::SNS::Topic", "DisplayName"),
    ("AWS::CloudWatch::Alarm", "MetricName"),
    ("AWS::IAM::Policy", "PolicyName"),
    ("AWS::IoT::Authorizer", "TokenKeyName"),
}


def _synth_stage(keys: Path, stage: str) -> tuple[dict, dict]:
    """The app with every named part on (authorizer with its domain, Device Defender), as `cdk synth` writes
    it with the cdk-nag checks; into build/ so that the dependency layer is built once, not per run."""
    outdir = ROOT / "build" / f"test.cdk.out.stage_{stage}"
    context = {**authorizer_context(keys, defaultForDomain=True), "deviceBackend.stage": stage}
    build_app(context=context, outdir=str(outdir)).synth()
    manifest = json.loads((outdir / "manifest.json").read_text())
    [(artifact_id, artifact)] = [(i, a) for i, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"]
    template = json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
    return {"id": artifact_id, **artifact}, template


@pytest.fixture(scope="module")
def stages(authorizer_keys: Path) -> dict[str, tuple[dict, dict]]:
    return {stage: _synth_stage(authorizer_keys, stage) for stage in ("dev", "prod")}


def _literal_names(template: dict) -> dict[tuple[str, str], str]:
    """(logical id, property) -> value, for every top-level property named like a name that holds a literal."""
    return {
        (logical_id, key): value
        for logical_id, resource in template["Resources"].items()
        for key, value in resource.get("Properties", {}).items()
        if (key == "Name" or key.endswith("Name")) and isinstance(value, str) and (resource["Type"], key) not in NOT_NAMES
    }


def test_a_stage_names_the_stack(stages):
    assert {stage: artifact["id"] for stage, (artifact, _) in stages.items()} == {
        "dev": "DeviceBackend-dev",
        "prod": "DeviceBackend-prod",
    }


def test_two_stages_share_no_name_in_one_account(stages):
    names = {stage: _literal_names(template) for stage, (_, template) in stages.items()}

    assert set(names["dev"].values()).isdisjoint(names["prod"].values())
    # Each name carries its stage, and every kind the app names is there to be compared.
    dev, prod = stages["dev"][1], stages["prod"][1]
    for resource_type, key in NAMED_TYPES.items():
        named = [r["Properties"][key] for r in dev["Resources"].values() if r["Type"] == resource_type]
        assert named, f"no {resource_type} in the synthesized stage"
        assert all(name.startswith(("iot_backend_dev_", "/iot_backend_dev/")) for name in named), named
    assert {(dev["Resources"][lid]["Type"], key) for lid, key in names["dev"]} == set(NAMED_TYPES.items())
    assert set(names["dev"]) == set(names["prod"])  # the same resources, named apart


def test_two_stages_keep_their_metrics_apart(stages):
    def namespaces(template: dict) -> set[str]:
        return {
            r["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function" and "POWERTOOLS_METRICS_NAMESPACE" in r["Properties"].get("Environment", {}).get("Variables", {})
        }

    assert namespaces(stages["dev"][1]) == {"IotDeviceBackend/dev"}
    assert namespaces(stages["prod"][1]) == {"IotDeviceBackend/prod"}


def test_without_a_stage_the_names_stay_those_of_the_single_environment(stages, template, cloud_assembly):
    manifest = json.loads((cloud_assembly / "manifest.json").read_text())
    assert [i for i, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"] == [STACK_NAME]
    default, dev = _literal_names(template), _literal_names(stages["dev"][1])
    assert default and set(default) <= set(dev)
    assert default == {where: dev[where].replace("iot_backend_dev", "iot_backend", 1) for where in default}


def test_a_stage_the_names_cannot_carry_fails_synth_naming_the_key(tmp_path):
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match="'deviceBackend.stage' is 'Dev-1'; it must be 1-16 lowercase letters or digits"):
        build_app(context={"deviceBackend.stage": "Dev-1"}, outdir=str(tmp_path))


def _environment_of_synth(outdir: Path, **variables: str) -> str:
    """`python app.py` as the CLI runs it (with or without the account and region it resolved): the stack's
    environment in the assembly."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    environment |= {"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps({"aws:cdk:bundling-stacks": []}), **variables}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads((outdir / "manifest.json").read_text())["artifacts"][STACK_NAME]["environment"]


def test_the_stack_targets_the_account_and_region_the_cli_resolved(tmp_path):
    environment = _environment_of_synth(tmp_path, CDK_DEFAULT_ACCOUNT="123456789012", CDK_DEFAULT_REGION="eu-central-1")
    assert environment == "aws://123456789012/eu-central-1"


def test_without_an_account_the_stack_is_environment_agnostic(tmp_path):
    assert _environment_of_synth(tmp_path / "none") == "aws://unknown-account/unknown-region"
    # Without credentials the CLI still sets its default region: the template stays agnostic all the same.
    assert _environment_of_synth(tmp_path / "region", CDK_DEFAULT_REGION="us-east-1") == "aws://unknown-account/unknown-region"
