"""IoT best practices as a cdk-nag rule pack, for this app and any other CDK app that deploys IoT Core resources.

cdk-nag's own packs know nothing of IoT. This one checks IoT policies, topic rules, Lambda permissions for
IoT, custom authorizers, CA certificates, provisioning templates and IoT logging, on the L1 resources
(`aws_iot.Cfn*`, `aws_lambda.CfnPermission`, `aws_lambda.CfnFunction`) whoever created them. Add it beside
AwsSolutions:

    from cdk_nag import AwsSolutionsChecks
    from stacks.platform.iot_checks import IotChecks

    Validations.of(app).add_plugins(AwsSolutionsChecks(app), IotChecks(app))

Each rule's id is `IoT-<code>` (RULES lists them; README, "IoT checks"). A rule that names what it found
reports it in brackets, as cdk-nag's granular findings: `IoT-POL2[iot:Connect:client/*]`. Acknowledge a
finding as any cdk-nag finding, on the narrowest construct and with the reason:
`Validations.of(construct).acknowledge(Acknowledgment(id="IoT-POL2[iot:Connect:client/*]", reason="..."))`.

An unacknowledged ERROR fails synthesis. A WARN is printed and does not (cdk-nag 3 fails synthesis on any
finding; this pack reports success when only warnings are left). Needs only aws-cdk-lib, constructs and
cdk-nag 3.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterator

import jsii
from aws_cdk import CfnResource, PolicyValidationPluginReport, Stack
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from cdk_nag import IApplyRule, NagMessageLevel, NagPack, NagRuleCompliance
from constructs import IConstruct

PACK_NAME = "IoT"
SQL_VERSION = "2016-03-23"
# The actions a device performs, and the policy variables that bind a wildcard to the device itself.
DEVICE_ACTIONS = ("iot:connect", "iot:publish", "iot:subscribe", "iot:receive")
BINDING_VARIABLES = ("${iot:ClientId}", "${iot:Connection.Thing.ThingName}")
# What a fleet-provisioning claim certificate needs: the CreateKeysAndCertificate / CreateCertificateFromCsr
# and RegisterThing MQTT APIs, their requests and their accepted/rejected replies.
_PROVISIONING_TOPIC = re.compile(
    r"\$aws/(certificates/create(-from-csr)?|provisioning-templates/[^/*+#]+/provision)/(json|cbor)"
    r"(/(accepted|rejected|\*|\+))?"
)
_PROVISIONING_MENTION = re.compile(r"\$aws/(certificates/create|provisioning-templates/)")
_ARN_PART = re.compile(r"(?:<[^>]*>|[^:<])+|(?<=:)(?=:)|(?<=:)$")  # an ARN's parts: a token's colons do not split it
_FROM = re.compile(r"\bFROM\s+'([^']*)'", re.IGNORECASE)
_SELECT_ALL_WITHOUT_WHERE = re.compile(r"\s*SELECT\s+\*\s+FROM\s+'[^']*'\s*", re.IGNORECASE)

Result = NagRuleCompliance | list[str]


@dataclass(frozen=True)
class IotRule:
    code: str
    level: NagMessageLevel
    info: str  # what was found
    explanation: str  # why it matters and what to do
    resource: type[CfnResource]
    check: Callable[[Any, "IotChecks"], Result]

    @property
    def rule_id(self) -> str:
        return f"{PACK_NAME}-{self.code}"


class IotChecks(NagPack):
    """The rule pack; `Validations.of(app).add_plugins(IotChecks(app))`."""

    def __init__(self, scope: IConstruct | None = None, *, verbose: bool = True) -> None:
        super().__init__(scope, verbose=verbose)
        self._pack_name = PACK_NAME
        self._logging_levels: dict[str, list[str]] = {}  # per app root: the levels its IoT logging resources set
        self._functions: dict[str, dict[str, lambda_.CfnFunction]] = {}  # per stack: functions by logical id

    @property
    def name(self) -> str:
        return PACK_NAME

    def _check_resource(self, node: CfnResource) -> None:
        for rule in RULES:
            if isinstance(node, rule.resource):
                self._apply_rule(_AppliedRule(rule, node, self))

    def validate_scope(self, scope: IConstruct) -> PolicyValidationPluginReport:
        self._logging_levels.clear()
        self._functions.clear()
        report = super().validate_scope(scope)
        errors = [violation for violation in report.violations if violation.severity == "error"]
        return PolicyValidationPluginReport(success=not errors, violations=report.violations)

    def logging_levels(self, node: IConstruct) -> list[str]:
        """The default log levels of the IoT logging resources (AWS::IoT::Logging) in the whole app."""
        root = node.node.root
        key = root.node.path or "<root>"
        if key not in self._logging_levels:
            self._logging_levels[key] = [
                str(_resolved(found, found.default_log_level)) for found in root.node.find_all() if isinstance(found, iot.CfnLogging)
            ]
        return self._logging_levels[key]

    def function(self, node: IConstruct, logical_id: str) -> lambda_.CfnFunction | None:
        stack = Stack.of(node)
        if stack.node.path not in self._functions:
            self._functions[stack.node.path] = {
                stack.get_logical_id(found): found for found in stack.node.find_all() if isinstance(found, lambda_.CfnFunction)
            }
        return self._functions[stack.node.path].get(logical_id)


@jsii.implements(IApplyRule)
class _AppliedRule:
    """One rule on one resource, as cdk-nag's applyRule takes it."""

    def __init__(self, rule: IotRule, node: CfnResource, pack: IotChecks) -> None:
        self._rule, self._node, self._pack = rule, node, pack

    @property
    def node(self) -> CfnResource:
        return self._node

    @property
    def rule_suffix_override(self) -> str:
        return self._rule.code

    @property
    def level(self) -> NagMessageLevel:
        return self._rule.level

    @property
    def info(self) -> str:
        return self._rule.info

    @property
    def explanation(self) -> str:
        return self._rule.explanation

    def rule(self, node: CfnResource) -> Result:
        return self._rule.check(node, self._pack)


