"""IoT Device Defender's audit side, which moto lacks: an audit's findings, and the audit mitigation actions
tasks that apply the template's mitigation actions (AWS::IoT::MitigationAction) to them.

The runtime cannot run an audit's checks: the program using it (a test) records what an audit found with
`record_findings` (findings in ListAuditFindings' shape, such as the pages of
events/mitigate_audit_findings/findings), then publishes the audit's notification to its topic.

- ListAuditFindings: by `taskId` and `checkName`, in the order recorded, `maxResults` (1-250) a page with an
  opaque `nextToken` (https://docs.aws.amazon.com/iot/latest/apireference/API_ListAuditFindings.html). The
  other filters are refused.
- StartAuditMitigationActionsTask, checked as the API reference states it
  (https://docs.aws.amazon.com/iot/latest/apireference/API_StartAuditMitigationActionsTask.html): a task id of
  1-128 of [a-zA-Z0-9_-], a target of 1-25 finding ids (by audit task or reason code: refused, not emulated),
  1-5 existing actions per check, a client request token of 1-64 of [a-zA-Z0-9_-];
  TaskAlreadyExistsException for a task id already used. It answers at once; the task runs at the event
  sources' next poll, as AWS runs it after answering.
- DescribeAuditMitigationActionsTask
  (https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeAuditMitigationActionsTask.html): a task's
  status, start time, target and actions; ResourceNotFoundException for a task id not used.
- `set_suppressed` stands for an operator's audit suppression (CreateAuditSuppression, DeleteAuditSuppression,
  not emulated): it changes the finding's `isSuppressed` as ListAuditFindings lists it from then on; the
  audit's findings themselves stay as recorded.
- A task applies to each of its findings its check's actions, in the order given, and skips the rest of them
  for that finding once one fails, as AWS does. What each action type does here:
  - PUBLISH_FINDING_TO_SNS publishes the finding to the action's topic, with the task's id and the action's
    name and id beside its fields. AWS does not document that message; this is the shape remediate_finding
    reads first (its other accepted shape nests the finding under `finding`).
  - ADD_THINGS_TO_THING_GROUP adds every thing of the finding's device certificate to the action's groups.
  - UPDATE_DEVICE_CERTIFICATE and UPDATE_CA_CERTIFICATE make the finding's certificate INACTIVE.
  - ENABLE_IOT_LOGGING and REPLACE_DEFAULT_POLICY_VERSION are not emulated: their executions fail, saying so.
- The action's role is not assumed: IAM is not emulated, so the action can do what its type does.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from local_runtime.account import ACCOUNT_ID, REGION
from local_runtime.activity import MitigationActionExecuted, Observer

MAX_PAGE = 250
FINDINGS_PER_TASK = 25
ACTIONS_PER_CHECK = 5
_TASK_ID = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_TOKEN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# The ActionParams member of each action type (AWS::IoT::MitigationAction ActionParams).
ACTION_TYPES = {
    "PublishFindingToSnsParams": "PUBLISH_FINDING_TO_SNS",
    "AddThingsToThingGroupParams": "ADD_THINGS_TO_THING_GROUP",
    "UpdateDeviceCertificateParams": "UPDATE_DEVICE_CERTIFICATE",
    "UpdateCACertificateParams": "UPDATE_CA_CERTIFICATE",
    "EnableIoTLoggingParams": "ENABLE_IOT_LOGGING",
    "ReplaceDefaultPolicyVersionParams": "REPLACE_DEFAULT_POLICY_VERSION",
}
# The ActionParams members of the types the runtime performs (the others' executions fail, not emulated).
PERFORMED = frozenset(
    {"PublishFindingToSnsParams", "AddThingsToThingGroupParams", "UpdateDeviceCertificateParams", "UpdateCACertificateParams"}
)


@dataclass(frozen=True)
class MitigationAction:
    name: str
    action_id: str
    action_type: str
    params: Mapping[str, Any]  # the type's member of ActionParams, resolved


@dataclass
class MitigationTask:
    task_id: str
    client_request_token: str
    finding_ids: tuple[str, ...]
    actions: Mapping[str, tuple[str, ...]]  # check name -> action names, applied in order
    started_at: datetime
    status: str = "IN_PROGRESS"
    executions: list[MitigationActionExecuted] = field(default_factory=list)


class ApiError(Exception):
    """An answer of the API other than success: raised in moto's request handler, answered as AWS answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DeviceDefender:
    """The findings recorded, the mitigation actions the template declares, and the tasks started. The API
    calls arrive on moto's request threads; the tasks run on the runtime's thread: a lock keeps them apart."""

    def __init__(self) -> None:
        self.actions: dict[str, MitigationAction] = {}
        self.findings: list[dict[str, Any]] = []
        self.tasks: dict[str, MitigationTask] = {}
        self._pending: list[MitigationTask] = []
        self._lock = threading.Lock()

    def add_action(self, name: str, action_params: Mapping[str, Any]) -> MitigationAction:
        members = [member for member in action_params if member in ACTION_TYPES]
        if len(members) != 1 or set(action_params) - set(ACTION_TYPES):
            raise ValueError(f"ActionParams must hold exactly one of {', '.join(ACTION_TYPES)}")
        action = MitigationAction(name, str(uuid.uuid4()), ACTION_TYPES[members[0]], action_params[members[0]])
        self.actions[name] = action
        return action

    def record_findings(self, findings: list[Mapping[str, Any]]) -> None:
        """What an audit found, as ListAuditFindings lists it."""
        with self._lock:
            known = {finding["findingId"] for finding in self.findings}
            for finding in findings:
                if finding["findingId"] in known:
                    raise ValueError(f"Finding {finding['findingId']} is already recorded")
                self.findings.append(dict(finding))
                known.add(finding["findingId"])

    def set_suppressed(self, finding_id: str, suppressed: bool) -> None:
        with self._lock:
            finding = next((f for f in self.findings if f["findingId"] == finding_id), None)
            if finding is None:
                raise ValueError(f"Finding {finding_id} is not recorded")
            finding["isSuppressed"] = suppressed

    # --- the API, on moto's request threads -------------------------------------------------------------------
    def list_audit_findings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        unsupported = sorted(set(params) - {"taskId", "checkName", "maxResults", "nextToken"})
        if unsupported:
            raise ApiError("InvalidRequestException", f"ListAuditFindings by {', '.join(unsupported)} is not emulated")
        if not params.get("taskId") or not params.get("checkName"):
            raise ApiError("InvalidRequestException", "ListAuditFindings needs taskId and checkName here")
        size = int(params.get("maxResults") or 25)
        if not 1 <= size <= MAX_PAGE:
            raise ApiError("InvalidRequestException", f"maxResults must be 1 to {MAX_PAGE}")
        token = params.get("nextToken") or "0"
        if not token.isdigit():
            raise ApiError("InvalidRequestException", "nextToken is not one this API gave")
        with self._lock:
            matching = [f for f in self.findings if (f.get("taskId"), f.get("checkName")) == (params["taskId"], params["checkName"])]
        start = int(token)
        page: dict[str, Any] = {"findings": matching[start : start + size]}
        if start + size < len(matching):
            page["nextToken"] = str(start + size)
        return page

    def start_audit_mitigation_actions_task(self, params: Mapping[str, Any]) -> dict[str, Any]:
        task_id, token = str(params.get("taskId") or ""), str(params.get("clientRequestToken") or "")
        if not _TASK_ID.fullmatch(task_id):
            raise ApiError("InvalidRequestException", "taskId must be 1-128 of a-z, A-Z, 0-9, _ and -")
        if not _TOKEN.fullmatch(token):
            raise ApiError("InvalidRequestException", "clientRequestToken must be 1-64 of a-z, A-Z, 0-9, _ and -")
        target = params.get("target") or {}
        if set(target) != {"findingIds"}:
            raise ApiError("InvalidRequestException", "a target other than findingIds is not emulated")
        finding_ids = tuple(target["findingIds"])
        if not 1 <= len(finding_ids) <= FINDINGS_PER_TASK:
            raise ApiError("InvalidRequestException", f"target.findingIds must hold 1 to {FINDINGS_PER_TASK} ids")
        mapping = {check: tuple(names) for check, names in (params.get("auditCheckToActionsMapping") or {}).items()}
        if not mapping or not all(1 <= len(names) <= ACTIONS_PER_CHECK for names in mapping.values()):
            raise ApiError("InvalidRequestException", f"each check must map to 1 to {ACTIONS_PER_CHECK} actions")
        missing = sorted({name for names in mapping.values() for name in names} - set(self.actions))
        if missing:
            raise ApiError("ResourceNotFoundException", f"No mitigation action {', '.join(missing)}")
        with self._lock:
            known = {finding["findingId"] for finding in self.findings}
            unknown = sorted(set(finding_ids) - known)
            if unknown:
                raise ApiError("ResourceNotFoundException", f"No audit finding {', '.join(unknown)}")
            if task_id in self.tasks:
                raise ApiError("TaskAlreadyExistsException", f"An audit mitigation actions task {task_id} already exists")
            task = MitigationTask(task_id, token, finding_ids, mapping, datetime.now(timezone.utc))
            self.tasks[task_id] = task
            self._pending.append(task)
        return {"taskId": task_id}

    def describe_audit_mitigation_actions_task(self, params: Mapping[str, Any]) -> dict[str, Any]:
        task_id = str(params.get("taskId") or "")
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise ApiError("ResourceNotFoundException", f"No audit mitigation actions task {task_id}")
            return {
                "taskStatus": task.status,
                "startTime": task.started_at,
                "target": {"findingIds": list(task.finding_ids)},
                "auditCheckToActionsMapping": {check: list(names) for check, names in task.actions.items()},
            }

    # --- the tasks, on the runtime's thread ------------------------------------------------------------------
    def take_pending(self) -> list[MitigationTask]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def finding(self, finding_id: str) -> dict[str, Any]:
        with self._lock:
            return next(finding for finding in self.findings if finding["findingId"] == finding_id)


