"""Device Defender end to end on the synthesized app: what SNS delivers to the two functions, through Lambda's
asynchronous invocation, to what they change in the embedded AWS.

- remediation: a DEVICE_CERTIFICATE_SHARED_CHECK finding (events/remediate_finding/), as the PUBLISH_FINDING_TO_SNS
  mitigation action publishes it to the findings topic, for a certificate two things share; the same again; a
  REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK finding, whose sample has it under a "finding" key (the other
  shape the function accepts); a malformed finding; and, on the app synthesized with `defender.dryRun`, the shared certificate's
  finding decided and recorded with nothing changed;
- mitigation: the audit's notifications (events/mitigate_audit_findings/) on the audit notifications topic,
  with the audit's findings recorded in the runtime's Device Defender (the findings samples, several pages of
  one check): the tasks started, the mitigation actions they ran, and the findings PUBLISH_FINDING_TO_SNS
  handed to remediate_finding; the same notification again; and a shared certificate's audit through the
  whole chain (task, publish_finding, quarantine, remediation, notice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from boto3.dynamodb.types import TypeDeserializer

from events import load_event
from tests.conftest import ROOT
from local_runtime import LocalRuntime
from local_runtime.activity import AsyncInvoked, MitigationActionExecuted

_deserialize = TypeDeserializer().deserialize
THINGS = ("sensor-0042", "sensor-0043")
NESTED_THING = "sensor-0050"
SHARING_THINGS = ("sensor-0060", "sensor-0061")
FINDINGS_SAMPLES = ROOT / "events" / "mitigate_audit_findings" / "findings"
SAMPLE_AUDIT = "9b1f3c2e5a7d4e60b8c1a2f3d4e5f607"  # the non_compliant sample's audit task, the findings samples'
SHARED_AUDIT = "5e0c8a1d3b7f4a2c9d6e1f0a8b3c5d7e"
ACTION_PREFIX = "iot_backend_"  # the deployed actions' names: <namePrefix>_<key>
MITIGATION = "mitigate_audit_findings"
UNSUPPRESSED = "dbe22a2e-c9d3-5409-b49a-e4c5493cb396"  # suppressed in the findings samples, until the operator changes it
REMEDIATION = "remediate_finding"


def logical_id(runtime: LocalRuntime, resource_type: str, path_part: str) -> str:
    [found] = [r.logical_id for r in runtime.cloud.created if r.type == resource_type and path_part in r.label]
    return found


def physical(runtime: LocalRuntime, resource_type: str, path_part: str) -> str:
    return runtime.cloud.physical[logical_id(runtime, resource_type, path_part)].ref


def message_of(sample: str) -> str:
    """The SNS message of a sample: what the publisher (IoT) put on the topic."""
    [record] = load_event(sample)["Records"]
    return record["Sns"]["Message"]


def drain_queue(runtime: LocalRuntime, url: str) -> list[dict[str, Any]]:
    sqs, messages = runtime.cloud.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", []):
        messages += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def async_invocations(runtime: LocalRuntime, function: str, since: int) -> list[AsyncInvoked]:
    return [
        a for a in runtime.activities[since:] if isinstance(a, AsyncInvoked) and function in a.invocation.function
    ]


class Played:
    """What the samples left, sample by sample."""

    def __init__(self) -> None:
        self.certificate_id = ""
        self.certificate_status = ""
        self.quarantined: list[str] = []
        self.notices: list[dict[str, Any]] = []
        self.notices_after_redelivery: list[dict[str, Any]] = []
        self.remediations: list[dict[str, Any]] = []
        self.remediations_after_redelivery: list[dict[str, Any]] = []
        self.remediation_runs: list[AsyncInvoked] = []
        self.redelivery_runs: list[AsyncInvoked] = []
        self.nested_runs: list[AsyncInvoked] = []
        self.nested_certificate_id = ""
        self.nested_certificate_status = ""
        self.nested_remediations: list[dict[str, Any]] = []
        self.quarantined_after_nested: list[str] = []
        self.malformed_runs: list[AsyncInvoked] = []
        self.malformed_kept: list[dict[str, Any]] = []
        self.mitigation_runs: dict[str, list[AsyncInvoked]] = {}
        self.mitigation_failures: dict[str, list[dict[str, Any]]] = {}


def _scan(runtime: LocalRuntime, table: str, finding_id: str | None = None) -> list[dict[str, Any]]:
    items = runtime.cloud.client("dynamodb").scan(TableName=table)["Items"]
    decoded = ({k: _deserialize(v) for k, v in item.items()} for item in items)
    return sorted((i for i in decoded if finding_id in (None, i["findingId"])), key=lambda i: i["change"])


def certificate_status(runtime: LocalRuntime, certificate_id: str) -> str:
    return runtime.cloud.client("iot").describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]


def quarantined(runtime: LocalRuntime) -> list[str]:
    """The things in the app's quarantine group, sorted."""
    group = physical(runtime, "AWS::IoT::ThingGroup", "Defender/QuarantineGroup")
    return sorted(runtime.cloud.client("iot").list_things_in_thing_group(thingGroupName=group)["things"])