# -- reading resources ------------------------------------------------------------------------------------


def _resolved(node: IConstruct, value: Any) -> Any:
    return Stack.of(node).resolve(value)


def _text(value: Any) -> str:
    """A resolved value as text, tokens written as cdk-nag writes them: `<AWS::Region>`, `<Logical.Arn>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument) if isinstance(argument, list) else argument}>"
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(_text(part) for part in parts)
        if function == "Fn::Sub":
            return _text(argument[0] if isinstance(argument, list) else argument)
    return json.dumps(value, sort_keys=True)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


@dataclass(frozen=True)
class _Statement:
    effect: str
    actions: list[str]  # lower case
    resources: list[str]
    not_action: bool
    not_resource: bool


def _statements(node: iot.CfnPolicy) -> Iterator[_Statement]:
    document = _resolved(node, node.policy_document)
    if isinstance(document, str):
        document = json.loads(document)
    for statement in _as_list(document.get("Statement")):
        yield _Statement(
            effect=str(statement.get("Effect", "")),
            actions=[_text(a).lower() for a in _as_list(statement.get("Action", statement.get("NotAction")))],
            resources=[_text(r) for r in _as_list(statement.get("Resource", statement.get("NotResource")))],
            not_action="NotAction" in statement,
            not_resource="NotResource" in statement,
        )


def _resource_name(resource: str) -> str:
    """`client/x`, `topic/a/b`, ... of an IoT ARN, whose partition, region and account may be tokens
    (`<AWS::Region>`); `*` stays `*`."""
    parts = _ARN_PART.findall(resource) if resource.startswith("arn:") else []
    return ":".join(parts[5:]) if len(parts) >= 6 else resource


def _allows(statement: _Statement, action: str) -> bool:
    return any(fnmatchcase(action, pattern) for pattern in statement.actions)


def _payload(node: iot.CfnTopicRule) -> dict[str, Any]:
    payload = _resolved(node, node.topic_rule_payload)
    return payload if isinstance(payload, dict) else {}


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The rule's actions and its error action."""
    return [*_as_list(payload.get("actions")), *_as_list(payload.get("errorAction"))]


def _republish_topics(payload: dict[str, Any]) -> list[str]:
    return [_text(action["republish"]["topic"]) for action in _actions(payload) if isinstance(action.get("republish"), dict)]


# -- the rules --------------------------------------------------------------------------------------------


def _policy_allows_everything(node: iot.CfnPolicy, _: IotChecks) -> Result:
    for statement in _statements(node):
        if statement.effect == "Allow" and (statement.not_action or any(a in ("*", "iot:*") for a in statement.actions)):
            return NagRuleCompliance.NON_COMPLIANT
    return NagRuleCompliance.COMPLIANT


def _device_actions_unbound(node: iot.CfnPolicy, _: IotChecks) -> Result:
    findings = []
    for statement in _statements(node):
        if statement.effect != "Allow":
            continue
        for action in DEVICE_ACTIONS:
            if not _allows(statement, action):
                continue
            for resource in ["*"] if statement.not_resource else statement.resources:
                name = _resource_name(resource)
                wildcard = "*" in name or "?" in name
                if resource == "*" or (wildcard and not any(variable in name for variable in BINDING_VARIABLES)):
                    findings.append(f"{_action_name(action)}:{name}")
    return findings or NagRuleCompliance.COMPLIANT


