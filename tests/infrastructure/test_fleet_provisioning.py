"""Fleet provisioning as synthesized: the template, its hook, who may invoke the hook, and what the hook and
the provisioning role may do."""

from __future__ import annotations

import json

import pytest

from stacks.config import load_config
from tests.infrastructure.conftest import cdk_path, find, resources

BASE = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}"


def _text(value) -> str:
    """A template value as one string: Fn::Join flattened, Refs as ${...}, GetAtts as ${logicalId.Attr}."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    separator, parts = value["Fn::Join"]
    return separator.join(_text(part) for part in parts)


def _grants(template: dict, role_path: str) -> set[tuple[str, str]]:
    role, _ = find(template, "AWS::IAM::Role", role_path)
    assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    grants = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if not any(r == {"Ref": role} for r in policy["Properties"]["Roles"]):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            grants |= {(action, _text(target)) for action in actions for target in targets}
    return grants


@pytest.fixture(scope="module")
def provisioning(template) -> dict:
    return find(template, "AWS::IoT::ProvisioningTemplate", "/Onboarding/FleetProvisioning/")[1]


@pytest.fixture(scope="module")
def hook(template) -> tuple[str, dict]:
    return find(template, "AWS::Lambda::Function", "/FleetProvisioning/PreProvisioningHook/")


def test_a_fleet_provisioning_template_enabled_with_the_hook(provisioning, hook):
    properties = provisioning["Properties"]
    assert properties["TemplateType"] == "FLEET_PROVISIONING"
    assert properties["TemplateName"] == "iot_backend_fleet"
    assert properties["Enabled"] is True
    assert properties["PreProvisioningHook"] == {
        "TargetArn": {"Fn::GetAtt": [hook[0], "Arn"]},
        "PayloadVersion": "2020-04-01",
    }


def test_the_template_creates_the_thing_in_the_fleet_group_activates_the_certificate_and_attaches_the_shared_policy(
    template, provisioning
):
    body = json.loads(provisioning["Properties"]["TemplateBody"])
    group = find(template, "AWS::IoT::ThingGroup", "/Onboarding/DeviceAccess/")[1]["Properties"]["ThingGroupName"]
    policy = find(template, "AWS::IoT::Policy", "/Onboarding/DeviceAccess/")[1]["Properties"]["PolicyName"]
    assert set(body["Parameters"]) == {"SerialNumber", "AWS::IoT::Certificate::Id", "ThingName", "Model", "Batch"}
    resources_ = body["Resources"]
    assert {name: r["Type"] for name, r in resources_.items()} == {
        "thing": "AWS::IoT::Thing",
        "certificate": "AWS::IoT::Certificate",
        "policy": "AWS::IoT::Policy",
    }
    thing = resources_["thing"]["Properties"]
    assert thing["ThingName"] == {"Ref": "ThingName"}  # always set by the hook, from the allow-list
    assert thing["ThingGroups"] == [group]
    assert thing["AttributePayload"]["serialNumber"] == {"Ref": "SerialNumber"}
    assert len(thing["AttributePayload"]) <= 3  # a thing without a thing type has at most 3 attributes
    assert resources_["certificate"]["Properties"] == {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
        "Status": "ACTIVE",
    }
    assert resources_["policy"]["Properties"] == {"PolicyName": policy}


def test_the_template_is_created_after_the_hook_may_be_invoked_and_the_policy_and_group_exist(template, provisioning):
    permission = find(template, "AWS::Lambda::Permission", "/FleetProvisioning/PreProvisioningHook/")[0]
    policy = find(template, "AWS::IoT::Policy", "/Onboarding/DeviceAccess/")[0]
    group = find(template, "AWS::IoT::ThingGroup", "/Onboarding/DeviceAccess/")[0]
    assert {permission, policy, group} <= set(provisioning["DependsOn"])


def test_only_iot_for_this_account_and_this_template_may_invoke_the_hook(template, hook):
    permissions = [
        p for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [hook[0], "Arn"]}
    ]  # fmt: skip
    assert len(permissions) == 1
    properties = permissions[0]["Properties"]
    assert properties["Action"] == "lambda:InvokeFunction"
    assert properties["Principal"] == "iot.amazonaws.com"
    assert properties["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert _text(properties["SourceArn"]) == f"{BASE}:provisioningtemplate/iot_backend_fleet"


def test_the_hook_may_only_read_the_allow_list_and_write_its_logs(template, hook):
    table, _ = find(template, "AWS::DynamoDB::Table", "/FleetProvisioning/AllowList/")
    logs, _ = find(template, "AWS::Logs::LogGroup", "/FleetProvisioning/PreProvisioningHook/")
    assert _grants(template, "/FleetProvisioning/PreProvisioningHook/Role/") == {
        ("logs:CreateLogStream", f"${{{logs}.Arn}}"),
        ("logs:PutLogEvents", f"${{{logs}.Arn}}"),
        ("dynamodb:GetItem", f"${{{table}.Arn}}"),
    }
    properties = hook[1]["Properties"]
    assert properties["Environment"]["Variables"]["ALLOW_LIST_TABLE"] == {"Ref": table}
    assert properties["Handler"] == "pre_provisioning_hook.handler.handler"
    assert (properties["Runtime"], properties["Architectures"]) == ("python3.13", ["arm64"])
    assert properties["Timeout"] < 5  # IoT stops waiting after 5 s


def test_the_allow_list_is_keyed_by_serial_number_and_backed_up(template):
    properties = find(template, "AWS::DynamoDB::Table", "/FleetProvisioning/AllowList/")[1]["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "serialNumber", "KeyType": "HASH"}]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_provisioning_role_is_assumed_by_iot_and_can_only_build_what_the_template_describes(template, provisioning):
    role_name, role = find(template, "AWS::IAM::Role", "/FleetProvisioning/ProvisioningRole/")
    assert provisioning["Properties"]["ProvisioningRoleArn"] == {"Fn::GetAtt": [role_name, "Arn"]}
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    things, certificates = f"{BASE}:thing/*", f"{BASE}:cert/*"
    group, policy = f"{BASE}:thinggroup/iot_backend_fleet", f"{BASE}:policy/iot_backend_device"
    assert _grants(template, "/FleetProvisioning/ProvisioningRole/") == {
        ("iot:CreateThing", things),
        ("iot:DescribeThing", things),
        ("iot:UpdateThing", things),
        ("iot:AddThingToThingGroup", things),
        ("iot:AddThingToThingGroup", group),
        ("iot:DescribeThingGroup", group),
        ("iot:DescribeCertificate", certificates),
        ("iot:UpdateCertificate", certificates),
        ("iot:AttachThingPrincipal", certificates),
        ("iot:AttachPolicy", certificates),
        ("iot:GetPolicy", policy),
    }


def test_the_claim_policy_only_lets_a_claim_certificate_get_a_certificate_and_provision(template):
    document = find(template, "AWS::IoT::Policy", "/FleetProvisioning/ClaimPolicy")[1]["Properties"]["PolicyDocument"]
    allowed = {
        (statement["Action"], _text(resource))
        for statement in document["Statement"]
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    }
    topics = ["$aws/certificates/create/json", "$aws/certificates/create-from-csr/json",
              "$aws/provisioning-templates/iot_backend_fleet/provision/json"]  # fmt: skip
    assert allowed == (
        {("iot:Connect", f"{BASE}:client/*")}
        | {("iot:Publish", f"{BASE}:topic/{t}") for t in topics}
        | {("iot:Subscribe", f"{BASE}:topicfilter/{t}/{reply}") for t in topics for reply in ("accepted", "rejected")}
        | {("iot:Receive", f"{BASE}:topic/{t}/{reply}") for t in topics for reply in ("accepted", "rejected")}
    )


def test_the_hooks_outcomes_are_on_the_dashboard(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = _text(dashboard["Properties"]["DashboardBody"])
    assert "Fleet provisioning" in body
    for outcome in ("ProvisioningAllowed", "DeniedNotOnAllowList", "DeniedHookError"):
        assert outcome in body


def test_a_name_prefix_too_long_for_a_template_name_fails_synth_clearly(tmp_path):
    # <prefix>_fleet names the provisioning template, and template names allow 36 characters.
    from app import build_app
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match="deviceBackend.namePrefix.*1-30 letters"):
        build_app(context={"deviceBackend.namePrefix": "a" * 31}, outdir=str(tmp_path))
    assert load_config({"deviceBackend.namePrefix": "a" * 30}).name_prefix == "a" * 30


def test_cas_in_config_are_registered_with_auto_registration_and_jitp_ones_get_the_jitp_template(tmp_path):
    from app import STACK_NAME, build_app

    ca = "events/activate_certificate/public-certificates/ca.pem"
    context = {
        "deviceBackend.onboarding.certificateAuthorities": [
            {"name": "Factory", "certificate": ca, "verificationCertificate": ca, "mode": "JITP"},
            {"name": "Field", "certificate": ca, "verificationCertificate": None, "mode": "JITR"},
        ]
    }
    build_app(context=context, outdir=str(tmp_path)).synth()
    template = json.loads((tmp_path / f"{STACK_NAME}.template.json").read_text())
    [jitp] = [r for r in template["Resources"].values() if r["Type"] == "AWS::IoT::ProvisioningTemplate" and r["Properties"]["TemplateType"] == "JITP"]
    cas = {r["Metadata"]["aws:cdk:path"].split("/")[-1]: r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IoT::CACertificate"}
    assert set(cas) == {"Factory", "Field"}
    for properties in cas.values():
        assert (properties["Status"], properties["AutoRegistrationStatus"]) == ("ACTIVE", "ENABLE")
    assert cas["Factory"]["RegistrationConfig"] == {"TemplateName": jitp["Properties"]["TemplateName"]}
    assert cas["Factory"]["CertificateMode"] == "DEFAULT" and "VerificationCertificatePem" in cas["Factory"]
    assert "RegistrationConfig" not in cas["Field"] and cas["Field"]["CertificateMode"] == "SNI_ONLY"
    body = json.loads(jitp["Properties"]["TemplateBody"])
    assert body["Resources"]["thing"]["Properties"]["ThingName"] == {"Ref": "AWS::IoT::Certificate::CommonName"}
    assert body["Resources"]["certificate"]["Properties"]["Status"] == "ACTIVE"
    assert body["Resources"]["policy"]["Properties"]["PolicyName"] == "iot_backend_device"
