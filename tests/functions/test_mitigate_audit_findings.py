"""mitigate_audit_findings on the samples of events/mitigate_audit_findings (the SNS events of Device Defender's
audit notifications, and the ListAuditFindings pages of that audit), with the handler's IoT client stubbed
(botocore's Stubber, or a fake IoT endpoint behind botocore's retries): moto has no Device Defender APIs."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import botocore.endpoint

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import ANY, Stubber
from moto.core.models import botocore_stubber

from events import load_event
from tests.functions.conftest import MITIGATION_ACTIONS, emitted

SAMPLES = "mitigate_audit_findings"
EXPIRING, POLICY = "DEVICE_CERTIFICATE_EXPIRING_CHECK", "IOT_POLICY_OVERLY_PERMISSIVE_CHECK"
PAGES = {EXPIRING: 3, POLICY: 1}  # the committed ListAuditFindings pages of each check
AUDIT_TASK = json.loads(load_event(f"{SAMPLES}/non_compliant")["Records"][0]["Sns"]["Message"])["taskId"]


def page(check: str, number: int, flipped: frozenset[str] = frozenset()) -> dict:
    """A committed page of ListAuditFindings, with the suppression of the findings in `flipped` reversed (an
    operator's change between two deliveries of the notification)."""
    body = load_event(f"{SAMPLES}/findings/{check}_page{number}")
    for finding in body["findings"]:
        finding["isSuppressed"] ^= finding["findingId"] in flipped
    return body


def findings(check: str, flipped: frozenset[str] = frozenset()) -> list[dict]:
    return [finding for number in range(1, PAGES[check] + 1) for finding in page(check, number, flipped)["findings"]]


def expected_tasks(flipped: frozenset[str] = frozenset()) -> list[tuple[str, str, list[str]]]:
    """(taskId, check, findingIds) of every task the non-compliant sample calls for: each covered check's
    findings, suppressed or not, sorted, 25 a chunk numbered from 001; each task targets its chunk's findings
    that are not suppressed."""
    tasks = []
    for check in sorted(PAGES):
        ids = sorted(f["findingId"] for f in findings(check, flipped))
        suppressed = {f["findingId"] for f in findings(check, flipped) if f["isSuppressed"]}
        for number, start in enumerate(range(0, len(ids), 25), start=1):
            targets = [finding for finding in ids[start : start + 25] if finding not in suppressed]
            if targets:
                tasks.append((f"{AUDIT_TASK}_{check}_{number:03d}", check, targets))
    return tasks


def stub_iot(mitigation) -> tuple[Stubber, list[dict]]:
    """A stubbed IoT client in the handler (imported now: a cold start), and the start requests it receives."""
    client = mitigation.handler.iot
    requests: list[dict] = []
    client.meta.events.register(
        "before-parameter-build.iot.StartAuditMitigationActionsTask", lambda params, **_: requests.append(json.loads(json.dumps(params)))
    )
    stubber = Stubber(client)
    stubber.activate()
    return stubber, requests


def queue_listings(stub: Stubber, flipped: frozenset[str] = frozenset()) -> None:
    """Every page of every covered check, in order, with the request that must ask for it."""
    for check in sorted(PAGES):
        token = None
        for number in range(1, PAGES[check] + 1):
            body = page(check, number, flipped)
            expected = {"taskId": AUDIT_TASK, "checkName": check, "maxResults": 250, **({"nextToken": token} if token else {})}
            stub.add_response("list_audit_findings", body, expected)
            token = body.get("nextToken")


def queue_start(stub: Stubber, task: tuple[str, str, list[str]], error: str | None = None, covers: list[str] | None = None) -> None:
    """The answer to starting `task`; for a task that exists (TaskAlreadyExistsException), the findings it
    `covers`, as DescribeAuditMitigationActionsTask answers next."""
    task_id, check, ids = task
    expected = {
        "taskId": task_id,
        "target": {"findingIds": ids},
        "auditCheckToActionsMapping": {check: MITIGATION_ACTIONS[check]},
        "clientRequestToken": ANY,
    }
    if error:
        stub.add_client_error("start_audit_mitigation_actions_task", error, http_status_code=400, expected_params=expected)
    else:
        stub.add_response("start_audit_mitigation_actions_task", {"taskId": task_id}, expected)
    if covers is not None:
        described = {
            "taskStatus": "COMPLETED",
            "target": {"findingIds": covers},
            "auditCheckToActionsMapping": {check: MITIGATION_ACTIONS[check]},
        }
        stub.add_response("describe_audit_mitigation_actions_task", described, {"taskId": task_id})


def invoke(mitigation, name: str) -> dict:
    return mitigation.invoke(load_event(f"{SAMPLES}/{name}"))["results"][0]


def test_every_finding_on_every_page_is_mitigated_in_tasks_of_at_most_25(mitigation, capsys):
    stub, requests = stub_iot(mitigation)
    queue_listings(stub)
    tasks = expected_tasks()
    for task in tasks:
        queue_start(stub, task)
    result = invoke(mitigation, "non_compliant")
    stub.assert_no_pending_responses()  # all 4 pages read, every task started
    assert [len(ids) for _, _, ids in tasks] == [25, 25, 10, 2]  # 62 + 3 findings, 3 suppressed
    assert result["started"] == [task_id for task_id, _, _ in tasks] and result["alreadyStarted"] == []
    assert result["uncoveredChecks"] == ["CONFLICTING_CLIENT_IDS_CHECK"]  # not in the map: not even listed
    started = [finding for request in requests for finding in request["target"]["findingIds"]]
    assert len(started) == len(set(started)) == 62
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"MitigationTasksStarted": 4, "MitigationTasksAlreadyStarted": 0}
    lines = [line for line in logs if line["message"] == "Mitigation task started"]
    assert [(line["auditTaskId"], line["checkName"], line["taskId"]) for line in lines] == [
        (AUDIT_TASK, check, task_id) for task_id, check, _ in tasks
    ]