class MitigationTasks:
    """Runs the tasks started since the last poll through the embedded AWS, recording each execution."""

    def __init__(self, defender: DeviceDefender, client: Callable[[str], Any], observer: Observer) -> None:
        self._defender = defender
        self._client = client
        self._observer = observer

    def run_pending(self) -> bool:
        tasks = self._defender.take_pending()
        for task in tasks:
            self._run(task)
        return bool(tasks)

    def _run(self, task: MitigationTask) -> None:
        for finding_id in task.finding_ids:
            finding = self._defender.finding(finding_id)
            failed = False
            for name in task.actions.get(finding.get("checkName", ""), ()):
                action = self._defender.actions[name]
                status, reason = "SKIPPED", "an earlier action failed for this finding"
                if not failed:
                    try:
                        self._apply(action, finding, task)
                        status, reason = "COMPLETED", None
                    except Exception as error:  # noqa: BLE001 - any failure of an action is that execution's
                        status, reason, failed = "FAILED", f"{type(error).__name__}: {error}", True
                execution = MitigationActionExecuted(task.task_id, finding_id, name, action.action_type, status, reason)
                task.executions.append(execution)
                self._observer(execution)
        task.status = "FAILED" if any(e.status == "FAILED" for e in task.executions) else "COMPLETED"

    def _apply(self, action: MitigationAction, finding: Mapping[str, Any], task: MitigationTask) -> None:
        identifier = finding.get("nonCompliantResource", {}).get("resourceIdentifier", {})
        iot = self._client("iot")
        if action.action_type == "PUBLISH_FINDING_TO_SNS":
            message = {**finding, "mitigationActionsTaskId": task.task_id, "actionName": action.name, "actionId": action.action_id}
            self._client("sns").publish(TopicArn=action.params["TopicArn"], Message=json.dumps(message))
        elif action.action_type == "ADD_THINGS_TO_THING_GROUP":
            certificate = iot.describe_certificate(certificateId=_required(identifier, "deviceCertificateId"))
            principal = certificate["certificateDescription"]["certificateArn"]
            for page in iot.get_paginator("list_principal_things").paginate(principal=principal):
                for thing in page.get("things", []):
                    for group in action.params["ThingGroupNames"]:
                        iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
        elif action.action_type == "UPDATE_DEVICE_CERTIFICATE":
            iot.update_certificate(certificateId=_required(identifier, "deviceCertificateId"), newStatus="INACTIVE")
        elif action.action_type == "UPDATE_CA_CERTIFICATE":
            iot.update_ca_certificate(certificateId=_required(identifier, "caCertificateId"), newStatus="INACTIVE")
        else:
            raise NotImplementedError(f"{action.action_type} is not emulated by the local runtime")