def sample_findings() -> list[dict[str, Any]]:
    """Every finding of the findings samples (the pages ListAuditFindings gives for the sample audit)."""
    return [finding for path in sorted(FINDINGS_SAMPLES.glob("*.json")) for finding in json.loads(path.read_text())["findings"]]


def executions(runtime: LocalRuntime, since: int) -> list[MitigationActionExecuted]:
    return [a for a in runtime.activities[since:] if isinstance(a, MitigationActionExecuted)]


def shared_certificate(runtime: LocalRuntime, things: tuple[str, ...]) -> str:
    """An active certificate attached to `things`, created for them: its id."""
    iot = runtime.cloud.client("iot")
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    for thing in things:
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=certificate["certificateArn"])
    return certificate["certificateId"]


def finding_for(sample: str, certificate_id: str) -> dict[str, Any]:
    """The sample's message, about `certificate_id`: the finding at its top level or under "finding"."""
    message = json.loads(message_of(sample))
    finding = message.get("finding", message)
    finding["nonCompliantResource"]["resourceIdentifier"]["deviceCertificateId"] = certificate_id
    return message


def subscribe_queue(runtime: LocalRuntime, topic_arn: str, name: str) -> str:
    """A queue subscribed to the topic with raw delivery, as an operator's subscriber: its URL."""
    sqs = runtime.cloud.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    runtime.cloud.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