def test_suppressed_findings_are_left_alone(mitigation):
    stub, requests = stub_iot(mitigation)
    queue_listings(stub)
    for task in expected_tasks():
        queue_start(stub, task)
    result = invoke(mitigation, "non_compliant")
    suppressed = {f["findingId"] for check in PAGES for f in findings(check) if f["isSuppressed"]}
    assert len(suppressed) == result["suppressedFindings"] == 3
    assert not suppressed & {finding for request in requests for finding in request["target"]["findingIds"]}


def test_a_redelivered_notification_starts_nothing_twice(mitigation, capsys):
    stub, requests = stub_iot(mitigation)
    tasks = expected_tasks()
    queue_listings(stub)
    for task in tasks:
        queue_start(stub, task)
    invoke(mitigation, "non_compliant")
    first = list(requests)
    capsys.readouterr()
    queue_listings(stub)
    for task in tasks:  # AWS refuses a task id it already has; the task covers what it was started with
        queue_start(stub, task, "TaskAlreadyExistsException", covers=task[2])
    again = invoke(mitigation, "non_compliant")
    stub.assert_no_pending_responses()
    assert requests[len(first) :] == first  # the same task ids and client request tokens
    assert again["started"] == [] and again["alreadyStarted"] == [task_id for task_id, _, _ in tasks]
    assert emitted(capsys.readouterr().out)[1] == {"MitigationTasksStarted": 0, "MitigationTasksAlreadyStarted": 4}