def _required(identifier: Mapping[str, Any], key: str) -> str:
    if not identifier.get(key):
        raise ValueError(f"the finding's resourceIdentifier has no {key}, which this action needs")
    return str(identifier[key])


def action_arn(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:mitigationaction/{name}"


_LIST_PARAMETERS = ("taskId", "checkName", "maxResults", "nextToken", "resourceIdentifier", "startTime", "endTime", "listSuppressedFindings")
_START_PARAMETERS = ("taskId", "target", "auditCheckToActionsMapping", "clientRequestToken")
_DESCRIBE_PARAMETERS = ("taskId",)
# The calls answered here, by the IoTResponse method moto routes each to.
_ANSWERED = ("list_audit_findings", "start_audit_mitigation_actions_task", "describe_audit_mitigation_actions_task")


def install(defender: DeviceDefender) -> Callable[[], None]:
    """Answers the three calls in moto's IoT (whose routes already take them, unanswered); returns what undoes it."""
    from moto.core.exceptions import ServiceException  # moto loads its backends lazily: so does this
    from moto.core.responses import ActionResult
    from moto.iot.responses import IoTResponse

    def answering(call: Callable[[Mapping[str, Any]], dict[str, Any]], names: tuple[str, ...]) -> Callable[[IoTResponse], Any]:
        def method(response: IoTResponse) -> Any:
            params = {name: value for name in names if (value := response._get_param(name)) is not None}
            try:
                return ActionResult(call(params))
            except ApiError as error:
                raise type(error.code, (ServiceException,), {"code": error.code})(str(error)) from None

        return method

    IoTResponse.list_audit_findings = answering(defender.list_audit_findings, _LIST_PARAMETERS)  # type: ignore[attr-defined]
    IoTResponse.start_audit_mitigation_actions_task = answering(  # type: ignore[attr-defined]
        defender.start_audit_mitigation_actions_task, _START_PARAMETERS
    )
    IoTResponse.describe_audit_mitigation_actions_task = answering(  # type: ignore[attr-defined]
        defender.describe_audit_mitigation_actions_task, _DESCRIBE_PARAMETERS
    )

    def uninstall() -> None:
        for name in _ANSWERED:
            if name in vars(IoTResponse):
                delattr(IoTResponse, name)

    return uninstall
