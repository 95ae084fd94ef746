"""Which mitigation tasks an audit calls for, as plain values: the checks the map covers, the findings of each
in chunks the API accepts, and the ids that make starting them idempotent. No AWS here; mitigate.py lists the
findings and starts what this module decides.

StartAuditMitigationActionsTask's limits (API reference,
https://docs.aws.amazon.com/iot/latest/apireference/API_StartAuditMitigationActionsTask.html; seed 003:L569-574,
seed-api.md §9.3): taskId 1-128 of [a-zA-Z0-9_-]; auditCheckToActionsMapping 1-5 action names per check, each
at most 128 of [a-zA-Z0-9_-]; clientRequestToken 1-64 of [a-zA-Z0-9_-]; target.findingIds 1-25 ids.

Ids are deterministic so that a redelivered notification (SNS and Lambda's asynchronous retries deliver at
least once) asks for the same tasks, which AWS then refuses to start twice:
- taskId = `<auditTaskId>_<checkName>_<chunk>`, chunk numbered from 001 over the check's findings sorted by id,
  so the chunks of a redelivery are the same. Readable in the console; a check name that would overflow 128
  characters, or holds a character the pattern refuses, is replaced by `h` and 16 hex digits of its SHA-256.
- clientRequestToken = the SHA-256 (64 hex digits) of the task id, the actions and the finding ids: the same
  request gets the same token, and a different request under a taken task id is refused by AWS
  (TaskAlreadyExistsException) instead of being merged into it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable, Mapping, NamedTuple

FINDINGS_PER_TASK = 25
ACTIONS_PER_CHECK = 5
TASK_ID_MAX_LENGTH = 128
TOKEN_MAX_LENGTH = 64
_ID = re.compile(r"[a-zA-Z0-9_-]+")
_ACTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")

ActionsMap = Mapping[str, tuple[str, ...]]  # check name -> deployed mitigation action names, applied in order


class PlannedTask(NamedTuple):
    taskId: str
    clientRequestToken: str
    checkName: str
    actions: tuple[str, ...]
    findingIds: tuple[str, ...]

    def request(self) -> dict:
        """StartAuditMitigationActionsTask's parameters."""
        return {
            "taskId": self.taskId,
            "target": {"findingIds": list(self.findingIds)},
            "auditCheckToActionsMapping": {self.checkName: list(self.actions)},
            "clientRequestToken": self.clientRequestToken,
        }


def parse_actions_map(document: str) -> dict[str, tuple[str, ...]]:
    """MITIGATION_ACTIONS, validated at synth; checked again here so that a hand-edited environment fails the
    cold start with a clear error rather than every StartAuditMitigationActionsTask call."""
    try:
        decoded = json.loads(document)
    except ValueError:
        raise ValueError("MITIGATION_ACTIONS is not JSON") from None
    if not isinstance(decoded, dict):
        raise ValueError("MITIGATION_ACTIONS must be an object of check name -> list of action names")
    actions: dict[str, tuple[str, ...]] = {}
    for check, names in decoded.items():
        if not isinstance(names, list) or not 1 <= len(names) <= ACTIONS_PER_CHECK:
            raise ValueError(f"MITIGATION_ACTIONS[{check}] must list 1 to {ACTIONS_PER_CHECK} action names")
        if not all(isinstance(name, str) and _ACTION_NAME.fullmatch(name) for name in names):
            raise ValueError(f"MITIGATION_ACTIONS[{check}] must hold mitigation action names (1-128 of a-z, A-Z, 0-9, _ and -)")
        if len(set(names)) != len(names):
            raise ValueError(f"MITIGATION_ACTIONS[{check}] names an action twice")
        actions[check] = tuple(names)
    return actions


def covered_checks(non_compliant: Iterable[str], actions: ActionsMap) -> tuple[list[str], list[str]]:
    """The non-compliant checks the map covers (sorted: the order of the calls is the same on a redelivery),
    and those it does not (logged, left alone)."""
    names = sorted(set(non_compliant))
    return [name for name in names if name in actions], [name for name in names if name not in actions]


def chunks(finding_ids: Iterable[str], size: int = FINDINGS_PER_TASK) -> list[tuple[str, ...]]:
    ordered = sorted(set(finding_ids))
    return [tuple(ordered[start : start + size]) for start in range(0, len(ordered), size)]


def task_id(audit_task_id: str, check_name: str, chunk: int) -> str:
    suffix = f"_{chunk:03d}"
    readable = f"{audit_task_id}_{check_name}{suffix}"
    if len(readable) <= TASK_ID_MAX_LENGTH and _ID.fullmatch(readable):
        return readable
    return f"{audit_task_id}_h{hashlib.sha256(check_name.encode()).hexdigest()[:16]}{suffix}"


def client_request_token(task: str, actions: Iterable[str], finding_ids: Iterable[str]) -> str:
    material = "\n".join((task, ",".join(actions), ",".join(finding_ids)))
    return hashlib.sha256(material.encode()).hexdigest()


def plan_check(audit_task_id: str, check_name: str, actions: tuple[str, ...], finding_ids: Iterable[str]) -> list[PlannedTask]:
    planned = []
    for number, chunk in enumerate(chunks(finding_ids), start=1):
        identifier = task_id(audit_task_id, check_name, number)
        planned.append(
            PlannedTask(identifier, client_request_token(identifier, actions, chunk), check_name, actions, chunk)
        )
    return planned
