"""A deliberately minimal AWS IoT rules engine: `SELECT * FROM '<topic filter>'` (SQL version 2016-03-23) with
sqs and lambda actions and an errorAction. Every rule is checked when the rules load, and anything else (a
WHERE clause, a projection, a function, another SQL version, another action type) is refused there, naming
the rule, rather than evaluated wrongly.

`SELECT *` passes the payload on as it is: a JSON document (AWS re-serializes it, to the same JSON value) or,
for any other payload, the raw bytes, which AWS calls a binary payload.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from local_runtime.activity import ActionOutcome, Observer, RuleFired
from local_runtime.assembly import Resource, Stack
from local_runtime.cloud import EmbeddedAws
from local_runtime.errors import NotEmulated
from local_runtime.event_sources import EventSources
from local_runtime.functions import LocalFunction, LocalFunctions
from local_runtime.topics import TopicFilter

TOPIC_RULE = "AWS::IoT::TopicRule"
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
SQL_VERSION = "2016-03-23"
DEFAULT_SQL_VERSION = "2015-10-08"  # what IoT uses when a rule gives no AwsIotSqlVersion
_SELECT_ALL = re.compile(r"\s*SELECT\s+\*\s+FROM\s+'([^']*)'\s*", re.IGNORECASE)
# The characters SQS accepts in a message body (moto accepts any, so the check is made here).
_NOT_SQS_TEXT = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SQS_FAILED = "Failed to send the message to SQS"
NO_CLIENT = "n/a"  # what IoT's clientid() gives for a message that did not come over MQTT


@dataclass(frozen=True)
class SqsAction:
    queue_url: str
    queue: str  # its logical id
    use_base64: bool

    kind = "sqs"
    failed_action = "SqsAction"

    @property
    def target(self) -> str:
        return self.queue

    @property
    def resource(self) -> str:
        return self.queue_url


@dataclass(frozen=True)
class LambdaAction:
    function: LocalFunction

    kind = "lambda"
    failed_action = "LambdaAction"

    @property
    def target(self) -> str:
        return self.function.name

    @property
    def resource(self) -> str:
        return self.function.function_arn


Action = SqsAction | LambdaAction


@dataclass(frozen=True)
class TopicRule:
    name: str
    resource: Resource
    topic_filter: TopicFilter
    actions: tuple[Action, ...]
    error_action: Action | None
    disabled: bool


class _ActionFailed(Exception):
    pass


def load_rules(stack: Stack, cloud: EmbeddedAws, functions: LocalFunctions) -> list[TopicRule]:
    return [_rule(stack, resource, cloud, functions) for resource in stack.of_type(TOPIC_RULE)]


def _rule(stack: Stack, resource: Resource, cloud: EmbeddedAws, functions: LocalFunctions) -> TopicRule:
    name = resource.properties.get("RuleName", resource.logical_id)
    label = f"Rule {name} ({resource.cdk_path or resource.logical_id})"
    payload = resource.properties["TopicRulePayload"]
    sql, version = payload["Sql"], payload.get("AwsIotSqlVersion", DEFAULT_SQL_VERSION)
    match = _SELECT_ALL.fullmatch(sql)
    if match is None or version != SQL_VERSION:
        raise NotEmulated(
            f"{label}: this runtime evaluates only `SELECT * FROM '<topic filter>'` with SQL version {SQL_VERSION} "
            f"for now; the rule has {sql!r} (SQL version {version})"
        )
    where = f"{resource.logical_id}.TopicRulePayload"
    actions = tuple(
        _action(stack, action, f"{where}.Actions[{index}]", label, cloud, functions)
        for index, action in enumerate(payload.get("Actions", []))
    )
    error_action = payload.get("ErrorAction")
    return TopicRule(
        name=name,
        resource=resource,
        topic_filter=TopicFilter.parse(match.group(1), label),
        actions=actions,
        error_action=_action(stack, error_action, f"{where}.ErrorAction", label, cloud, functions)
        if error_action
        else None,
        disabled=payload.get("RuleDisabled") in (True, "true"),
    )


def _action(
    stack: Stack, action: dict[str, Any], where: str, label: str, cloud: EmbeddedAws, functions: LocalFunctions
) -> Action:
    (kind, settings), = action.items()
    if kind == "Sqs":
        queue_url = cloud.resolver.resolve_string(settings["QueueUrl"], f"{where}.Sqs.QueueUrl")
        queue = cloud.queue_logical_id(queue_url)
        if queue is None:
            raise NotEmulated(f"{label}: its sqs action sends to {queue_url}, which is not a queue of this stack")
        return SqsAction(queue_url, queue, use_base64=bool(settings.get("UseBase64", False)))
    if kind == "Lambda":
        arn = cloud.resolver.resolve_string(settings["FunctionArn"], f"{where}.Lambda.FunctionArn")
        function = functions.for_arn(arn)
        if function is None:
            raise NotEmulated(f"{label}: its lambda action invokes {arn}, which is not a function this runtime can run")
        for config in stack.of_type(EVENT_INVOKE_CONFIG):
            configured = cloud.resolver.resolve(config.properties.get("FunctionName"), config.logical_id)
            if configured in (function.function_name, arn):
                raise NotEmulated(
                    f"{label}: {config.label} configures asynchronous invocations of {function.name}, "
                    "which this runtime does not emulate"
                )
        return LambdaAction(function)
    raise NotEmulated(f"{label}: the {kind} action is not emulated by this runtime (only sqs and lambda actions are)")


class RulesEngine:
    def __init__(self, rules: list[TopicRule], sqs: Any, event_sources: EventSources, observer: Observer) -> None:
        self.rules = rules
        self._sqs = sqs
        self._event_sources = event_sources
        self._observer = observer

    def publish(self, topic: str, payload: bytes, client_id: str = NO_CLIENT) -> list[RuleFired]:
        """Runs every enabled rule whose topic filter matches `topic`, in template order."""
        fired = []
        for rule in self.rules:
            if not rule.disabled and rule.topic_filter.matches(topic):
                fired.append(self._run(rule, topic, payload, client_id))
                self._observer(fired[-1])
        return fired

    def _run(self, rule: TopicRule, topic: str, payload: bytes, client_id: str) -> RuleFired:
        outcomes = tuple(self._attempt(rule, action, topic, payload) for action in rule.actions)
        failures = [
            {"failedAction": action.failed_action, "failedResource": action.resource, "errorMessage": outcome.error}
            for action, outcome in zip(rule.actions, outcomes)
            if outcome.error is not None
        ]
        error_outcome = None
        if failures and rule.error_action is not None:
            # One message per rule and message, holding every failed action: AWS's errorAction format.
            message = {
                "ruleName": rule.name,
                "topic": topic,
                "cloudwatchTraceId": str(uuid.uuid4()),
                "clientId": client_id,
                "base64OriginalPayload": base64.b64encode(payload).decode(),
                "failures": failures,
            }
            error_outcome = self._attempt(rule, rule.error_action, topic, json.dumps(message).encode())
        return RuleFired(rule=rule.name, topic=topic, actions=outcomes, error_action=error_outcome)

    def _attempt(self, rule: TopicRule, action: Action, topic: str, payload: bytes) -> ActionOutcome:
        try:
            if isinstance(action, SqsAction):
                self._send(action, payload)
            else:
                self._invoke(rule, action, payload)
        except _ActionFailed as failure:
            error = f"{failure}. Message arrived on: {topic}, Action: {action.kind}"  # as AWS's messages end
            return ActionOutcome(action.kind, action.target, error)
        return ActionOutcome(action.kind, action.target)

    def _send(self, action: SqsAction, payload: bytes) -> None:
        if action.use_base64:
            body = base64.b64encode(payload).decode()
        else:
            try:
                body = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise _ActionFailed(f"{_SQS_FAILED}: the payload is not UTF-8 text (useBase64 is false)") from None
            if _NOT_SQS_TEXT.search(body):
                raise _ActionFailed(f"{_SQS_FAILED}: the payload holds characters SQS refuses (useBase64 is false)")
        try:
            self._sqs.send_message(QueueUrl=action.queue_url, MessageBody=body)
        except ClientError as error:
            raise _ActionFailed(f"{_SQS_FAILED}: {error}") from None

    def _invoke(self, rule: TopicRule, action: LambdaAction, payload: bytes) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            raise _ActionFailed(
                "The lambda action takes JSON only and this payload is binary "
                "(AWS's advice: SELECT encode(*, 'base64') AS data)"
            ) from None
        self._event_sources.invoke_async(action.function, event, f"rule {rule.name}")
