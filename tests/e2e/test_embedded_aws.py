"""The embedded AWS: resources as the template declares them, intrinsics resolved against them, refusals,
and a clean stop however the runtime is left."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from local_runtime import LocalRuntime, LocalRuntimeError, NotEmulated
from local_runtime.assembly import load_stack
from local_runtime.intrinsics import Physical, Resolver
from tests.e2e.assemblies import (
    DESCRIBE_ENDPOINT,
    assert_nothing_left_running,
    aws_custom_resource,
    python_function,
    queue,
    write_assembly,
)


@pytest.fixture
def resolver(tmp_path: Path) -> Resolver:
    role = {"Type": "AWS::IAM::Role", "Properties": {}}
    stack = load_stack(write_assembly(tmp_path, {"Q": queue(), "Role": role}))
    created = Physical("http://127.0.0.1:1/123456789012/Q", {"Arn": "arn:aws:sqs:eu-west-1:123456789012:Q"})
    return Resolver(stack, {"Q": created})


@pytest.mark.parametrize(
    ("value", "resolved"),
    [
        ({"Ref": "Q"}, "http://127.0.0.1:1/123456789012/Q"),
        ({"Fn::GetAtt": ["Q", "Arn"]}, "arn:aws:sqs:eu-west-1:123456789012:Q"),
        ({"Fn::GetAtt": "Q.Arn"}, "arn:aws:sqs:eu-west-1:123456789012:Q"),
        ({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}]]}, "a-eu-west-1-123456789012"),
        ({"Fn::Sub": "${AWS::Partition}:${AWS::URLSuffix}:${AWS::StackName}:${Q.Arn}:${!Literal}"},
         "aws:amazonaws.com:TestStack:arn:aws:sqs:eu-west-1:123456789012:Q:${Literal}"),
        ({"Fn::Sub": ["${Name}/${Q}", {"Name": {"Fn::Select": [1, {"Fn::Split": [":", "x:y:z"]}]}}]},
         "y/http://127.0.0.1:1/123456789012/Q"),
        ({"Nested": [{"Ref": "AWS::Region"}]}, {"Nested": ["eu-west-1"]}),
    ],
)  # fmt: skip
def test_intrinsics_resolve_against_what_was_created(resolver: Resolver, value: object, resolved: object) -> None:
    assert resolver.resolve(value, "Test") == resolved


def test_an_unsupported_intrinsic_is_refused_naming_it_and_where(resolver: Resolver) -> None:
    with pytest.raises(NotEmulated, match=r"^F\.Environment\.X: Fn::If is not supported by the local runtime"):
        resolver.resolve({"X": {"Fn::If": ["C", "a", "b"]}}, "F.Environment")


def test_a_reference_to_a_resource_that_is_not_emulated_is_refused_naming_its_type(resolver: Resolver) -> None:
    with pytest.raises(NotEmulated, match="F.Role: refers to Role, a AWS::IAM::Role the local runtime does not emul"):
        resolver.resolve({"Fn::GetAtt": ["Role", "Arn"]}, "F.Role")


def test_tables_and_queues_are_created_as_declared(tmp_path: Path) -> None:
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    }
    resources = {
        "Items": table,
        "Work": queue(
            DelaySeconds=5,
            VisibilityTimeout=42,
            RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]}, "maxReceiveCount": 3},
        ),
        "Dead": queue(MessageRetentionPeriod=1209600),
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        dynamodb, sqs = runtime.cloud.client("dynamodb"), runtime.cloud.client("sqs")
        ttl = dynamodb.describe_time_to_live(TableName="Items")["TimeToLiveDescription"]
        work = runtime.cloud.physical["Work"].ref
        attributes = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
        dead_arn = runtime.cloud.physical["Dead"].attributes["Arn"]
        ignored = [(item.resource.logical_id, item.name) for item in runtime.ignored_properties]
        not_emulated = runtime.not_emulated()
    assert ttl == {"AttributeName": "expiresAt", "TimeToLiveStatus": "ENABLED"}
    assert (attributes["DelaySeconds"], attributes["VisibilityTimeout"]) == ("5", "42")
    assert dead_arn in attributes["RedrivePolicy"] and '"maxReceiveCount": 3' in attributes["RedrivePolicy"]
    assert ignored == [("Items", "PointInTimeRecoverySpecification")]
    assert not_emulated == {"AWS::CloudWatch::Alarm": 1}


def test_thing_groups_and_iot_policies_are_created_as_declared(tmp_path: Path) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}],
    }
    resources = {
        "Fleet": {
            "Type": "AWS::IoT::ThingGroup",
            "Properties": {
                "ThingGroupName": "fleet",
                "ThingGroupProperties": {
                    "ThingGroupDescription": "every device",
                    "AttributePayload": {"Attributes": {"site": "north"}},
                },
            },
        },
        "DevicePolicy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device", "PolicyDocument": document}},
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        iot = runtime.cloud.client("iot")
        group = iot.describe_thing_group(thingGroupName="fleet")
        policy = iot.get_policy(policyName="device")
        group_arn = runtime.cloud.physical["Fleet"].attributes["Arn"]
    assert group["thingGroupArn"] == group_arn
    assert group["thingGroupProperties"]["attributePayload"]["attributes"] == {"site": "north"}
    assert json.loads(policy["policyDocument"]) == document


def test_ca_certificates_are_registered_with_their_auto_registration_and_jitp_templates_kept(tmp_path: Path) -> None:
    from device_pki import CertificateAuthority
    from stacks.onboarding.certificate_authorities import jitp_template_body

    factory, field = (CertificateAuthority.create(common_name=name).certificate_pem for name in ("Factory", "Field"))
    body = jitp_template_body(policy_name="device", fleet_group_name="fleet")
    resources = {
        "Jitp": {
            "Type": "AWS::IoT::ProvisioningTemplate",
            "Properties": {
                "TemplateName": "app_jitp", "TemplateType": "JITP", "Enabled": True, "TemplateBody": json.dumps(body),
                "ProvisioningRoleArn": "arn:aws:iam::123456789012:role/provisioning",
            },
        },
        "Factory": {
            "Type": "AWS::IoT::CACertificate",
            "Properties": {
                "CACertificatePem": factory, "VerificationCertificatePem": factory, "CertificateMode": "DEFAULT",
                "Status": "ACTIVE", "AutoRegistrationStatus": "ENABLE",
                "RegistrationConfig": {"TemplateName": {"Ref": "Jitp"}},
            },
        },
        "Field": {
            "Type": "AWS::IoT::CACertificate",
            "Properties": {"CACertificatePem": field, "CertificateMode": "SNI_ONLY", "Status": "INACTIVE"},
        },
    }  # fmt: skip
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        iot, physical = runtime.cloud.client("iot"), runtime.cloud.physical
        described = {name: iot.describe_ca_certificate(certificateId=physical[name].ref) for name in ("Factory", "Field")}
        listed = {ca["certificateId"] for ca in iot.list_ca_certificates()["certificates"]}
        template = runtime.cloud.provisioning_templates.get("app_jitp")
        ignored = sorted(item.name for item in runtime.ignored_properties)
        not_emulated = runtime.not_emulated()
    factory_ca, field_ca = (described[name]["certificateDescription"] for name in ("Factory", "Field"))
    assert (factory_ca["status"], factory_ca["autoRegistrationStatus"]) == ("ACTIVE", "ENABLE")
    assert described["Factory"]["registrationConfig"] == {"templateName": "app_jitp"}
    assert (field_ca["status"], field_ca["autoRegistrationStatus"]) == ("INACTIVE", "DISABLE")
    assert listed == {physical["Factory"].ref, physical["Field"].ref}
    assert physical["Factory"].attributes["Arn"].endswith(f":cacert/{physical['Factory'].ref}")
    assert template is not None and (template.template_type, template.enabled, template.body) == ("JITP", True, body)
    assert ignored == ["CertificateMode", "CertificateMode", "ProvisioningRoleArn", "VerificationCertificatePem"]
    assert not_emulated == {}


def test_a_jitp_template_the_runtime_cannot_provision_from_is_refused_at_start(tmp_path: Path) -> None:
    body = {"Resources": {"group": {"Type": "AWS::IoT::ThingGroup", "Properties": {}}}}
    template = {"Type": "AWS::IoT::ProvisioningTemplate", "Properties": {"TemplateType": "JITP", "TemplateBody": json.dumps(body)}}
    with pytest.raises(NotEmulated, match="Jitp.TemplateBody.Resources.group: resource type AWS::IoT::ThingGroup"):
        with LocalRuntime(write_assembly(tmp_path, {"Jitp": template})):
            pass


def test_a_property_that_could_change_behaviour_is_refused(tmp_path: Path) -> None:
    assembly = write_assembly(tmp_path, {"Fifo": queue(FifoQueue=True)})
    with pytest.raises(NotEmulated, match=r"Fifo: AWS::SQS::Queue property FifoQueue is not emulated"):
        with LocalRuntime(assembly):
            pass


def test_leaving_on_an_exception_stops_the_workers_the_server_and_its_thread(tmp_path: Path) -> None:
    code = {"f": {"app.py": "def handler(e, c):\n    return 1\n"}}
    assembly = write_assembly(tmp_path, {"F": python_function("f")}, code)
    threads_before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        with LocalRuntime(assembly) as runtime:
            runtime.invoke("F", {})
            pids, port = runtime.functions.worker_pids, runtime.cloud.port
            raise KeyboardInterrupt
    assert_nothing_left_running(pids, port)
    assert set(threading.enumerate()) <= threads_before


def test_one_embedded_aws_per_process(tmp_path: Path) -> None:
    assembly = write_assembly(tmp_path, {"Q": queue()})
    with LocalRuntime(assembly):
        with pytest.raises(LocalRuntimeError, match="already running in this process"):
            with LocalRuntime(assembly):
                pass
    with LocalRuntime(assembly) as again:  # and the first one's state is gone
        assert again.cloud.client("sqs").list_queues()["QueueUrls"] == [again.cloud.physical["Q"].ref]


def test_ssm_parameters_are_created_with_their_values(tmp_path: Path) -> None:
    resources = {
        "Keys": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": '{"keys": []}'}},
        "Named": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": "/app/setting", "Type": "String", "Value": "on"}},
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        ssm = runtime.cloud.client("ssm")
        generated = runtime.cloud.physical["Keys"].ref
        values = {name: ssm.get_parameter(Name=name)["Parameter"]["Value"] for name in (generated, "/app/setting")}
    assert values == {generated: '{"keys": []}', "/app/setting": "on"}


# The app's other AwsCustomResource: a call moto does not have.
UPDATE_EVENT_CONFIGURATIONS = {
    "action": "updateEventConfigurations",
    "service": "Iot",
    "parameters": {"eventConfigurations": {"THING": {"Enabled": True}}},
    "physicalResourceId": {"id": "registry-event-configurations"},
}
ENDPOINT_ADDRESS = r"[a-z0-9]{14}-ats\.iot\.eu-west-1\.amazonaws\.com"


def parameter(value: Any) -> dict[str, Any]:
    """An SSM parameter: created with its value resolved, which the test reads back."""
    return {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": value}}


def test_a_custom_aws_call_the_embedded_aws_answers_is_made_and_its_response_is_what_ref_and_getatt_read(
    tmp_path: Path,
) -> None:
    address = {"Fn::GetAtt": ["DataEndpoint", "endpointAddress"]}
    resources = {
        "DataEndpoint": aws_custom_resource(DESCRIBE_ENDPOINT),
        "Named": parameter({"Ref": "DataEndpoint"}),
        "Url": parameter({"Fn::Join": ["", ["https://", address]]}),
        "Region": parameter({"Fn::GetAtt": ["DataEndpoint", "region"]}),
    }
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        physical = runtime.cloud.physical
        values = [physical[name].attributes["Value"] for name in ("Named", "Url", "Region")]
        ignored = sorted(item.name for item in runtime.ignored_properties)
        not_emulated = runtime.not_emulated()
    assert re.fullmatch(ENDPOINT_ADDRESS, values[0])
    assert values == [values[0], f"https://{values[0]}", "eu-west-1"]
    assert physical["DataEndpoint"].attributes == {
        "apiVersion": "2015-05-28", "region": "eu-west-1", "endpointAddress": values[0],
    }  # fmt: skip
    assert ignored == ["InstallLatestAwsSdk", "ServiceToken", "Update"]
    assert not_emulated == {}


@pytest.mark.parametrize(
    ("create", "attributes"),
    [
        # CDK joins a reference into the call's JSON.
        (
            {"Fn::Join": ["", ['{"action":"describeEndpoint","service":"Iot","parameters":{"endpointType":"',
                               {"Fn::GetAtt": ["Kind", "Value"]}, '"}}']]},
            {"apiVersion", "region", "endpointAddress"},
        ),
        # The provider's own spellings, the physical id standing in a parameter, and outputPaths.
        (
            {"action": "DescribeEndpointCommand", "service": "@aws-sdk/client-iot",
             "parameters": {"endpointType": "PHYSICAL:RESOURCEID:"}, "physicalResourceId": {"id": "iot:Data-ATS"},
             "outputPaths": ["endpoint"]},
            {"endpointAddress"},
        ),
    ],
)  # fmt: skip
def test_a_custom_aws_call_is_read_as_the_provider_reads_it(tmp_path: Path, create: Any, attributes: set[str]) -> None:
    resources = {"Kind": parameter("iot:Data-ATS"), "DataEndpoint": aws_custom_resource(create)}
    with LocalRuntime(write_assembly(tmp_path, resources)) as runtime:
        physical = runtime.cloud.physical["DataEndpoint"]
    assert set(physical.attributes) == attributes
    assert re.fullmatch(ENDPOINT_ADDRESS, physical.attributes["endpointAddress"])


def test_a_custom_aws_call_the_embedded_aws_does_not_answer_is_skipped_and_a_reference_to_it_refused(
    tmp_path: Path,
) -> None:
    reference = {"Fn::GetAtt": ["EventConfigurations", "id"]}
    resources = {
        "EventConfigurations": aws_custom_resource(UPDATE_EVENT_CONFIGURATIONS),
        "Uses": python_function("uses", environment={"CONFIGURATION": reference}),
    }
    code = {"uses": {"app.py": "def handler(e, c):\n    return 1\n"}}
    with LocalRuntime(write_assembly(tmp_path, resources, code)) as runtime:
        assert "EventConfigurations" not in runtime.cloud.physical
        assert runtime.not_emulated() == {"Custom::AWS": 1}
        with pytest.raises(NotEmulated, match="refers to EventConfigurations, a Custom::AWS the local runtime"):
            runtime.invoke("Uses", {})


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"region": "us-east-1"}, NotEmulated, "its call Iot.describeEndpoint has region, not emulated by the local"),
        ({"assumedRoleArn": "arn:aws:iam::210987654321:role/r"}, NotEmulated, "its call .* has assumedRoleArn, not"),
        ({"parameters": {"endpointType": "iot:Nope"}}, LocalRuntimeError,
         "its call Iot.describeEndpoint fails, so the deployment would: .*InvalidRequestException"),
        ({"physicalResourceId": {"responsePath": "endpointType"}}, LocalRuntimeError,
         "the response of Iot.describeEndpoint has no endpointType for its physical id"),
    ],
)  # fmt: skip
def test_an_answered_call_that_could_answer_otherwise_or_fails_stops_the_runtime(
    tmp_path: Path, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    assembly = write_assembly(tmp_path, {"DataEndpoint": aws_custom_resource({**DESCRIBE_ENDPOINT, **change})})
    with pytest.raises(error, match=f"^DataEndpoint: {message}"):
        with LocalRuntime(assembly):
            pass