def _action_name(action: str) -> str:
    return "iot:" + action.split(":", 1)[1].capitalize()


def _claim_policy_beyond_provisioning(node: iot.CfnPolicy, _: IotChecks) -> Result:
    statements = [s for s in _statements(node) if s.effect == "Allow"]
    if not any(_PROVISIONING_MENTION.search(resource) for s in statements for resource in s.resources):
        return NagRuleCompliance.NOT_APPLICABLE
    findings = []
    for statement in statements:
        if statement.not_action or statement.not_resource:
            findings.append("NotAction or NotResource")
            continue
        for action in statement.actions:
            for resource in statement.resources:
                name = _resource_name(resource)
                if action == "iot:connect":
                    continue
                kind, _, topic = name.partition("/")
                expected = "topicfilter" if action == "iot:subscribe" else "topic"
                provisioning = action in ("iot:publish", "iot:subscribe", "iot:receive") and kind == expected
                if not (provisioning and _PROVISIONING_TOPIC.fullmatch(topic)):
                    findings.append(f"{_action_name(action)}:{name}")
    return findings or NagRuleCompliance.COMPLIANT


def _rule_without_error_action(node: iot.CfnTopicRule, _: IotChecks) -> Result:
    return NagRuleCompliance.COMPLIANT if _payload(node).get("errorAction") else NagRuleCompliance.NON_COMPLIANT


def _rule_sql_version(node: iot.CfnTopicRule, _: IotChecks) -> Result:
    version = _payload(node).get("awsIotSqlVersion")
    return NagRuleCompliance.COMPLIANT if version == SQL_VERSION else NagRuleCompliance.NON_COMPLIANT


def _select_all_into_lambda(node: iot.CfnTopicRule, _: IotChecks) -> Result:
    payload = _payload(node)
    into_lambda = any(action.get("lambda") for action in _as_list(payload.get("actions")))
    if into_lambda and _SELECT_ALL_WITHOUT_WHERE.fullmatch(_text(payload.get("sql", ""))):
        return NagRuleCompliance.NON_COMPLIANT
    return NagRuleCompliance.COMPLIANT


def _republish_to_reserved_topic(node: iot.CfnTopicRule, _: IotChecks) -> Result:
    findings = []
    for topic in _republish_topics(_payload(node)):
        plain = topic[1:] if topic.startswith("$$") else topic  # CloudFormation writes a leading $ as $$
        if plain.startswith("$") and not plain.startswith("$aws/things/"):
            findings.append(topic)
    return findings or NagRuleCompliance.COMPLIANT


def _republish_loop(node: iot.CfnTopicRule, _: IotChecks) -> Result:
    payload = _payload(node)
    source = _FROM.search(_text(payload.get("sql", "")))
    if source is None:
        return NagRuleCompliance.NOT_APPLICABLE
    findings = [topic for topic in _republish_topics(payload) if _may_match(source.group(1).split("/"), topic.split("/"))]
    return findings or NagRuleCompliance.COMPLIANT