@pytest.fixture(scope="module")
def played(cloud_assembly: Path) -> Played:
    result = Played()
    with LocalRuntime(cloud_assembly, drain_timeout_s=60) as runtime:
        sns = runtime.cloud.client("sns")
        runtime.start_event_flow()

        # --- remediation: a certificate two things share --------------------------------------------------
        result.certificate_id = shared_certificate(runtime, THINGS)
        notices_url = subscribe_queue(runtime, physical(runtime, "AWS::SNS::Topic", "Defender/Notices"), "notices-subscriber")
        finding = finding_for("remediate_finding/device_certificate_shared", result.certificate_id)
        findings_topic = physical(runtime, "AWS::SNS::Topic", "Defender/Findings")
        table = physical(runtime, "AWS::DynamoDB::Table", "Defender/Remediations")

        start = len(runtime.activities)
        sns.publish(TopicArn=findings_topic, Message=json.dumps(finding))
        runtime.drain()
        result.remediation_runs = async_invocations(runtime, REMEDIATION, start)
        result.certificate_status = certificate_status(runtime, result.certificate_id)
        result.quarantined = quarantined(runtime)
        result.notices = drain_queue(runtime, notices_url)
        result.remediations = _scan(runtime, table)

        start = len(runtime.activities)
        sns.publish(TopicArn=findings_topic, Message=json.dumps(finding))  # the same finding, delivered again
        runtime.drain()
        result.redelivery_runs = async_invocations(runtime, REMEDIATION, start)
        result.notices_after_redelivery = drain_queue(runtime, notices_url)
        result.remediations_after_redelivery = _scan(runtime, table)

        # --- remediation: the finding under a "finding" key, then a malformed one ---------------------------
        result.nested_certificate_id = shared_certificate(runtime, (NESTED_THING,))
        nested = finding_for("remediate_finding/revoked_certificate_still_active", result.nested_certificate_id)
        start = len(runtime.activities)
        sns.publish(TopicArn=findings_topic, Message=json.dumps(nested))
        runtime.drain()
        result.nested_runs = async_invocations(runtime, REMEDIATION, start)
        result.nested_certificate_status = certificate_status(runtime, result.nested_certificate_id)
        result.quarantined_after_nested = quarantined(runtime)
        result.nested_remediations = _scan(runtime, table, nested["finding"]["findingId"])
        drain_queue(runtime, notices_url)

        start = len(runtime.activities)
        sns.publish(TopicArn=findings_topic, Message=message_of("remediate_finding/malformed"))
        runtime.drain()
        result.malformed_runs = async_invocations(runtime, REMEDIATION, start)
        result.malformed_kept = drain_queue(runtime, physical(runtime, "AWS::SQS::Queue", "Defender/RemediationDeadLetters"))

        # --- mitigation: the notifications with nothing to mitigate, and a malformed one -------------------
        audit_topic = physical(runtime, "AWS::SNS::Topic", "Defender/AuditNotifications")
        dead_letters = physical(runtime, "AWS::SQS::Queue", "Defender/MitigationDeadLetters")
        for sample in ("compliant", "failed_task", "malformed"):
            start = len(runtime.activities)
            sns.publish(TopicArn=audit_topic, Message=message_of(f"mitigate_audit_findings/{sample}"))
            runtime.drain()
            result.mitigation_runs[sample] = async_invocations(runtime, MITIGATION, start)
            result.mitigation_failures[sample] = drain_queue(runtime, dead_letters)
    return result


# --- remediation -----------------------------------------------------------------------------------------------


def test_a_shared_certificate_finding_revokes_the_certificate_and_quarantines_both_its_things(played):
    assert [run.invocation.error for run in played.remediation_runs] == [None]
    [outcome] = played.remediation_runs[0].invocation.result["results"]
    assert outcome["result"] == "FindingsRemediated"
    assert played.certificate_status == "REVOKED"
    assert played.quarantined == sorted(THINGS)


def test_the_operators_get_one_notice_naming_the_certificate_its_things_and_the_finding(played):
    [message] = played.notices
    notice = json.loads(message["Body"])
    finding = json.loads(message_of("remediate_finding/device_certificate_shared"))
    assert notice["noticeId"] == notice["finding"]["findingId"] == finding["findingId"]
    assert (notice["certificateId"], notice["certificateStatusBefore"], notice["things"]) == (
        played.certificate_id, "ACTIVE", sorted(THINGS)
    )  # fmt: skip
    assert notice["changes"] == {
        f"revoke-certificate#{played.certificate_id}": "revoked",
        **{f"quarantine#{thing}": "added" for thing in THINGS},
    }


def test_the_remediations_table_records_every_change_done_with_its_finding(played):
    finding = json.loads(message_of("remediate_finding/device_certificate_shared"))
    changes = {item["change"]: item for item in played.remediations}
    assert set(changes) == {f"revoke-certificate#{played.certificate_id}", *(f"quarantine#{t}" for t in THINGS), "notify"}
    assert {key: item["outcome"] for key, item in changes.items()} == {
        f"revoke-certificate#{played.certificate_id}": "revoked",
        **{f"quarantine#{thing}": "added" for thing in THINGS},
        "notify": "published",
    }
    for item in played.remediations:
        assert item["status"] == "done"
        assert (item["findingId"], item["auditTaskId"], item["checkName"], item["severity"]) == (
            finding["findingId"], finding["taskId"], "DEVICE_CERTIFICATE_SHARED_CHECK", "CRITICAL"
        )  # fmt: skip
        assert item["reasonForNonComplianceCode"] == "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES"
        assert item["mitigation"]["taskId"] == finding["mitigationActionsTaskId"]


