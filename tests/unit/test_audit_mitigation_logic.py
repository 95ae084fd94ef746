"""mitigate_audit_findings' decisions as plain values: the notification's parsing, the map's validation and
selection, the chunks of findings and the ids that make the tasks idempotent."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from event_processing.fields import MalformedEvent
from events import load_event
from mitigate_audit_findings.logic import (
    chunks,
    client_request_token,
    covered_checks,
    follow_up,
    parse_actions_map,
    plan_check,
    task_id,
)
from mitigate_audit_findings.models import parse_notification

NON_COMPLIANT = json.loads(load_event("mitigate_audit_findings/non_compliant")["Records"][0]["Sns"]["Message"])
TASK_ID_FORMAT = re.compile(r"[a-zA-Z0-9_-]{1,128}")
TOKEN_FORMAT = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def notification(**changes: object) -> dict:
    return {**NON_COMPLIANT, **changes}


def test_the_sample_notification_reads_as_the_developer_guide_describes_it():
    parsed = parse_notification(json.dumps(NON_COMPLIANT))
    assert (parsed.taskId, parsed.taskStatus, parsed.taskType, parsed.accountId) == (
        "9b1f3c2e5a7d4e60b8c1a2f3d4e5f607", "COMPLETED", "SCHEDULED_AUDIT_TASK", "123456789012"
    )  # fmt: skip
    assert parsed.completed and parsed.scheduledAuditName == "DailyFleetAudit"
    assert parsed.checks("COMPLETED_NON_COMPLIANT") == (
        "DEVICE_CERTIFICATE_EXPIRING_CHECK", "IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "CONFLICTING_CLIENT_IDS_CHECK"
    )  # fmt: skip
    [failed] = [check for check in parsed.auditDetails if check.checkRunStatus == "FAILED"]
    assert failed.errorCode == "INSUFFICIENT_PERMISSIONS"


def test_the_guides_older_check_names_and_a_notification_without_its_counts_are_accepted():
    minimal = {"taskId": "4e2bcd1ccbc2a5dd15292a82ab80c380", "taskStatus": "COMPLETED", "auditDetails": [
        {"checkName": "REVOKED_DEVICE_CERT_CHECK", "checkRunStatus": "COMPLETED_NON_COMPLIANT"}
    ]}  # fmt: skip
    assert parse_notification(json.dumps(minimal)).checks("COMPLETED_NON_COMPLIANT") == ("REVOKED_DEVICE_CERT_CHECK",)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"taskId": None}, "taskId must be a non-empty string"),
        ({"taskId": "../../audit"}, "taskId must be an audit task id (1-40 of a-z, A-Z, 0-9 and -)"),
        ({"taskId": "a" * 41}, "taskId is longer than 40 characters"),
        ({"taskStatus": "DONE"}, "taskStatus must be one of COMPLETED, FAILED, CANCELED, IN_PROGRESS"),
        ({"taskType": "WEEKLY"}, "taskType must be one of SCHEDULED_AUDIT_TASK, ON_DEMAND_AUDIT_TASK"),
        ({"accountId": "12345"}, "accountId must be 12 digits"),
        ({"auditDetails": {"checkName": "X"}}, "auditDetails must be a list"),
        ({"auditDetails": ["LOGGING_DISABLED_CHECK"]}, "auditDetails[0] must be an object"),
        ({"failedChecksCount": -1}, "failedChecksCount must be a whole number >= 0"),
        ({"taskStartTime": True}, "taskStartTime must be a whole number >= 0"),
    ],
)
def test_a_malformed_notification_is_refused_naming_the_field_not_its_value(changes, reason):
    with pytest.raises(MalformedEvent) as refused:
        parse_notification(json.dumps(notification(**changes)))
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        ({"checkName": "CHECK; rm -rf /", "checkRunStatus": "FAILED"}, "auditDetails[1].checkName must be an audit check name (1-128 of a-z, A-Z, 0-9, _ and -)"),
        ({"checkName": "LOGGING_DISABLED_CHECK", "checkRunStatus": "OK"}, "auditDetails[1].checkRunStatus must be one of COMPLETED_NON_COMPLIANT, COMPLETED_COMPLIANT, FAILED, CANCELED, IN_PROGRESS, WAITING_FOR_DATA_COLLECTION"),
        ({"checkRunStatus": "FAILED"}, "auditDetails[1].checkName must be a non-empty string"),
        ({"checkName": "LOGGING_DISABLED_CHECK", "checkRunStatus": "FAILED", "totalResourcesCount": 1.5}, "auditDetails[1].totalResourcesCount must be a whole number >= 0"),
    ],
)
def test_a_malformed_check_is_refused_naming_its_position_and_field(check, reason):
    details = [NON_COMPLIANT["auditDetails"][0], check]
    with pytest.raises(MalformedEvent) as refused:
        parse_notification(json.dumps(notification(auditDetails=details)))
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not json", "body is not JSON (JSONDecodeError)"),
        ("[1, 2]", "body is a JSON list, not an object"),
    ],
)
def test_a_message_that_is_no_json_object_is_refused(event, reason):
    with pytest.raises(MalformedEvent, match=re.escape(reason)):
        parse_notification(event)


def test_the_map_is_read_and_refused_when_it_breaks_the_apis_limits():
    assert parse_actions_map('{"LOGGING_DISABLED_CHECK": ["EnableIotLogging", "PublishFindingToSns"]}') == {
        "LOGGING_DISABLED_CHECK": ("EnableIotLogging", "PublishFindingToSns")
    }
    for document, reason in [
        ("{", "MITIGATION_ACTIONS is not JSON"),
        ('["A"]', "MITIGATION_ACTIONS must be an object"),
        ('{"C": []}', r"MITIGATION_ACTIONS\[C\] must list 1 to 5 action names"),
        ('{"C": ["a", "b", "c", "d", "e", "f"]}', r"MITIGATION_ACTIONS\[C\] must list 1 to 5 action names"),
        ('{"C": ["has space"]}', r"MITIGATION_ACTIONS\[C\] must hold mitigation action names"),
        ('{"C": ["A", "A"]}', r"MITIGATION_ACTIONS\[C\] names an action twice"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_actions_map(document)


def test_only_the_non_compliant_checks_the_map_covers_are_mitigated_in_a_stable_order():
    actions = {"IOT_POLICY_OVERLY_PERMISSIVE_CHECK": ("A",), "DEVICE_CERTIFICATE_EXPIRING_CHECK": ("B",), "UNUSED": ("C",)}
    non_compliant = ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "CONFLICTING_CLIENT_IDS_CHECK", "DEVICE_CERTIFICATE_EXPIRING_CHECK"]
    assert covered_checks(non_compliant, actions) == (
        ["DEVICE_CERTIFICATE_EXPIRING_CHECK", "IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], ["CONFLICTING_CLIENT_IDS_CHECK"]
    )  # fmt: skip


def test_findings_are_chunked_by_25_sorted_and_without_repeats():
    ids = [f"finding-{n:03d}" for n in reversed(range(60))] + ["finding-007"]
    parts = chunks(ids)
    assert [len(part) for part in parts] == [25, 25, 10]
    assert [finding for part in parts for finding in part] == sorted(set(ids))
    assert chunks([]) == []


@given(st.lists(st.uuids().map(str), max_size=120))
def test_a_plan_does_not_depend_on_the_order_aws_lists_the_findings_in(ids):
    forward = plan_check("4e2bcd1ccbc2a5dd15292a82ab80c380", "DEVICE_CERTIFICATE_EXPIRING_CHECK", ("A", "B"), ids)
    backward = plan_check("4e2bcd1ccbc2a5dd15292a82ab80c380", "DEVICE_CERTIFICATE_EXPIRING_CHECK", ("A", "B"), ids[::-1])
    assert forward == backward
    assert all(1 <= len(task.findingIds) <= 25 for task in forward)
    assert sum(len(task.findingIds) for task in forward) == len(set(ids))


AUDIT, CHECK = "4e2bcd1ccbc2a5dd15292a82ab80c380", "DEVICE_CERTIFICATE_EXPIRING_CHECK"


def membership(tasks) -> dict[str, str]:
    """finding -> the id of the task that targets it."""
    return {finding: task.taskId for task in tasks for finding in task.findingIds}


def test_suppressed_findings_keep_their_place_in_the_chunks_and_are_left_out_of_the_targets():
    ids = [f"finding-{n:03d}" for n in range(60)]
    suppressed = {"finding-003", "finding-040", "finding-041"}
    tasks = plan_check(AUDIT, CHECK, ("A",), ids, suppressed)
    assert [(task.taskId[-3:], len(task.findingIds)) for task in tasks] == [("001", 24), ("002", 23), ("003", 10)]
    assert set(membership(tasks)) == set(ids) - suppressed
    assert membership(tasks)["finding-025"] == membership(plan_check(AUDIT, CHECK, ("A",), ids))["finding-025"]


def test_a_chunk_whose_findings_are_all_suppressed_starts_no_task_and_the_next_keeps_its_number():
    ids = [f"finding-{n:03d}" for n in range(30)]
    tasks = plan_check(AUDIT, CHECK, ("A",), ids, ids[:25])
    assert [(task.taskId, task.findingIds) for task in tasks] == [(f"{AUDIT}_{CHECK}_002", tuple(ids[25:]))]
    assert plan_check(AUDIT, CHECK, ("A",), ids, ids) == []


@given(
    st.lists(st.uuids().map(str), max_size=120, unique=True),
    st.data(),
)
def test_a_suppression_changed_between_deliveries_moves_no_other_finding_to_another_task(ids, data):
    before = set(data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])))
    after = set(data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])))
    first, second = plan_check(AUDIT, CHECK, ("A",), ids, before), plan_check(AUDIT, CHECK, ("A",), ids[::-1], after)
    assert set(membership(second)) == set(ids) - after  # every unsuppressed finding has a task
    assert all(membership(first)[f] == membership(second)[f] for f in set(membership(first)) & set(membership(second)))
    unchanged = {task.taskId for task in first} & {task.taskId for task in second}
    for task in first:  # a task whose target is unchanged is the same request, token included
        if task.taskId in unchanged:
            [again] = [t for t in second if t.taskId == task.taskId]
            assert (again.findingIds == task.findingIds) == (again.clientRequestToken == task.clientRequestToken)


def test_a_task_started_before_a_finding_was_unsuppressed_gets_a_follow_up_for_it_alone():
    [task] = plan_check(AUDIT, CHECK, ("A", "B"), ["f1", "f2", "f3"])
    assert follow_up(task, ["f1", "f2", "f3", "f9"]) is None  # it covers all (and a finding suppressed since)
    extra = follow_up(task, ["f1", "f3"])
    assert extra.findingIds == ("f2",) and extra.followUp and not task.followUp
    assert extra.taskId == f"{task.taskId}_{hashlib.sha256(b'f2').hexdigest()[:12]}"
    assert extra == follow_up(task, ["f3", "f1"])  # the same on every delivery
    assert extra.clientRequestToken == client_request_token(extra.taskId, ("A", "B"), ("f2",))
    assert follow_up(task, []).findingIds == task.findingIds and follow_up(task, []).taskId != extra.taskId
    assert extra.request()["auditCheckToActionsMapping"] == {CHECK: ["A", "B"]}


def test_a_task_id_names_the_audit_the_check_and_the_chunk():
    assert task_id("4e2bcd1ccbc2a5dd15292a82ab80c380", "DEVICE_CERTIFICATE_EXPIRING_CHECK", 2) == (
        "4e2bcd1ccbc2a5dd15292a82ab80c380_DEVICE_CERTIFICATE_EXPIRING_CHECK_002"
    )


@given(
    st.from_regex(r"[a-zA-Z0-9-]{1,40}", fullmatch=True),
    st.text(min_size=1, max_size=300),
    st.text(min_size=1, max_size=300),
    st.integers(min_value=1, max_value=10_000),
)
def test_task_ids_always_fit_the_api_and_tell_checks_and_chunks_apart(audit, check, other_check, chunk):
    identifier = task_id(audit, check, chunk)
    assert TASK_ID_FORMAT.fullmatch(identifier)
    assert identifier == task_id(audit, check, chunk)  # deterministic
    assert identifier != task_id(audit, check, chunk + 1)
    if other_check != check:
        assert identifier != task_id(audit, other_check, chunk)
    follow_up_id = task_id(audit, check, chunk, "0123456789ab")
    assert TASK_ID_FORMAT.fullmatch(follow_up_id) and follow_up_id not in (identifier, task_id(audit, check, chunk, "ba9876543210"))


def test_the_longest_check_name_stays_readable_and_an_overlong_one_is_hashed():
    longest = "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK"
    assert task_id("a" * 40, longest, 1) == f"{'a' * 40}_{longest}_001"
    hashed = task_id("a" * 40, "X" * 100, 1)
    assert re.fullmatch(r"a{40}_h[0-9a-f]{16}_001", hashed)


def test_the_client_request_token_is_the_same_for_the_same_request_only():
    token = client_request_token("task_001", ("A", "B"), ("f1", "f2"))
    assert TOKEN_FORMAT.fullmatch(token) and len(token) == 64
    assert token == client_request_token("task_001", ("A", "B"), ("f1", "f2"))
    assert len({token, client_request_token("task_001", ("A", "B"), ("f1",)), client_request_token("task_001", ("B", "A"), ("f1", "f2")),
                client_request_token("task_002", ("A", "B"), ("f1", "f2"))}) == 4  # fmt: skip


def test_a_planned_task_is_the_request_start_audit_mitigation_actions_task_takes():
    [task] = plan_check("4e2bcd1ccbc2a5dd15292a82ab80c380", "LOGGING_DISABLED_CHECK", ("EnableIotLogging",), ["f2", "f1"])
    assert task.request() == {
        "taskId": "4e2bcd1ccbc2a5dd15292a82ab80c380_LOGGING_DISABLED_CHECK_001",
        "target": {"findingIds": ["f1", "f2"]},
        "auditCheckToActionsMapping": {"LOGGING_DISABLED_CHECK": ["EnableIotLogging"]},
        "clientRequestToken": task.clientRequestToken,
    }
