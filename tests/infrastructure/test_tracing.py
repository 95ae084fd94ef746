"""Lambda active tracing (X-Ray): off by default; on, every function of the app is traced, and its role gains
exactly what X-Ray needs, acknowledged only then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import STACK_NAME, build_app
from tests.infrastructure.conftest import acknowledged_findings, cdk_path, resources
from tests.infrastructure.test_quality_gates import FUNCTIONS

XRAY = {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"}


@pytest.fixture(scope="module")
def traced_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app with tracing on, given as `-c deviceBackend.tracing=true` gives it; checked by cdk-nag."""
    outdir = tmp_path_factory.mktemp("traced")
    build_app(context={"deviceBackend.tracing": "true", "aws:cdk:bundling-stacks": []}, outdir=str(outdir)).synth()
    return outdir


def our_functions(template: dict) -> dict[str, dict]:
    found = {
        cdk_path(f).removeprefix(f"{STACK_NAME}/").removesuffix("/Function/Resource"): f
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Runtime"].startswith("python")
    }
    assert set(found) == set(FUNCTIONS)
    return found


def statements_of_roles(template: dict) -> dict[str, list[dict]]:
    """Every policy statement of each role, by the role's logical id."""
    by_role: dict[str, list[dict]] = {}
    for policy in resources(template, "AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            by_role.setdefault(role["Ref"], []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return by_role


def test_tracing_is_off_by_default_and_no_role_may_write_to_x_ray(template):
    assert not any("TracingConfig" in f["Properties"] for f in resources(template, "AWS::Lambda::Function").values())
    assert "xray:" not in json.dumps(resources(template, "AWS::IAM::Policy"))


def test_on_every_function_is_traced_and_its_role_may_send_segments_and_nothing_else_more(traced_assembly, template):
    traced = json.loads((traced_assembly / f"{STACK_NAME}.template.json").read_text())
    plain_statements, traced_statements = statements_of_roles(template), statements_of_roles(traced)
    for name, function in our_functions(traced).items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        added = [s for s in traced_statements[role] if s not in plain_statements[role]]
        assert added == [XRAY], name
    # Nothing else changes: the same resources, and only the functions and their policies differ.
    assert set(traced["Resources"]) == set(template["Resources"])


def test_on_the_x_ray_grant_is_acknowledged_on_each_functions_policy_alone(traced_assembly, cloud_assembly):
    added = set(acknowledged_findings(traced_assembly)) - set(acknowledged_findings(cloud_assembly))
    assert added == {
        (f"/{STACK_NAME}/{function}/Role/DefaultPolicy", "Annotation::AwsSolutions-IAM5[Resource::*]")
        for function in FUNCTIONS
    }