def test_the_same_finding_delivered_again_changes_nothing_and_sends_no_second_notice(played):
    assert [run.invocation.error for run in played.redelivery_runs] == [None]
    [outcome] = played.redelivery_runs[0].invocation.result["results"]
    assert outcome["result"] == "RemediationsAlreadyDone"
    assert {d["status"] for d in outcome["decisions"]} == {"already-done"}
    assert played.notices_after_redelivery == []
    assert played.remediations_after_redelivery == played.remediations  # not even a timestamp moved


def test_a_finding_under_a_finding_key_is_remediated_and_recorded_with_its_mitigation_task(played):
    assert [run.invocation.error for run in played.nested_runs] == [None]
    [outcome] = played.nested_runs[0].invocation.result["results"]
    assert outcome["result"] == "FindingsRemediated"
    assert played.nested_certificate_status == "REVOKED"
    assert played.quarantined_after_nested == sorted((*THINGS, NESTED_THING))
    finding = json.loads(message_of("remediate_finding/revoked_certificate_still_active"))
    assert {item["change"] for item in played.nested_remediations} == {
        f"revoke-certificate#{played.nested_certificate_id}", f"quarantine#{NESTED_THING}", "notify"
    }  # fmt: skip
    for item in played.nested_remediations:
        assert (item["status"], item["checkName"]) == ("done", "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK")
        assert item["mitigation"]["taskId"] == finding["mitigationActionsTaskId"]


def test_a_malformed_finding_is_kept_in_the_dead_letter_queue_with_its_reason_and_not_retried(played):
    [run] = played.malformed_runs
    assert run.invocation.error is None and run.attempt == 1
    [summary] = run.invocation.result["results"]
    assert summary["result"] == "MalformedFindings" and "deviceCertificateId" in summary["reason"]
    [message] = played.malformed_kept
    assert message["MessageAttributes"]["rejectionReason"]["StringValue"] == summary["reason"]
    [kept] = json.loads(message["Body"])["Records"]
    assert kept["Sns"]["Message"] == message_of("remediate_finding/malformed")


# --- dry run -----------------------------------------------------------------------------------------------------


class DryRun:
    def __init__(self) -> None:
        self.runs: list[AsyncInvoked] = []
        self.certificate_id = ""
        self.certificate_status = ""
        self.quarantined: list[str] = []
        self.notices: list[dict[str, Any]] = []
        self.remediations: list[dict[str, Any]] = []
        self.mitigation_runs: list[AsyncInvoked] = []
        self.tasks_started: list[str] = []
        self.executions: list[MitigationActionExecuted] = []


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    from app import build_app

    outdir = ROOT / "build" / "test.cdk.out.defender-dry-run"
    build_app(context={"deviceBackend.defender.dryRun": True}, outdir=str(outdir)).synth()
    result = DryRun()
    with LocalRuntime(outdir, drain_timeout_s=60) as runtime:
        runtime.start_event_flow()
        result.certificate_id = shared_certificate(runtime, THINGS)
        notices_url = subscribe_queue(runtime, physical(runtime, "AWS::SNS::Topic", "Defender/Notices"), "notices-subscriber")
        finding = finding_for("remediate_finding/device_certificate_shared", result.certificate_id)
        start = len(runtime.activities)
        runtime.cloud.client("sns").publish(TopicArn=physical(runtime, "AWS::SNS::Topic", "Defender/Findings"), Message=json.dumps(finding))
        runtime.drain()
        result.runs = async_invocations(runtime, REMEDIATION, start)
        result.certificate_status = certificate_status(runtime, result.certificate_id)
        result.quarantined = quarantined(runtime)
        result.notices = drain_queue(runtime, notices_url)
        result.remediations = _scan(runtime, physical(runtime, "AWS::DynamoDB::Table", "Defender/Remediations"))

        runtime.cloud.device_defender.record_findings(sample_findings())
        start = len(runtime.activities)
        audit_topic = physical(runtime, "AWS::SNS::Topic", "Defender/AuditNotifications")
        runtime.cloud.client("sns").publish(TopicArn=audit_topic, Message=message_of("mitigate_audit_findings/non_compliant"))
        runtime.drain()
        result.mitigation_runs = async_invocations(runtime, MITIGATION, start)
        result.tasks_started = sorted(runtime.cloud.device_defender.tasks)
        result.executions = executions(runtime, start)
    return result