def _may_match(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """Whether some topic the republish template makes matches the rule's topic filter: a level with a
    substitution template (`${topic(2)}`, `${topic()}`) may become any text, and any number of levels."""
    if not filter_levels:
        return not topic_levels or all("${" in level for level in topic_levels)
    head, rest = filter_levels[0], filter_levels[1:]
    if head == "#":
        return bool(topic_levels)
    if not topic_levels:
        return False
    level = topic_levels[0]
    if "${" in level:
        # the template may make this level, or this level and more (`${topic()}` is the whole topic)
        return any(_may_match(filter_levels[i:], topic_levels[1:]) for i in range(1, len(filter_levels) + 1)) or (
            "#" in filter_levels
        )
    return (head == "+" or head == level) and _may_match(rest, topic_levels[1:])


def _permission_unscoped(node: lambda_.CfnPermission, _: IotChecks) -> Result:
    if _resolved(node, node.principal) != "iot.amazonaws.com":
        return NagRuleCompliance.NOT_APPLICABLE
    scoped = node.source_arn is not None and node.source_account is not None
    return NagRuleCompliance.COMPLIANT if scoped else NagRuleCompliance.NON_COMPLIANT


def _authorizer_signing_disabled(node: iot.CfnAuthorizer, _: IotChecks) -> Result:
    disabled = _resolved(node, node.signing_disabled) in (True, "true")
    return NagRuleCompliance.NON_COMPLIANT if disabled else NagRuleCompliance.COMPLIANT


def _authorizer_inactive(node: iot.CfnAuthorizer, _: IotChecks) -> Result:
    status = _resolved(node, node.status)
    return NagRuleCompliance.COMPLIANT if status in (None, "ACTIVE") else NagRuleCompliance.NON_COMPLIANT


def _authorizer_concurrency(node: iot.CfnAuthorizer, pack: IotChecks) -> Result:
    arn = _resolved(node, node.authorizer_function_arn)
    reference = arn.get("Fn::GetAtt") if isinstance(arn, dict) else None
    function = pack.function(node, reference[0]) if isinstance(reference, list) else None
    if function is None or function.reserved_concurrent_executions is None:
        return NagRuleCompliance.NON_COMPLIANT
    return NagRuleCompliance.COMPLIANT


def _ca_auto_registration_without_verification(node: iot.CfnCACertificate, _: IotChecks) -> Result:
    if _resolved(node, node.auto_registration_status) != "ENABLE":
        return NagRuleCompliance.NOT_APPLICABLE
    sni_only = _resolved(node, node.certificate_mode) == "SNI_ONLY" or node.verification_certificate_pem is None
    return NagRuleCompliance.NON_COMPLIANT if sni_only else NagRuleCompliance.COMPLIANT


def _template_without_hook(node: iot.CfnProvisioningTemplate, _: IotChecks) -> Result:
    if _resolved(node, node.template_type) not in (None, "FLEET_PROVISIONING"):
        return NagRuleCompliance.NOT_APPLICABLE  # JITP templates take no hook
    return NagRuleCompliance.NON_COMPLIANT if node.pre_provisioning_hook is None else NagRuleCompliance.COMPLIANT


def _logging_not_configured(node: iot.CfnTopicRule, pack: IotChecks) -> Result:
    levels = pack.logging_levels(node)
    return NagRuleCompliance.COMPLIANT if levels and "DISABLED" not in levels else NagRuleCompliance.NON_COMPLIANT


def _logging_debug(node: iot.CfnLogging | iot.CfnResourceSpecificLogging, _: IotChecks) -> Result:
    level = node.default_log_level if isinstance(node, iot.CfnLogging) else node.log_level
    return NagRuleCompliance.NON_COMPLIANT if _resolved(node, level) == "DEBUG" else NagRuleCompliance.COMPLIANT


ERROR, WARN = NagMessageLevel.ERROR, NagMessageLevel.WARN
RULES: tuple[IotRule, ...] = (
    IotRule(
        "POL1", ERROR, "The IoT policy allows every IoT action (`iot:*`, `*`, or `NotAction`).",
        "A device whose certificate or token is stolen could then do anything IoT allows, to every device and "
        "topic. Allow the actions the device uses (iot:Connect, iot:Publish, iot:Subscribe, iot:Receive, its "
        "shadow and job actions), each on its own resources.",
        iot.CfnPolicy, _policy_allows_everything,
    ),
    IotRule(
        "POL2", ERROR, "The IoT policy allows iot:Connect, Publish, Subscribe or Receive on `*` or on a wildcard no "
        "policy variable binds to the device.",
        "Any device with this policy could connect as any client ID, or publish and listen on other devices' "
        "topics. Bind each wildcard with ${iot:Connection.Thing.ThingName} or ${iot:ClientId} (client/"
        "${iot:Connection.Thing.ThingName}, topic/dt/*/${iot:Connection.Thing.ThingName}/*).",
        iot.CfnPolicy, _device_actions_unbound,
    ),
    IotRule(
        "POL3", ERROR, "The fleet-provisioning claim policy allows more than the provisioning topics.",
        "A claim certificate is shared by a whole batch of devices and lives in their firmware: it should only "
        "get a certificate ($aws/certificates/create[-from-csr]/<format>) and provision with a template "
        "($aws/provisioning-templates/<name>/provision/<format>), with their accepted and rejected replies.",
        iot.CfnPolicy, _claim_policy_beyond_provisioning,
    ),
    IotRule(
        "RUL1", ERROR, "The topic rule has no `errorAction`.",
        "When an action fails (a throttled function, a full queue, a missing permission), IoT drops the message "
        "and says so nowhere but its logs. Give every rule an errorAction, a dead-letter queue that keeps the "
        "message and the error.",
        iot.CfnTopicRule, _rule_without_error_action,
    ),
    IotRule(
        "RUL2", ERROR, f"The topic rule's SQL version is not {SQL_VERSION}.",
        "Without awsIotSqlVersion a rule runs IoT's 2015-10-08 SQL, whose nested-object and array handling "
        f"differs from the documented behaviour. Set awsIotSqlVersion to {SQL_VERSION}.",
        iot.CfnTopicRule, _rule_sql_version,
    ),
    IotRule(
        "RUL3", WARN, "The topic rule sends `SELECT *` to a Lambda function, without a `WHERE` clause.",
        "Every message on the topic invokes the function, whatever it holds: a chatty or malicious device "
        "costs invocations and concurrency. Select the fields the function uses and filter with WHERE.",
        iot.CfnTopicRule, _select_all_into_lambda,
    ),
    IotRule(
        "RUL4", ERROR, "The topic rule republishes to a reserved topic (`$aws/...`).",
        "IoT refuses a republish to its reserved topics other than a thing's ($aws/things/...), so the action "
        "fails on every message. Republish to an application topic.",
        iot.CfnTopicRule, _republish_to_reserved_topic,
    ),
    IotRule(
        "RUL5", ERROR, "The topic rule republishes to a topic its own `FROM` matches.",
        "Each republished message fires the rule again: a loop that multiplies messages and cost until IoT's "
        "limits stop it. Republish outside the rule's topic filter, or narrow the filter.",
        iot.CfnTopicRule, _republish_loop,
    ),
    IotRule(
        "LMP1", ERROR, "The Lambda permission for `iot.amazonaws.com` has no `SourceArn` or no `SourceAccount`.",
        "Without them any IoT rule or authorizer, in any account, that names the function may invoke it (the "
        "confused deputy). Scope the permission with SourceArn (the rule's or authorizer's ARN) and SourceAccount.",
        lambda_.CfnPermission, _permission_unscoped,
    ),
    IotRule(
        "AUT1", ERROR, "The custom authorizer has token signing disabled.",
        "IoT then invokes the function for every token presented, forged or not: each forged attempt costs an "
        "invocation and the function's own check is the only one. Turn signing on with "
        "TokenSigningPublicKeys, unless the devices cannot sign (and acknowledge it, saying so).",
        iot.CfnAuthorizer, _authorizer_signing_disabled,
    ),
    IotRule(
        "AUT2", WARN, "The custom authorizer is not ACTIVE.",
        "IoT refuses every connection that names an INACTIVE authorizer. Set Status to ACTIVE, or remove the "
        "authorizer if it is no longer used.",
        iot.CfnAuthorizer, _authorizer_inactive,
    ),
    IotRule(
        "AUT3", WARN, "The custom authorizer's function has no reserved concurrency in the template.",
        "A reconnect storm invokes the authorizer once per connection: without reserved concurrency it can "
        "starve the account's other functions or be starved by them, and devices are refused. Reserve "
        "concurrency for it, or acknowledge this saying how the account's concurrency is protected.",
        iot.CfnAuthorizer, _authorizer_concurrency,
    ),
    IotRule(
        "CA1", WARN, "The CA certificate auto-registers device certificates but has no verification certificate "
        "(`SNI_ONLY`).",
        "Without a verification certificate IoT has no proof the registering account holds the CA's private "
        "key, and the CA can be registered in other accounts too. Register it in DEFAULT mode with a "
        "verification certificate.",
        iot.CfnCACertificate, _ca_auto_registration_without_verification,
    ),
    IotRule(
        "PRV1", ERROR, "The fleet-provisioning template has no pre-provisioning hook.",
        "Any device holding the claim certificate is then provisioned, whatever its serial number: one leaked "
        "claim certificate onboards any number of devices. Add a PreProvisioningHook that checks the device "
        "against an allow list.",
        iot.CfnProvisioningTemplate, _template_without_hook,
    ),
    IotRule(
        "LOG1", WARN, "IoT logging (v2) is not configured in the app (no `AWS::IoT::Logging`, or `DISABLED`).",
        "Without IoT logs, a rule action's failure, an authorizer's refusal or a refused connection leaves no "
        "trace. Configure AWS::IoT::Logging at ERROR or WARN, or acknowledge this saying where the account's "
        "logging is managed.",
        iot.CfnTopicRule, _logging_not_configured,
    ),
    IotRule(
        "LOG2", WARN, "IoT logging is set to `DEBUG`.",
        "DEBUG logs every message's path through IoT: at fleet scale, a large CloudWatch Logs bill and device "
        "data in the logs. Use ERROR or WARN, and DEBUG only for a time, on a thing group (resource-specific logging).",
        iot.CfnLogging, _logging_debug,
    ),
    IotRule(
        "LOG3", WARN, "Resource-specific IoT logging is set to `DEBUG`.",
        "DEBUG for a thing group logs every message of its devices; keep it for the time of an investigation.",
        iot.CfnResourceSpecificLogging, _logging_debug,
    ),
)
