"""The embedded AWS: resources as the template declares them, intrinsics resolved against them, refusals,
and a clean stop however the runtime is left."""

from __future__ import annotations

import json

import threading
from pathlib import Path

import pytest

from local_runtime import LocalRuntime, LocalRuntimeError, NotEmulated
from local_runtime.assembly import load_stack
from local_runtime.intrinsics import Physical, Resolver
from tests.e2e.assemblies import assert_nothing_left_running, python_function, queue, write_assembly


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