def test_in_a_dry_run_the_shared_certificate_stays_active_and_no_device_is_quarantined_or_notified(dry_run):
    assert [run.invocation.error for run in dry_run.runs] == [None]
    [outcome] = dry_run.runs[0].invocation.result["results"]
    assert outcome["result"] == "DryRunDecisions"
    assert {d["change"]: d["outcome"] for d in outcome["decisions"]} == {
        f"revoke-certificate#{dry_run.certificate_id}": "revoke",
        **{f"quarantine#{thing}": "add-to-quarantine-group" for thing in THINGS},
        "notify": "publish",
    }
    assert (dry_run.certificate_status, dry_run.quarantined, dry_run.notices) == ("ACTIVE", [], [])


def test_in_a_dry_run_every_decision_is_recorded_as_such_with_its_finding(dry_run):
    finding = json.loads(message_of("remediate_finding/device_certificate_shared"))
    assert {item["change"] for item in dry_run.remediations} == {
        f"revoke-certificate#{dry_run.certificate_id}", *(f"quarantine#{t}" for t in THINGS), "notify"
    }  # fmt: skip
    for item in dry_run.remediations:
        assert item["status"] == "dry-run" and item["findingId"] == finding["findingId"]


def test_in_a_dry_run_every_mitigation_task_is_decided_from_every_page_and_none_is_started(dry_run):
    [run] = dry_run.mitigation_runs
    [summary] = run.invocation.result["results"]
    assert summary["result"] == "DryRunDecisions"
    assert sorted(summary["planned"]) == sorted(expected_tasks()) and summary["started"] == []
    assert dry_run.tasks_started == [] and dry_run.executions == []
    assert sum("Dry run: mitigation task decided, not started" in line for line in run.invocation.logs) == len(expected_tasks())


# --- mitigation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sample", "result"), [("compliant", "MitigationTasksStarted"), ("failed_task", "AuditTasksNotCompleted")])
def test_a_notification_with_nothing_to_mitigate_succeeds_without_calling_device_defender(played, sample, result):
    [run] = played.mitigation_runs[sample]
    assert run.invocation.error is None and run.sent_to is None
    [summary] = run.invocation.result["results"]
    assert summary["result"] == result
    assert summary.get("planned", []) == [] and summary.get("started", []) == []
    logs = "\n".join(run.invocation.logs)
    assert logs  # the function logged its decision
    assert "ListAuditFindings" not in logs and "StartAuditMitigationActionsTask" not in logs
    assert played.mitigation_failures[sample] == []


def test_a_malformed_notification_is_kept_in_the_dead_letter_queue_with_its_reason_and_not_retried(played):
    [run] = played.mitigation_runs["malformed"]
    assert run.invocation.error is None and run.attempt == 1
    [summary] = run.invocation.result["results"]
    assert summary["result"] == "MalformedNotifications"
    [message] = played.mitigation_failures["malformed"]
    reason = message["MessageAttributes"]["rejectionReason"]["StringValue"]
    assert reason == summary["reason"] and "taskId" in reason
    [kept] = json.loads(message["Body"])["Records"]
    assert kept["Sns"]["Message"] == message_of("mitigate_audit_findings/malformed")


# --- mitigation, through the runtime's Device Defender ------------------------------------------------------------