def test_at_the_limit_of_running_tasks_the_invocation_fails_and_its_retry_starts_only_what_is_missing(mitigation, capsys):
    stub, requests = stub_iot(mitigation)
    tasks = expected_tasks()
    queue_listings(stub)
    queue_start(stub, tasks[0])
    queue_start(stub, tasks[1], "LimitExceededException")  # 10 mitigation tasks already running
    with pytest.raises(mitigation.handler.MitigationTasksLimited):
        mitigation.invoke(load_event(f"{SAMPLES}/non_compliant"))
    stub.assert_no_pending_responses()  # stopped at the limit: tasks 3 and 4 not even tried
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"MitigationTasksStarted": 1, "MitigationTasksAlreadyStarted": 0}
    waiting = [line["taskId"] for line in logs if line["message"].startswith("Mitigation task not started")]
    assert waiting == [task_id for task_id, _, _ in tasks[1:]]

    first = list(requests)
    queue_listings(stub)  # Lambda's retry of the same event
    queue_start(stub, tasks[0], "TaskAlreadyExistsException", covers=tasks[0][2])
    for task in tasks[1:]:
        queue_start(stub, task)
    retried = invoke(mitigation, "non_compliant")
    stub.assert_no_pending_responses()
    assert retried["alreadyStarted"] == [tasks[0][0]] and retried["started"] == [task_id for task_id, _, _ in tasks[1:]]
    assert requests[len(first) : len(first) + 2] == first  # the tasks tried before, with the same ids and tokens
    assert emitted(capsys.readouterr().out)[1] == {"MitigationTasksStarted": 3, "MitigationTasksAlreadyStarted": 1}


def test_a_finding_suppressed_between_two_deliveries_moves_no_other_finding_out_of_its_task(mitigation, capsys):
    """The first delivery starts one task and meets the limit; before Lambda's retry, an operator suppresses a
    finding of that first task. Its chunks do not shift: the retry's first task is the one already started
    (its target now one finding short: another token, so TaskAlreadyExistsException), the others start, and
    every finding still unsuppressed is covered by exactly one task."""
    stub, requests = stub_iot(mitigation)
    first = expected_tasks()
    suppressed_later = frozenset({first[0][2][0]})  # the first finding of the first chunk
    queue_listings(stub)
    queue_start(stub, first[0])
    queue_start(stub, first[1], "LimitExceededException")
    with pytest.raises(mitigation.handler.MitigationTasksLimited):
        mitigation.invoke(load_event(f"{SAMPLES}/non_compliant"))
    started_first = [requests[0]]
    capsys.readouterr()

    retry = expected_tasks(suppressed_later)
    assert [task_id for task_id, _, _ in retry] == [task_id for task_id, _, _ in first]  # the same tasks
    assert retry[0][2] == first[0][2][1:] and retry[1:] == first[1:]  # only the suppressed finding is left out
    queue_listings(stub, suppressed_later)
    queue_start(stub, retry[0], "TaskAlreadyExistsException", covers=first[0][2])
    for task in retry[1:]:
        queue_start(stub, task)
    result = invoke(mitigation, "non_compliant")
    stub.assert_no_pending_responses()
    assert requests[2]["clientRequestToken"] != requests[0]["clientRequestToken"]  # another target, another token

    assert result["alreadyStarted"] == [first[0][0]] and result["started"] == [task_id for task_id, _, _ in retry[1:]]
    assert result["suppressedFindings"] == 4
    covered = [f for request in started_first + requests[3:] for f in request["target"]["findingIds"]]
    unsuppressed = {f["findingId"] for check in PAGES for f in findings(check, suppressed_later) if not f["isSuppressed"]}
    assert len(covered) == len(set(covered)) and unsuppressed <= set(covered)
    assert emitted(capsys.readouterr().out)[1] == {"MitigationTasksStarted": 3, "MitigationTasksAlreadyStarted": 1}


