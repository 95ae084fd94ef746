"""The local runtime's Device Defender (local_runtime/device_defender.py): audit findings listed as
ListAuditFindings lists them, mitigation tasks refused and started as StartAuditMitigationActionsTask refuses
and starts them, and the tasks' actions applied to the embedded AWS, on a small template of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_runtime import LocalRuntime
from local_runtime.activity import MitigationActionExecuted
from tests.e2e.assemblies import write_assembly

AUDIT, CHECK, OTHER_CHECK, LOGGING_CHECK = "a1b2c3d4", "DEVICE_CERTIFICATE_SHARED_CHECK", "CONFLICTING_CLIENT_IDS_CHECK", "LOGGING_DISABLED_CHECK"
ROLE = {"Type": "AWS::IAM::Role", "Properties": {}}


def action(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::IoT::MitigationAction",
        "Properties": {"ActionName": name, "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}, "ActionParams": params},
    }


RESOURCES = {
    "Role": ROLE,
    "Findings": {"Type": "AWS::SNS::Topic", "Properties": {}},
    "Quarantine": {"Type": "AWS::IoT::ThingGroup", "Properties": {"ThingGroupName": "quarantine"}},
    "Publish": action("publish", {"PublishFindingToSnsParams": {"TopicArn": {"Ref": "Findings"}}}),
    "Isolate": action("isolate", {"AddThingsToThingGroupParams": {"ThingGroupNames": [{"Ref": "Quarantine"}]}}),
    "Deactivate": action("deactivate", {"UpdateDeviceCertificateParams": {"Action": "DEACTIVATE"}}),
    "Log": action("log", {"EnableIoTLoggingParams": {"LogLevel": "ERROR", "RoleArnForLogging": {"Fn::GetAtt": ["Role", "Arn"]}}}),
}


def finding(finding_id: str, check: str = CHECK, certificate_id: str = "0" * 64, task: str = AUDIT) -> dict[str, Any]:
    return {
        "findingId": finding_id,
        "taskId": task,
        "checkName": check,
        "severity": "CRITICAL",
        "nonCompliantResource": {"resourceType": "DEVICE_CERTIFICATE", "resourceIdentifier": {"deviceCertificateId": certificate_id}},
        "isSuppressed": False,
    }


@pytest.fixture
def runtime(tmp_path: Path):
    with LocalRuntime(write_assembly(tmp_path, RESOURCES)) as running:
        running.start_event_flow()
        yield running


def start(runtime: LocalRuntime, task_id: str, finding_ids: list[str], mapping: dict[str, list[str]], **overrides: Any) -> Any:
    request = {
        "taskId": task_id,
        "target": {"findingIds": finding_ids},
        "auditCheckToActionsMapping": mapping,
        "clientRequestToken": "token",
        **overrides,
    }
    return runtime.cloud.client("iot").start_audit_mitigation_actions_task(**request)


def test_findings_are_listed_page_by_page_in_the_order_recorded_for_their_audit_and_check(runtime: LocalRuntime) -> None:
    ids = [f"f{n:02d}" for n in range(7)]
    runtime.cloud.device_defender.record_findings(
        [finding(ids[0]), finding("other-check", OTHER_CHECK), *map(finding, ids[1:]), finding("other-audit", task="e5f6")]
    )
    pages = list(
        runtime.cloud.client("iot")
        .get_paginator("list_audit_findings")
        .paginate(taskId=AUDIT, checkName=CHECK, PaginationConfig={"PageSize": 3})
    )
    assert [[f["findingId"] for f in page["findings"]] for page in pages] == [ids[0:3], ids[3:6], ids[6:]]
    assert [page.get("nextToken") is None for page in pages] == [False, False, True]


@pytest.mark.parametrize(
    ("task_id", "finding_ids", "mapping", "overrides", "code"),
    [
        ("has space", ["f1"], {CHECK: ["publish"]}, {}, "InvalidRequestException"),
        ("t", [f"f{n}" for n in range(26)], {CHECK: ["publish"]}, {}, "InvalidRequestException"),
        ("t", ["f1"], {CHECK: ["publish"] * 6}, {}, "InvalidRequestException"),
        ("t", ["f1"], {CHECK: ["publish"]}, {"clientRequestToken": "x" * 65}, "InvalidRequestException"),
        ("t", ["f1"], {CHECK: ["publish"]}, {"target": {"auditTaskId": AUDIT}}, "InvalidRequestException"),
        ("t", ["f1"], {CHECK: ["no-such-action"]}, {}, "ResourceNotFoundException"),
        ("t", ["no-such-finding"], {CHECK: ["publish"]}, {}, "ResourceNotFoundException"),
    ],
)  # fmt: skip
def test_a_task_the_api_would_refuse_is_refused_with_its_error(runtime, task_id, finding_ids, mapping, overrides, code) -> None:
    runtime.cloud.device_defender.record_findings([finding("f1")])
    with pytest.raises(ClientError) as refused:
        start(runtime, task_id, finding_ids, mapping, **overrides)
    assert refused.value.response["Error"]["Code"] == code
    assert runtime.cloud.device_defender.tasks == {}


def test_a_task_id_already_used_is_refused_and_nothing_runs_twice(runtime: LocalRuntime) -> None:
    runtime.cloud.device_defender.record_findings([finding("f1", OTHER_CHECK)])
    assert start(runtime, "t1", ["f1"], {OTHER_CHECK: ["publish"]})["taskId"] == "t1"
    with pytest.raises(ClientError, match="TaskAlreadyExistsException"):
        start(runtime, "t1", ["f1"], {OTHER_CHECK: ["publish"]})
    runtime.drain()
    assert [(a.task_id, a.finding_id, a.status) for a in runtime.activities if isinstance(a, MitigationActionExecuted)] == [
        ("t1", "f1", "COMPLETED")
    ]


def test_a_started_task_is_described_with_its_target_and_an_unknown_one_is_not_found(runtime: LocalRuntime) -> None:
    runtime.cloud.device_defender.record_findings([finding("f1", OTHER_CHECK), finding("f2", OTHER_CHECK)])
    start(runtime, "t1", ["f2", "f1"], {OTHER_CHECK: ["publish"]})
    runtime.drain()
    iot = runtime.cloud.client("iot")
    described = iot.describe_audit_mitigation_actions_task(taskId="t1")
    assert (described["taskStatus"], described["target"], described["auditCheckToActionsMapping"]) == (
        "COMPLETED", {"findingIds": ["f2", "f1"]}, {OTHER_CHECK: ["publish"]}
    )  # fmt: skip
    assert described["startTime"].tzinfo is not None
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        iot.describe_audit_mitigation_actions_task(taskId="t2")


def test_a_suppression_changes_how_the_finding_is_listed_and_nothing_else(runtime: LocalRuntime) -> None:
    defender = runtime.cloud.device_defender
    defender.record_findings([finding("f1"), finding("f2")])
    defender.set_suppressed("f2", True)
    listed = runtime.cloud.client("iot").list_audit_findings(taskId=AUDIT, checkName=CHECK)["findings"]
    assert [(f["findingId"], f["isSuppressed"]) for f in listed] == [("f1", False), ("f2", True)]
    with pytest.raises(ValueError, match="Finding f3 is not recorded"):
        defender.set_suppressed("f3", True)


def test_each_finding_gets_its_checks_actions_in_order_and_none_after_one_fails(runtime: LocalRuntime) -> None:
    iot, sqs, sns = (runtime.cloud.client(name) for name in ("iot", "sqs", "sns"))
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    for thing in ("s1", "s2"):
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=certificate["certificateArn"])
    subscriber = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=subscriber, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=runtime.cloud.physical["Findings"].ref, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    shared = finding("shared", certificate_id=certificate["certificateId"])
    runtime.cloud.device_defender.record_findings([shared, finding("gone"), finding("logging", LOGGING_CHECK)])

    start(runtime, "t1", ["shared", "gone", "logging"], {CHECK: ["publish", "isolate", "deactivate"], LOGGING_CHECK: ["log", "publish"]})
    runtime.drain()

    ran = [(a.finding_id, a.action, a.status) for a in runtime.activities if isinstance(a, MitigationActionExecuted)]
    assert ran == [
        ("shared", "publish", "COMPLETED"), ("shared", "isolate", "COMPLETED"), ("shared", "deactivate", "COMPLETED"),
        ("gone", "publish", "COMPLETED"), ("gone", "isolate", "FAILED"), ("gone", "deactivate", "SKIPPED"),
        ("logging", "log", "FAILED"), ("logging", "publish", "SKIPPED"),
    ]  # fmt: skip
    reasons = {(a.finding_id, a.action): a.reason for a in runtime.activities if isinstance(a, MitigationActionExecuted)}
    assert "ResourceNotFoundException" in reasons[("gone", "isolate")]
    assert "ENABLE_IOT_LOGGING is not emulated by the local runtime" in reasons[("logging", "log")]
    assert sorted(iot.list_things_in_thing_group(thingGroupName="quarantine")["things"]) == ["s1", "s2"]
    assert iot.describe_certificate(certificateId=certificate["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    messages = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=subscriber, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(m["findingId"] for m in messages) == ["gone", "shared"]
    published = next(m for m in messages if m["findingId"] == "shared")
    assert published == {**shared, "mitigationActionsTaskId": "t1", "actionName": "publish", "actionId": published["actionId"]}
    assert runtime.cloud.device_defender.tasks["t1"].status == "FAILED"


def test_the_emulated_calls_are_gone_once_the_runtime_stops(tmp_path: Path) -> None:
    from moto.iot.responses import IoTResponse

    with LocalRuntime(write_assembly(tmp_path, RESOURCES)):
        assert hasattr(IoTResponse, "list_audit_findings")
    assert not any(
        hasattr(IoTResponse, name)
        for name in ("list_audit_findings", "start_audit_mitigation_actions_task", "describe_audit_mitigation_actions_task")
    )