class Audited:
    def __init__(self) -> None:
        self.runs: list[AsyncInvoked] = []
        self.executions: list[MitigationActionExecuted] = []
        self.remediation_runs: list[AsyncInvoked] = []
        self.remediations: list[dict[str, Any]] = []
        self.task_ids: list[str] = []
        self.redelivery_runs: list[AsyncInvoked] = []
        self.redelivery_executions: list[MitigationActionExecuted] = []
        self.unsuppressed_runs: list[AsyncInvoked] = []
        self.unsuppressed_executions: list[MitigationActionExecuted] = []
        self.shared_runs: list[AsyncInvoked] = []
        self.shared_executions: list[MitigationActionExecuted] = []
        self.shared_certificate_id = ""
        self.shared_certificate_status = ""
        self.quarantined: list[str] = []
        self.notices: list[dict[str, Any]] = []
        self.shared_remediations: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def audited(cloud_assembly: Path) -> Audited:
    result = Audited()
    with LocalRuntime(cloud_assembly, drain_timeout_s=120) as runtime:
        sns = runtime.cloud.client("sns")
        runtime.start_event_flow()
        defender = runtime.cloud.device_defender
        defender.record_findings(sample_findings())
        audit_topic = physical(runtime, "AWS::SNS::Topic", "Defender/AuditNotifications")
        table = physical(runtime, "AWS::DynamoDB::Table", "Defender/Remediations")

        start = len(runtime.activities)
        sns.publish(TopicArn=audit_topic, Message=message_of("mitigate_audit_findings/non_compliant"))
        runtime.drain()
        result.runs = async_invocations(runtime, MITIGATION, start)
        result.executions = executions(runtime, start)
        result.remediation_runs = async_invocations(runtime, REMEDIATION, start)
        result.remediations = _scan(runtime, table)
        result.task_ids = sorted(defender.tasks)

        start = len(runtime.activities)
        sns.publish(TopicArn=audit_topic, Message=message_of("mitigate_audit_findings/non_compliant"))  # again
        runtime.drain()
        result.redelivery_runs = async_invocations(runtime, MITIGATION, start)
        result.redelivery_executions = executions(runtime, start)

        # --- an operator stops suppressing a finding; the notification is delivered again -------------------
        defender.set_suppressed(UNSUPPRESSED, False)
        start = len(runtime.activities)
        sns.publish(TopicArn=audit_topic, Message=message_of("mitigate_audit_findings/non_compliant"))
        runtime.drain()
        result.unsuppressed_runs = async_invocations(runtime, MITIGATION, start)
        result.unsuppressed_executions = executions(runtime, start)

        # --- a shared certificate's audit: task, actions, remediation, notice -----------------------------
        result.shared_certificate_id = shared_certificate(runtime, SHARING_THINGS)
        published = finding_for("remediate_finding/device_certificate_shared", result.shared_certificate_id)
        finding = {k: v for k, v in published.items() if k not in ("mitigationActionsTaskId", "actionName")}
        defender.record_findings([{**finding, "taskId": SHARED_AUDIT}])
        notification = json.loads(message_of("mitigate_audit_findings/non_compliant"))
        notification.update(
            taskId=SHARED_AUDIT,
            nonCompliantChecksCount=1,
            auditDetails=[
                {"checkName": "DEVICE_CERTIFICATE_SHARED_CHECK", "checkRunStatus": "COMPLETED_NON_COMPLIANT",
                 "nonCompliantResourcesCount": 1, "totalResourcesCount": 3},
            ],
        )  # fmt: skip
        notices_url = subscribe_queue(runtime, physical(runtime, "AWS::SNS::Topic", "Defender/Notices"), "notices-subscriber")
        start = len(runtime.activities)
        sns.publish(TopicArn=audit_topic, Message=json.dumps(notification))
        runtime.drain()
        result.shared_runs = async_invocations(runtime, MITIGATION, start) + async_invocations(runtime, REMEDIATION, start)
        result.shared_executions = executions(runtime, start)
        result.shared_certificate_status = certificate_status(runtime, result.shared_certificate_id)
        result.quarantined = quarantined(runtime)
        result.notices = [json.loads(message["Body"]) for message in drain_queue(runtime, notices_url)]
        result.shared_remediations = _scan(runtime, table, finding["findingId"])
    return result