def test_a_finding_unsuppressed_between_two_deliveries_gets_a_follow_up_task_of_its_own(mitigation, capsys):
    """A suppressed finding (so in no task) is unsuppressed before the notification is delivered again: its
    chunk's task exists and does not cover it, so a follow-up task, named by its findings, covers it alone;
    a third delivery finds both started."""
    stub, requests = stub_iot(mitigation)
    first = expected_tasks()
    finding = "dbe22a2e-c9d3-5409-b49a-e4c5493cb396"  # suppressed in the sample, in the check's third chunk
    unsuppressed_later = frozenset({finding})
    queue_listings(stub)
    for task in first:
        queue_start(stub, task)
    invoke(mitigation, "non_compliant")
    capsys.readouterr()

    again = expected_tasks(unsuppressed_later)
    assert [len(ids) for _, _, ids in again] == [25, 25, 11, 2] and again[2][2] == sorted([*first[2][2], finding])
    follow_up = (f"{again[2][0]}_{hashlib.sha256(finding.encode()).hexdigest()[:12]}", again[2][1], [finding])

    def deliver(follow_up_answer: str | None) -> dict:
        queue_listings(stub, unsuppressed_later)
        for before, now in zip(first, again):
            queue_start(stub, now, "TaskAlreadyExistsException", covers=before[2])  # each started as it was
            if now == again[2]:
                queue_start(stub, follow_up, follow_up_answer)
        return invoke(mitigation, "non_compliant")

    second = deliver(None)
    logs, metrics = emitted(capsys.readouterr().out)
    third = deliver("TaskAlreadyExistsException")  # started by the second delivery: its id names its findings
    stub.assert_no_pending_responses()

    chunk_tasks = [task_id for task_id, _, _ in first]
    assert (second["started"], second["alreadyStarted"]) == ([follow_up[0]], chunk_tasks)
    assert second["suppressedFindings"] == 2
    assert metrics == {"MitigationTasksStarted": 1, "MitigationTasksAlreadyStarted": 4}
    [line] = [line for line in logs if line["message"] == "Mitigation task started"]
    assert (line["taskId"], line["findingIds"], line["followUp"]) == (follow_up[0], [finding], True)
    assert (third["started"], third["alreadyStarted"]) == ([], [*chunk_tasks[:3], follow_up[0], chunk_tasks[3]])
    follow_ups = [request for request in requests if request["taskId"] == follow_up[0]]
    assert len(follow_ups) == 2 and follow_ups[0] == follow_ups[1]  # the same request, the same token, each time
    unsuppressed = {f["findingId"] for check in PAGES for f in findings(check, unsuppressed_later) if not f["isSuppressed"]}
    covered = [f for _, _, ids in first for f in ids] + [finding]
    assert len(covered) == len(set(covered)) and set(covered) == unsuppressed


def test_a_dry_run_decides_and_logs_every_task_and_starts_none(mitigation, monkeypatch, capsys):
    monkeypatch.setenv("DRY_RUN", "true")
    stub, requests = stub_iot(mitigation)
    queue_listings(stub)  # no start answers queued: a start call would fail the test
    result = invoke(mitigation, "non_compliant")
    stub.assert_no_pending_responses()
    tasks = expected_tasks()
    assert requests == [] and result["result"] == "DryRunDecisions" and result["started"] == []
    assert result["planned"] == [task_id for task_id, _, _ in tasks]
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"DryRunDecisions": 4}
    decisions = [line for line in logs if line["message"] == "Dry run: mitigation task decided, not started"]
    assert [(d["auditTaskId"], d["checkName"], d["taskId"], d["findingIds"], d["actions"]) for d in decisions] == [
        (AUDIT_TASK, check, task_id, ids, MITIGATION_ACTIONS[check]) for task_id, check, ids in tasks
    ]
    assert all(len(d["clientRequestToken"]) == 64 for d in decisions)


class _Body:
    def __init__(self, body: dict) -> None:
        self._body = json.dumps(body).encode()

    def stream(self, **_: Any):
        yield self._body


