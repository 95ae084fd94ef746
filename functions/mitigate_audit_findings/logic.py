"""Which mitigation tasks an audit calls for, as plain values: the checks the map covers, the findings of each
in chunks the API accepts, and the ids that make starting them idempotent. No AWS here; mitigate.py lists the
findings and starts what this module decides.

StartAuditMitigationActionsTask's limits (API reference,
https://docs.aws.amazon.com/iot/latest/apireference/API_StartAuditMitigationActionsTask.html; seed 003:L569-574,
seed-api.md §9.3): taskId 1-128 of [a-zA-Z0-9_-]; auditCheckToActionsMapping 1-5 action names per check, each
at most 128 of [a-zA-Z0-9_-]; clientRequestToken 1-64 of [a-zA-Z0-9_-]; target.findingIds 1-25 ids.

Ids are deterministic so that a redelivered notification (SNS and Lambda's asynchronous retries deliver at
least once) asks for the same tasks, which AWS then refuses to start twice:
- A task's findings do not depend on suppressions. An audit's findings are fixed once it completes; only their
  `isSuppressed` changes, when an operator suppresses (or stops suppressing) a finding between two deliveries.
  So ALL the check's findings, suppressed or not, sorted by id, are cut into chunks of 25, and chunk N is task
  N's for good; the suppressed ones are then left out of each task's target (a chunk left empty starts no
  task). A suppression moves no finding into another task, so none is left without one.
- taskId = `<auditTaskId>_<checkName>_<chunk>`, chunk numbered from 001. Readable in the console; a check
  name that would overflow 128 characters, or holds a character the pattern refuses, is replaced by `h` and
  16 hex digits of its SHA-256.
- clientRequestToken = the SHA-256 (64 hex digits) of the task id, the actions and the target's finding ids:
  the same request gets the same token, and any other request under a taken task id (its target changed by a
  suppression, its actions by a new deployment) a different one, which AWS refuses with
  TaskAlreadyExistsException ("the same task-id as an existing task but with a different clientRequestToken").
  A token reused with other parameters is a case the API does not document: never sent.
- A task that exists may cover less than its chunk's target now: a finding suppressed when it started, and no
  longer. Those findings (and only those) get a follow-up task, `<taskId>_<12 hex digits of the SHA-256 of
  their ids>`: the same on every delivery that finds the same findings missing.
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


def task_id(audit_task_id: str, check_name: str, chunk: int, follow_up: str = "") -> str:
    """`follow_up`: the digest of a follow-up task's findings, after its chunk's number."""
    suffix = f"_{chunk:03d}" + (f"_{follow_up}" if follow_up else "")
    readable = f"{audit_task_id}_{check_name}{suffix}"
    if len(readable) <= TASK_ID_MAX_LENGTH and _ID.fullmatch(readable):
        return readable
    return f"{audit_task_id}_h{hashlib.sha256(check_name.encode()).hexdigest()[:16]}{suffix}"


def client_request_token(task: str, actions: Iterable[str], finding_ids: Iterable[str]) -> str:
    material = "\n".join((task, ",".join(actions), ",".join(finding_ids)))
    return hashlib.sha256(material.encode()).hexdigest()


class PlannedTask(NamedTuple):
    taskId: str
    clientRequestToken: str
    checkName: str
    actions: tuple[str, ...]
    findingIds: tuple[str, ...]
    auditTaskId: str
    chunk: int  # its chunk's number among the check's findings
    followUp: bool = False  # for findings its chunk's task, started earlier, does not cover

    def request(self) -> dict:
        """StartAuditMitigationActionsTask's parameters."""
        return {
            "taskId": self.taskId,
            "target": {"findingIds": list(self.findingIds)},
            "auditCheckToActionsMapping": {self.checkName: list(self.actions)},
            "clientRequestToken": self.clientRequestToken,
        }


def _task(
    audit_task_id: str, check_name: str, actions: tuple[str, ...], chunk: int, targets: tuple[str, ...], digest: str = ""
) -> PlannedTask:
    identifier = task_id(audit_task_id, check_name, chunk, digest)
    token = client_request_token(identifier, actions, targets)
    return PlannedTask(identifier, token, check_name, actions, targets, audit_task_id, chunk, bool(digest))


def plan_check(
    audit_task_id: str,
    check_name: str,
    actions: tuple[str, ...],
    finding_ids: Iterable[str],
    suppressed: Iterable[str] = (),
) -> list[PlannedTask]:
    """A task per chunk of 25 of all the check's findings (`finding_ids`, suppressed ones included), each
    targeting its chunk's findings that are not `suppressed`."""
    left_alone = frozenset(suppressed)
    planned = []
    for number, chunk in enumerate(chunks(finding_ids), start=1):
        targets = tuple(finding for finding in chunk if finding not in left_alone)
        if targets:
            planned.append(_task(audit_task_id, check_name, actions, number, targets))
    return planned


def follow_up(task: PlannedTask, covered: Iterable[str]) -> PlannedTask | None:
    """For `task`, which exists already and covers `covered`: a task for its findings that are not covered
    (unsuppressed since it started), or None when it covers them all."""
    already = frozenset(covered)
    missing = tuple(finding for finding in task.findingIds if finding not in already)
    if not missing:
        return None
    digest = hashlib.sha256(",".join(missing).encode()).hexdigest()[:12]
    return _task(task.auditTaskId, task.checkName, task.actions, task.chunk, missing, digest)