def expected_tasks() -> dict[str, list[str]]:
    """Task id -> its findings, as the sample audit's notification calls for them: each check of the default map
    with findings, all its findings sorted in chunks of 25, each chunk's task targeting those not suppressed."""
    by_check: dict[str, list[str]] = {}
    for finding in sample_findings():
        by_check.setdefault(finding["checkName"], []).append(finding["findingId"])
    suppressed = {finding["findingId"] for finding in sample_findings() if finding["isSuppressed"]}
    tasks = {
        f"{SAMPLE_AUDIT}_{check}_{number + 1:03d}": [f for f in sorted(ids)[number * 25 : number * 25 + 25] if f not in suppressed]
        for check, ids in by_check.items()
        for number in range(-(-len(ids) // 25))
    }
    return {task: findings for task, findings in tasks.items() if findings}


def test_a_non_compliant_audit_starts_a_task_per_25_findings_across_every_page(audited):
    [run] = audited.runs
    assert run.invocation.error is None and run.sent_to is None
    [summary] = run.invocation.result["results"]
    expected = expected_tasks()
    assert len(expected) > 2  # the samples hold more than one page and more than one task of a check
    assert (summary["result"], sorted(summary["started"]), summary["alreadyStarted"]) == (
        "MitigationTasksStarted", sorted(expected), []
    )  # fmt: skip
    assert audited.task_ids == sorted(expected)
    assert summary["suppressedFindings"] == sum(f["isSuppressed"] for f in sample_findings())


def test_each_finding_is_published_by_its_checks_action_and_reaches_the_remediation(audited):
    expected = expected_tasks()
    published = {(e.task_id, e.finding_id) for e in audited.executions}
    assert published == {(task, finding) for task, findings in expected.items() for finding in findings}
    assert {(e.action, e.action_type, e.status) for e in audited.executions} == {
        (f"{ACTION_PREFIX}publish_finding", "PUBLISH_FINDING_TO_SNS", "COMPLETED")
    }
    assert len(audited.remediation_runs) == len(published)
    assert {run.invocation.result["results"][0]["result"] for run in audited.remediation_runs} == {"FindingsWithoutRemediation"}
    recorded = {item["findingId"]: item for item in audited.remediations}
    for task, finding in published:
        assert recorded[finding]["mitigation"] == {"taskId": task, "actionName": f"{ACTION_PREFIX}publish_finding", "actionId": ANY}


def test_the_same_notification_delivered_again_starts_no_task_twice(audited):
    [run] = audited.redelivery_runs
    [summary] = run.invocation.result["results"]
    assert (summary["started"], sorted(summary["alreadyStarted"])) == ([], sorted(expected_tasks()))
    assert audited.redelivery_executions == []


def test_a_finding_unsuppressed_after_the_audit_gets_a_task_of_its_own_on_the_next_delivery(audited):
    [run] = audited.unsuppressed_runs
    [summary] = run.invocation.result["results"]
    [chunk] = [task for task, findings in expected_tasks().items() if "DEVICE_CERTIFICATE_EXPIRING_CHECK_003" in task]
    [follow_up] = summary["started"]
    assert follow_up.startswith(f"{chunk}_") and sorted(summary["alreadyStarted"]) == sorted(expected_tasks())
    assert [(e.task_id, e.finding_id, e.status) for e in audited.unsuppressed_executions] == [
        (follow_up, UNSUPPRESSED, "COMPLETED")
    ]  # only the finding no task covered, once


def test_a_shared_certificates_audit_quarantines_its_devices_and_the_remediation_revokes_and_notifies(audited):
    assert [run.invocation.error for run in audited.shared_runs] == [None, None]
    task = f"{SHARED_AUDIT}_DEVICE_CERTIFICATE_SHARED_CHECK_001"
    assert [(e.task_id, e.action, e.status) for e in audited.shared_executions] == [
        (task, f"{ACTION_PREFIX}publish_finding", "COMPLETED"),
        (task, f"{ACTION_PREFIX}quarantine", "COMPLETED"),
    ]
    assert audited.shared_certificate_status == "REVOKED"
    assert audited.quarantined == sorted(SHARING_THINGS)
    [notice] = audited.notices
    assert (notice["certificateId"], notice["things"]) == (audited.shared_certificate_id, sorted(SHARING_THINGS))
    assert {item["change"]: item["status"] for item in audited.shared_remediations} == {
        f"revoke-certificate#{audited.shared_certificate_id}": "done",
        **{f"quarantine#{thing}": "done" for thing in SHARING_THINGS},
        "notify": "done",
    }
    assert {item["mitigation"]["taskId"] for item in audited.shared_remediations} == {task}