def test_throttled_calls_are_retried(mitigation, monkeypatch):
    """IoT over HTTP, behind botocore's retry handling (a Stubber answers before it): the first ListAuditFindings
    and the first StartAuditMitigationActionsTask are throttled, and the client tries them again."""
    client = mitigation.handler.iot
    calls: list[str] = []
    pages = {
        (check, page(check, number - 1).get("nextToken") if number > 1 else None): page(check, number)
        for check in PAGES
        for number in range(1, PAGES[check] + 1)
    }

    def iot_endpoint(request, **_: Any) -> AWSResponse:
        operation = "list" if request.url.split("?")[0].endswith("/audit/findings") else "start"
        calls.append(operation)
        if calls.count(operation) == 1:
            headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
            return AWSResponse(request.url, 400, headers, _Body({"message": "Rate exceeded"}))
        if operation == "list":
            asked = json.loads(request.body)
            body = pages[(asked["checkName"], asked.get("nextToken"))]
        else:
            body = {"taskId": request.url.split("?")[0].rsplit("/", 1)[1]}
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Body(body))

    # This endpoint answers instead of moto, which has no Device Defender API (all before-send handlers run).
    client.meta.events.unregister("before-send", botocore_stubber)
    client.meta.events.register("before-send", iot_endpoint)
    backoffs: list[float] = []  # botocore's waits between attempts, recorded instead of slept
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=backoffs.append))
    result = invoke(mitigation, "non_compliant")
    assert len(backoffs) == 2  # one wait before each retried call
    assert calls == ["list", "list", "list", "list", "list", "start", "start", "start", "start", "start"]
    assert result["started"] == [task_id for task_id, _, _ in expected_tasks()]


def test_a_compliant_audit_starts_nothing(mitigation, capsys):
    stub, requests = stub_iot(mitigation)  # nothing queued: any IoT call fails the test
    result = invoke(mitigation, "compliant")
    assert (result["planned"], result["started"], requests) == ([], [], [])
    assert emitted(capsys.readouterr().out)[1] == {"MitigationTasksStarted": 0, "MitigationTasksAlreadyStarted": 0}


@pytest.mark.parametrize("status", ["FAILED", "CANCELED", "IN_PROGRESS"])
def test_an_audit_task_that_did_not_complete_is_logged_and_starts_nothing(mitigation, capsys, status):
    event = load_event(f"{SAMPLES}/failed_task")
    notification = json.loads(event["Records"][0]["Sns"]["Message"])
    event["Records"][0]["Sns"]["Message"] = json.dumps({**notification, "taskStatus": status})
    stub, requests = stub_iot(mitigation)
    result = mitigation.invoke(event)["results"][0]
    assert result == {"auditTaskId": notification["taskId"], "result": "AuditTasksNotCompleted", "taskStatus": status}
    assert requests == []
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"AuditTasksNotCompleted": 1}
    [line] = [line for line in logs if line["message"] == "Audit task not completed: nothing mitigated"]
    assert (line["level"], line["auditTaskId"], line["taskStatus"]) == ("WARNING", notification["taskId"], status)


def test_a_malformed_notification_is_kept_with_its_reason_and_not_retried(mitigation, capsys):
    event = load_event(f"{SAMPLES}/malformed")
    stub, requests = stub_iot(mitigation)
    result = mitigation.invoke(event)["results"][0]  # returns: a retry would fail the same way
    assert result == {"result": "MalformedNotifications", "reason": "taskId must be a non-empty string"}
    [dead] = mitigation.dead_letters()
    assert json.loads(dead["Body"]) == event
    assert dead["MessageAttributes"]["rejectionReason"]["StringValue"] == result["reason"]
    assert requests == []
    logs, metrics = emitted(capsys.readouterr().out)
    assert metrics == {"MalformedNotifications": 1}
    [line] = [line for line in logs if line["message"] == "Notification rejected to the dead-letter queue"]
    assert line["level"] == "WARNING" and line["reason"] == result["reason"]
