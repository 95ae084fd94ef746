"""The AWS IoT rules engine, as the local runtime runs it: every enabled topic rule whose FROM topic filter
matches a published message evaluates its SQL (version 2016-03-23, see iot_sql/) and, when its WHERE clause
holds, performs its actions (rule_actions.py); when an action fails, the errorAction gets one message in the
format AWS documents, holding every failed action of that rule and message. A message sent with Basic Ingest
(`$aws/rules/<rule>/...`) goes to that rule alone, whatever its FROM, and to no subscriber; an SQL
evaluation failure runs no action and no errorAction, which AWS keeps for failed actions.

Everything is checked when the rules load: a rule whose SQL, SQL version or action this runtime cannot
evaluate is refused there, naming the rule and its construct, rather than evaluated wrongly. A message
republished by a rule goes through the rules again, as on AWS; a chain of republishes that does not end
(AWS warns of such loops) is stopped and reported.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from local_runtime.activity import ActionOutcome, Observer, RuleFired
from local_runtime.assembly import Resource, Stack
from local_runtime.async_invocations import AsyncInvocations
from local_runtime.cloud import TOPIC_RULE, EmbeddedAws
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.firehose import DeliveryStreams
from local_runtime.functions import LocalFunction, LocalFunctions
from local_runtime.iot_sql import NOT_FIRED, MessageContext, SqlEvaluationError, SqlNotSupported, Statement, parse_rule_sql
from local_runtime.rule_actions import Action, ActionFailed, Message, Output, load_action
from local_runtime.topics import BasicIngest, TopicFilter, basic_ingest

SQL_VERSION = "2016-03-23"
DEFAULT_SQL_VERSION = "2015-10-08"  # what IoT uses when a rule gives no AwsIotSqlVersion
NO_CLIENT = "n/a"  # what IoT's clientid() gives for a message that did not come over MQTT
MAX_REPUBLISH_HOPS = 16
_RULE_PROPERTIES = {"Sql", "AwsIotSqlVersion", "Actions", "ErrorAction", "RuleDisabled", "Description"}


@dataclass(frozen=True)
class TopicRule:
    name: str
    arn: str
    resource: Resource
    sql: str
    statement: Statement
    topic_filter: TopicFilter | None  # None: its SQL has no FROM, so only Basic Ingest invokes it
    actions: tuple[Action, ...]
    error_action: Action | None
    disabled: bool

    @property
    def label(self) -> str:
        return f"Rule {self.name} ({self.resource.cdk_path or self.resource.logical_id})"


def load_rules(stack: Stack, cloud: EmbeddedAws, functions: LocalFunctions) -> list[TopicRule]:
    return [_rule(resource, cloud, functions) for resource in stack.of_type(TOPIC_RULE)]


def _rule(resource: Resource, cloud: EmbeddedAws, functions: LocalFunctions) -> TopicRule:
    physical = cloud.physical[resource.logical_id]
    name, arn = physical.ref, physical.attributes["Arn"]
    label = f"Rule {name} ({resource.cdk_path or resource.logical_id})"
    payload = resource.properties["TopicRulePayload"]
    unknown = sorted(set(payload) - _RULE_PROPERTIES)
    if unknown:
        raise NotEmulated(f"{label}: TopicRulePayload property {', '.join(unknown)} is not emulated")
    version = payload.get("AwsIotSqlVersion", DEFAULT_SQL_VERSION)
    if version != SQL_VERSION:
        raise NotEmulated(f"{label}: this runtime evaluates SQL version {SQL_VERSION}; the rule uses {version}")
    try:
        statement = parse_rule_sql(payload["Sql"])
    except SqlNotSupported as error:
        raise NotEmulated(f"{label}: its SQL {payload['Sql']!r} cannot be evaluated here: {error}") from None
    where = f"{resource.logical_id}.TopicRulePayload"

    def action(value: dict[str, Any], place: str) -> Action:
        try:
            return load_action(value, f"{where}.{place}", label, arn, cloud, functions)
        except SqlNotSupported as error:
            raise NotEmulated(f"{label}: {place} has a substitution template that cannot be evaluated: {error}") from None

    error_action = payload.get("ErrorAction")
    return TopicRule(
        name=name,
        arn=arn,
        resource=resource,
        sql=payload["Sql"],
        statement=statement,
        topic_filter=None if statement.topic_filter is None else TopicFilter.parse(statement.topic_filter, label),
        actions=tuple(action(value, f"Actions[{index}]") for index, value in enumerate(payload.get("Actions", []))),
        error_action=action(error_action, "ErrorAction") if error_action else None,
        disabled=payload.get("RuleDisabled") in (True, "true"),
    )


class RulesEngine:
    def __init__(
        self,
        rules: list[TopicRule],
        cloud: EmbeddedAws,
        async_invocations: AsyncInvocations,
        delivery_streams: DeliveryStreams,
        observer: Observer,
    ) -> None:
        self.rules = rules
        self._cloud = cloud
        self._async_invocations = async_invocations
        self._delivery_streams = delivery_streams
        self._observer = observer
        # Where the messages IoT's broker sends to subscribed devices go (the device endpoint), when it runs.
        self.deliver: Callable[[str, bytes], None] | None = None

    # The services the actions use (rule_actions.Services).
    def client(self, service: str) -> Any:
        return self._cloud.client(service)

    def invoke_async(self, function: LocalFunction, event: Any, source: str) -> None:
        self._async_invocations.invoke(function, event, source)

    def put_records(self, stream: str, records: list[bytes]) -> None:
        self._delivery_streams.put(stream, records)

    def publish(
        self,
        topic: str,
        payload: bytes,
        client_id: str = NO_CLIENT,
        principal: str | None = None,
        *,
        delivered: bool = False,
    ) -> list[RuleFired]:
        """Runs every enabled rule whose topic filter matches `topic`, in template order, then the rules on
        what those rules republished; each message also goes to the subscribed devices (`deliver`), but for
        one the device broker `delivered` itself."""
        fired: list[RuleFired] = []
        waiting = deque([(topic, payload, client_id, principal, 0)])
        while waiting:
            topic, payload, client_id, principal, hops = waiting.popleft()
            ingest = basic_ingest(topic)
            # Basic Ingest skips the broker: no device receives it.
            if self.deliver is not None and (hops or not delivered) and ingest is None:
                self.deliver(topic, payload)
            if hops > MAX_REPUBLISH_HOPS:
                raise LocalRuntimeError(
                    f"Republished {MAX_REPUBLISH_HOPS} times in a chain, last to {topic}: a republish loop "
                    "(AWS would go on forever; check the rules' FROM filters and republish topics)"
                )
            message = Message(
                topic,
                payload,
                MessageContext(
                    topic=topic if ingest is None else ingest.topic,
                    client_id=client_id,
                    principal=principal,
                    trace_id=str(uuid.uuid4()) if client_id != NO_CLIENT else None,
                    timestamp_ms=int(time.time() * 1000),
                ),
            )
            rules = self._rules_for(topic, ingest)
            if ingest is not None and not rules:
                # IoT logs it and counts RuleNotFound; the message goes nowhere.
                not_found = RuleFired(ingest.rule, topic, (), rule_not_found=True)
                fired.append(not_found)
                self._observer(not_found)
            for rule in rules:
                result, republished = self._run(rule, message)
                fired.append(result)
                self._observer(result)
                # A republished message comes from the rules engine, not from an MQTT client.
                waiting.extend((to, body, NO_CLIENT, None, hops + 1) for to, body in republished)
        return fired

    def _rules_for(self, topic: str, ingest: BasicIngest | None) -> list[TopicRule]:
        """The enabled rules whose FROM matches; for Basic Ingest, the enabled rule it names whatever its FROM
        says ("the FROM clause ... is optional" for a rule only Basic Ingest invokes), if there is one."""
        if ingest is None:
            return [
                rule
                for rule in self.rules
                if not rule.disabled and rule.topic_filter is not None and rule.topic_filter.matches(topic)
            ]
        return [rule for rule in self.rules if rule.name == ingest.rule and not rule.disabled]

    def _run(self, rule: TopicRule, message: Message) -> tuple[RuleFired, list[tuple[str, bytes]]]:
        try:
            value = rule.statement.evaluate(message.payload, message.context)
        except SqlEvaluationError as error:
            # AWS logs these (RuleExecution failures in CloudWatch); no action runs and no errorAction.
            return RuleFired(rule.name, message.topic, (), sql_error=str(error)), []
        if value is NOT_FIRED:
            return RuleFired(rule.name, message.topic, (), where_false=True), []
        output = Output(value)
        outcomes, republished = [], []
        for action in rule.actions:
            outcome, follow_up = self._attempt(rule, action, output, message)
            outcomes.append(outcome)
            if follow_up is not None:
                republished.append(follow_up)
        failures = [
            {"failedAction": action.failed_action, "failedResource": action.resource, "errorMessage": outcome.error}
            for action, outcome in zip(rule.actions, outcomes)
            if outcome.error is not None
        ]
        error_outcome = None
        if failures and rule.error_action is not None:
            # One message per rule and message, holding every failed action: AWS's errorAction format.
            error_message = {
                "ruleName": rule.name,
                "topic": message.topic,
                "cloudwatchTraceId": str(uuid.uuid4()),
                "clientId": message.context.client_id,
                "base64OriginalPayload": base64.b64encode(message.payload).decode(),
                "failures": failures,
            }
            error_outcome, follow_up = self._attempt(rule, rule.error_action, Output(error_message), message)
            if follow_up is not None:
                republished.append(follow_up)
        fired = RuleFired(rule.name, message.topic, tuple(outcomes), error_outcome, output=output.value)
        return fired, republished

    def _attempt(
        self, rule: TopicRule, action: Action, output: Output, message: Message
    ) -> tuple[ActionOutcome, tuple[str, bytes] | None]:
        try:
            follow_up = action.run(output, message, self, rule.name)
        except ActionFailed as failure:
            error = f"{failure}. Message arrived on: {message.topic}, Action: {action.kind}"  # as AWS's messages end
            return ActionOutcome(action.kind, action.target, error), None
        return ActionOutcome(action.kind, action.target), follow_up

